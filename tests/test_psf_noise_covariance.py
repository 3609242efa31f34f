"""Noise covariance of warped images and the honest variance of PSF-matched ones (issue #18, 4).

Truth is independent of :mod:`warping.psfmatch.covariance`: direct sums of the afw Lanczos formula
(:func:`warping.warp._kernels.lanczos_reference`) and Monte-Carlo white noise pushed through the
real warp (:func:`warp_with_transform`) and the real spatial convolution (:func:`convolve_spatial`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from warping.geom import Box2I
from warping.masks import MaskPlanes
from warping.psfmatch.convolve import convolve_spatial
from warping.psfmatch.covariance import (
    SUMMARY_LAGS,
    axis_covariance,
    matched_noise_covariance,
    warp_noise_correlation,
)
from warping.psfmatch.solve import SpatialKernel
from warping.task.psf_noise import merge_noise_summaries
from warping.warp import WarpingControl
from warping.warp._high_level import warp_with_transform
from warping.warp._kernels import lanczos_reference

N = 1000  # Monte-Carlo image side
EDGE = 60  # border left out of the measurements (warp pad + kernel half-width)


def affine(theta_deg: float, scale: float, shift: tuple[float, float]) -> Callable:
    th = np.radians(theta_deg)
    a = scale * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])

    def d2s(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = np.asarray(x, float), np.asarray(y, float)
        return a[0, 0] * x + a[0, 1] * y + shift[0], a[1, 0] * x + a[1, 1] * y + shift[1]

    d2s.jac = a  # type: ignore[attr-defined]
    return d2s


def gaussian_kernel(sigma: float, size: int = 27) -> SpatialKernel:
    h = size // 2
    yy, xx = np.mgrid[-h : h + 1, -h : h + 1]
    g = np.exp(-0.5 * (xx**2 + yy**2) / sigma**2)
    return SpatialKernel((g / g.sum())[None], np.ones((1, 1)), 0, Box2I(0, 0, N, N))


def lag_correlation(a: np.ndarray, dx: int, dy: int) -> float:
    """Measured correlation of ``a`` (zero mean) between pixels ``p`` and ``p + (dx, dy)``."""
    h, w = a.shape
    p = a[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    q = a[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
    return float((p * q).mean() / a.var())


def warped_noise(d2s: Callable, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit white noise warped with Lanczos-3 onto an N x N grid: image and variance plane."""
    rng = np.random.default_rng(seed)
    src = rng.normal(0.0, 1.0, (N + 120, N + 120)).astype(np.float32)
    res = warp_with_transform(src, np.ones_like(src), None, (0, 0), Box2I(0, 0, N, N), d2s,
                              control=WarpingControl())  # fmt: skip
    assert res.variance is not None
    return res.image, res.variance


@pytest.mark.parametrize("kernel", ["lanczos3", "lanczos5", "bilinear"])
def test_axis_covariance_is_the_direct_sum_over_source_pixels(kernel: str) -> None:
    rng = np.random.default_rng(3)
    s = rng.uniform(-3.0, 3.0, 200)
    t = s + rng.uniform(-7.0, 7.0, 200)
    a = np.arange(-20, 21)[None, :]
    if kernel == "bilinear":
        w = lambda u: np.clip(1.0 - np.abs(u), 0.0, None)  # noqa: E731
    else:
        n = int(kernel[-1])
        w = lambda u: np.where(np.abs(u) < n, lanczos_reference(u, n), 0.0)  # noqa: E731
    direct = (w(a - s[:, None]) * w(a - t[:, None])).sum(axis=1)
    assert axis_covariance(kernel, s, t) == pytest.approx(direct, abs=1e-12)


@pytest.mark.parametrize("phase", [(0.5, 0.5), (0.3, 0.1), (0.0, 0.0)])
def test_shift_correlation_is_the_lanczos_autocorrelation_and_the_measured_one(
    phase: tuple[float, float],
) -> None:
    """A pure shift has one phase everywhere: the correlation is the product of the 1-D sums."""
    lags = [(1, 0), (0, 1), (1, 1), (2, 0), (3, 0), (0, 3)]
    rho = warp_noise_correlation("lanczos3", np.array([phase[0]]), np.array([phase[1]]),
                                 np.eye(2), lags)[0]  # fmt: skip
    a = np.arange(-10, 11)

    def c1(f: float, d: int) -> float:
        w0 = np.where(np.abs(a - f) < 3, lanczos_reference(a - f, 3), 0.0)
        w1 = np.where(np.abs(a - f - d) < 3, lanczos_reference(a - f - d, 3), 0.0)
        return float((w0 * w1).sum() / (w0 * w0).sum())

    expected = [c1(phase[0], dx) * c1(phase[1], dy) for dx, dy in lags]
    assert rho == pytest.approx(expected, abs=1e-12)
    img, _ = warped_noise(affine(0.0, 1.0, (40.0 + phase[0], 40.0 + phase[1])), seed=1)
    inner = img[EDGE:-EDGE, EDGE:-EDGE].astype(float)
    inner -= inner.mean()
    measured = [lag_correlation(inner, dx, dy) for dx, dy in lags]
    assert measured == pytest.approx(expected, abs=0.006)  # ~1/sqrt(N^2) statistical


