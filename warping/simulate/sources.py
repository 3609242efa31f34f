"""The truth catalogue: stars and Sérsic galaxies at fixed sky positions with known AB fluxes.

Galaxies are rendered as mixtures of concentric Gaussians fitted (non-negative least squares,
once per Sérsic index) to the circular Sérsic profile out to 8 half-light radii, normalised to
unit total flux; ``flux_nJy`` in the catalogue is the total flux of the rendered model. Sources
have flat spectra (the same AB magnitude in every filter).
"""

from __future__ import annotations

import functools
import logging
import math

import numpy as np
from astropy.table import Table
from scipy.optimize import nnls
from scipy.special import gammaincinv

from warping.photocalib import ab_mag_to_njy
from warping.simulate.config import SimulationConfig
from warping.simulate.geometry import tangent_wcs, true_wcs

logger = logging.getLogger(__name__)

__all__ = ["SERSIC_INDICES", "make_truth_catalog", "sersic_mixture"]

#: Sérsic indices used for simulated galaxies.
SERSIC_INDICES = (0.5, 1.0, 2.0, 4.0)


@functools.lru_cache(maxsize=16)
def sersic_mixture(n: float, n_components: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """Amplitudes (sum 1) and variances (in units of ``r_e²``) of a Gaussian mixture
    approximating a circular Sérsic profile of index ``n`` with half-light radius 1.

    The fit covers radii up to 20 ``r_e``; the mixture's half-light radius is within 1% of 1 for
    ``n <= 2`` and ~2% for ``n = 4``. ``n = 0.5`` is an exact single Gaussian.
    """
    if n == 0.5:
        return np.array([1.0]), np.array([1.0 / (2.0 * math.log(2.0))])
    bn = float(gammaincinv(2.0 * n, 0.5))
    r = np.linspace(0.0, 20.0, 1500)[1:]
    prof = np.exp(-bn * (r ** (1.0 / n) - 1.0))
    variances = np.geomspace(1e-4 if n > 2 else 3e-3, 60.0, n_components)
    basis = np.exp(-0.5 * r[:, None] ** 2 / variances[None, :]) / (2 * math.pi * variances[None, :])
    w = np.sqrt(r)  # weight by annulus area (sqrt because of least squares)
    amps, _ = nnls(basis * w[:, None], prof * w)
    keep = amps > 0
    amps = amps[keep]
    variances = variances[keep]
    return amps / amps.sum(), variances


def _powerlaw_mags(
    rng: np.random.Generator, n: int, lo: float, hi: float, slope: float
) -> np.ndarray:
    """``n`` magnitudes in ``[lo, hi]`` with ``dN/dm ∝ 10**(slope m)``."""
    a = 10 ** (slope * lo)
    b = 10 ** (slope * hi)
    return np.log10(a + (b - a) * rng.random(n)) / slope


def sky_region(config: SimulationConfig) -> tuple[float, float, np.ndarray]:
    """Centre ``(ra, dec)`` and the tangent-plane box ``[xmin, xmax, ymin, ymax]`` (arcsec)
    covering every simulated CCD of every visit, with a 10 arcsec margin."""
    ra0 = float(np.mean([v.ra_deg for v in config.visits]))
    dec0 = float(np.mean([v.dec_deg for v in config.visits]))
    tan = tangent_wcs(ra0, dec0)
    pts = []
    w, h = config.ccd_width, config.ccd_height
    corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
    for v in config.visits:
        for c in config.ccds:
            ra, dec = true_wcs(config, v, c).pixel_to_world_values(corners[:, 0], corners[:, 1])
            x, y = tan.world_to_pixel_values(ra, dec)
            pts.append(np.column_stack([x, y]))
    allp = np.vstack(pts)
    m = 10.0
    box = np.array(
        [allp[:, 0].min() - m, allp[:, 0].max() + m, allp[:, 1].min() - m, allp[:, 1].max() + m]
    )
    return ra0, dec0, box


def make_truth_catalog(config: SimulationConfig) -> Table:
    """The truth catalogue: ``id, ra, dec, mag_ab, flux_nJy, is_star, sersic_n, r_half_arcsec,
    axis_ratio, position_angle_deg`` (PA east of north of the major axis; ``r_half`` along the
    major axis). Stars have ``sersic_n = 0`` and ``r_half = 0``."""
    rng = np.random.default_rng([config.seed, 4242])
    ra0, dec0, box = sky_region(config)
    area = (box[1] - box[0]) * (box[3] - box[2]) / 3600.0  # arcmin²
    n_star = int(rng.poisson(config.star_density * area))
    n_bright = max(1, int(rng.poisson(config.bright_star_density * area)))
    n_gal = int(rng.poisson(config.galaxy_density * area))
    mags = np.concatenate(
        [
            _powerlaw_mags(rng, n_bright, *config.bright_star_mag_range, 0.1),
            _powerlaw_mags(rng, n_star, *config.star_mag_range, 0.15),
            _powerlaw_mags(rng, n_gal, *config.galaxy_mag_range, 0.35),
        ]
    )
    n = n_bright + n_star + n_gal
    is_star = np.zeros(n, dtype=bool)
    is_star[: n_bright + n_star] = True
    x = rng.uniform(box[0], box[1], n)
    y = rng.uniform(box[2], box[3], n)
    ra, dec = tangent_wcs(ra0, dec0).pixel_to_world_values(x, y)
    sersic_n = np.zeros(n)
    r_half = np.zeros(n)
    q = np.ones(n)
    pa = np.zeros(n)
    g = ~is_star
    sersic_n[g] = rng.choice(SERSIC_INDICES, size=n_gal, p=[0.15, 0.5, 0.15, 0.2])
    # fainter galaxies are smaller: median r_half 0.8" at mag 20 to 0.35" at mag 25.5
    med = 0.8 * 10 ** (-0.065 * (mags[g] - 20.0))
    r_half[g] = np.clip(med * np.exp(rng.normal(0.0, 0.35, n_gal)), 0.1, 4.0)
    q[g] = rng.uniform(0.3, 1.0, n_gal)
    pa[g] = rng.uniform(0.0, 180.0, n_gal)
    t = Table()
    t["id"] = np.arange(1, n + 1, dtype=np.int64)
    t["ra"] = np.asarray(ra, dtype=float) % 360.0
    t["dec"] = np.asarray(dec, dtype=float)
    t["mag_ab"] = mags
    t["flux_nJy"] = ab_mag_to_njy(mags)
    t["is_star"] = is_star
    t["sersic_n"] = sersic_n
    t["r_half_arcsec"] = r_half
    t["axis_ratio"] = q
    t["position_angle_deg"] = pa
    t["ra"].unit = "deg"
    t["dec"].unit = "deg"
    t["flux_nJy"].unit = "nJy"
    t["r_half_arcsec"].unit = "arcsec"
    t.meta["SEED"] = config.seed
    t.meta["COMMENT"] = ["repo-butler simulation truth; fluxes are the same in every filter"]
    return t
