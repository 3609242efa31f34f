"""Skymaps and repositories: build one covering a repo's calexps, describe tracts and patches."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from warping.calexp_footprint import read_wcs_and_bbox_of
from warping.skymap.config import SkyMapConfig
from warping.skymap.skymaps import BaseSkyMap, RingsSkyMap, make_discrete_skymap
from warping.skymap.tract import TractInfo

if TYPE_CHECKING:
    from repo_butler import Butler

logger = logging.getLogger(__name__)

__all__ = ["describe_tract", "make_repo_skymap"]


def make_repo_skymap(
    butler: Butler,
    config: SkyMapConfig,
    *,
    kind: str = "discrete",
    border_deg: float = 0.0,
    num_rings: int = 120,
    dataset_type: str = "deepCoadd_skyMap",
    overwrite: bool = False,
) -> BaseSkyMap:
    """Build a skymap and store it in the repository as ``dataset_type``.

    ``kind="discrete"`` makes one tract covering every calexp of the repository (their WCS and
    bbox are read from the file headers only); ``kind="rings"`` makes LSST's all-sky rings map.
    """
    if kind == "discrete":
        refs = butler.query_datasets("calexp")
        if not refs:
            raise ValueError(
                f"{butler.root} has no calexps to cover; ingest or simulate some, or use --rings"
            )
        footprints = [read_wcs_and_bbox_of(butler.open_file, ref) for ref in refs]
        skymap: BaseSkyMap = make_discrete_skymap(footprints, config, border_deg=border_deg)
    elif kind == "rings":
        skymap = RingsSkyMap(config, num_rings=num_rings)
    else:
        raise ValueError(f"unknown skymap kind {kind!r}; use 'discrete' or 'rings'")
    butler.put(skymap, dataset_type, {}, overwrite=overwrite)
    return skymap


def describe_tract(tract: TractInfo, *, patches: bool = True) -> dict[str, Any]:
    """A JSON-friendly description of a tract and (optionally) its patches' outer corners."""
    out: dict[str, Any] = {
        "tract": tract.id,
        "ra": tract.ra_deg,
        "dec": tract.dec_deg,
        "radius_deg": tract.radius_deg,
        "bbox": tract.bbox.to_list(),
        "num_patches": list(tract.num_patches),
    }
    if patches:
        rows = []
        for p in tract.patches():
            poly = tract.patch_polygon(p)
            rows.append(
                {
                    "patch": p.name,
                    "sequential": p.sequential_index,
                    "inner_bbox": p.inner_bbox.to_list(),
                    "outer_bbox": p.outer_bbox.to_list(),
                    "corners_radec": [
                        [round(r, 7), round(d, 7)] for r, d in zip(poly.ra, poly.dec, strict=True)
                    ],
                }
            )
        out["patches"] = rows
    return out
