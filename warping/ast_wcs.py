"""afw ``SkyWcs`` models evaluated exactly with AST (starlink-pyast).

An :class:`AstSkyWcs` wraps an AST ``FrameSet`` whose base frame is afw's ``PIXELS`` (LSST parent
pixels, 0-based, pixel centres at integers) and whose current frame is a ``SkyFrame``. The sky
frame is forced to ICRS (AST remaps the FrameSet), as afw does, so every AstSkyWcs answers in ICRS
degrees whatever frame it was written in. It satisfies :class:`warping.skywcs.SkyWcs`.

* Forward (pixel -> sky) is AST's own transformation.
* Inverse (sky -> pixel) starts from AST's inverse, which is a fitted polynomial in afw models
  and good to only ~1e-5 px (jointcal) or ~1e-2 px (some calexps); a few Newton-like steps on
  the forward map bring it to ~1e-9 px, the double-precision floor (``refine=False`` keeps AST's
  answer).
* Text: :meth:`to_text` gives afw's persisted form (``"1 SkyWcs 0 "`` + AST Channel dump),
  :meth:`from_text` reads that or a bare Channel dump. Pickling goes through the text.
* :meth:`fits_approximation` fits a FITS TAN-SIP :class:`astropy.wcs.WCS` over a pixel box, for
  headers; the AST model stays the reference wherever it is persisted.

Thread safety: the pyast wheel wraps a non-threaded AST build (global error status and object
tables) and never releases the GIL, so AST calls cannot run in parallel anyway; every AST call
here holds one module-wide lock so that a Python callback inside AST (Channel sources and sinks)
cannot interleave with a call from another thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import starlink.Ast as Ast

from warping.errors import FormatError

if TYPE_CHECKING:
    from astropy.coordinates import BaseCoordinateFrame
    from astropy.io import fits
    from astropy.wcs import WCS

    from warping.geom import Box2I

logger = logging.getLogger(__name__)

__all__ = [
    "AFW_SKYWCS_VERSION",
    "AST_LOCK",
    "AstSkyWcs",
    "is_afw_skywcs_text",
    "split_afw_skywcs_text",
]

#: The afw SkyWcs persistence version this reader understands (``"1 SkyWcs ..."``).
AFW_SKYWCS_VERSION = 1

#: Serialises every AST call of the process (see the module docstring).
AST_LOCK = threading.RLock()

#: Base-frame domains afw writes for pixel coordinates.
PIXEL_DOMAINS = ("PIXELS", "ACTUAL_PIXELS")

_TWO_PI = 2.0 * np.pi
#: The inverse refinement stops when its estimated remaining error is below this (pixels); the
#: result is then at the ~1e-9 px floor set by double-precision radians.
_REFINE_TOLERANCE = 1e-9
_REFINE_MAX_ITER = 5


class _Lines:
    """AST Channel sink collecting the dump lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def astsink(self, line: str) -> None:
        self.lines.append(line)


def is_afw_skywcs_text(text: str) -> bool:
    """True for afw's persisted SkyWcs text or a bare AST dump (not FITS header cards)."""
    head = text.lstrip()[:40]
    parts = head.split(None, 2)
    return head.startswith("Begin ") or (
        len(parts) >= 2 and parts[0].isdigit() and parts[1] == "SkyWcs"
    )


