"""The fidelity benchmark's star and noise measurements (bench/psf_fidelity.py) on a synthetic
warp whose truth is exact: stars drawn with the warp's own PSF at known positions and fluxes, white
noise of the variance plane."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.wcs import WCS

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from _fidelity_cases import CaseData  # noqa: E402
from psf_fidelity import WarpFigures, measure_noise, measure_stars  # noqa: E402

from warping.exposure import Exposure  # noqa: E402
from warping.masks import MaskPlanes  # noqa: E402
from warping.psf.analytic import GaussianPsf  # noqa: E402

SIZE = 600
NOISE_VAR = 4.0


def synthetic(*, plane_scale: float = 1.0, shrink: float = 1.0, seed: int = 1) -> tuple:
    """A 600 x 600 warp with a 7 x 7 grid of stars plus one close pair, and its truth.

    Stars are drawn with a Gaussian of ``shrink`` x the declared PSF's sigma; the variance plane
    is ``plane_scale`` x the noise's variance.
    """
    rng = np.random.default_rng(seed)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [300.0, 300.0]
    wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    psf = GaussianPsf(2.0, 25)
    drawn = GaussianPsf(2.0 * shrink, 25)
    g = np.linspace(60, 540, 7)
    xs, ys = (a.ravel() + rng.uniform(-0.5, 0.5, 49) for a in np.meshgrid(g, g))
    xs, ys = np.append(xs, [100.0, 104.0]), np.append(ys, [300.0, 300.0])  # a close pair
    flux = np.geomspace(2e4, 2e5, xs.size)
    image = rng.normal(0.0, np.sqrt(NOISE_VAR), (SIZE, SIZE))
    for x, y, f in zip(xs, ys, flux, strict=True):
        stamp, bb = drawn.compute_image(float(x), float(y))
        image[bb.y0 : bb.y1 + 1, bb.x0 : bb.x1 + 1] += f * stamp
    warp = Exposure(
        image=image.astype(np.float32),
        mask=np.zeros((SIZE, SIZE), np.int32),
        variance=np.full((SIZE, SIZE), NOISE_VAR * plane_scale, np.float32),
        mask_planes=MaskPlanes.default(),
        wcs=wcs,
        psf=psf,
    )
    ra, dec = wcs.pixel_to_world_values(xs, ys)
    case = CaseData(
        ra=np.asarray(ra), dec=np.asarray(dec), flux=flux, is_star=np.ones(xs.size, bool),
        r_half_px=np.zeros(xs.size), faint_flux=1e3,
    )  # fmt: skip
    return warp, case


def test_stars_drawn_with_the_declared_psf_have_no_residuals() -> None:
    warp, case = synthetic()
    figs = WarpFigures()
    measure_stars(warp, case, figs, min_snr=100.0, aperture=2.0)
    assert len(figs.size) == 49  # the grid; the close pair is rejected
    assert figs.rejected == {"neighbour": 2}
    for values, tol in ((figs.size, 1e-3), (figs.psf_flux, 1e-3), (figs.ap_flux, 2e-3)):
        a = np.asarray(values)
        assert abs(a.mean()) < max(tol, 4 * a.std() / np.sqrt(a.size)), a.mean()
    assert abs(np.mean(figs.de1)) < 2e-3 and abs(np.mean(figs.de2)) < 2e-3
    profile = np.mean(np.stack(figs.annulus), axis=0)
    assert np.abs(profile).max() < 1e-3


def test_stars_wider_than_the_declared_psf_show_their_size_and_flux_bias() -> None:
    warp, case = synthetic(shrink=1.02)
    figs = WarpFigures()
    measure_stars(warp, case, figs, min_snr=100.0, aperture=2.0)
    assert np.mean(figs.size) == pytest.approx(0.02, abs=2e-3)
    # a fit with a PSF (sigma s1) narrower than the star (s2) reads low by 2 s1^2 / (s1^2 + s2^2)
    assert np.mean(figs.psf_flux) == pytest.approx(2 / (1 + 1.02**2) - 1, abs=1e-3)


@pytest.mark.parametrize("plane_scale", [1.0, 1.25])
def test_noise_over_plane(plane_scale: float) -> None:
    warp, case = synthetic(plane_scale=plane_scale)
    figs = WarpFigures()
    measure_noise(warp, case, figs)
    assert figs.noise_pixel[0] == pytest.approx(1.0 / plane_scale, rel=0.02)
    for b, ratios in figs.noise_block.items():  # white noise: block sums add up
        assert ratios[0] == pytest.approx(1.0 / plane_scale, rel=0.08), b