CASES = {  # mapping, matching-kernel sigma
    "rotated 3 deg, scale 1.01": (affine(3.0, 1.01, (30.3, 20.7)), 2.5),
    "half-pixel shift (most correlated)": (affine(0.0, 1.0, (40.5, 40.5)), 2.0),
    "rotated 30 deg, scale 0.8": (affine(30.0, 0.8, (400.0, 30.0)), 3.0),
    "integer shift (white)": (affine(0.0, 1.0, (40.0, 40.0)), 2.5),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matched_variance_plane_is_the_measured_per_pixel_variance(case: str) -> None:
    d2s, sigma = CASES[case]
    img, var = warped_noise(d2s, seed=2)
    kernel = gaussian_kernel(sigma)
    good = np.isfinite(img)
    img, var = np.where(good, img, 0.0), np.where(good, var, 1.0)
    out, lsst, _, _ = convolve_spatial(img, var, np.zeros(img.shape, np.int32), (0, 0), kernel,
                                       MaskPlanes.default())  # fmt: skip
    noise = matched_noise_covariance(d2s, "lanczos3", kernel, Box2I(0, 0, N, N))
    sl = np.s_[EDGE:-EDGE, EDGE:-EDGE]
    measured = float(np.var(out[sl].astype(float)))
    honest = float(np.mean((lsst * noise.factor)[sl]))
    assert measured / honest == pytest.approx(1.0, abs=0.03)
    if case.startswith("integer"):
        assert noise.factor[sl] == pytest.approx(1.0, abs=1e-5)  # no correlation at all
        assert noise.warp_correlation == pytest.approx(np.zeros(len(SUMMARY_LAGS)), abs=1e-9)
    else:
        assert measured / float(np.mean(lsst[sl])) > 1.15  # what LSST's plane misses
    # the summary's correlations of the matched image are the measured ones
    o = out[sl].astype(float) - out[sl].mean()
    measured_corr = [lag_correlation(o, dx, dy) for dx, dy in SUMMARY_LAGS]
    assert noise.matched_correlation == pytest.approx(measured_corr, abs=0.015)


def test_constant_phase_factor_is_the_analytic_one_everywhere() -> None:
    """A half-pixel shift: one phase everywhere, so the factor is one number,
    sum_d R(d) rho(d) / R(0) with R the kernel's autocorrelation and rho the product of the 1-D
    Lanczos sums, here evaluated directly."""
    d2s, sigma = CASES["half-pixel shift (most correlated)"]
    kernel = gaussian_kernel(sigma)
    noise = matched_noise_covariance(d2s, "lanczos3", kernel, Box2I(0, 0, N, N))
    a = np.arange(-12, 13)
    w0 = np.where(np.abs(a - 0.5) < 3, lanczos_reference(a - 0.5, 3), 0.0)

    def c1(d: int) -> float:
        w1 = np.where(np.abs(a - 0.5 - d) < 3, lanczos_reference(a - 0.5 - d, 3), 0.0)
        return float((w0 * w1).sum() / (w0 * w0).sum())

    k = kernel.kernel_image(0.0, 0.0)
    h = k.shape[0] // 2
    total = 0.0
    for dy in range(-5, 6):
        for dx in range(-5, 6):
            shifted = np.roll(np.roll(np.pad(k, 6), dy, axis=0), dx, axis=1)
            total += float((np.pad(k, 6) * shifted).sum()) * c1(dx) * c1(dy)
    expected = total / float((k * k).sum())
    inner = noise.factor[h:-h, h:-h]
    assert inner.min() == pytest.approx(expected, rel=2e-3)
    assert inner.max() == pytest.approx(expected, rel=2e-3)
    assert expected > 1.4  # half-pixel phases: the most correlated warp


def test_visit_summary_is_the_pixel_weighted_mean_of_the_ccds() -> None:
    a = {"lags": [[1, 0]], "warp_correlation": [0.1], "matched_correlation": [0.9],
         "variance_factor": 1.2}  # fmt: skip
    b = {"lags": [[1, 0]], "warp_correlation": [0.2], "matched_correlation": [0.8],
         "variance_factor": 1.5}  # fmt: skip
    merged = merge_noise_summaries([(300, a), (100, b), (0, {})])
    assert merged["warp_correlation"] == pytest.approx([0.125])
    assert merged["matched_correlation"] == pytest.approx([0.875])
    assert merged["variance_factor"] == pytest.approx(1.275)
    assert merge_noise_summaries([]) == {}
