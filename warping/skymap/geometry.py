"""Convex polygons on the sphere and their overlap test (valid at the poles and across RA=0).

Both polygons are projected gnomonically onto the plane tangent at the first polygon's centre;
great circles become straight lines there, so the test reduces to the separating-axis test of
two convex planar polygons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from warping.geom import Box2I

__all__ = ["SkyPolygon", "angular_separation_deg", "polygons_overlap", "radec_to_xyz"]


def radec_to_xyz(ra_deg: Any, dec_deg: Any) -> np.ndarray:
    """Unit vectors, shape ``(..., 3)``."""
    ra = np.radians(np.asarray(ra_deg, dtype=float))
    dec = np.radians(np.asarray(dec_deg, dtype=float))
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def xyz_to_radec(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`radec_to_xyz` (RA in [0, 360))."""
    v = np.asarray(v, dtype=float)
    ra = np.degrees(np.arctan2(v[..., 1], v[..., 0])) % 360.0
    dec = np.degrees(np.arcsin(np.clip(v[..., 2] / np.linalg.norm(v, axis=-1), -1.0, 1.0)))
    return ra, dec


def angular_separation_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between unit vectors (broadcasting)."""
    cross = np.linalg.norm(np.cross(a, b), axis=-1)
    dot = np.sum(a * b, axis=-1)
    return np.degrees(np.arctan2(cross, dot))


def offset_position(
    ra_deg: float, dec_deg: float, bearing_deg: float, dist_deg: float
) -> tuple[float, float]:
    """The position ``dist_deg`` away from ``(ra, dec)`` towards ``bearing_deg`` (0 = N, 90 = E)."""
    ra1, dec1 = math.radians(ra_deg), math.radians(dec_deg)
    b, d = math.radians(bearing_deg), math.radians(dist_deg)
    dec2 = math.asin(math.sin(dec1) * math.cos(d) + math.cos(dec1) * math.sin(d) * math.cos(b))
    ra2 = ra1 + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(dec1), math.cos(d) - math.sin(dec1) * math.sin(dec2)
    )
    return math.degrees(ra2) % 360.0, math.degrees(dec2)


@dataclass(frozen=True)
class SkyPolygon:
    """A convex polygon on the sky given by its vertices (degrees), in order."""

    ra: tuple[float, ...]
    dec: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.ra) != len(self.dec) or len(self.ra) < 3:
            raise ValueError("a SkyPolygon needs at least 3 vertices with matching ra/dec")
        if not (np.all(np.isfinite(self.ra)) and np.all(np.isfinite(self.dec))):
            raise ValueError("SkyPolygon vertices must be finite")

    @classmethod
    def from_vertices(
        cls, ra: Sequence[float] | np.ndarray, dec: Sequence[float] | np.ndarray
    ) -> SkyPolygon:
        """From vertex sequences in degrees."""
        return cls(tuple(float(v) for v in ra), tuple(float(v) for v in dec))

    @classmethod
    def from_wcs_bbox(cls, wcs: Any, bbox: Box2I) -> SkyPolygon:
        """The sky footprint of a pixel box (its outer pixel edges) under ``wcs``."""
        c = bbox.corners()
        ra, dec = wcs.pixel_to_world_values(c[:, 0], c[:, 1])
        return cls.from_vertices(np.atleast_1d(ra), np.atleast_1d(dec))

    @property
    def xyz(self) -> np.ndarray:
        """Vertex unit vectors ``(N, 3)``."""
        return radec_to_xyz(self.ra, self.dec)

    @property
    def center(self) -> np.ndarray:
        """Unit vector of the normalised vertex mean."""
        m = self.xyz.mean(axis=0)
        return m / np.linalg.norm(m)

    @property
    def radius_deg(self) -> float:
        """Largest angle from :attr:`center` to a vertex."""
        return float(angular_separation_deg(self.center[None, :], self.xyz).max())

    def to_dict(self) -> dict[str, list[float]]:
        """``{"ra": [...], "dec": [...]}``."""
        return {"ra": list(self.ra), "dec": list(self.dec)}


def _tangent_basis(center: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pole = np.array([0.0, 0.0, 1.0]) if abs(center[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(pole, center)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(center, e1)
    return e1, e2


def gnomonic(xyz: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Gnomonic projection of unit vectors onto the plane tangent at ``center`` (``(N, 2)``).

    Points 90 degrees or more from the centre have no projection (``ValueError``).
    """
    e1, e2 = _tangent_basis(center)
    d = xyz @ center
    if np.any(d <= 1e-9):
        raise ValueError("polygon vertex 90 degrees or more from the projection centre")
    return np.column_stack([(xyz @ e1) / d, (xyz @ e2) / d])


def _convex_overlap(p: np.ndarray, q: np.ndarray) -> bool:
    """Separating-axis test for two convex planar polygons (vertices in order)."""
    for poly in (p, q):
        n = len(poly)
        for i in range(n):
            edge = poly[(i + 1) % n] - poly[i]
            axis = np.array([-edge[1], edge[0]])
            if not np.any(axis):
                continue
            pa = p @ axis
            qa = q @ axis
            if pa.max() < qa.min() or qa.max() < pa.min():
                return False
    return True


def polygons_overlap(a: SkyPolygon, b: SkyPolygon) -> bool:
    """True when the convex sky polygons ``a`` and ``b`` intersect (containment included)."""
    ca, cb = a.center, b.center
    sep = float(angular_separation_deg(ca, cb))
    if sep > a.radius_deg + b.radius_deg + 1e-9:
        return False
    try:
        pa = gnomonic(a.xyz, ca)
        pb = gnomonic(b.xyz, ca)
    except ValueError:
        # huge polygons: fall back to the bounding-cap test only
        return True
    return _convex_overlap(pa, pb)


def convex_overlap_pixels(p: np.ndarray, q: np.ndarray) -> bool:
    """Planar convex-polygon overlap (for pixel-space tests)."""
    return _convex_overlap(np.asarray(p, float), np.asarray(q, float))
