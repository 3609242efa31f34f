"""Skymaps: collections of tracts (LSST ``DiscreteSkyMap`` and ``RingsSkyMap``)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any

import numpy as np

from warping.errors import UnknownTractError
from warping.geom import Box2I
from warping.skymap.config import SkyMapConfig
from warping.skymap.geometry import (
    SkyPolygon,
    angular_separation_deg,
    polygons_overlap,
    radec_to_xyz,
    xyz_to_radec,
)
from warping.skymap.tract import TractInfo

__all__ = ["BaseSkyMap", "DiscreteSkyMap", "RingsSkyMap", "make_discrete_skymap"]


class BaseSkyMap:
    """Tracts by integer id; tracts are built lazily and cached."""

    kind = "base"

    def __init__(self, config: SkyMapConfig) -> None:
        self.config = config
        self._tracts: dict[int, TractInfo] = {}

    # -- to implement ---------------------------------------------------------------------------
    def __len__(self) -> int:
        raise NotImplementedError

    def _tract_params(self, tract_id: int) -> tuple[float, float, float]:
        """``(ra, dec, radius)`` in degrees of a tract."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Persistable form (see ``schemas/skymap.schema.json``)."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------
    def __getitem__(self, tract_id: int) -> TractInfo:
        tid = int(tract_id)
        if not 0 <= tid < len(self):
            raise UnknownTractError(
                f"tract {tract_id} does not exist; this skymap has tracts 0..{len(self) - 1} "
                "(`rb show-skymap REPO` lists them)"
            )
        if tid not in self._tracts:
            ra, dec, radius = self._tract_params(tid)
            self._tracts[tid] = TractInfo(tid, ra, dec, radius, self.config)
        return self._tracts[tid]

    def __iter__(self) -> Iterator[TractInfo]:
        for i in range(len(self)):
            yield self[i]

    @cached_property
    def _centres(self) -> tuple[np.ndarray, np.ndarray]:
        params = np.array([self._tract_params(i) for i in range(len(self))], dtype=float)
        return radec_to_xyz(params[:, 0], params[:, 1]), params[:, 2]

    def find_tracts_overlapping(self, polygon: SkyPolygon) -> list[TractInfo]:
        """Tracts whose bbox overlaps the sky polygon."""
        xyz, radius = self._centres
        sep = angular_separation_deg(xyz, polygon.center[None, :])
        # a tract's bbox half-width is radius + overlap, rounded up to whole patches (up to one
        # patch more per side), so it reaches at most sqrt(2) x that from the centre
        patch_deg = max(self.config.patch_inner_dimensions) * self.config.pixel_scale_arcsec / 3600
        half = radius + self.config.tract_overlap_deg + patch_deg
        reach = np.sqrt(2.0) * half + polygon.radius_deg
        out = []
        for i in np.nonzero(sep <= reach + 1e-6)[0]:
            tract = self[int(i)]
            if polygons_overlap(tract.polygon, polygon):
                out.append(tract)
        return out

    def find_tract(self, ra_deg: float, dec_deg: float) -> TractInfo:
        """The tract whose centre is nearest to the position (LSST ``findTract``)."""
        xyz, _ = self._centres
        sep = angular_separation_deg(xyz, radec_to_xyz(ra_deg, dec_deg)[None, :])
        return self[int(np.argmin(sep))]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BaseSkyMap) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))


class DiscreteSkyMap(BaseSkyMap):
    """One square tract per ``(ra, dec, radius)`` (LSST ``DiscreteSkyMap``)."""

    kind = "discrete"

    def __init__(
        self,
        config: SkyMapConfig,
        ra_deg: Sequence[float],
        dec_deg: Sequence[float],
        radius_deg: Sequence[float],
    ) -> None:
        super().__init__(config)
        if not (len(ra_deg) == len(dec_deg) == len(radius_deg)) or not len(ra_deg):
            raise ValueError("ra_deg, dec_deg and radius_deg must be non-empty and of equal length")
        if any(not r > 0 for r in radius_deg):
            raise ValueError(f"tract radii must be > 0, got {list(radius_deg)}")
        self.ra = [float(v) % 360.0 for v in ra_deg]
        self.dec = [float(v) for v in dec_deg]
        self.radius = [float(v) for v in radius_deg]

    def __len__(self) -> int:
        return len(self.ra)

    def _tract_params(self, tract_id: int) -> tuple[float, float, float]:
        return self.ra[tract_id], self.dec[tract_id], self.radius[tract_id]

    def to_dict(self) -> dict[str, Any]:
        """Persistable form."""
        return {
            "type": "discrete",
            "config": self.config.to_dict(),
            "tracts": [
                {"id": i, "ra": self.ra[i], "dec": self.dec[i], "radius": self.radius[i]}
                for i in range(len(self))
            ],
        }


