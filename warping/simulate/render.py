"""Render one simulated CCD of one visit (pure, in memory).

Physics, in order (all images in counts unless stated):

1. ``model_nJy``: stars (``flux * psf.compute_image(x, y)``) and galaxies (Sérsic Gaussian
   mixtures, sheared to pixels by the local Jacobian of the *true* WCS and convolved analytically
   with the local PSF Gaussian, point-sampled like the PSF) at positions from the true WCS.
2. ``model_counts = model_nJy / c_true(x, y)`` with ``c_true`` the true calibration (nJy/count),
   a Chebyshev field exactly equal to the visit's focal-plane polynomial on this CCD, so
   ``true flux = counts * c_true`` holds pixel by pixel.
3. ``raw = Poisson(gain * (sky + model_counts)) / gain + N(0, read_noise)``; the variance plane
   is the expectation ``(sky + model_counts) / gain + read_noise²``.
4. Defects: charge above ``saturation`` bleeds along columns, saturated pixels are clipped and
   flagged ``SAT``; cosmic-ray tracks are
   added and flagged ``CR`` (not repaired); ``bad_columns`` columns get a large offset and
   ``BAD``; ``DETECTED`` marks pixels where the noise-free model exceeds 3 sky sigma.
5. ``calexpBackground``: the true sky sampled at bin centres plus a per-bin error
   (``background_residual`` rms), Akima-interpolated; ``calexp = raw - calexpBackground``.
6. ``skyCorr = [-calexpBackground components..., newSky]`` with ``newSky`` the noise-free true
   sky sampled on a ``skycorr_bin_size`` grid, so ``calexp - skyCorr = raw - newSky``
   (and ``newSky`` equals the true sky to the interpolation error, < 1e-3 counts).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS

from warping.background import BackgroundComponent, BackgroundList
from warping.exposure import Exposure, VisitInfo
from warping.geom import Box2I
from warping.masks import MaskPlanes
from warping.photocalib import ChebyshevBoundedField, PhotoCalib, ab_mag_to_njy
from warping.psf._sampling import gaussian_samples, odd_size
from warping.psf.analytic import SIGMA_PER_FWHM, VariableGaussianPsf
from warping.simulate.config import SimulationConfig, VisitSpec
from warping.simulate.geometry import calexp_wcs, true_wcs
from warping.simulate.sources import sersic_mixture

logger = logging.getLogger(__name__)

__all__ = ["SimulatedCcd", "ccd_exposure_id", "make_visit_psf", "simulate_ccd"]


def ccd_exposure_id(visit: int, ccd: int) -> int:
    """HSC-style exposure id ``visit * 200 + ccd``."""
    return int(visit) * 200 + int(ccd)


@dataclass
class SimulatedCcd:
    """All products of one CCD of one visit, plus the truth needed by tests."""

    visit: int
    ccd: int
    calexp: Exposure
    background: BackgroundList
    sky_corr: BackgroundList
    true_wcs: WCS
    true_photo_calib: PhotoCalib
    true_sky: BackgroundComponent
    sources: Table  # truth rows on this CCD with x, y (true WCS), flux_counts_at_centre


def _visit_rng(config: SimulationConfig, visit: VisitSpec, salt: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, visit.visit, salt])


def _fp_uv(
    config: SimulationConfig, ccd: int, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    x_ll, y_ll = config.ccd_origin(ccd)
    r = config.focal_plane_radius
    return (x + x_ll) / r, (y + y_ll) / r


def make_visit_psf(config: SimulationConfig, visit: VisitSpec, ccd: int) -> VariableGaussianPsf:
    """The true PSF of ``visit`` on ``ccd``: an elliptical Gaussian whose sigma and ellipticity are
    quadratic polynomials over the focal plane (shared by all CCDs of the visit)."""
    rng = _visit_rng(config, visit, 11)
    sigma0 = visit.seeing_fwhm_arcsec * SIGMA_PER_FWHM / config.pixel_scale_arcsec
    pv = config.psf_variation
    sig = (sigma0, *(sigma0 * pv * rng.uniform(-1, 1, 2)), *(sigma0 * pv * rng.uniform(0, 1, 3)))
    pe = config.psf_ellipticity
    e1 = tuple(pe * rng.uniform(-1, 1, 6) * np.array([1, 1, 1, 0.5, 0.5, 0.5]))
    e2 = tuple(pe * rng.uniform(-1, 1, 6) * np.array([1, 1, 1, 0.5, 0.5, 0.5]))
    sigma_max = sigma0 * (1 + 5 * pv) * math.sqrt(1 + 3 * pe)
    x_ll, y_ll = config.ccd_origin(ccd)
    return VariableGaussianPsf(
        sig,
        e1,
        e2,
        size=odd_size(2 * 5 * sigma_max + 1),
        x_offset=x_ll,
        y_offset=y_ll,
        scale=config.focal_plane_radius,
        average_position=((config.ccd_width - 1) / 2.0, (config.ccd_height - 1) / 2.0),
    )


def true_calibration(config: SimulationConfig, visit: VisitSpec, ccd: int) -> PhotoCalib:
    """The true spatially varying calibration (nJy/count) on ``ccd``: the visit's quadratic
    focal-plane polynomial, represented exactly by an order-2 Chebyshev field on the CCD bbox."""
    rng = _visit_rng(config, visit, 13)
    c0 = float(ab_mag_to_njy(visit.zero_point))
    z = visit.zero_point_variation * rng.uniform(-1, 1, 5) * np.array([1, 1, 0.5, 0.5, 0.5])
    bbox = Box2I(0, 0, config.ccd_width, config.ccd_height)
    yy, xx = np.mgrid[
        0 : bbox.height : max(1, bbox.height // 16), 0 : bbox.width : max(1, bbox.width // 16)
    ]
    u, v = _fp_uv(config, ccd, xx.astype(float), yy.astype(float))
    vals = c0 * (1 + z[0] * u + z[1] * v + z[2] * u * u + z[3] * u * v + z[4] * v * v)
    field = _fit_chebyshev_exact(bbox, xx, yy, vals)
    return PhotoCalib(None, c0 * 0.002, field)


def _fit_chebyshev_exact(
    bbox: Box2I, xx: np.ndarray, yy: np.ndarray, vals: np.ndarray
) -> ChebyshevBoundedField:
    from numpy.polynomial import chebyshev as cheb

    probe = ChebyshevBoundedField(bbox, np.zeros((3, 3)))
    xs, ys = probe._scaled(xx.ravel(), yy.ravel())
    a = cheb.chebvander2d(ys, xs, [2, 2])
    coef, *_ = np.linalg.lstsq(a, vals.ravel(), rcond=None)
    return ChebyshevBoundedField(bbox, coef.reshape(3, 3))


def _true_sky_function(
    config: SimulationConfig, visit: VisitSpec, ccd: int
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    rng = _visit_rng(config, visit, 17)
    g = visit.sky_gradient * rng.uniform(-1, 1, 5) * np.array([1, 1, 0.5, 0.5, 0.5])

    def sky(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u, v = _fp_uv(config, ccd, x, y)
        return visit.sky_level * (
            1 + g[0] * u + g[1] * v + g[2] * u * u + g[3] * u * v + g[4] * v * v
        )

    return sky


def _grid_component(
    bbox: Box2I,
    bin_size: int,
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
    noise: float,
    rng: np.random.Generator | None,
) -> BackgroundComponent:
    nx = max(1, round(bbox.width / bin_size))
    ny = max(1, round(bbox.height / bin_size))
    probe = BackgroundComponent(bbox, np.zeros((ny, nx)))
    xc, yc = probe.bin_centres
    vals = fn(xc[None, :], yc[:, None]) * np.ones((ny, nx))
    if noise and rng is not None:
        vals = vals + rng.normal(0.0, noise, vals.shape)
    return BackgroundComponent(bbox, vals, "AKIMA_SPLINE")


def _add_stamp(target: np.ndarray, stamp: np.ndarray, bb: Box2I) -> None:
    full = Box2I(0, 0, target.shape[1], target.shape[0])
    inter = bb.intersection(full)
    if inter.is_empty():
        return
    target[inter.slices(full)] += stamp[inter.slices(bb)]


def _bleed(raw: np.ndarray, saturation: float) -> None:
    """Spread the charge above ``saturation`` along each column (half up, half down), in place.

    Every saturated column run is extended by ``excess / saturation`` pixels, which are set to at
    least the saturation level: a bleed trail that roughly conserves charge.
    """
    from scipy import ndimage

    sat = raw >= saturation
    if not sat.any():
        return
    h = raw.shape[0]
    labels, _ = ndimage.label(sat)
    for region in ndimage.find_objects(labels):
        if region is None:
            continue
        rows, cols = region
        for col in range(cols.start, cols.stop):
            m = raw[rows, col] >= saturation
            if not m.any():
                continue
            excess = float((raw[rows, col][m] - saturation).sum())
            ys = np.nonzero(m)[0] + rows.start
            extra = int(excess // saturation)
            up = extra // 2
            lo = max(0, int(ys.min()) - (extra - up))
            hi = min(h, int(ys.max()) + 1 + up)
            raw[lo:hi, col] = np.maximum(raw[lo:hi, col], saturation)


def _local_jacobians(wcs: WCS, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """``J[k]`` (pixels per arcsec) mapping (east, north) offsets to (x, y) at each source."""
    d = 1.0 / 3600.0
    x0, y0 = wcs.world_to_pixel_values(ra, dec)
    xe, ye = wcs.world_to_pixel_values(ra + d / np.cos(np.radians(dec)), dec)
    xn, yn = wcs.world_to_pixel_values(ra, dec + d)
    j = np.empty((len(ra), 2, 2))
    j[:, 0, 0] = xe - x0
    j[:, 1, 0] = ye - y0
    j[:, 0, 1] = xn - x0
    j[:, 1, 1] = yn - y0
    return j


def simulate_ccd(
    config: SimulationConfig, visit_spec: VisitSpec | int, ccd_id: int, truth: Table | None = None
) -> SimulatedCcd:
    """Render CCD ``ccd_id`` of a visit; deterministic for ``config.seed``.

    ``truth`` (from :func:`~warping.simulate.sources.make_truth_catalog`) is computed when not
    given; pass it to avoid recomputing it per CCD.
    """
    from warping.simulate.sources import make_truth_catalog

    visit = config.visit(visit_spec) if isinstance(visit_spec, int) else visit_spec
    if truth is None:
        truth = make_truth_catalog(config)
    W, H = config.ccd_width, config.ccd_height
    bbox = Box2I(0, 0, W, H)
    rng = np.random.default_rng([config.seed, visit.visit, ccd_id, 1])
    wcs = true_wcs(config, visit, ccd_id)
    psf = make_visit_psf(config, visit, ccd_id)
    calib = true_calibration(config, visit, ccd_id)

    # -- sources --------------------------------------------------------------------------
    ra = np.asarray(truth["ra"], dtype=float)
    dec = np.asarray(truth["dec"], dtype=float)
    x, y = wcs.world_to_pixel_values(ra, dec)
    margin = 30
    on = (x > -margin) & (x < W - 1 + margin) & (y > -margin) & (y < H - 1 + margin)
    idx = np.nonzero(on)[0]
    model = np.zeros((H, W))
    flux = np.asarray(truth["flux_nJy"], dtype=float)
    is_star = np.asarray(truth["is_star"], dtype=bool)
    jac = _local_jacobians(wcs, ra[idx], dec[idx]) if len(idx) else np.zeros((0, 2, 2))
    for k, i in enumerate(idx):
        xi, yi = float(x[i]), float(y[i])
        if is_star[i]:
            img, bb = psf.compute_image(xi, yi)
            _add_stamp(model, flux[i] * img, bb)
            continue
        amps, variances = sersic_mixture(float(truth["sersic_n"][i]))
        re = float(truth["r_half_arcsec"][i])
        q = float(truth["axis_ratio"][i])
        pa = math.radians(float(truth["position_angle_deg"][i]))
        major = np.array([math.sin(pa), math.cos(pa)])
        minor = np.array([math.cos(pa), -math.sin(pa)])
        shape_sky = np.outer(major, major) + q * q * np.outer(minor, minor)
        jk = jac[k]
        shape_pix = jk @ shape_sky @ jk.T * re * re
        ixx, iyy, ixy = psf.moments(xi, yi)
        cx, cy = math.floor(xi + 0.5), math.floor(yi + 0.5)
        for a, v in zip(amps, variances, strict=True):
            # each Gaussian component on its own stamp (5 sigma, at most 100 px half-width)
            cxx = v * shape_pix[0, 0] + ixx
            cyy = v * shape_pix[1, 1] + iyy
            cxy = v * shape_pix[0, 1] + ixy
            det = cxx * cyy - cxy * cxy
            half = int(min(100, max(3, math.ceil(5 * math.sqrt(max(cxx, cyy))))))
            bb = Box2I(cx - half, cy - half, 2 * half + 1, 2 * half + 1)
            if bb.intersection(bbox).is_empty():
                continue
            dx = np.arange(bb.x0, bb.x0 + bb.width) - xi
            dy = np.arange(bb.y0, bb.y0 + bb.height) - yi
            norm = flux[i] * a / (2 * math.pi * math.sqrt(det))
            _add_stamp(model, norm * gaussian_samples(dx, dy, cxx, cyy, cxy), bb)
    cmap = calib.calibration_image(bbox)
    model_counts = model / cmap

    # -- sky, noise, defects ----------------------------------------------------------------
    sky_fn = _true_sky_function(config, visit, ccd_id)
    yy = np.arange(H, dtype=float)[:, None]
    xx = np.arange(W, dtype=float)[None, :]
    sky = sky_fn(xx, yy) * np.ones((1, W))
    expected = sky + model_counts
    g = config.gain
    raw = rng.poisson(np.clip(expected, 0, None) * g) / g + rng.normal(
        0.0, config.read_noise, (H, W)
    )
    variance = (expected / g + config.read_noise**2).astype(np.float32)
    planes = MaskPlanes.default()
    mask = np.zeros((H, W), dtype=np.int32)
    sky_sigma = math.sqrt(visit.sky_level / g + config.read_noise**2)
    mask[model_counts > 3 * sky_sigma] |= planes.bitmask("DETECTED")
    _bleed(raw, config.saturation)
    sat = raw >= config.saturation
    raw[sat] = config.saturation
    mask[sat] |= planes.bitmask("SAT")
    n_cr = int(rng.poisson(config.cosmic_ray_rate * W * H / 1e6))
    for _ in range(n_cr):
        length = int(rng.integers(1, 12))
        ang = rng.uniform(0, math.pi)
        x0c, y0c = rng.uniform(0, W), rng.uniform(0, H)
        t = np.arange(length)
        cx_ = np.clip((x0c + t * math.cos(ang)).astype(int), 0, W - 1)
        cy_ = np.clip((y0c + t * math.sin(ang)).astype(int), 0, H - 1)
        raw[cy_, cx_] += rng.uniform(300, 5000, length)
        mask[cy_, cx_] |= planes.bitmask("CR")
    for _ in range(config.bad_columns):
        col = int(rng.integers(0, W))
        y_start = int(rng.integers(0, H // 2))
        raw[y_start:, col] += 5000.0
        mask[y_start:, col] |= planes.bitmask("BAD")

    # -- backgrounds ----------------------------------------------------------------------
    bg_comp = _grid_component(
        bbox, config.background_bin_size, sky_fn, config.background_residual, rng
    )
    background = BackgroundList([bg_comp])
    calexp_image = (raw - bg_comp.get_image(bbox)).astype(np.float32)
    new_sky = _grid_component(bbox, config.skycorr_bin_size, sky_fn, 0.0, None)
    sky_corr = BackgroundList([bg_comp.negated(), new_sky])

    # -- the calexp -----------------------------------------------------------------------
    sfm_mean = calib.calibration_mean * (
        1.0 + config.calib_error * float(_visit_rng(config, visit, ccd_id + 1000).normal())
    )
    calexp = Exposure(
        calexp_image,
        mask,
        variance,
        mask_planes=planes,
        xy0=(0, 0),
        wcs=calexp_wcs(config, visit, ccd_id),
        psf=psf,
        photo_calib=PhotoCalib(sfm_mean, calib.calibration_err),
        visit_info=VisitInfo(
            exposure_time=visit.exposure_time,
            mid_time_mjd=visit.mjd,
            boresight_ra=visit.ra_deg,
            boresight_dec=visit.dec_deg,
            rotation_angle=visit.rotation_deg,
            airmass=visit.airmass,
        ),
        filter=visit.filter,
        id=ccd_exposure_id(visit.visit, ccd_id),
        metadata={
            "VISIT": visit.visit,
            "CCD": ccd_id,
            "POINTING": visit.pointing,
            "SIMULATED": True,
            "SIM_SEED": config.seed,
            "SATURATION": config.saturation,
            "GAIN": config.gain,
            "READ_NOISE": config.read_noise,
        },
    )
    src = truth[idx]
    src["x"] = x[idx]
    src["y"] = y[idx]
    src["flux_counts"] = flux[idx] / calib.evaluate(x[idx], y[idx]) if len(idx) else np.zeros(0)
    return SimulatedCcd(
        visit=visit.visit,
        ccd=ccd_id,
        calexp=calexp,
        background=background,
        sky_corr=sky_corr,
        true_wcs=wcs,
        true_photo_calib=calib,
        true_sky=new_sky,
        sources=src,
    )
