"""Binned background models (LSST ``BackgroundList``: ``calexpBackground``, ``skyCorr``).

A :class:`BackgroundComponent` is a grid of background values at the centres of
``nx`` x ``ny`` equal bins tiling its ``bbox``. :meth:`BackgroundComponent.get_image` interpolates
the grid to full resolution, first along y for every bin column, then along x for every row, with
the component's interpolation style. Styles need a minimum number of bins along an axis
(``AKIMA_SPLINE`` 5, ``CUBIC_SPLINE`` 3, ``LINEAR`` 2, ``CONSTANT`` 1); with fewer bins the next
lower style is used automatically (afw ``lookupMaxInterpStyle``). Outside the outermost bin
centres the interpolant extrapolates (the spline's end polynomials, or the end segment for
``LINEAR``).

A :class:`BackgroundList` is a sum of elements: our :class:`BackgroundComponent` or LSST afw
elements (:class:`warping.background_afw.AfwBackground`, read from real ``calexpBackground`` and
``skyCorr`` files); any object with the :class:`BackgroundElement` methods will do. ``negated()``
flips their signs (exactly, since every style is odd-symmetric in the data), which is how
``skyCorr`` removes ``calexpBackground`` (:func:`sky_correction`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy.interpolate import Akima1DInterpolator, CubicSpline

from warping.geom import Box2I

logger = logging.getLogger(__name__)

__all__ = [
    "INTERP_STYLES",
    "BackgroundComponent",
    "BackgroundElement",
    "BackgroundList",
    "sky_correction",
]

#: Supported interpolation styles and the minimum number of bins each needs.
INTERP_STYLES: dict[str, int] = {"AKIMA_SPLINE": 5, "CUBIC_SPLINE": 3, "LINEAR": 2, "CONSTANT": 1}
_ORDER = ("AKIMA_SPLINE", "CUBIC_SPLINE", "LINEAR", "CONSTANT")


def effective_style(style: str, n: int) -> str:
    """The style actually used for ``n`` bins (falls back to lower orders)."""
    if style not in INTERP_STYLES:
        raise ValueError(f"Unknown interpolation style {style!r}; use one of {list(INTERP_STYLES)}")
    for s in _ORDER[_ORDER.index(style) :]:
        if n >= INTERP_STYLES[s]:
            return s
    raise ValueError("a background grid needs at least one bin")


def _interp_axis(
    centres: np.ndarray, values: np.ndarray, at: np.ndarray, style: str, axis: int
) -> np.ndarray:
    """Interpolate ``values`` (knots along ``axis``) to positions ``at``."""
    s = effective_style(style, len(centres))
    if s == "CONSTANT":
        # mean over the knots (a single knot: its value)
        m = values.mean(axis=axis, keepdims=True)
        reps = [1] * values.ndim
        reps[axis] = len(at)
        return np.tile(m, reps)
    if s == "LINEAR":
        moved = np.moveaxis(values, axis, -1)
        idx = np.clip(np.searchsorted(centres, at) - 1, 0, len(centres) - 2)
        x0 = centres[idx]
        x1 = centres[idx + 1]
        t = (at - x0) / (x1 - x0)
        out = moved[..., idx] * (1 - t) + moved[..., idx + 1] * t
        return np.moveaxis(out, -1, axis)
    if s == "CUBIC_SPLINE":
        return np.asarray(CubicSpline(centres, values, axis=axis, bc_type="natural")(at))
    return np.asarray(Akima1DInterpolator(centres, values, axis=axis, extrapolate=True)(at))


@runtime_checkable
class BackgroundElement(Protocol):
    """What a :class:`BackgroundList` needs of an element."""

    @property
    def bbox(self) -> Box2I:
        """Parent-pixel box the element covers."""
        ...

    def get_image(self, bbox: Box2I | None = None) -> np.ndarray:
        """The element evaluated on the integer pixels of ``bbox``."""
        ...

    def negated(self) -> BackgroundElement:
        """The element with opposite sign."""
        ...


@dataclass(frozen=True, eq=False)
class BackgroundComponent:
    """One binned background model.

    Parameters
    ----------
    bbox
        Parent-pixel region tiled by the bins.
    values
        ``(ny, nx)`` background at the bin centres (counts).
    interp_style
        ``"AKIMA_SPLINE"``, ``"CUBIC_SPLINE"``, ``"LINEAR"`` or ``"CONSTANT"``.
    """

    bbox: Box2I
    values: np.ndarray = field(repr=False)
    interp_style: str = "AKIMA_SPLINE"

    def __post_init__(self) -> None:
        v = np.array(self.values, dtype=float)
        if v.ndim != 2 or v.size == 0:
            raise ValueError(f"background values must be a non-empty 2-D grid, got {v.shape}")
        if self.interp_style not in INTERP_STYLES:
            raise ValueError(
                f"Unknown interpolation style {self.interp_style!r}; "
                f"use one of {list(INTERP_STYLES)}"
            )
        if self.bbox.is_empty():
            raise ValueError("background bbox is empty")
        object.__setattr__(self, "values", v)

    @property
    def bin_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Parent-pixel positions ``(x_centres, y_centres)`` of the bins."""
        ny, nx = self.values.shape
        bx = self.bbox.width / nx
        by = self.bbox.height / ny
        xc = self.bbox.x0 - 0.5 + (np.arange(nx) + 0.5) * bx
        yc = self.bbox.y0 - 0.5 + (np.arange(ny) + 0.5) * by
        return xc, yc

    def get_image(self, bbox: Box2I | None = None) -> np.ndarray:
        """The background on ``bbox`` (default: the component's bbox), float64."""
        bbox = bbox or self.bbox
        xc, yc = self.bin_centres
        ys = np.arange(bbox.y0, bbox.y0 + bbox.height, dtype=float)
        xs = np.arange(bbox.x0, bbox.x0 + bbox.width, dtype=float)
        cols = _interp_axis(yc, self.values, ys, self.interp_style, axis=0)  # (H, nx)
        return _interp_axis(xc, cols, xs, self.interp_style, axis=1)  # (H, W)

    def negated(self) -> BackgroundComponent:
        """The same model with opposite sign."""
        return BackgroundComponent(self.bbox, -self.values, self.interp_style)

    def to_dict(self) -> dict[str, Any]:
        """Parameters as a dict."""
        return {
            "bbox": self.bbox.to_list(),
            "values": self.values,
            "interp_style": self.interp_style,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BackgroundComponent:
        """Inverse of :meth:`to_dict`."""
        return cls(
            Box2I(*[int(v) for v in d["bbox"]]), np.asarray(d["values"]), str(d["interp_style"])
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BackgroundComponent):
            return NotImplemented
        return (
            self.bbox == other.bbox
            and self.interp_style == other.interp_style
            and np.array_equal(self.values, other.values)
        )

    __hash__ = None  # type: ignore[assignment]


class BackgroundList:
    """An ordered sum of background elements (:class:`BackgroundElement`)."""

    def __init__(self, components: Iterable[BackgroundElement] = ()) -> None:
        self.components: list[BackgroundElement] = list(components)

    def append(self, component: BackgroundElement) -> None:
        """Add an element."""
        self.components.append(component)

    def __iter__(self) -> Iterator[BackgroundElement]:
        return iter(self.components)

    def __len__(self) -> int:
        return len(self.components)

    def __getitem__(self, i: int) -> BackgroundElement:
        return self.components[i]

    def get_image(self, bbox: Box2I | None = None) -> np.ndarray:
        """Sum of all elements on ``bbox`` as float32 (``bbox`` defaults to the first
        element's bbox).

        The sum is accumulated in the elements' own precision: float64 for
        :class:`BackgroundComponent`, float32 for afw elements (as afw's ``BackgroundList``
        does)."""
        if not self.components:
            if bbox is None:
                raise ValueError("an empty BackgroundList needs an explicit bbox")
            return np.zeros(bbox.shape, dtype=np.float32)
        bbox = bbox or self.components[0].bbox
        total: np.ndarray | None = None
        for c in self.components:
            img = c.get_image(bbox)
            if total is None:
                total = np.array(img, dtype=np.result_type(img.dtype, np.float32))
            else:
                total += img
        assert total is not None
        return total.astype(np.float32, copy=False)

    def check_bbox(self, bbox: Box2I) -> None:
        """Refuse an image ``bbox`` that differs from an afw element's ``BKGD_*`` box.

        Raises :class:`~warping.background_afw.BackgroundModelError` naming the file and keys.
        """
        for c in self.components:
            check = getattr(c, "check_bbox", None)
            if check is not None:
                check(bbox, exact=True)

    def negated(self) -> BackgroundList:
        """Every element with opposite sign."""
        return BackgroundList(c.negated() for c in self.components)

    def __add__(self, other: BackgroundList) -> BackgroundList:
        return BackgroundList([*self.components, *other.components])

    def to_dict(self) -> dict[str, Any]:
        """``{"components": [component dicts]}`` (our :class:`BackgroundComponent` only)."""
        out = []
        for c in self.components:
            if not isinstance(c, BackgroundComponent):
                raise TypeError(
                    f"to_dict holds BackgroundComponent elements only, got {type(c).__name__}"
                )
            out.append(c.to_dict())
        return {"components": out}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BackgroundList:
        """Inverse of :meth:`to_dict`."""
        return cls(BackgroundComponent.from_dict(c) for c in d["components"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BackgroundList):
            return NotImplemented
        return len(self) == len(other) and all(
            a == b for a, b in zip(self.components, other.components, strict=True)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BackgroundList({len(self)} components)"


def sky_correction(
    calexp_background: BackgroundList, new_elements: Iterable[BackgroundElement]
) -> BackgroundList:
    """A ``skyCorr``-shaped list: ``calexp_background`` negated, then ``new_elements``.

    Subtracting its image from a background-subtracted calexp first adds the old background
    back (the negated elements), then removes the new model, as pipe_tasks' sky correction
    stores it. Applying a skyCorr therefore needs no separate ``calexpBackground`` add-back.
    """
    return BackgroundList([*calexp_background.negated(), *new_elements])
