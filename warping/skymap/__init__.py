"""Skymaps: tracts (tangent-plane projections) tiled by patches, as in LSST's ``lsst.skymap``.

Geometry follows LSST's Gen2-era "legacy" tract builder (spec §4): a tract's bbox comes from
four points ``radius + tractOverlap`` from its centre, rounded out to whole patches and shifted so
its minimum is pixel (0, 0); patch ``x,y`` has inner bbox ``(x*W, y*H, W, H)`` and outer bbox the
inner grown by ``patchBorder`` and clipped to the tract.
"""

from warping.skymap.config import SkyMapConfig
from warping.skymap.geometry import SkyPolygon, polygons_overlap
from warping.skymap.skymaps import (
    BaseSkyMap,
    DiscreteSkyMap,
    RingsSkyMap,
    make_discrete_skymap,
    skymap_from_dict,
)
from warping.skymap.tract import PatchInfo, TractInfo

__all__ = [
    "BaseSkyMap",
    "DiscreteSkyMap",
    "PatchInfo",
    "RingsSkyMap",
    "SkyMapConfig",
    "SkyPolygon",
    "TractInfo",
    "make_discrete_skymap",
    "polygons_overlap",
    "skymap_from_dict",
]