class RingsSkyMap(BaseSkyMap):
    """LSST's rings scheme: declination rings of equal-size tracts plus two polar caps.

    Tract 0 is the south cap, then ring 0 (southernmost) tracts in increasing RA, and so on; the
    last id is the north cap (LSST ``version=1`` numbering, without the DM-14809 ``version=0``
    bug).
    """

    kind = "rings"

    def __init__(
        self, config: SkyMapConfig, num_rings: int = 120, ra_start_deg: float = 0.0
    ) -> None:
        super().__init__(config)
        if num_rings < 1:
            raise ValueError(f"num_rings must be >= 1, got {num_rings}")
        self.num_rings = int(num_rings)
        self.ra_start_deg = float(ra_start_deg)
        self.ring_size = math.pi / (num_rings + 1)
        self.ring_nums: list[int] = []
        for r in range(num_rings):
            start = self.ring_size * (r + 0.5) - math.pi / 2
            stop = start + self.ring_size
            self.ring_nums.append(
                int(2 * math.pi * math.cos(min(abs(start), abs(stop))) / self.ring_size) + 1
            )
        self._offsets = np.concatenate([[1], 1 + np.cumsum(self.ring_nums)])

    def __len__(self) -> int:
        return int(sum(self.ring_nums)) + 2

    def _tract_params(self, tract_id: int) -> tuple[float, float, float]:
        radius = math.degrees(self.ring_size / 2)
        if tract_id == 0:
            return 0.0, -90.0, radius
        if tract_id == len(self) - 1:
            return 0.0, 90.0, radius
        ring = int(np.searchsorted(self._offsets, tract_id, side="right")) - 1
        t = tract_id - int(self._offsets[ring])
        dec = self.ring_size * (ring + 1) - math.pi / 2
        ra = (2 * math.pi * t / self.ring_nums[ring] + math.radians(self.ra_start_deg)) % (
            2 * math.pi
        )
        return math.degrees(ra), math.degrees(dec), radius

    def to_dict(self) -> dict[str, Any]:
        """Persistable form."""
        return {
            "type": "rings",
            "config": self.config.to_dict(),
            "num_rings": self.num_rings,
            "ra_start": self.ra_start_deg,
        }


def make_discrete_skymap(
    footprints: Sequence[tuple[Any, Box2I]], config: SkyMapConfig, *, border_deg: float = 0.0
) -> DiscreteSkyMap:
    """One tract covering all footprints (WCS, bbox): their bounding circle plus ``border_deg``."""
    if not footprints:
        raise ValueError("no footprints to cover: the repository has no calexps")
    pts = np.concatenate([SkyPolygon.from_wcs_bbox(w, b).xyz for w, b in footprints])
    centre = pts.mean(axis=0)
    centre /= np.linalg.norm(centre)
    radius = float(angular_separation_deg(centre[None, :], pts).max()) + border_deg
    ra, dec = xyz_to_radec(centre)
    return DiscreteSkyMap(config, [float(ra)], [float(dec)], [max(radius, 1e-6)])


def skymap_from_dict(d: dict[str, Any]) -> BaseSkyMap:
    """Inverse of ``skymap.to_dict()``."""
    config = SkyMapConfig.from_dict(d["config"])
    if d["type"] == "discrete":
        tracts = sorted(d["tracts"], key=lambda t: t["id"])
        return DiscreteSkyMap(
            config,
            [t["ra"] for t in tracts],
            [t["dec"] for t in tracts],
            [t["radius"] for t in tracts],
        )
    if d["type"] == "rings":
        return RingsSkyMap(config, int(d["num_rings"]), float(d.get("ra_start", 0.0)))
    raise ValueError(f"unknown skymap type {d['type']!r}; expected 'discrete' or 'rings'")
