"""The fidelity benchmark's measurements (bench/_adaptive_moments.py, bench/psf_fidelity.py)
against analytic truth and, when installed, galsim's HSM adaptive moments."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from _adaptive_moments import MomentsError, adaptive_moments  # noqa: E402

CASES = [  # (sigma_x, sigma_y, correlation, centre x, centre y)
    (2.0, 2.0, 0.0, 40.0, 40.0),
    (3.0, 2.2, 0.3, 40.3, 39.8),
    (1.6, 1.5, -0.1, 39.55, 40.45),
    (6.0, 5.0, 0.2, 41.2, 38.7),
]


def gaussian(sx: float, sy: float, rho: float, x0: float, y0: float, n: int = 81) -> np.ndarray:
    """Unit-flux elliptical Gaussian sampled at pixel centres."""
    cov = np.array([[sx * sx, rho * sx * sy], [rho * sx * sy, sy * sy]])
    inv = np.linalg.inv(cov)
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    dx, dy = xx - x0, yy - y0
    q = inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy
    return np.exp(-0.5 * q) / (2 * np.pi * np.sqrt(np.linalg.det(cov)))


@pytest.mark.parametrize(("sx", "sy", "rho", "x0", "y0"), CASES)
def test_adaptive_moments_of_gaussians_are_their_covariance(
    sx: float, sy: float, rho: float, x0: float, y0: float
) -> None:
    m = adaptive_moments(1000.0 * gaussian(sx, sy, rho, x0, y0), 40.0, 40.0)
    det = (sx * sy) ** 2 * (1 - rho * rho)
    assert m.sigma == pytest.approx(det**0.25, rel=1e-7)
    assert m.ixx == pytest.approx(sx * sx, rel=1e-7)
    assert m.iyy == pytest.approx(sy * sy, rel=1e-7)
    assert m.ixy == pytest.approx(rho * sx * sy, abs=1e-7)
    assert m.e1 == pytest.approx((sx * sx - sy * sy) / (sx * sx + sy * sy), abs=1e-7)
    assert m.x == pytest.approx(x0, abs=1e-7)
    assert m.y == pytest.approx(y0, abs=1e-7)
    assert m.amplitude == pytest.approx(1000.0, rel=1e-7)


def test_adaptive_moments_ignore_a_distant_second_source() -> None:
    """The adaptive weight suppresses light far from the star (the unweighted moments do not)."""
    img = gaussian(2.0, 2.0, 0.0, 40.0, 40.0) + 0.01 * gaussian(2.0, 2.0, 0.0, 75.0, 40.0)
    m = adaptive_moments(img, 40.0, 40.0)
    assert m.sigma == pytest.approx(2.0, rel=1e-6)


def test_adaptive_moments_refuse_an_empty_stamp() -> None:
    with pytest.raises(MomentsError, match="non-positive weighted flux"):
        adaptive_moments(np.zeros((21, 21)), 10.0, 10.0)
    with pytest.raises(MomentsError, match="finite"):
        adaptive_moments(np.full((21, 21), np.nan), 10.0, 10.0)


@pytest.mark.parametrize(("sx", "sy", "rho", "x0", "y0"), CASES)
def test_adaptive_moments_agree_with_galsim_hsm(
    sx: float, sy: float, rho: float, x0: float, y0: float
) -> None:
    galsim = pytest.importorskip("galsim")
    rng = np.random.default_rng(7)
    img = 1000.0 * gaussian(sx, sy, rho, x0, y0)
    # a non-Gaussian profile too: a 10 % wide wing and a little noise
    img += 100.0 * gaussian(2.5 * sx, 2.5 * sy, rho, x0, y0) + rng.normal(0.0, 0.01, img.shape)
    ours = adaptive_moments(img, 40.0, 40.0)
    hsm = galsim.hsm.FindAdaptiveMom(galsim.Image(img))
    assert ours.sigma == pytest.approx(hsm.moments_sigma, rel=1e-5)
    assert ours.e1 == pytest.approx(hsm.observed_shape.e1, abs=1e-5)
    assert ours.e2 == pytest.approx(hsm.observed_shape.e2, abs=1e-5)
    assert ours.amplitude == pytest.approx(hsm.moments_amp, rel=1e-5)
    # galsim's pixel (1, 1) is our array element [0, 0]
    assert ours.x == pytest.approx(hsm.moments_centroid.x - 1, abs=1e-5)
