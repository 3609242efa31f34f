"""The end-to-end demo behind ``make demo`` / ``rb demo``.

It simulates an HSC-like repository whose data IDs match the LSST documentation's example
(filter HSC-I; visit 903988 with CCDs 16, 17, 23 and 24 over tract 0 patch 5,4, plus more
visits), writes a skymap, runs MakeWarp on that patch into rerun ``ci_hsc`` and draws quicklook
PNGs of every warp and a coverage map of the CCD footprints, then assembles the patch's coadd
from the direct warps and draws it.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["DemoResult", "demo_simulation", "demo_skymap", "run_demo"]

DEMO_PATCH: dict[str, Any] = {"tract": 0, "patch": "5,4", "filter": "HSC-I"}
DEMO_VISITS = (903986, 903988, 904010)
#: the seed example's CCDs (a 2x2 block at rows 2-3, columns 2-3 of a 7-column focal plane)
#: plus CCD 9, which lies off the patch and exercises the overlap selection
DEMO_CCDS = (9, 16, 17, 23, 24)
DEMO_RERUN = "ci_hsc"


@dataclass
class DemoResult:
    """Where the demo put things."""

    repo: str
    warps: list[str] = field(default_factory=list)
    pngs: list[str] = field(default_factory=list)
    coverage_png: str = ""
    summary: Any = None
    coadd: Any = None  # warping.coadd.task.CoaddSummary
    coadd_png: str = ""


def demo_skymap(
    *,
    patch_inner: int = 4000,
    patch_border: int = 100,
    pixel_scale_arcsec: float = 0.168,
    radius_deg: float = 0.65,
) -> Any:
    """One discrete HSC-like tract (TAN, 0.168"/px, 4000 px patches) large enough for patch 5,4.

    Tests shrink the patches (and the radius) to keep everything small.
    """
    from warping.skymap import DiscreteSkyMap, SkyMapConfig

    config = SkyMapConfig(
        patch_inner_dimensions=(patch_inner, patch_inner),
        patch_border=patch_border,
        tract_overlap_deg=0.0,
        pixel_scale_arcsec=pixel_scale_arcsec,
        projection="TAN",
        rotation_deg=0.0,
    )
    return DiscreteSkyMap(config, [150.0], [2.0], [radius_deg])


def demo_simulation(
    skymap: Any,
    *,
    ccd_size: tuple[int, int] = (2048, 4176),
    gap_pixels: int = 100,
    seed: int = 1,
    zero_point: float = 31.0,
    **changes: Any,
) -> Any:
    """Visits pointed so that the 16/17/23/24 CCD junction of each lands near patch 5,4's centre."""
    from warping.simulate.config import SimulationConfig, VisitSpec

    tract = skymap[DEMO_PATCH["tract"]]
    patch = tract.patch(DEMO_PATCH["patch"])
    box = patch.outer_bbox
    cx, cy = box.x0 + (box.width - 1) / 2.0, box.y0 + (box.height - 1) / 2.0
    ra_c, dec_c = (float(v) for v in tract.wcs.pixel_to_world_values(cx, cy))
    base = SimulationConfig(
        seed=seed,
        ccd_width=ccd_size[0],
        ccd_height=ccd_size[1],
        n_ccd_columns=7,
        n_ccd_rows=5,
        ccds=DEMO_CCDS,
        gap_pixels=gap_pixels,
        visits=(VisitSpec(DEMO_VISITS[0]),),
    ).with_changes(**changes)
    # focal-plane position of the corner shared by CCDs 16, 17, 23 and 24 (middle of the gaps)
    x17 = base.ccd_origin(17)[0]
    y23 = base.ccd_origin(23)[1]
    jx, jy = x17 - 0.5 - base.gap_pixels / 2.0, y23 - 0.5 - base.gap_pixels / 2.0
    scale = base.pixel_scale_arcsec / 3600.0
    specs: list[VisitSpec] = []
    # (dx, dy) dithers in arcsec for full-size CCDs, scaled with the CCD size; 903988 is centred
    dithers = ((25.0, -15.0, 4.0, 0.78), (0.0, 0.0, 0.0, 0.62), (-20.0, 20.0, -3.0, 0.70))
    shrink = ccd_size[0] / 2048.0
    for visit, (dx_full, dy_full, rot, seeing) in zip(DEMO_VISITS, dithers, strict=True):
        dx, dy = dx_full * shrink, dy_full * shrink
        th = math.radians(rot)
        # sky offset of the junction from the boresight (east left at rotation 0)
        d_ra = scale * (-math.cos(th) * jx + math.sin(th) * jy)
        d_dec = scale * (math.sin(th) * jx + math.cos(th) * jy)
        dec = dec_c - d_dec + dy / 3600.0
        ra = ra_c - (d_ra - dx / 3600.0) / math.cos(math.radians(dec))
        specs.append(
            VisitSpec(
                visit=visit,
                pointing=1116,
                filter="HSC-I",
                ra_deg=ra,
                dec_deg=dec,
                rotation_deg=rot,
                seeing_fwhm_arcsec=seeing,
                zero_point=zero_point + 0.03 * len(specs),
                mjd=57000.0 + 0.02 * len(specs),
            )
        )
    return base.with_changes(visits=tuple(specs))


def run_demo(
    directory: str | Path = "demo-repo",
    *,
    jobs: int = 1,
    echo: Callable[[str], None] = print,
    ccd_size: tuple[int, int] = (2048, 4176),
    storage_options: dict[str, Any] | None = None,
    coadd: bool = True,
) -> DemoResult:
    """Build (or reuse) the demo repository, make the warps and render the PNGs.

    ``directory`` is a path or an fsspec URL (with ``storage_options``); the PNGs go to its
    ``quicklook`` directory, or to ``./quicklook`` when it is a URL. ``coadd=False`` stops after
    the warps and their PNGs (no coadd).
    """
    from repo_butler import Butler
    from repo_butler.extras import require

    require("matplotlib", "plots", "rb demo (it draws its warps)")  # before anything is written
    from warping.quicklook_dataset import patch_coverage, quicklook_dataset
    from warping.simulate.repo import write_simulation
    from warping.task.config import MakeWarpConfig
    from warping.task.runner import run_make_warp

    is_url = "://" in str(directory)
    root = str(directory) if is_url else str(Path(directory).resolve())
    butler = Butler.create(root, exist_ok=True, storage_options=storage_options)
    skymap = demo_skymap()
    if butler.exists("truth_catalog", {}):
        echo(f"reusing the simulated repository in {root}")
    else:
        sim = demo_simulation(skymap, ccd_size=ccd_size)
        echo(f"simulating {len(sim.visits)} visits x {len(sim.ccds)} CCDs into {root} ...")
        summary = write_simulation(butler, sim, tract=0, skymap=skymap,
                                   progress=lambda line: echo("  " + line))  # fmt: skip
        echo(f"simulated {summary.n_ccds} CCDs in {summary.seconds:.1f} s")
    if not butler.exists("deepCoadd_skyMap", {}):
        butler.put(skymap, "deepCoadd_skyMap", {})
    out = Butler(root, rerun=DEMO_RERUN, storage_options=storage_options)
    config = MakeWarpConfig()
    echo("rb make-warp " + root + f" --rerun {DEMO_RERUN} --id tract=0 patch=5,4 filter=HSC-I")
    result = DemoResult(repo=root)
    result.summary = run_make_warp(out, DEMO_PATCH, None, config=config, jobs=jobs)
    ql_dir = (Path.cwd() if is_url else Path(root)) / "quicklook"
    for v in result.summary.visits:
        for warp_type, uri in v.outputs.items():
            result.warps.append(uri)
            ids = {**DEMO_PATCH, "visit": v.visit}
            png = ql_dir / f"{warp_type}Warp-HSC-I-0-5,4-{v.visit}.png"
            quicklook_dataset(out, config.dataset_type(warp_type), ids, png)
            result.pngs.append(str(png))
    cov = patch_coverage(
        out, config.dataset_type("direct"), DEMO_PATCH, ql_dir / "coverage-0-5,4.png"
    )
    result.coverage_png = str(cov.path)
    if not (coadd and result.warps):
        return result
    if importlib.util.find_spec("dask") is None:
        echo("no coadd: warp stacks need Dask (pip install 'repo-butler[dask]')")
    else:
        from warping.coadd.task import assemble_coadd

        echo("rb assemble-coadd " + root + f" --rerun {DEMO_RERUN} --id tract=0 patch=5,4 "
             "filter=HSC-I")  # fmt: skip
        result.coadd = assemble_coadd(out, **DEMO_PATCH)
        png = ql_dir / "deepCoadd-HSC-I-0-5,4.png"
        quicklook_dataset(out, result.coadd.dataset_type, DEMO_PATCH, png)
        result.coadd_png = str(png)
    return result
