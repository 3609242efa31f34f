"""Tracts and patches: LSST's ``ExplicitTractInfo`` geometry (tangent-plane tract, patch grid)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.wcs import WCS

from warping.errors import PatchIndexError
from warping.geom import Box2I
from warping.skymap.config import SkyMapConfig
from warping.skymap.geometry import (
    SkyPolygon,
    convex_overlap_pixels,
    offset_position,
    polygons_overlap,
)

__all__ = ["PatchInfo", "TractInfo", "make_tract_wcs", "parse_patch_index"]


def make_tract_wcs(
    ra_deg: float, dec_deg: float, config: SkyMapConfig, crpix: tuple[float, float] = (0.0, 0.0)
) -> WCS:
    """Tract WCS: ``projection`` at the centre, LSST ``makeCdMatrix`` (east left at rotation 0).

    ``crpix`` is in LSST's 0-based convention (FITS CRPIX = crpix + 1); the WCS maps parent pixel
    positions with ``origin=0``.
    """
    s = config.pixel_scale_arcsec / 3600.0
    th = math.radians(config.rotation_deg)
    w = WCS(naxis=2)
    w.wcs.ctype = [f"RA---{config.projection}", f"DEC--{config.projection}"]
    w.wcs.crval = [ra_deg, dec_deg]
    w.wcs.crpix = [crpix[0] + 1.0, crpix[1] + 1.0]
    w.wcs.cd = s * np.array([[-math.cos(th), math.sin(th)], [math.sin(th), math.cos(th)]])
    w.wcs.radesys = "ICRS"
    w.wcs.set()
    return w


def parse_patch_index(
    index: str | tuple[int, int] | list[int] | int, num: tuple[int, int]
) -> tuple[int, int]:
    """``"x,y"``, ``(x, y)`` or the sequential index ``nx * y + x`` -> ``(x, y)`` (validated)."""
    nx, ny = num
    try:
        if isinstance(index, str):
            parts = index.replace(" ", "").split(",")
            if len(parts) == 1:
                seq = int(parts[0])
                x, y = seq % nx, seq // nx
            else:
                x, y = (int(p) for p in parts)
        elif isinstance(index, int | np.integer):
            x, y = int(index) % nx, int(index) // nx
            if int(index) < 0:
                raise ValueError
        else:
            x, y = (int(v) for v in index)
    except (ValueError, TypeError):
        raise PatchIndexError(
            f"patch index {index!r} is neither 'x,y', (x, y) nor a sequential index"
        ) from None
    if not (0 <= x < nx and 0 <= y < ny):
        raise PatchIndexError(
            f"patch {x},{y} is outside the tract's {nx}x{ny} patches (x in 0..{nx - 1}, "
            f"y in 0..{ny - 1})"
        )
    return x, y


@dataclass(frozen=True)
class PatchInfo:
    """One patch: index, inner bbox (tiles the tract) and outer bbox (with border, clipped)."""

    index: tuple[int, int]
    inner_bbox: Box2I
    outer_bbox: Box2I
    num_patches: tuple[int, int]

    @property
    def name(self) -> str:
        """Gen2 data ID value ``"x,y"``."""
        return f"{self.index[0]},{self.index[1]}"

    @property
    def sequential_index(self) -> int:
        """Gen3 integer patch id ``nx * y + x``."""
        return self.num_patches[0] * self.index[1] + self.index[0]


@dataclass
class TractInfo:
    """A tract: centre, WCS (parent pixels, bbox min at 0,0), bbox and patch grid."""

    id: int
    ra_deg: float
    dec_deg: float
    radius_deg: float
    config: SkyMapConfig
    wcs: WCS = field(init=False)
    bbox: Box2I = field(init=False)

    def __post_init__(self) -> None:
        cfg = self.config
        wcs0 = make_tract_wcs(self.ra_deg, self.dec_deg, cfg)
        dist = self.radius_deg + cfg.tract_overlap_deg
        xs, ys = [], []
        for bearing in (0.0, 90.0, 180.0, 270.0):
            ra, dec = offset_position(self.ra_deg, self.dec_deg, bearing, dist)
            x, y = wcs0.world_to_pixel_values(ra, dec)
            xs.append(float(x))
            ys.append(float(y))
        box = Box2I.from_float_extent(min(xs), min(ys), max(xs), max(ys))
        x0, y0, w, h = box.x0, box.y0, box.width, box.height
        pw, ph = cfg.patch_inner_dimensions
        nx, ny = math.ceil(w / pw), math.ceil(h / ph)
        x0 -= (pw * nx - w) // 2
        y0 -= (ph * ny - h) // 2
        self.bbox = Box2I(0, 0, pw * nx, ph * ny)
        self.wcs = make_tract_wcs(self.ra_deg, self.dec_deg, cfg, crpix=(-x0, -y0))
        self._num = (nx, ny)

    @property
    def num_patches(self) -> tuple[int, int]:
        """``(nx, ny)``."""
        return self._num

    @property
    def polygon(self) -> SkyPolygon:
        """Sky polygon of the tract bbox."""
        return SkyPolygon.from_wcs_bbox(self.wcs, self.bbox)

    def patch(self, index: str | tuple[int, int] | list[int] | int) -> PatchInfo:
        """The patch at ``index`` (``"5,4"``, ``(5, 4)`` or a sequential index)."""
        x, y = parse_patch_index(index, self._num)
        pw, ph = self.config.patch_inner_dimensions
        inner = Box2I(x * pw, y * ph, pw, ph)
        outer = inner.grow(self.config.patch_border).intersection(self.bbox)
        return PatchInfo((x, y), inner, outer, self._num)

    def patches(self) -> Iterator[PatchInfo]:
        """All patches, row by row."""
        nx, ny = self._num
        for y in range(ny):
            for x in range(nx):
                yield self.patch((x, y))

    def find_patch(self, ra_deg: float, dec_deg: float) -> PatchInfo:
        """The patch whose inner bbox contains a sky position (LSST ``findPatch``)."""
        x, y = self.wcs.world_to_pixel_values(ra_deg, dec_deg)
        px, py = round(float(x)), round(float(y))
        if not self.bbox.contains_point(px, py):
            raise ValueError(f"({ra_deg}, {dec_deg}) is outside tract {self.id}")
        pw, ph = self.config.patch_inner_dimensions
        return self.patch((px // pw, py // ph))

    def find_patches_overlapping(self, polygon: SkyPolygon, margin: int = 0) -> list[PatchInfo]:
        """Patches whose outer bbox, grown by ``margin`` pixels, overlaps the sky polygon."""
        if margin == 0 and not polygons_overlap(self.polygon, polygon):
            return []
        x, y = self.wcs.world_to_pixel_values(np.asarray(polygon.ra), np.asarray(polygon.dec))
        verts = np.column_stack([x, y])
        if not np.all(np.isfinite(verts)):
            return [
                p
                for p in self.patches()
                if polygons_overlap(polygon, self.patch_polygon(p, margin=margin))
            ]
        pw, ph = self.config.patch_inner_dimensions
        b = self.config.patch_border + margin
        nx, ny = self._num
        ix0 = max(0, int((verts[:, 0].min() - b) // pw))
        ix1 = min(nx - 1, int((verts[:, 0].max() + b) // pw))
        iy0 = max(0, int((verts[:, 1].min() - b) // ph))
        iy1 = min(ny - 1, int((verts[:, 1].max() + b) // ph))
        out = []
        for py in range(iy0, iy1 + 1):
            for px in range(ix0, ix1 + 1):
                p = self.patch((px, py))
                box = p.outer_bbox.grow(margin) if margin else p.outer_bbox
                if convex_overlap_pixels(verts, box.corners()):
                    out.append(p)
        return out

    def patch_polygon(self, patch: PatchInfo, *, outer: bool = True, margin: int = 0) -> SkyPolygon:
        """Sky polygon of a patch's outer (or inner) bbox, grown by ``margin`` pixels."""
        box = patch.outer_bbox if outer else patch.inner_bbox
        return SkyPolygon.from_wcs_bbox(self.wcs, box.grow(margin) if margin else box)

    def to_dict(self) -> dict[str, Any]:
        """``{"id", "ra", "dec", "radius"}`` (degrees)."""
        return {"id": self.id, "ra": self.ra_deg, "dec": self.dec_deg, "radius": self.radius_deg}
