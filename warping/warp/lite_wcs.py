"""A small, exact, astropy-free celestial WCS for zenithal projections with optional SIP.

:class:`LiteWcs` evaluates the common FITS case (``RA---TAN`` and friends, ``CD`` or
``PC``/``CDELT`` or ``CROTA2``, optional SIP) with numpy only, so ``rb warp-image`` does not pay
the import of :mod:`astropy.wcs`. Anything else makes :meth:`LiteWcs.from_header` return
``None`` and the caller falls back to astropy.

Conventions (those of astropy's APE-14 ``*_values`` methods and LSST): pixel positions are 0-based
and pixel index ``i`` is centred on position ``i``; world values are degrees, longitude in
``[0, 360)``. Projections follow Calabretta & Greisen (2002, A&A 395, 1077): zenithal with the
native pole at the reference point (``θ0 = 90°``), ``LONPOLE`` defaulting to 180° (0° when
``CRVAL2 = 90°``). SIP (Shupe et al. 2005) is applied to pixel offsets from ``CRPIX`` before the
linear matrix; the inverse solves the forward polynomial by vectorised Newton iteration to 1e-9 px
(the ``AP``/``BP`` approximate inverse is ignored).

Internally the sky is handled as unit vectors: native vector ``n = (cosθ cosφ, cosθ sinφ, sinθ)``
and celestial vector ``w = M n`` with a fixed rotation ``M``. The projection formulas are written
directly in terms of the vector components, so a pixel-to-pixel transform between two
:class:`LiteWcs` (:func:`pair_transform`) needs no trigonometric function at all.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from warping.warp.lite_sip import SIP_TOLERANCE, SipPlan, SipTerms

__all__ = ["PROJECTIONS", "SIP_TOLERANCE", "LiteWcs", "pair_transform"]

logger = logging.getLogger(__name__)

#: Zenithal projection codes handled by :class:`LiteWcs`.
PROJECTIONS = ("TAN", "STG", "SIN", "ZEA", "ARC")


_D2R = math.pi / 180.0
_R2D = 180.0 / math.pi

_CTYPE_RE = re.compile(r"^(RA|DEC|GLON|GLAT|ELON|ELAT)-*-(TAN|STG|SIN|ZEA|ARC)(-SIP)?$")
_AXIS_PAIRS = {("RA", "DEC"), ("GLON", "GLAT"), ("ELON", "ELAT")}
_SIP_RE = re.compile(r"^([AB])_(\d)_(\d)$")
# Keywords (prefixes) of WCS features LiteWcs does not implement: distortion lookup tables,
# projection parameters, tabular coordinates.
_UNSUPPORTED_PREFIXES = ("CPDIS", "CQDIS", "CPERR", "CQERR", "DP1", "DP2", "DQ1", "DQ2", "D2IM")
_UNSUPPORTED_RE = re.compile(r"^(PV|PS|PROJP)\d")
_AXIS_KEY_RE = re.compile(r"^(CTYPE|CRPIX|CRVAL|CDELT|CUNIT|CROTA|CRDER|CSYER)(\d+)$")
_MATRIX_KEY_RE = re.compile(r"^(CD|PC)(\d+)_(\d+)$")


def _sincosd(angle: float) -> tuple[float, float]:
    """``(sin, cos)`` of an angle in degrees, exact at multiples of 90° (as wcslib does)."""
    a = math.fmod(angle, 360.0)
    if a < 0:
        a += 360.0
    exact = {0.0: (0.0, 1.0), 90.0: (1.0, 0.0), 180.0: (0.0, -1.0), 270.0: (-1.0, 0.0)}
    if a in exact:
        return exact[a]
    r = a * _D2R
    return math.sin(r), math.cos(r)


def _num(value: Any) -> float | None:
    """A finite real number from a header value, else None (bools and strings are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _native_to_celestial(crval: tuple[float, float], lonpole: float) -> np.ndarray:
    """The 3x3 rotation ``M`` with ``w = M n`` (C&G 2002 eq. 2 with ``δp = δ0``, ``αp = α0``)."""
    sa, ca = _sincosd(crval[0])
    sd, cd = _sincosd(crval[1])
    sp, cp = _sincosd(lonpole)
    m = np.empty((3, 3))
    for j, n in enumerate(np.eye(3)):
        c = n[0] * cp + n[1] * sp  # cosθ cos(φ-φp)
        s = n[1] * cp - n[0] * sp  # cosθ sin(φ-φp)
        big_x = n[2] * cd - c * sd
        big_y = -s
        m[0, j] = big_x * ca - big_y * sa
        m[1, j] = big_x * sa + big_y * ca
        m[2, j] = n[2] * sd + c * cd
    return m


def _terms_from_array(coef: np.ndarray, order: int) -> SipTerms:
    """Non-zero ``(p, q, c)`` of a SIP coefficient array ``coef[p, q]`` with ``p + q <= order``."""
    return tuple(
        (int(p), int(q), float(coef[p, q]))
        for p, q in zip(*np.nonzero(coef), strict=True)
        if p + q <= order
    )


@dataclass(frozen=True, eq=True)
class LiteWcs:
    """A two-axis celestial WCS: zenithal projection, linear matrix, optional SIP distortion.

    Parameters
    ----------
    crpix
        Reference pixel, FITS 1-based (``CRPIX1``, ``CRPIX2``).
    crval
        Reference sky position, degrees (``CRVAL1``, ``CRVAL2``).
    pc, cdelt
        Linear matrix: intermediate world ``x_i = cdelt_i sum_j pc_ij (p_j - crpix_j)``, degrees.
        A ``CD`` header is stored as ``pc = CD``, ``cdelt = (1, 1)`` with ``use_cd=True``.
    projection
        One of :data:`PROJECTIONS`.
    lonpole, latpole
        Native longitude / latitude of the celestial pole, degrees; None selects the defaults
        (180°, or 0° when ``CRVAL2 = 90°``; ``CRVAL2``). ``LATPOLE`` is recorded only: it does
        not affect zenithal projections.
    axes
        Axis name prefixes, e.g. ``("RA", "DEC")``.
    sip_a, sip_b
        Non-zero SIP coefficients as ``(p, q, value)``; ``sip_order`` is ``(A_ORDER, B_ORDER)`` or
        None without SIP.
    radesys, equinox
        Reference frame cards as read (None when absent).
    use_cd
        Write ``CDi_j`` (True) or ``PCi_j`` + ``CDELTi`` (False) in :meth:`to_cards`.
    """

    crpix: tuple[float, float]
    crval: tuple[float, float]
    pc: tuple[tuple[float, float], tuple[float, float]]
    cdelt: tuple[float, float] = (1.0, 1.0)
    projection: str = "TAN"
    lonpole: float | None = None
    latpole: float | None = None
    axes: tuple[str, str] = ("RA", "DEC")
    sip_a: SipTerms = ()
    sip_b: SipTerms = ()
    sip_order: tuple[int, int] | None = None
    radesys: str | None = None
    equinox: float | None = None
    use_cd: bool = True
    _lin: np.ndarray = field(init=False, repr=False, compare=False)
    _inv: np.ndarray = field(init=False, repr=False, compare=False)
    _rot: np.ndarray = field(init=False, repr=False, compare=False)
    _lonpole: float = field(init=False, repr=False, compare=False)
    _sip: SipPlan | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.projection not in PROJECTIONS:
            raise ValueError(f"projection {self.projection!r} is not one of {PROJECTIONS}")
        lin = np.asarray(self.pc, dtype=float) * np.asarray(self.cdelt, dtype=float)[:, None]
        det = lin[0, 0] * lin[1, 1] - lin[0, 1] * lin[1, 0]
        if not np.all(np.isfinite(lin)) or det == 0.0:
            raise ValueError(f"the linear matrix {lin.tolist()} is singular or not finite")
        lonpole = self.lonpole
        if lonpole is None:  # C&G 2002: 0 if δ0 >= θ0 (= 90° for zenithal), else 180°
            lonpole = 0.0 if self.crval[1] >= 90.0 else 180.0
            object.__setattr__(self, "lonpole", lonpole)
        if self.latpole is None:  # irrelevant for zenithal projections; wcslib reports δ0
            object.__setattr__(self, "latpole", float(self.crval[1]))
        object.__setattr__(self, "_lin", lin)
        object.__setattr__(self, "_inv", np.linalg.inv(lin))
        object.__setattr__(self, "_lonpole", float(lonpole))
        object.__setattr__(self, "_rot", _native_to_celestial(self.crval, float(lonpole)))
        has_sip = self.sip_order is not None and bool(self.sip_a or self.sip_b)
        object.__setattr__(self, "_sip", SipPlan(self.sip_a, self.sip_b) if has_sip else None)

    # ---- construction --------------------------------------------------------------------

    @classmethod
    def from_header(cls, cards: Mapping[str, Any]) -> LiteWcs | None:
        """Build from FITS header cards, or None if the header uses anything not supported.

        Parameters
        ----------
        cards
            Keyword -> value mapping (upper-case keywords), e.g. from
            :func:`warping.warp.lite_fits.read_cards` or an astropy ``Header``.

        Returns
        -------
        LiteWcs or None
            None (never an exception) for other projections, ``PV``/``TPV`` distortions, lookup
            tables, more than two WCS axes, units other than degrees, conflicting ``CD``/``PC``,
            non-numeric values...: the caller should fall back to astropy.
        """
        try:
            return cls._from_header(cards)
        except (ValueError, TypeError, KeyError) as err:
            logger.debug("LiteWcs.from_header: unsupported header (%s)", err)
            return None

    @classmethod
    def _from_header(cls, cards: Mapping[str, Any]) -> LiteWcs | None:
        keys = [str(k).upper() for k in cards]
        has = set(keys)
        for key in keys:
            if key.startswith(_UNSUPPORTED_PREFIXES) or _UNSUPPORTED_RE.match(key):
                return None
            m = _AXIS_KEY_RE.match(key) or _MATRIX_KEY_RE.match(key)
            if m and any(int(g) > 2 or int(g) < 1 for g in m.groups()[1:]):
                return None
        waxes = cards.get("WCSAXES")
        if waxes is not None and (_num(waxes) != 2.0):
            return None
        naxis = cards.get("NAXIS")
        if waxes is None and naxis is not None and (_num(naxis) is None or float(naxis) > 2):
            return None
        c1, c2 = cards.get("CTYPE1"), cards.get("CTYPE2")
        if not isinstance(c1, str) or not isinstance(c2, str):
            return None
        m1, m2 = _CTYPE_RE.match(c1.strip()), _CTYPE_RE.match(c2.strip())
        if m1 is None or m2 is None or len(c1.strip().split("-SIP")[0]) != 8:
            return None
        if len(c2.strip().split("-SIP")[0]) != 8:
            return None
        if (m1.group(1), m2.group(1)) not in _AXIS_PAIRS or m1.group(2) != m2.group(2):
            return None
        if bool(m1.group(3)) != bool(m2.group(3)):
            return None
        for i in (1, 2):
            unit = cards.get(f"CUNIT{i}")
            if unit is not None and (not isinstance(unit, str) or unit.strip().lower() != "deg"):
                return None
        values = {}
        for key in ("CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2"):
            v = _num(cards.get(key))
            if v is None:
                return None
            values[key] = v
        cd_keys = [f"CD{i}_{j}" for i in (1, 2) for j in (1, 2)]
        pc_keys = [f"PC{i}_{j}" for i in (1, 2) for j in (1, 2)]
        has_cd = any(k in has for k in cd_keys)
        has_pc = any(k in has for k in pc_keys)
        has_crota = "CROTA1" in has or "CROTA2" in has
        cdelt = []
        for i in (1, 2):
            d = cards.get(f"CDELT{i}", 1.0)
            if _num(d) is None:
                return None
            cdelt.append(float(d))
        if has_cd:
            if has_pc or has_crota or cdelt != [1.0, 1.0]:
                return None
            if "CD1_1" not in has or "CD2_2" not in has:
                return None
            mat = [_num(cards.get(k, 0.0)) for k in cd_keys]
            cdelt = [1.0, 1.0]
        elif has_pc:
            if has_crota:
                return None
            mat = [_num(cards.get(k, 1.0 if k[2] == k[4] else 0.0)) for k in pc_keys]
        elif has_crota:
            # wcslib uses the latitude axis's CROTA2; a lone CROTA1 is accepted only when 0
            r1, r2 = _num(cards.get("CROTA1", cards.get("CROTA2"))), _num(cards.get("CROTA2", 0.0))
            if r1 is None or r2 is None or (r1 != r2 and not ("CROTA2" not in has and r1 == 0)):
                return None
            s, c = _sincosd(r2)
            ratio = cdelt[1] / cdelt[0]
            mat = [c, -s * ratio, s / ratio, c]
        else:
            mat = [1.0, 0.0, 0.0, 1.0]
        if any(v is None for v in mat):
            return None
        lonpole = cards.get("LONPOLE")
        latpole = cards.get("LATPOLE")
        if (lonpole is not None and _num(lonpole) is None) or (
            latpole is not None and _num(latpole) is None
        ):
            return None
        sip = cls._sip_from_cards(cards, keys, bool(m1.group(3)))
        radesys = cards.get("RADESYS", cards.get("RADECSYS"))
        equinox = cards.get("EQUINOX")
        return cls(
            crpix=(values["CRPIX1"], values["CRPIX2"]),
            crval=(values["CRVAL1"], values["CRVAL2"]),
            pc=((float(mat[0]), float(mat[1])), (float(mat[2]), float(mat[3]))),  # type: ignore[arg-type]
            cdelt=(cdelt[0], cdelt[1]),
            projection=m1.group(2),
            lonpole=None if lonpole is None else float(lonpole),
            latpole=None if latpole is None else float(latpole),
            axes=(m1.group(1), m2.group(1)),
            sip_a=sip[0] if sip else (),
            sip_b=sip[1] if sip else (),
            sip_order=sip[2] if sip else None,
            radesys=radesys.strip() if isinstance(radesys, str) else None,
            equinox=_num(equinox),
            use_cd=has_cd,
        )

    @staticmethod
    def _sip_from_cards(
        cards: Mapping[str, Any], keys: list[str], sip_ctype: bool
    ) -> tuple[SipTerms, SipTerms, tuple[int, int]] | None:
        """SIP terms, None without SIP; raises ValueError when SIP cards are inconsistent."""
        a_order, b_order = cards.get("A_ORDER"), cards.get("B_ORDER")
        if a_order is None and b_order is None:
            # "-SIP" without coefficients or stray coefficients: let astropy decide
            if sip_ctype or any(_SIP_RE.match(k) for k in keys):
                raise ValueError("SIP coefficients or '-SIP' CTYPE without A_ORDER/B_ORDER")
            return None
        orders = (_num(a_order), _num(b_order))
        if orders[0] is None or orders[1] is None:
            raise ValueError("A_ORDER and B_ORDER must both be numbers")
        oa, ob = int(orders[0]), int(orders[1])
        if oa != orders[0] or ob != orders[1] or not (0 <= oa <= 9 and 0 <= ob <= 9):
            raise ValueError(f"unsupported SIP orders {orders}")
        terms: dict[str, list[tuple[int, int, float]]] = {"A": [], "B": []}
        for key in keys:
            m = _SIP_RE.match(key)
            if not m:
                continue
            p, q = int(m.group(2)), int(m.group(3))
            if p + q > (oa if m.group(1) == "A" else ob):
                continue  # astropy reads only terms up to the order
            v = _num(cards.get(key))
            if v is None:
                raise ValueError(f"{key} is not a number")
            if v != 0.0:
                terms[m.group(1)].append((p, q, v))
        return tuple(sorted(terms["A"])), tuple(sorted(terms["B"])), (oa, ob)

    @classmethod
    def from_astropy(cls, wcs: Any) -> LiteWcs | None:
        """Build from an ``astropy.wcs.WCS``, or None if it uses anything not supported.

        Parameters
        ----------
        wcs
            An astropy WCS with two celestial axes; SIP is read from ``wcs.sip``. Lookup-table
            distortions (``cpdis``/``det2im``), projection parameters or other axes give None.
        """
        try:
            return cls._from_astropy(wcs)
        except (AttributeError, ValueError, TypeError, IndexError) as err:
            logger.debug("LiteWcs.from_astropy: unsupported WCS (%s)", err)
            return None

    @classmethod
    def _from_astropy(cls, wcs: Any) -> LiteWcs | None:
        w = wcs.wcs
        if w.naxis != 2:
            return None
        for attr in ("cpdis1", "cpdis2", "det2im1", "det2im2"):
            if getattr(wcs, attr, None) is not None:
                return None
        w.set()
        if len(w.get_pv()) or len(w.get_ps()) or list(w.cunit) != ["deg", "deg"]:
            return None
        c1, c2 = str(w.ctype[0]), str(w.ctype[1])
        m1, m2 = _CTYPE_RE.match(c1), _CTYPE_RE.match(c2)
        if m1 is None or m2 is None or (m1.group(1), m2.group(1)) not in _AXIS_PAIRS:
            return None
        if m1.group(2) != m2.group(2) or w.lng != 0 or w.lat != 1:
            return None
        sip = wcs.sip
        sip_a: SipTerms = ()
        sip_b: SipTerms = ()
        order = None
        if sip is not None:
            if not np.array_equal(np.asarray(sip.crpix), np.asarray(w.crpix)):
                return None
            order = (int(sip.a_order), int(sip.b_order))
            sip_a = tuple(
                (int(p), int(q), float(sip.a[p, q]))
                for p, q in zip(*np.nonzero(sip.a), strict=True)
            )
            sip_b = tuple(
                (int(p), int(q), float(sip.b[p, q]))
                for p, q in zip(*np.nonzero(sip.b), strict=True)
            )
        use_cd = bool(w.has_cd())
        if use_cd:
            pc = np.asarray(w.cd, dtype=float)
            cdelt = np.ones(2)
        else:
            pc = np.asarray(w.get_pc(), dtype=float)
            cdelt = np.asarray(w.get_cdelt(), dtype=float)
        radesys = str(w.radesys) or None
        equinox = float(w.equinox) if np.isfinite(w.equinox) else None
        lite = cls(
            crpix=(float(w.crpix[0]), float(w.crpix[1])),
            crval=(float(w.crval[0]), float(w.crval[1])),
            pc=((float(pc[0, 0]), float(pc[0, 1])), (float(pc[1, 0]), float(pc[1, 1]))),
            cdelt=(float(cdelt[0]), float(cdelt[1])),
            projection=m1.group(2),
            lonpole=float(w.lonpole),
            latpole=float(w.latpole),
            axes=(m1.group(1), m2.group(1)),
            sip_a=tuple(sorted(sip_a)),
            sip_b=tuple(sorted(sip_b)),
            sip_order=order,
            radesys=radesys,
            equinox=equinox,
            use_cd=use_cd,
        )
        # wcslib keeps some distortions (e.g. TPV as a "sequent" polynomial) out of sight of
        # the attributes above: check the transform itself at a few points.
        px = np.array([0.0, 1.0, -1.0, 1.0, -1.0]) * 1000.0 + w.crpix[0] - 1.0
        py = np.array([0.0, 1.0, 1.0, -1.0, -1.0]) * 1000.0 + w.crpix[1] - 1.0
        ra_ref, dec_ref = wcs.all_pix2world(px, py, 0)
        ra, dec = lite.pixel_to_world_values(px, py)
        dra = np.abs(np.mod(ra - ra_ref + 180.0, 360.0) - 180.0) * np.cos(np.radians(dec_ref))
        ok = np.isfinite(ra_ref)
        if not np.array_equal(ok, np.isfinite(ra)) or np.any(dra[ok] > 1e-9):
            return None
        if np.any(np.abs(dec - dec_ref)[ok] > 1e-9):
            return None
        return lite

    # ---- APE-14 style low-level API -------------------------------------------------------

    @property
    def pixel_n_dim(self) -> int:
        """Number of pixel axes (2)."""
        return 2

    @property
    def world_n_dim(self) -> int:
        """Number of world axes (2)."""
        return 2

    @property
    def has_celestial(self) -> bool:
        """Always True (both axes are celestial)."""
        return True

    @property
    def celestial(self) -> LiteWcs:
        """The celestial part of the WCS: the WCS itself."""
        return self

    @property
    def has_sip(self) -> bool:
        """Whether a SIP distortion is applied."""
        return self._sip is not None

    def pixel_to_world_values(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """0-based pixel positions to ``(lon, lat)`` degrees (longitude in ``[0, 360)``).

        Parameters
        ----------
        x, y
            Pixel positions (arrays broadcast together), pixel ``i`` centred on ``i``.

        Returns
        -------
        lon, lat : numpy.ndarray
            Degrees; NaN where the projection is undefined (e.g. outside a SIN disc).
        """

        def one(xc: np.ndarray, yc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return _vector_to_lonlat(_rotate(self._rot, self._pixel_to_native(xc, yc)))

        return _chunked(one, x, y)

    def world_to_pixel_values(self, lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(lon, lat)`` degrees to 0-based pixel positions; SIP inverted to 1e-9 px.

        Parameters
        ----------
        lon, lat
            Degrees, arrays broadcast together.

        Returns
        -------
        x, y : numpy.ndarray
            NaN where the projection is undefined (far hemisphere for TAN/SIN) or the SIP
            Newton iteration does not converge.
        """
        # longitudes relative to CRVAL1 (exact on the reference meridian), rotation folded in
        sa, ca = _sincosd(self.crval[0])
        rot = self._rot.T @ np.array([[ca, -sa, 0.0], [sa, ca, 0.0], [0.0, 0.0, 1.0]])

        def one(lon_c: np.ndarray, lat_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            # half-angle tangents: two tan() instead of four sin/cos, same absolute accuracy
            ca, sa = _cos_sin_half_tan((lon_c - self.crval[0]) * (0.5 * _D2R))
            cd, sd = _cos_sin_half_tan(lat_c * (0.5 * _D2R))
            ca *= cd
            sa *= cd
            return self._native_to_pixel(_rotate(rot, (ca, sa, sd)))

        return _chunked(one, lon, lat)

    # ---- vector forms ------------------------------------------------------------------------

    def pixel_to_vector(self, x: Any, y: Any) -> np.ndarray:
        """0-based pixel positions to celestial unit vectors, shape ``(3, *shape)``."""
        xa, ya = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        w = _rotate(self._rot, self._pixel_to_native(xa.ravel(), ya.ravel()))
        return np.stack(w).reshape((3, *xa.shape))

    def vector_to_pixel(self, w: Any) -> tuple[np.ndarray, np.ndarray]:
        """Celestial unit vectors ``(3, *shape)`` to 0-based pixel positions."""
        wa = np.asarray(w, dtype=float)
        shape = wa.shape[1:]
        flat = wa.reshape(3, -1)
        x, y = self._native_to_pixel(_rotate(self._rot.T, (flat[0], flat[1], flat[2])))
        return x.reshape(shape), y.reshape(shape)

    def _pixel_to_native(self, x: np.ndarray, y: np.ndarray) -> Vec3:
        """Flat 0-based pixel positions to native unit vectors."""
        u = x - (self.crpix[0] - 1.0)
        v = y - (self.crpix[1] - 1.0)
        if self._sip is not None:
            fa, fb = self._sip.forward(u, v)
            u = u + fa
            v = v + fb
        lin = self._lin * _D2R
        xi = lin[0, 0] * u + lin[0, 1] * v
        eta = lin[1, 0] * u + lin[1, 1] * v
        return _deproject(self.projection, xi, eta)

    def _native_to_pixel(self, n: Vec3) -> tuple[np.ndarray, np.ndarray]:
        """Native unit vectors to flat 0-based pixel positions."""
        xi, eta = _project(self.projection, n)
        inv = self._inv * _R2D
        u = inv[0, 0] * xi + inv[0, 1] * eta
        v = inv[1, 0] * xi + inv[1, 1] * eta
        if self._sip is not None:
            u, v = self._sip.invert(u, v)
        u += self.crpix[0] - 1.0
        v += self.crpix[1] - 1.0
        return u, v

    # ---- serialisation -------------------------------------------------------------------

    def to_cards(self) -> list[tuple[str, Any, str]]:
        """FITS cards ``(keyword, value, comment)`` describing this WCS (as astropy writes)."""

        def ctype(axis: str) -> str:
            base = f"{axis}{'-' * (4 - len(axis))}-{self.projection}"
            return base + ("-SIP" if self.sip_order is not None else "")

        cards: list[tuple[str, Any, str]] = [
            ("WCSAXES", 2, "Number of coordinate axes"),
            ("CRPIX1", self.crpix[0], "Pixel coordinate of reference point"),
            ("CRPIX2", self.crpix[1], "Pixel coordinate of reference point"),
        ]
        kind = "CD" if self.use_cd else "PC"
        for i in (1, 2):
            for j in (1, 2):
                cards.append((f"{kind}{i}_{j}", self.pc[i - 1][j - 1], "Linear transformation"))
        if not self.use_cd:
            cards.append(("CDELT1", self.cdelt[0], "[deg] Coordinate increment"))
            cards.append(("CDELT2", self.cdelt[1], "[deg] Coordinate increment"))
        cards += [
            ("CUNIT1", "deg", "Units of coordinate increment and value"),
            ("CUNIT2", "deg", "Units of coordinate increment and value"),
            ("CTYPE1", ctype(self.axes[0]), "Longitude axis and projection"),
            ("CTYPE2", ctype(self.axes[1]), "Latitude axis and projection"),
            ("CRVAL1", self.crval[0], "[deg] Coordinate value at reference point"),
            ("CRVAL2", self.crval[1], "[deg] Coordinate value at reference point"),
            ("LONPOLE", self._lonpole, "[deg] Native longitude of celestial pole"),
            ("LATPOLE", self.latpole, "[deg] Native latitude of celestial pole"),
        ]
        if self.radesys is not None:
            cards.append(("RADESYS", self.radesys, "Equatorial coordinate system"))
        if self.equinox is not None:
            cards.append(("EQUINOX", self.equinox, "[yr] Equinox of equatorial coordinates"))
        if self.sip_order is not None:
            for name, terms, order in (
                ("A", self.sip_a, self.sip_order[0]),
                ("B", self.sip_b, self.sip_order[1]),
            ):
                cards.append((f"{name}_ORDER", order, "SIP polynomial order"))
                for p, q, c in terms:
                    cards.append((f"{name}_{p}_{q}", c, "SIP distortion coefficient"))
        return cards


#: Points per chunk: keeps every temporary array cache-sized and reused by the allocator.
CHUNK = 16384


def _chunked(
    fn: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]], a: Any, b: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Apply a flat two-in/two-out array function chunk by chunk, keeping the broadcast shape."""
    aa, bb = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    fa, fb = aa.ravel(), bb.ravel()
    n = fa.size
    if n <= CHUNK:
        ra, rb = fn(fa, fb)
        return ra.reshape(aa.shape), rb.reshape(aa.shape)
    out_a = np.empty(n)
    out_b = np.empty(n)
    for start in range(0, n, CHUNK):
        sl = slice(start, min(start + CHUNK, n))
        out_a[sl], out_b[sl] = fn(fa[sl], fb[sl])
    return out_a.reshape(aa.shape), out_b.reshape(aa.shape)


# ---- rotations and projections (unit-vector form) ---------------------------------------------

Vec3 = tuple[np.ndarray, np.ndarray, np.ndarray]


def _rotate(m: np.ndarray, n: Vec3) -> Vec3:
    """``m @ n`` for a 3x3 matrix and a vector of three arrays (explicit: no BLAS threads)."""
    out = []
    for i in range(3):
        acc = n[0] * m[i, 0]
        if m[i, 1] != 0.0:
            acc += n[1] * m[i, 1]
        if m[i, 2] != 0.0:
            acc += n[2] * m[i, 2]
        out.append(acc)
    return out[0], out[1], out[2]


def _deproject(code: str, xi: np.ndarray, eta: np.ndarray) -> Vec3:
    """Intermediate world coordinates (radians) to native unit vectors.

    ``φ = atan2(ξ, -η)``, ``R = hypot(ξ, η)``; ``n = (-η k, ξ k, sinθ)`` with ``k = cosθ / R``.
    """
    r2 = xi * xi + eta * eta
    with np.errstate(invalid="ignore", divide="ignore"):
        if code == "TAN":  # R = cotθ: k = sinθ = 1 / sqrt(1 + R²)
            r2 += 1.0
            k = np.sqrt(r2)
            np.divide(1.0, k, out=k)
            z = k
        elif code == "STG":  # R = 2 tan(ζ/2)
            t2 = 0.25 * r2
            k = 1.0 / (1.0 + t2)
            z = (1.0 - t2) * k
        elif code == "SIN":  # R = cosθ; NaN outside the unit disc
            z = np.sqrt(1.0 - r2)
            k = z * 0.0 + 1.0
        elif code == "ZEA":  # R = 2 sin(ζ/2); NaN beyond R = 2
            k = np.sqrt(1.0 - 0.25 * r2)
            z = 1.0 - 0.5 * r2 + k * 0.0
        else:  # ARC: R = ζ
            r = np.sqrt(r2)
            z = np.cos(r)
            safe = np.where(r > 0.0, r, 1.0)
            k = np.where(r > 0.0, np.sin(r) / safe, 1.0)
    return -eta * k, xi * k, z


def _project(code: str, n: Vec3) -> tuple[np.ndarray, np.ndarray]:
    """Native unit vectors to intermediate world coordinates in radians.

    ``ξ = R sinφ = (R / cosθ) n1`` and ``η = -R cosφ = -(R / cosθ) n0``.
    """
    n0, n1, n2 = n
    with np.errstate(invalid="ignore", divide="ignore"):
        if code == "TAN":  # R / cosθ = 1 / sinθ
            g = 1.0 / n2
            np.copyto(g, np.nan, where=n2 <= 0.0)
        elif code == "STG":
            g = 2.0 / (1.0 + n2)
        elif code == "SIN":
            g = np.ones_like(n2)
            np.copyto(g, np.nan, where=n2 < 0.0)
        elif code == "ZEA":
            g = np.sqrt(2.0 / (1.0 + n2))
        else:  # ARC
            s = np.sqrt(n0 * n0 + n1 * n1)
            zeta = np.arctan2(s, n2)
            safe = np.where(s > 0.0, s, 1.0)
            g = np.where(s > 0.0, zeta / safe, 1.0)
        if code in ("STG", "ZEA", "ARC"):  # undefined at the antipode of the reference point
            np.copyto(g, np.nan, where=n2 <= -1.0)
    xi = n1 * g
    eta = n0 * g
    np.negative(eta, out=eta)
    return xi, eta


def _cos_sin_half_tan(half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(cos 2h, sin 2h)`` from ``t = tan h``: ``((1 - t²) / (1 + t²), 2t / (1 + t²))``."""
    t = np.tan(half)
    t2 = t * t
    d = 1.0 + t2
    np.divide(1.0, d, out=d)
    c = 1.0 - t2
    c *= d
    t *= d
    t *= 2.0
    return c, t


def _vector_to_lonlat(w: Vec3) -> tuple[np.ndarray, np.ndarray]:
    lon = np.arctan2(w[1], w[0])
    lon *= _R2D
    np.add(lon, 360.0, out=lon, where=lon < 0.0)
    np.subtract(lon, 360.0, out=lon, where=lon >= 360.0)
    lat = np.arctan2(w[2], np.sqrt(w[0] * w[0] + w[1] * w[1]))
    lat *= _R2D
    return lon, lat


def pair_transform(
    src: LiteWcs, dest: LiteWcs
) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The destination-to-source 0-based pixel map ``src⁻¹ ∘ dest`` without trigonometry.

    Equivalent to ``src.world_to_pixel_values(*dest.pixel_to_world_values(x, y))`` (same
    ``DestToSrc`` signature as :func:`warping.warp._transform.wcs_pair_transform`) but goes
    through unit vectors with one combined rotation, so no ``sin``/``cos``/``atan2`` is evaluated.

    Raises
    ------
    ValueError
        If the two WCSs use different celestial frames (e.g. RA/Dec and Galactic).
    """
    if src.axes != dest.axes:
        raise ValueError(f"cannot pair {src.axes} with {dest.axes} axes (different frames)")
    rot = src._rot.T @ dest._rot

    def dest_to_src(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        def one(xc: np.ndarray, yc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return src._native_to_pixel(_rotate(rot, dest._pixel_to_native(xc, yc)))

        return _chunked(one, x, y)

    return dest_to_src
