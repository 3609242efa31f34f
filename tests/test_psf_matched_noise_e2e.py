"""PSF-matched warps of pure noise through MakeWarp: the variance plane against the measured noise.

A simulated visit with no sources, no defects and no background error (white noise from the sky,
Poisson and read noise only, whose variance the calexp's plane holds exactly) is warped from
0.168"/px onto 0.2"/px and PSF-matched. Downsampling by 1.19 with Lanczos-3 anti-correlates
neighbours (-0.04 at 1 px), so here LSST's plane is about 10 % too high rather than too low.
Truth is the noise itself: the measured per-pixel variance and lag correlations of the matched
warp.
"""

from __future__ import annotations

import numpy as np
import pytest

from repo_butler import Butler
from warping.simulate.repo import write_simulation
from warping.task.config import MakeWarpConfig, apply_overrides
from warping.task.demo import DEMO_PATCH, demo_simulation, demo_skymap
from warping.task.psf_noise import NOISE_KEY, VARIANCE_KEY
from warping.task.runner import run_make_warp

SEED_CONFIG = [
    "makePsfMatched=True",
    "modelPsf.defaultFwhm=8",
    "warpAndPsfMatch.psfMatch.kernel['AL'].kernelSize=27",
    "warpAndPsfMatch.psfMatch.kernel['AL'].alardSigGauss=[1.5, 3.0, 6.0]",
]
VISIT = 903988


@pytest.fixture(scope="module")
def noise_warps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("noise") / "repo"
    skymap = demo_skymap(patch_inner=900, patch_border=20, pixel_scale_arcsec=0.2, radius_deg=0.2)
    sim = demo_simulation(
        skymap, ccd_size=(640, 1280), gap_pixels=8, star_density=0.0, galaxy_density=0.0,
        bright_star_density=0.0, bright_star_mag_range=(40.0, 40.0), cosmic_ray_rate=0.0,
        bad_columns=0, background_residual=0.0, calib_error=0.0, saturation=1e9,
    )  # fmt: skip
    sim = sim.with_changes(visits=sim.visits[1:2], ccds=(16, 17, 23, 24))
    with Butler.create(str(root)) as butler:
        write_simulation(butler, sim, tract=0, skymap=skymap)
    out: dict[str, object] = {}
    for mode in ("covariance", "lsst"):
        config = apply_overrides(
            MakeWarpConfig(), [*SEED_CONFIG, f"warpAndPsfMatch.psfMatch.varianceMode={mode}"]
        )
        with Butler(str(root), rerun=mode) as b:
            summary = run_make_warp(b, DEMO_PATCH, None, config=config)
            assert summary.visits[0].status == "written", summary.to_dict()
            out[mode] = b.get("deepCoadd_psfMatchedWarp", {**DEMO_PATCH, "visit": VISIT})
    return out


def _clean(warp: object) -> tuple[np.ndarray, np.ndarray]:
    img, var, mask = warp.image, warp.variance, warp.mask  # type: ignore[attr-defined]
    good = np.isfinite(img) & np.isfinite(var) & (mask == 0)
    return good, np.where(good, img, 0.0).astype(float)


def test_covariance_plane_is_the_measured_per_pixel_variance(noise_warps: dict) -> None:
    warp = noise_warps["covariance"]
    good, img = _clean(warp)
    assert good.sum() > 500_000
    z = img[good] / np.sqrt(warp.variance[good])
    # the matched noise is correlated over ~100 pixels: ~2 % statistical error on its variance
    assert np.var(z) == pytest.approx(1.0, abs=0.05)
    assert warp.metadata[VARIANCE_KEY] == "covariance"


def test_lsst_plane_misses_the_warp_correlation_by_the_recorded_factor(noise_warps: dict) -> None:
    cov, lsst = noise_warps["covariance"], noise_warps["lsst"]
    assert lsst.metadata[VARIANCE_KEY] == "lsst"
    np.testing.assert_array_equal(cov.image, lsst.image)  # only the plane differs
    good, img = _clean(lsst)
    ratio = float(np.var(img[good] / np.sqrt(lsst.variance[good])))
    factor = lsst.metadata[NOISE_KEY]["variance_factor"]
    assert factor < 0.95  # downsampling anti-correlates: the honest plane is the lower one
    assert ratio == pytest.approx(factor, rel=0.05)
    assert cov.metadata[NOISE_KEY] == lsst.metadata[NOISE_KEY]


def test_recorded_correlations_are_the_measured_ones(noise_warps: dict) -> None:
    warp = noise_warps["covariance"]
    good, img = _clean(warp)
    noise = warp.metadata[NOISE_KEY]
    z = np.where(good, img / np.sqrt(np.where(good, warp.variance, 1.0)), 0.0)
    h, w = z.shape
    for (dx, dy), predicted in zip(noise["lags"], noise["matched_correlation"], strict=True):
        p = np.s_[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
        q = np.s_[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
        both = good[p] & good[q]
        measured = (z[p][both] * z[q][both]).mean() / (z[good] ** 2).mean()
        assert measured == pytest.approx(predicted, abs=0.03), (dx, dy)
    assert all(abs(c) < 0.2 for c in noise["warp_correlation"])
    assert noise["matched_correlation"][0] > 0.5  # matching correlates neighbours strongly
