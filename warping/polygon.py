"""A CCD's valid polygon (afw ``Polygon``): the region of its pixels that holds usable data.

The polygon lives in the CCD's parent pixel coordinates (pixel centres at integers, the bbox's
edges at ``x0 - 0.5 .. x1 + 0.5``), as afw stores it (``ARCHIVE_ID_VALID_POLYGON`` of a calexp,
``validPolygon`` of a visitSummary row). Vertices are kept exactly as read, including a closing
vertex equal to the first; membership uses the even-odd rule, so the ring may be given open or
closed and in either orientation.

MakeWarp treats a calexp pixel whose centre lies outside the polygon as ``NO_DATA`` before it is
warped (:func:`mask_outside`), as LSST's ISR does for vignetted pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from warping.exposure import Exposure
    from warping.geom import Box2I

__all__ = ["ValidPolygon", "mask_outside"]


@dataclass(frozen=True, eq=False)
class ValidPolygon:
    """A simple polygon in parent pixel coordinates.

    Parameters
    ----------
    vertices
        ``(n, 2)`` array of ``(x, y)``, n >= 3 (a closing vertex equal to the first is allowed).

    Raises
    ------
    ValueError
        If there are fewer than 3 distinct vertices or a vertex is not finite.
    """

    vertices: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        v = np.array(self.vertices, dtype=np.float64).reshape(-1, 2)
        if not np.all(np.isfinite(v)):
            raise ValueError("a valid polygon's vertices must be finite")
        if len(np.unique(v, axis=0)) < 3:
            raise ValueError(f"a valid polygon needs at least 3 distinct vertices, got {len(v)}")
        v.setflags(write=False)
        object.__setattr__(self, "vertices", v)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ValidPolygon):
            return NotImplemented
        return bool(np.array_equal(self.vertices, other.vertices))

    def __hash__(self) -> int:
        return hash(self.vertices.tobytes())

    def __repr__(self) -> str:
        return f"ValidPolygon({len(self.vertices)} vertices)"

    @property
    def x(self) -> np.ndarray:
        """Vertex x coordinates."""
        return self.vertices[:, 0]

    @property
    def y(self) -> np.ndarray:
        """Vertex y coordinates."""
        return self.vertices[:, 1]

    def _edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        x0, y0 = self.x, self.y
        return x0, y0, np.roll(x0, -1), np.roll(y0, -1)

    def contains(self, x: Any, y: Any) -> np.ndarray:
        """True where ``(x, y)`` (broadcast together) is inside (even-odd rule)."""
        px, py = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        inside = np.zeros(px.shape, dtype=bool)
        for ax, ay, bx, by in zip(*self._edges(), strict=True):
            if ay == by:
                continue  # a horizontal edge never crosses a horizontal ray
            straddles = (ay > py) != (by > py)
            xc = ax + (py - ay) * (bx - ax) / (by - ay)
            inside ^= straddles & (px < xc)
        return inside

    def pixel_mask(self, bbox: Box2I) -> np.ndarray:
        """``bbox.shape`` array, True where the pixel's centre is inside (scanline, exact)."""
        ax, ay, bx, by = self._edges()
        keep = ay != by
        ax, ay, bx, by = ax[keep], ay[keep], bx[keep], by[keep]
        out = np.zeros(bbox.shape, dtype=bool)
        if bbox.is_empty():
            return out
        ys = np.arange(bbox.y0, bbox.y0 + bbox.height, dtype=float)
        xs = np.arange(bbox.x0, bbox.x0 + bbox.width, dtype=float)
        # crossings of every row's centre line with every edge: (rows, edges)
        straddles = (ay[None, :] > ys[:, None]) != (by[None, :] > ys[:, None])
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = ax[None, :] + (ys[:, None] - ay[None, :]) * (bx - ax)[None, :] / (by - ay)[None, :]
        # a crossing at xc toggles inside/outside for the pixel centres x >= xc (as contains()
        # counts crossings with x < xc): count the crossings at each start, then the parity of
        # the running count along each row (uint8 wrap-around keeps the parity)
        rows, edges = np.nonzero(straddles)
        cols = np.searchsorted(xs, xc[rows, edges], side="left")
        toggles = np.zeros((len(ys), len(xs) + 1), dtype=np.uint8)
        np.add.at(toggles, (rows, cols), 1)
        np.cumsum(toggles, axis=1, dtype=np.uint8, out=toggles)
        out[:] = (toggles[:, : len(xs)] & 1).astype(bool)
        return out

    def to_list(self) -> list[float]:
        """Flat ``[x0, y0, x1, y1, ...]`` (exact floats)."""
        return [float(v) for v in self.vertices.ravel()]

    @classmethod
    def from_list(cls, values: Any) -> ValidPolygon:
        """Inverse of :meth:`to_list`."""
        return cls(np.asarray(values, dtype=np.float64).reshape(-1, 2))


def mask_outside(exposure: Exposure, polygon: ValidPolygon | None = None) -> int:
    """Set ``NO_DATA`` on the pixels of ``exposure`` whose centre lies outside its valid polygon
    (``polygon``, default ``exposure.valid_polygon``); return how many pixels that newly masked.
    Image and variance are left as they are."""
    poly = polygon if polygon is not None else exposure.valid_polygon
    if poly is None:
        return 0
    outside = ~poly.pixel_mask(exposure.bbox)
    bit = np.int32(exposure.mask_planes.bitmask("NO_DATA"))
    newly = outside & ((exposure.mask & bit) == 0)
    exposure.mask[outside] |= bit
    return int(newly.sum())
