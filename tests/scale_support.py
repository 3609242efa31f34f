"""Small simulated repositories for the scale-out tests (``test_scale_*``, ``test_dask_*``)."""

from __future__ import annotations

from typing import Any

from repo_butler import Butler
from warping.simulate.repo import write_simulation
from warping.task.demo import demo_simulation, demo_skymap

__all__ = ["small_sim", "small_skymap", "write_small_repo"]


def small_skymap() -> Any:
    """A one-tract skymap with 300-pixel patches (0.2"/px) around the demo pointing."""
    return demo_skymap(patch_inner=300, patch_border=20, pixel_scale_arcsec=0.2, radius_deg=0.07)


def small_sim(skymap: Any, **changes: Any) -> Any:
    """3 visits x 5 CCDs of 192x384 px: their footprints cover several patches of tract 0."""
    return demo_simulation(
        skymap, ccd_size=(192, 384), gap_pixels=8, cosmic_ray_rate=0.0, star_density=20.0,
        galaxy_density=2.0, bright_star_density=0.0, **changes,
    )  # fmt: skip


def write_small_repo(root: str, storage_options: dict[str, Any] | None = None) -> Butler:
    """Create a repository at ``root`` (path or URL) holding :func:`small_sim` and the skymap."""
    skymap = small_skymap()
    butler = Butler.create(root, storage_options=storage_options)
    write_simulation(butler, small_sim(skymap), tract=0, skymap=skymap)
    if not butler.exists("deepCoadd_skyMap", {}):
        butler.put(skymap, "deepCoadd_skyMap", {})
    return butler