def split_afw_skywcs_text(text: str, source: str = "<text>") -> tuple[int, bool, str]:
    """Split afw's persisted SkyWcs text ``"<version> SkyWcs <hasApprox> <AST dump>"``.

    Returns ``(version, has_approx, ast_dump)``. Text that starts directly with an AST dump
    (``Begin ...``) is accepted as version 1 without an approximation.

    Raises
    ------
    FormatError
        If the prefix names another class or a version other than 1.
    """
    stripped = text.lstrip()
    if stripped.startswith(("Begin ", "#")):
        return AFW_SKYWCS_VERSION, False, text
    parts = stripped.split(None, 3)
    if len(parts) < 4 or not parts[0].isdigit():
        raise FormatError(
            f"{source}: not an afw SkyWcs text (expected '1 SkyWcs <0|1> <AST dump>', got "
            f"{stripped[:40]!r}); the file is corrupt or not an LSST SkyWcs"
        )
    version, cls, approx, dump = parts
    if cls != "SkyWcs":
        raise FormatError(
            f"{source}: persisted WCS class {cls!r} is not supported (only afw 'SkyWcs'); "
            "re-persist it as a SkyWcs with the LSST stack"
        )
    if int(version) != AFW_SKYWCS_VERSION:
        raise FormatError(
            f"{source}: afw SkyWcs persistence version {version} is not supported (this reader "
            f"knows version {AFW_SKYWCS_VERSION}); re-persist it with an afw that writes version "
            f"{AFW_SKYWCS_VERSION}, or upgrade repo-butler"
        )
    if approx not in ("0", "1"):
        raise FormatError(f"{source}: afw SkyWcs hasApprox flag is {approx!r}, expected 0 or 1")
    return int(version), approx == "1", dump


def _read_frameset(dump: str, source: str) -> Any:
    with AST_LOCK:
        try:
            obj = Ast.Channel(dump.splitlines()).read()
        except Ast.AstError as err:
            raise FormatError(
                f"{source}: AST cannot read the SkyWcs FrameSet ({err}); the file is corrupt or "
                "uses an AST class this starlink-pyast does not know (upgrade starlink-pyast)"
            ) from None
    if obj is None:
        raise FormatError(f"{source}: the SkyWcs text holds no AST object (truncated?)")
    if not isinstance(obj, Ast.FrameSet):
        raise FormatError(
            f"{source}: the SkyWcs text holds an AST {type(obj).__name__}, not a FrameSet"
        )
    return obj


