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


def patch_header(tract: TractInfo, patch: str | tuple[int, int]) -> Any:
    """The FITS header of a patch's pixel grid (its outer bbox): the tract's WCS with pixel
    (0, 0) at the outer bbox's corner, ``NAXIS1``/``NAXIS2`` its size. Written to a file it is
    a SWarp ``coadd.head`` (resample onto exactly the grid make-warp uses) or a ``reproject``
    target header."""
    from warping.skywcs import shift_wcs

    info = tract.patch(patch)
    box = info.outer_bbox
    header = shift_wcs(tract.wcs, -box.x0, -box.y0).to_header()
    header.insert(0, ("NAXIS", 2))
    header.insert(1, ("NAXIS1", box.width, "patch outer bbox width"))
    header.insert(2, ("NAXIS2", box.height, "patch outer bbox height"))
    header["TRACT"] = (tract.id, "skymap tract")
    header["PATCH"] = (str(info.name), "patch x,y")
    header["LTV1"] = (-box.x0, "tract pixel of column 0 is -LTV1")
    header["LTV2"] = (-box.y0, "tract pixel of row 0 is -LTV2")
    return header
