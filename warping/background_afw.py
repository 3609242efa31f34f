"""One element of an LSST afw ``BackgroundList`` (``calexpBackground``, ``skyCorr``), evaluated as
afw's ``BackgroundMI::getImage`` does.

An :class:`AfwBackground` holds the statistics image of one element (per-bin values, the bin
mask, and the "variance" plane, which afw fills with the standard error of each bin value) on
``nx`` x ``ny`` bins tiling ``bbox``, with the element's interpolation, undersampling and
approximation settings. :meth:`AfwBackground.get_image` evaluates it at every pixel:

1. Too few bins for the interpolation style along x or y (:func:`min_points`):
   ``THROW_EXCEPTION`` and ``INCREASE_NXNYSAMPLE`` refuse; ``REDUCE_INTERP_ORDER`` uses the
   highest style the smaller bin count allows (:func:`max_style`). The check is made on both
   branches below.
2. ``APPROXSTYLE = 0`` (Chebyshev): the weighted least-squares fit of the bins
   (:mod:`warping.background_chebyshev`); the interpolation style then only matters for step 1.
3. Otherwise interpolate, first along y for every bin column, then along x for every row, with
   the styles of :mod:`warping.background_interp`. NaN bins are left out (the bin mask is never
   read); a column or row left with too few bins is refused or interpolated at a lower order as in
   step 1; a column with no bins at all is NaN and left out of the rows.

Positions are local to ``bbox`` (afw evaluates at ``0 .. W-1``); the image of a sub-box is the
matching cut of the element's image. Images are float32, within about one unit in the last place
of afw's (float64 arithmetic rounded to float32): the image-sized product is made in float32 on
values relative to each row's mean (:func:`warping.background_interp.offset_product`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from warping.background_chebyshev import evaluate_chebyshev, fit_chebyshev
from warping.background_interp import (
    InterpStyle,
    UndersampleStyle,
    bin_geometry,
    interpolate_rows,
    max_style,
    min_points,
)
from warping.errors import WarpingError
from warping.geom import Box2I

logger = logging.getLogger(__name__)

__all__ = [
    "APPROX_CHEBYSHEV",
    "APPROX_NONE",
    "AfwBackground",
    "ApproxControl",
    "BackgroundModelError",
]

#: ``APPROXSTYLE`` values: interpolate (afw ``ApproximateControl::UNKNOWN``) or fit Chebyshevs.
APPROX_NONE = -1
APPROX_CHEBYSHEV = 0


class BackgroundModelError(WarpingError, ValueError):
    """A background element is inconsistent or cannot be evaluated as its settings ask; the
    message names the file (when known) and the header key at fault."""


@dataclass(frozen=True)
class ApproxControl:
    """afw ``ApproximateControl`` as stored in the ``APPROX*`` header keys.

    ``order_y = -1`` means "same as ``order_x``"; afw requires the two to be equal.
    """

    style: int = APPROX_NONE
    order_x: int = 1
    order_y: int = -1
    weighting: bool = True

    @property
    def order(self) -> int:
        """The Chebyshev order used."""
        return self.order_x


@dataclass(frozen=True, eq=False)
class AfwBackground:
    """One afw background element (see the module docstring).

    Parameters
    ----------
    bbox
        Parent-pixel box the bins tile (``BKGD_X0/Y0/WIDTH/HEIGHT``).
    values
        ``(ny, nx)`` bin values, float32.
    mask
        ``(ny, nx)`` bin mask, uint16 (kept for round trips; never read by the evaluation).
    errors
        ``(ny, nx)`` afw "variance" plane: the standard error of each bin value, float32.
    interp_style, undersample_style, approx
        ``INTERPSTYLE``, ``UNDERSAMPLESTYLE`` and the ``APPROX*`` keys.
    mask_planes
        ``(name, bit)`` pairs of the mask's ``MP_*`` cards.
    source
        File the element was read from, for error messages (not part of equality).
    """

    bbox: Box2I
    values: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    errors: np.ndarray = field(repr=False)
    interp_style: InterpStyle = InterpStyle.AKIMA_SPLINE
    undersample_style: UndersampleStyle = UndersampleStyle.REDUCE_INTERP_ORDER
    approx: ApproxControl = ApproxControl()
    mask_planes: tuple[tuple[str, int], ...] = ()
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        where = f"{self.source}: " if self.source else ""
        v = np.asarray(self.values, dtype=np.float32)
        m = np.asarray(self.mask)
        e = np.asarray(self.errors, dtype=np.float32)
        if v.ndim != 2 or v.size == 0 or m.shape != v.shape or e.shape != v.shape:
            raise BackgroundModelError(
                f"{where}background statistics image, mask and variance must be the same "
                f"non-empty 2-D grid; got shapes {v.shape}, {m.shape}, {e.shape}"
            )
        if self.bbox.is_empty():
            raise BackgroundModelError(f"{where}BKGD_WIDTH/BKGD_HEIGHT give an empty bbox")
        try:
            style = InterpStyle(self.interp_style)
            min_points(style)
        except ValueError:
            raise BackgroundModelError(
                f"{where}INTERPSTYLE={int(self.interp_style)} is not an interpolation style "
                f"afw can evaluate (use 0-6: {[s.name for s in list(InterpStyle)[1:]]})"
            ) from None
        try:
            under = UndersampleStyle(self.undersample_style)
        except ValueError:
            raise BackgroundModelError(
                f"{where}UNDERSAMPLESTYLE={int(self.undersample_style)} is unknown (use 0 "
                "THROW_EXCEPTION, 1 REDUCE_INTERP_ORDER, 2 INCREASE_NXNYSAMPLE)"
            ) from None
        if self.approx.style not in (APPROX_NONE, APPROX_CHEBYSHEV):
            raise BackgroundModelError(
                f"{where}APPROXSTYLE={self.approx.style} is unknown (-1 interpolate, 0 Chebyshev)"
            )
        if self.approx.style == APPROX_CHEBYSHEV:
            oy = self.approx.order_x if self.approx.order_y < 0 else self.approx.order_y
            if self.approx.order_x < 0 or oy != self.approx.order_x:
                raise BackgroundModelError(
                    f"{where}APPROXORDERX={self.approx.order_x}, APPROXORDERY="
                    f"{self.approx.order_y}: the orders must be equal and >= 0"
                )
        object.__setattr__(self, "values", v)
        object.__setattr__(self, "mask", m.astype(np.uint16))
        object.__setattr__(self, "errors", e)
        object.__setattr__(self, "interp_style", style)
        object.__setattr__(self, "undersample_style", under)

    # -- geometry --------------------------------------------------------------------------
    @property
    def local_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Bin centres ``(x, y)`` in pixels from the bbox origin."""
        ny, nx = self.values.shape
        return (bin_geometry(nx, self.bbox.width)[2], bin_geometry(ny, self.bbox.height)[2])

    @property
    def bin_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Bin centres ``(x, y)`` in parent pixels (afw ``getBinCentersX/Y``)."""
        xc, yc = self.local_centres
        return xc + self.bbox.x0, yc + self.bbox.y0

    def _where(self, key: str) -> str:
        return f"{self.source} ({key})" if self.source else key

    # -- evaluation ------------------------------------------------------------------------
    def grid_style(self) -> InterpStyle:
        """The style the whole grid is interpolated with, after the undersampling rule."""
        ny, nx = self.values.shape
        style = self.interp_style
        need = min_points(style)
        if nx >= need and ny >= need:
            return style
        if self.undersample_style == UndersampleStyle.REDUCE_INTERP_ORDER:
            return max_style(min(nx, ny))
        raise BackgroundModelError(
            f"{self._where('UNDERSAMPLESTYLE')}: {nx}x{ny} bins are too few for "
            f"{style.name} (needs {need} along each axis) and UNDERSAMPLESTYLE is "
            f"{self.undersample_style.name}; REDUCE_INTERP_ORDER would use a lower order"
        )

    def _fallback(self, style: InterpStyle, n_good: int, what: str) -> InterpStyle | None:
        """Style for ``n_good`` usable bins along a column/row; None when there are none."""
        if n_good >= min_points(style):
            return style
        if self.undersample_style != UndersampleStyle.REDUCE_INTERP_ORDER:
            raise BackgroundModelError(
                f"{self._where('UNDERSAMPLESTYLE')}: {what} has {n_good} non-NaN bins, too few "
                f"for {style.name}, and UNDERSAMPLESTYLE is {self.undersample_style.name}"
            )
        return None if n_good == 0 else max_style(n_good)

    def _interp_grouped(
        self,
        knots: np.ndarray,
        rows: np.ndarray,
        at: np.ndarray,
        style: InterpStyle,
        what: str,
        dtype: type = np.float64,
    ) -> np.ndarray:
        """Interpolate each row of ``rows`` over ``knots`` after dropping its NaN entries."""
        nan = np.isnan(rows)
        if not nan.any():
            return interpolate_rows(knots, rows, at, style, dtype)
        out: np.ndarray = np.full((rows.shape[0], len(at)), np.nan, dtype=dtype)
        patterns, inverse = np.unique(nan, axis=0, return_inverse=True)
        for p, pattern in enumerate(patterns):
            sel = np.nonzero(inverse.ravel() == p)[0]
            good = ~pattern
            s = self._fallback(style, int(good.sum()), what)
            if s is not None:
                out[sel] = interpolate_rows(knots[good], rows[np.ix_(sel, good)], at, s, dtype)
        return out

    def evaluate(self, xs: np.ndarray, ys: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        """The model at parent positions ``ys`` x ``xs`` (any reals): ``(len(ys), len(xs))``
        of ``dtype``. Positions outside the bbox follow afw's extrapolation rules.

        Internally everything is float64 except, for float32, the last (image-sized) product,
        which keeps values within about one unit in the last place of afw's."""
        u = np.asarray(xs, dtype=float) - self.bbox.x0
        v = np.asarray(ys, dtype=float) - self.bbox.y0
        style = self.grid_style()
        xc, yc = self.local_centres
        if self.approx.style == APPROX_CHEBYSHEV:
            try:
                coef = fit_chebyshev(
                    xc,
                    yc,
                    self.values,
                    self.errors,
                    self.bbox.width,
                    self.bbox.height,
                    self.approx.order,
                    self.approx.weighting,
                )
            except ValueError as err:
                raise BackgroundModelError(f"{self._where('APPROXWEIGHTING')}: {err}") from err
            return evaluate_chebyshev(coef, u, v, self.bbox.width, self.bbox.height, dtype)
        vals = self.values.astype(float)
        cols = self._interp_grouped(yc, vals.T, v, style, "a bin column").T  # (len(v), nx)
        return self._interp_grouped(xc, cols, u, style, "an image row", dtype)

    def check_bbox(self, bbox: Box2I, *, exact: bool = False) -> None:
        """Refuse a ``bbox`` outside the element's (or, with ``exact``, different from it)."""
        ok = bbox == self.bbox if exact else bbox.intersection(self.bbox) == bbox
        if not ok:
            raise BackgroundModelError(
                f"{self._where('BKGD_X0/BKGD_Y0/BKGD_WIDTH/BKGD_HEIGHT')}: the background covers "
                f"{self.bbox.to_list()} (x0, y0, width, height) but the image is "
                f"{bbox.to_list()}; use the background made for this exposure"
            )

    def get_image(self, bbox: Box2I | None = None) -> np.ndarray:
        """float32 model at the integer pixels of ``bbox`` (default: the element's bbox)."""
        bbox = bbox or self.bbox
        if bbox.is_empty():
            return np.zeros(bbox.shape, dtype=np.float32)
        self.check_bbox(bbox)
        xs = np.arange(bbox.x0, bbox.x0 + bbox.width, dtype=float)
        ys = np.arange(bbox.y0, bbox.y0 + bbox.height, dtype=float)
        return self.evaluate(xs, ys, np.float32)

    # -- algebra ---------------------------------------------------------------------------
    def negated(self) -> AfwBackground:
        """The same element with its bin values multiplied by -1 (as skyCorr stores it)."""
        return replace(self, values=-self.values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AfwBackground):
            return NotImplemented
        return (
            self.bbox == other.bbox
            and self.interp_style == other.interp_style
            and self.undersample_style == other.undersample_style
            and self.approx == other.approx
            and self.mask_planes == other.mask_planes
            and np.array_equal(self.values, other.values, equal_nan=True)
            and np.array_equal(self.mask, other.mask)
            and np.array_equal(self.errors, other.errors, equal_nan=True)
        )

    __hash__ = None  # type: ignore[assignment]
