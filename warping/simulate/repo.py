"""Write a complete simulated input repository through the butler."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from warping.simulate.config import SimulationConfig
from warping.simulate.render import simulate_ccd
from warping.simulate.sources import make_truth_catalog

logger = logging.getLogger(__name__)

__all__ = ["SimulationSummary", "make_skymap", "write_simulation"]


def make_skymap(config: SimulationConfig, patch_inner: int = 4000, patch_border: int = 100) -> Any:
    """A one-tract ``DiscreteSkyMap`` (TAN, the camera's pixel scale) covering every simulated
    CCD, or ``None`` when :mod:`warping.skymap` is not available."""
    import importlib

    try:  # imported dynamically: warping.skymap is developed alongside this module
        skymap_mod = importlib.import_module("warping.skymap")
    except ImportError:
        logger.info("warping.skymap is not available; no deepCoadd_skyMap written")
        return None
    from warping.simulate.geometry import tangent_wcs
    from warping.simulate.sources import sky_region

    ra0, dec0, box = sky_region(config)
    # radius: farthest corner of the covered tangent-plane box (arcsec -> deg)
    radius = float(max(abs(box[0]), abs(box[1])) ** 2 + max(abs(box[2]), abs(box[3])) ** 2) ** 0.5
    cx, cy = (box[0] + box[1]) / 2.0, (box[2] + box[3]) / 2.0
    ra_c, dec_c = (float(v) for v in tangent_wcs(ra0, dec0).pixel_to_world_values(cx, cy))
    sm_config = skymap_mod.SkyMapConfig(
        patch_inner_dimensions=(patch_inner, patch_inner),
        patch_border=patch_border,
        tract_overlap_deg=0.0,
        pixel_scale_arcsec=config.pixel_scale_arcsec,
        projection="TAN",
        rotation_deg=0.0,
    )
    return skymap_mod.DiscreteSkyMap(sm_config, [ra_c], [dec_c], [radius / 3600.0])


@dataclass
class SimulationSummary:
    """What :func:`write_simulation` wrote."""

    n_visits: int
    n_ccds: int
    n_sources: int
    tract: int
    data_ids: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    skymap_written: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "n_visits": self.n_visits,
            "n_ccds": self.n_ccds,
            "n_sources": self.n_sources,
            "tract": self.tract,
            "data_ids": self.data_ids,
            "seconds": self.seconds,
            "skymap_written": self.skymap_written,
        }


def write_simulation(
    butler: Any,
    config: SimulationConfig,
    tract: int = 0,
    progress: Callable[[str], None] | None = None,
    *,
    skymap: Any = None,
    overwrite: bool = False,
) -> SimulationSummary:
    """Simulate every (visit, CCD) of ``config`` and store the products with ``butler.put``.

    Written per CCD: ``calexp``, ``calexpBackground``, ``skyCorr`` (pointing, filter, visit, ccd);
    ``jointcal_wcs`` and ``jointcal_photoCalib`` (filter, tract, visit, ccd); ``fgcm_photoCalib``
    (filter, visit, ccd). Once: ``truth_catalog`` and, when ``skymap`` is given,
    ``deepCoadd_skyMap``. ``progress`` receives one line per CCD.
    """
    t0 = time.perf_counter()
    truth = make_truth_catalog(config)
    butler.put(truth, "truth_catalog", {}, overwrite=overwrite)
    summary = SimulationSummary(len(config.visits), 0, len(truth), tract)
    if skymap is not None:
        butler.put(skymap, "deepCoadd_skyMap", {}, overwrite=overwrite)
        summary.skymap_written = True
    for visit in config.visits:
        for ccd in config.ccds:
            sim = simulate_ccd(config, visit, ccd, truth)
            did = {
                "pointing": visit.pointing,
                "filter": visit.filter,
                "visit": visit.visit,
                "ccd": ccd,
            }
            jdid = {"filter": visit.filter, "tract": tract, "visit": visit.visit, "ccd": ccd}
            fdid = {"filter": visit.filter, "visit": visit.visit, "ccd": ccd}
            butler.put(sim.calexp, "calexp", did, overwrite=overwrite)
            butler.put(sim.background, "calexpBackground", did, overwrite=overwrite)
            butler.put(sim.sky_corr, "skyCorr", did, overwrite=overwrite)
            butler.put(sim.true_wcs, "jointcal_wcs", jdid, overwrite=overwrite)
            butler.put(sim.true_photo_calib, "jointcal_photoCalib", jdid, overwrite=overwrite)
            butler.put(sim.true_photo_calib, "fgcm_photoCalib", fdid, overwrite=overwrite)
            summary.n_ccds += 1
            summary.data_ids.append(did)
            msg = f"visit {visit.visit} ccd {ccd}: {len(sim.sources)} sources"
            logger.debug(msg)
            if progress is not None:
                progress(msg)
    summary.seconds = time.perf_counter() - t0
    logger.info(
        "simulated %d CCD exposures (%d visits, %d truth sources) in %.1f s",
        summary.n_ccds,
        summary.n_visits,
        summary.n_sources,
        summary.seconds,
    )
    return summary
