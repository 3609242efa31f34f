"""Integer pixel boxes in LSST's parent-pixel convention.

Pixel index ``i`` has its centre at position ``i`` (``PixelZeroPos = 0``); a box covers the
inclusive index range ``[x0, x1] x [y0, y1]`` and its continuous extent is ``x0 - 0.5 .. x1 + 0.5``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Box2I"]


@dataclass(frozen=True, slots=True)
class Box2I:
    """An integer pixel box: origin ``(x0, y0)`` and size ``(width, height)`` in parent pixels."""

    x0: int
    y0: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width < 0 or self.height < 0:
            raise ValueError(f"Box2I dimensions must be >= 0, got {self.width}x{self.height}")

    @classmethod
    def from_minmax(cls, x0: int, y0: int, x1: int, y1: int) -> Box2I:
        """Build from inclusive min/max corners; an inverted range gives an empty box."""
        return cls(int(x0), int(y0), max(0, int(x1) - int(x0) + 1), max(0, int(y1) - int(y0) + 1))

    @classmethod
    def from_float_extent(cls, xmin: float, ymin: float, xmax: float, ymax: float) -> Box2I:
        """LSST's ``Box2I(Box2D, EXPAND)``: smallest integer box whose pixels cover the extent."""
        x0 = math.ceil(xmin - 0.5)
        y0 = math.ceil(ymin - 0.5)
        x1 = math.floor(xmax + 0.5)
        y1 = math.floor(ymax + 0.5)
        return cls.from_minmax(x0, y0, x1, y1)

    @property
    def x1(self) -> int:
        """Inclusive maximum x index."""
        return self.x0 + self.width - 1

    @property
    def y1(self) -> int:
        """Inclusive maximum y index."""
        return self.y0 + self.height - 1

    @property
    def shape(self) -> tuple[int, int]:
        """Numpy array shape ``(height, width)``."""
        return (self.height, self.width)

    @property
    def area(self) -> int:
        """Number of pixels."""
        return self.width * self.height

    def is_empty(self) -> bool:
        """True when the box has no pixels."""
        return self.width == 0 or self.height == 0

    def intersection(self, other: Box2I) -> Box2I:
        """Overlap of two boxes (empty, anchored at the larger origin, when they are disjoint)."""
        x0 = max(self.x0, other.x0)
        y0 = max(self.y0, other.y0)
        x1 = min(self.x1, other.x1)
        y1 = min(self.y1, other.y1)
        return Box2I.from_minmax(x0, y0, x1, y1)

    def grow(self, dx: int, dy: int | None = None) -> Box2I:
        """Grow by ``dx`` (and ``dy``) pixels on every side; negative values shrink."""
        dy = dx if dy is None else dy
        return Box2I.from_minmax(self.x0 - dx, self.y0 - dy, self.x1 + dx, self.y1 + dy)

    def contains_point(self, x: float, y: float) -> bool:
        """True when the position lies within the continuous extent (pixel edges at +-0.5)."""
        return (self.x0 - 0.5 <= x <= self.x1 + 0.5) and (self.y0 - 0.5 <= y <= self.y1 + 0.5)

    def corners(self) -> np.ndarray:
        """The four corners of the continuous extent, shape ``(4, 2)`` as ``(x, y)``."""
        xa, xb = self.x0 - 0.5, self.x1 + 0.5
        ya, yb = self.y0 - 0.5, self.y1 + 0.5
        return np.array([[xa, ya], [xb, ya], [xb, yb], [xa, yb]], dtype=float)

    def slices(self, within: Box2I) -> tuple[slice, slice]:
        """Array slices ``(rows, cols)`` of this box inside an array covering ``within``."""
        return (
            slice(self.y0 - within.y0, self.y0 - within.y0 + self.height),
            slice(self.x0 - within.x0, self.x0 - within.x0 + self.width),
        )

    def to_list(self) -> list[int]:
        """``[x0, y0, width, height]`` for JSON/YAML."""
        return [self.x0, self.y0, self.width, self.height]
