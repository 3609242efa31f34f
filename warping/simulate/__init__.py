"""A realistic, deterministic simulator of HSC-like calibrated exposures with known truth.

>>> from warping.simulate import SimulationConfig, simulate_ccd
>>> cfg = SimulationConfig.small(seed=3)
>>> sim = simulate_ccd(cfg, cfg.visits[0], cfg.ccds[0])
"""

from warping.simulate.config import SimulationConfig, VisitSpec, default_visits
from warping.simulate.geometry import calexp_wcs, true_wcs
from warping.simulate.render import SimulatedCcd, ccd_exposure_id, make_visit_psf, simulate_ccd
from warping.simulate.repo import SimulationSummary, make_skymap, write_simulation
from warping.simulate.sources import make_truth_catalog, sersic_mixture

__all__ = [
    "SimulatedCcd",
    "SimulationConfig",
    "SimulationSummary",
    "VisitSpec",
    "calexp_wcs",
    "ccd_exposure_id",
    "default_visits",
    "make_skymap",
    "make_truth_catalog",
    "make_visit_psf",
    "sersic_mixture",
    "simulate_ccd",
    "true_wcs",
    "write_simulation",
]