class AstSkyWcs:
    """An afw SkyWcs: AST FrameSet from parent pixels (0-based) to ICRS.

    Parameters
    ----------
    frameset
        ``starlink.Ast.FrameSet`` with a 2-D ``PIXELS`` (or ``ACTUAL_PIXELS``) base frame and a
        ``SkyFrame`` current frame. It is copied; the copy's sky frame is set to ICRS.
    source
        Where the model came from, for error messages.
    refine
        Polish AST's inverse with Newton steps on the forward map (default True).

    Raises
    ------
    FormatError
        If the FrameSet does not have the afw SkyWcs shape (the message says which part).
    """

    def __init__(self, frameset: Any, *, source: str = "<memory>", refine: bool = True) -> None:
        self.source = source
        self.refine = bool(refine)
        try:
            self._setup(frameset, source)
        except Ast.AstError as err:  # an AST model it cannot remap or invert: one clear error
            raise FormatError(
                f"{source}: AST cannot use this SkyWcs ({type(err).__name__}: "
                f"{str(err).strip()}); the file's astrometric model is unsupported or corrupt"
            ) from None
        self._text: str | None = None  # the Channel dump, made when first needed
        self._approx: dict[tuple[int, int, int, int], WCS] = {}

    def _setup(self, frameset: Any, source: str) -> None:
        with AST_LOCK:
            if not isinstance(frameset, Ast.FrameSet):
                raise FormatError(f"{source}: expected an AST FrameSet, got {frameset!r}")
            fs = frameset.copy()
            base = fs.getframe(Ast.BASE)
            cur = fs.getframe(Ast.CURRENT)
            domains = tuple(str(fs.getframe(i).Domain) for i in range(1, fs.Nframe + 1))
            if base.Naxes != 2 or str(base.Domain) not in PIXEL_DOMAINS:
                raise FormatError(
                    f"{source}: the SkyWcs base frame is a {base.Naxes}-D {base.Class} with domain "
                    f"{base.Domain!r}, not afw's 2-D PIXELS frame (frames: {', '.join(domains)})"
                )
            if not isinstance(cur, Ast.SkyFrame) or cur.Naxes != 2:
                raise FormatError(
                    f"{source}: the SkyWcs current frame is a {cur.Class} with domain "
                    f"{cur.Domain!r}, not a celestial SkyFrame (frames: {', '.join(domains)})"
                )
            self.native_system = str(cur.System)
            if str(cur.SkyRefIs).lower() != "ignored":
                fs.SkyRefIs = "Ignored"  # absolute, not offset, coordinates
            fs.System = "ICRS"  # remaps the FrameSet (FK5/FK4/Galactic... -> ICRS)
            mapping = fs.getmapping(Ast.BASE, Ast.CURRENT)
            if not mapping.TranForward:
                raise FormatError(f"{source}: the SkyWcs has no pixel-to-sky transformation")
            if not mapping.TranInverse:
                raise FormatError(
                    f"{source}: the SkyWcs mapping has no inverse (sky-to-pixel) in AST; "
                    "warping needs both directions"
                )
            sky = fs.getframe(Ast.CURRENT)
            self._lon_axis = int(sky.LonAxis) - 1
            self._lat_axis = int(sky.LatAxis) - 1
            self._fs = fs
            self.domains = domains

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_text(cls, text: str, *, source: str = "<text>", refine: bool = True) -> AstSkyWcs:
        """Read afw's persisted text (``"1 SkyWcs 0 "`` + Channel dump) or a bare Channel dump.

        Raises
        ------
        FormatError
            Unsupported version/class, unreadable AST text, or not a SkyWcs-shaped FrameSet.
        """
        _, _, dump = split_afw_skywcs_text(text, source)
        return cls(_read_frameset(dump, source), source=source, refine=refine)

    @classmethod
    def from_fits_header(
        cls, header: fits.Header, xy0: tuple[int, int] = (0, 0), *, source: str = "<header>"
    ) -> AstSkyWcs:
        """Read an array-relative FITS-WCS header with AST, as afw does (``IWC=1``,
        ``SipReplace=0``, ``RADECSYS`` read as ``RADESYS``, no ``A`` WCS), with parent pixel =
        array pixel + ``xy0``. The sky frame is converted to ICRS.

        Raises
        ------
        FormatError
            If AST finds no celestial FITS-WCS in the header.
        """
        skip = {"LTV1", "LTV2", "COMMENT", "HISTORY", ""}
        cards = []
        for card in header.cards:
            key = str(card.keyword)
            alternate = key.endswith("A") and key[:-1].rstrip("0123456789") in _WCS_KEYS
            if key in skip or alternate:
                continue
            if key == "RADECSYS":
                card = type(card)("RADESYS", card.value, card.comment)
            cards.append(str(card.image))
        with AST_LOCK:
            chan = Ast.FitsChan(cards, None, "Encoding=FITS-WCS,IWC=1,SipReplace=0")
            try:
                obj = chan.read()
            except Ast.AstError as err:
                raise FormatError(
                    f"{source}: AST cannot read the FITS-WCS header ({err})"
                ) from None
            if obj is None or not isinstance(obj, Ast.FrameSet):
                raise FormatError(f"{source}: AST finds no FITS-WCS in the header")
            sky = _sky_index(obj, source)
            # base frame GRID is the 1-based array pixel; afw's PIXELS = GRID - 1 + xy0
            shift = Ast.ShiftMap([xy0[0] - 1.0, xy0[1] - 1.0])
            obj.addframe(Ast.BASE, shift, Ast.Frame(2, "Domain=PIXELS"))
            obj.Base = obj.Current
            obj.Current = sky
        return cls(obj, source=source)

    # -- evaluation ---------------------------------------------------------------------------
    def pixel_to_world_values(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """ICRS ``(ra, dec)`` in degrees (RA in [0, 360)) at parent pixel positions ``(x, y)``;
        NaN where the model is undefined."""
        xa, ya = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        lon, lat = self._forward(xa.ravel(), ya.ravel())
        ra = np.degrees(np.mod(lon, _TWO_PI))
        ra[ra >= 360.0] -= 360.0
        return ra.reshape(xa.shape), np.degrees(lat).reshape(xa.shape)

    def world_to_pixel_values(self, ra: Any, dec: Any) -> tuple[np.ndarray, np.ndarray]:
        """Parent pixel positions ``(x, y)`` of ICRS ``(ra, dec)`` degrees; NaN where AST's
        inverse is undefined."""
        ra_a, dec_a = np.broadcast_arrays(np.asarray(ra, dtype=float), np.asarray(dec, dtype=float))
        lon = np.radians(ra_a.ravel())
        lat = np.radians(dec_a.ravel())
        sky = np.empty((2, lon.size))
        sky[self._lon_axis] = lon
        sky[self._lat_axis] = lat
        with AST_LOCK:
            pix = self._fs.tran(_to_ast(sky), False)
        x, y = _from_ast(pix[0]), _from_ast(pix[1])
        if self.refine and x.size:
            x, y = self._refine(x, y)
        return x.reshape(ra_a.shape), y.reshape(ra_a.shape)

    def _forward(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Radians ``(lon, lat)`` (lon unwrapped) at pixel positions; NaN where undefined."""
        with AST_LOCK:
            out = self._fs.tran(_to_ast(np.stack([x, y])))
        return _from_ast(out[self._lon_axis]), _from_ast(out[self._lat_axis])

    def _defect(self, q: np.ndarray) -> np.ndarray:
        """``e(q) = inv(fwd(q)) - q``: AST's inverse error at pixel positions ``q`` (2, n)."""
        with AST_LOCK:
            back = self._fs.tran(self._fs.tran(_to_ast(q)), False)
        return np.stack([_from_ast(back[0]), _from_ast(back[1])]) - q

    def _contraction(self, p: np.ndarray) -> float:
        """A bound on ``|de/dp|`` near the points ``p`` (2, n): finite differences of the
        defect at up to 16 of them, times 10 for safety."""
        ok = np.flatnonzero(np.isfinite(p).all(axis=0))
        if not ok.size:
            return 1.0
        s = p[:, ok[np.linspace(0, ok.size - 1, min(ok.size, 16)).astype(int)]]
        m = s.shape[1]
        unit_x, unit_y = np.array([[1.0], [0.0]]), np.array([[0.0], [1.0]])
        e = self._defect(np.concatenate([s, s + unit_x, s + unit_y], axis=1))
        jac = np.abs(np.concatenate([e[:, m : 2 * m] - e[:, :m], e[:, 2 * m :] - e[:, :m]]))
        bound = 10.0 * float(np.nanmax(jac.sum(axis=0))) if np.isfinite(jac).any() else 1.0
        return min(max(bound, 1e-12), 1.0)

    def _refine(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Polish AST's inverse ``(x, y) = inv(sky)`` by defect correction on the forward map.

        With ``e(p) = inv(fwd(p)) - p`` (AST's inverse error: smooth, ~1e-5..1e-2 px), the exact
        pixel solves ``p + e(p) = inv(sky)``; the iteration ``p <- inv(sky) - e(p)`` is Newton's
        method with AST's inverse as the Jacobian and contracts by ``c = |de/dp|`` (~1e-8 for
        jointcal, ~1e-5 for afw calexp models) per step. A point stops once ``c`` times its last
        correction is below the tolerance: one step (jointcal) or two (calexps) reach the
        ~1e-9 px floor of double-precision radians. A point whose correction grows (outside the
        model's domain) keeps its previous value.
        """
        start = np.stack([x, y])
        p = start.copy()
        prev = np.full(x.shape, np.inf)
        active = np.isfinite(x) & np.isfinite(y)
        contraction = self._contraction(start)
        for _ in range(_REFINE_MAX_ITER):
            idx = np.flatnonzero(active)
            if not idx.size:
                break
            q = p[:, idx]
            new = start[:, idx] - self._defect(q)
            step = np.hypot(new[0] - q[0], new[1] - q[1])
            take = np.isfinite(step) & (step < prev[idx])
            p[:, idx[take]] = new[:, take]
            prev[idx] = np.where(take, step, 0.0)
            active[idx] = take & (contraction * step > _REFINE_TOLERANCE)
        return p[0], p[1]

    # -- frames and text ----------------------------------------------------------------------
    @property
    def celestial_frame(self) -> BaseCoordinateFrame:
        """The celestial frame of the sky coordinates: always ICRS."""
        from astropy.coordinates import ICRS

        return ICRS()

    @property
    def radesys(self) -> str:
        """``'ICRS'``: the FITS name of :attr:`celestial_frame`."""
        return "ICRS"

    @property
    def frameset(self) -> Any:
        """A copy of the (ICRS) AST FrameSet."""
        with AST_LOCK:
            return self._fs.copy()

    def to_ast_dump(self) -> str:
        """The AST Channel dump of the (ICRS) FrameSet."""
        if self._text is None:
            sink = _Lines()
            with AST_LOCK:
                Ast.Channel(None, sink, "Full=-1,Comment=0").write(self._fs)
            self._text = "\n".join(sink.lines)
        return self._text

    def to_text(self) -> str:
        """afw's persisted SkyWcs text: ``"1 SkyWcs 0 "`` followed by the AST Channel dump."""
        return f"{AFW_SKYWCS_VERSION} SkyWcs 0 {self.to_ast_dump()}"

    def fits_approximation(self, bbox: Box2I, *, tolerance_px: float = 1e-6) -> WCS:
        """A FITS TAN-SIP :class:`astropy.wcs.WCS` (parent pixels, ICRS) fitted over ``bbox``.

        For headers and tools that only read FITS-WCS; see
        :func:`warping.sip_fit.fit_tan_sip` for the fit and its accuracy. Cached per bbox.
        """
        from warping.sip_fit import fit_tan_sip

        key = (bbox.x0, bbox.y0, bbox.width, bbox.height)
        if key not in self._approx:
            wcs, err = fit_tan_sip(self, bbox, tolerance_px=tolerance_px)
            logger.debug("%s: TAN-SIP approximation over %s, max error %.2g px", self.source,
                         bbox, err)  # fmt: skip
            self._approx[key] = wcs
        return self._approx[key]

    # -- copies, pickling, comparison ---------------------------------------------------------
    def deepcopy(self) -> AstSkyWcs:
        """``self``: the model is immutable (astropy ``WCS.deepcopy`` compatibility)."""
        return self

    def __copy__(self) -> AstSkyWcs:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> AstSkyWcs:
        return self

    def __getstate__(self) -> dict[str, Any]:
        return {"text": self.to_ast_dump(), "source": self.source, "refine": self.refine}

    def __setstate__(self, state: dict[str, Any]) -> None:
        fs = _read_frameset(state["text"], state["source"])
        self.__init__(fs, source=state["source"], refine=state["refine"])  # type: ignore[misc]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AstSkyWcs):
            return NotImplemented
        return self.to_ast_dump() == other.to_ast_dump()

    def __hash__(self) -> int:
        return hash(self.to_ast_dump())

    def __repr__(self) -> str:
        return f"AstSkyWcs(frames={'->'.join(self.domains)}, source={self.source!r})"


_WCS_KEYS = {
    "CTYPE", "CRPIX", "CRVAL", "CDELT", "CUNIT", "CD1_", "CD2_", "PC1_", "PC2_", "CROTA",
    "WCSNAME", "RADESYS", "EQUINOX", "LONPOLE", "LATPOLE", "WCSAXES",
}  # fmt: skip


def _sky_index(fs: Any, source: str) -> int:
    for i in range(1, fs.Nframe + 1):
        if isinstance(fs.getframe(i), Ast.SkyFrame):
            return i
    raise FormatError(f"{source}: the FITS-WCS header has no celestial axes")


def _to_ast(a: np.ndarray) -> np.ndarray:
    """Non-finite values -> AST__BAD."""
    a = np.ascontiguousarray(a, dtype=float)
    bad = ~np.isfinite(a)
    if bad.any():
        a = a.copy()
        a[bad] = Ast.BAD
    return a


def _from_ast(a: Sequence[float] | np.ndarray) -> np.ndarray:
    """AST__BAD -> NaN."""
    out = np.array(a, dtype=float)
    out[out == Ast.BAD] = np.nan
    return out
