"""Analytic and image PSF models: normalisation, centring, profiles, factory, persistence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from warping.psf import (
    SIGMA_PER_FWHM,
    DoubleGaussianPsf,
    GaussianPsf,
    ImagePsf,
    VariableGaussianPsf,
    make_model_psf,
    psf_from_dict,
    psf_to_dict,
    register_psf_type,
)


def centroid(img: np.ndarray, x0: int = 0, y0: int = 0) -> tuple[float, float]:
    yy, xx = np.mgrid[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]]
    s = img.sum()
    return float((img * xx).sum() / s), float((img * yy).sum() / s)


ANALYTIC = [
    GaussianPsf(2.0, 25),
    DoubleGaussianPsf(61, 1.8, 4.0, 0.1),
    VariableGaussianPsf((2.0, 0.2, -0.1), (0.05, 0.02), (-0.03,), size=31, scale=500.0),
]


@pytest.mark.parametrize("psf", ANALYTIC, ids=lambda p: type(p).__name__)
def test_kernel_is_odd_centred_and_normalised(psf: object) -> None:
    k = psf.compute_kernel_image(120.0, 80.0)  # type: ignore[attr-defined]
    n = k.shape[0]
    assert k.shape == (n, n) and n % 2 == 1
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    cx, cy = centroid(k)
    assert cx == pytest.approx(n // 2, abs=1e-9)
    assert cy == pytest.approx(n // 2, abs=1e-9)
    assert np.unravel_index(k.argmax(), k.shape) == (n // 2, n // 2)


@pytest.mark.parametrize("psf", ANALYTIC, ids=lambda p: type(p).__name__)
@pytest.mark.parametrize(("x", "y"), [(10.0, 20.0), (10.3, 20.7), (-5.49, 3.5), (100.25, -7.1)])
def test_compute_image_centroid_is_the_requested_position(psf: object, x: float, y: float) -> None:
    img, bbox = psf.compute_image(x, y)  # type: ignore[attr-defined]
    assert img.shape == bbox.shape
    assert img.sum() == pytest.approx(1.0, abs=1e-12)
    cx, cy = centroid(img, bbox.x0, bbox.y0)
    assert cx == pytest.approx(x, abs=1e-6)
    assert cy == pytest.approx(y, abs=1e-6)
    assert bbox.contains_point(x, y)


def test_gaussian_moments_and_fwhm() -> None:
    psf = GaussianPsf(2.5, 41)
    ixx, iyy, ixy = psf.second_moments(0, 0)
    assert ixx == pytest.approx(2.5**2, rel=1e-3)
    assert iyy == pytest.approx(2.5**2, rel=1e-3)
    assert ixy == pytest.approx(0.0, abs=1e-12)
    assert psf.fwhm(0, 0) == pytest.approx(2.5 / SIGMA_PER_FWHM, rel=1e-3)


def test_double_gaussian_profile_matches_formula() -> None:
    s1, s2, b = 1.5, 3.75, 0.1
    k = DoubleGaussianPsf(21, s1, s2, b).compute_kernel_image(0, 0)
    c = 10

    def f(r2: float) -> float:
        return math.exp(-r2 / (2 * s1 * s1)) + b * math.exp(-r2 / (2 * s2 * s2))

    for dx, dy in [(1, 0), (3, 4), (0, 7)]:
        assert k[c + dy, c + dx] / k[c, c] == pytest.approx(f(dx * dx + dy * dy) / f(0), rel=1e-12)


def test_model_psf_factory_defaults_follow_lsst() -> None:
    psf = make_model_psf()
    assert isinstance(psf, DoubleGaussianPsf)
    assert psf.size == 9
    assert psf.sigma1 == pytest.approx(1.2739827, rel=1e-6)
    assert psf.sigma2 == pytest.approx(2.5 * 1.2739827, rel=1e-6)
    assert psf.b == 0.1
    hsc = make_model_psf(default_fwhm=7.7)
    assert hsc.size == 23
    assert hsc.sigma1 == pytest.approx(3.270, abs=1e-3)
    assert hsc.sigma1 == pytest.approx(7.7 * SIGMA_PER_FWHM, rel=1e-12)


def test_model_psf_factory_options() -> None:
    single = make_model_psf(default_fwhm=4.0, add_wing=False)
    assert isinstance(single, GaussianPsf) and single.size == 13
    assert make_model_psf(default_fwhm=1.0).size == 5  # clamped to min_size
    assert make_model_psf(default_fwhm=10.0, max_size=21).size == 21
    assert make_model_psf(default_fwhm=3.0, size=15).size == 15
    with pytest.raises(ValueError, match="default_fwhm"):
        make_model_psf(default_fwhm=0.0)


def test_resized_keeps_profile() -> None:
    psf = DoubleGaussianPsf(9, 1.2, 3.0, 0.1)
    big = psf.resized(15)
    assert (big.size, big.sigma1, big.sigma2, big.b) == (15, 1.2, 3.0, 0.1)
    assert GaussianPsf(2.0, 9).resized(13).sigma == 2.0


def test_variable_gaussian_varies_and_matches_its_moments() -> None:
    psf = VariableGaussianPsf((2.0, 0.3, 0.0, 0.2), (0.1, 0.05), (0.0, 0.0, 0.04), 41, 0, 0, 1000.0)
    m_a = psf.moments(0.0, 0.0)
    m_b = psf.moments(1000.0, 1000.0)
    assert m_b[0] > m_a[0] * 1.3
    for x, y in [(0.0, 0.0), (1000.0, 1000.0)]:
        meas = psf.second_moments(x, y)
        np.testing.assert_allclose(meas, psf.moments(x, y), rtol=2e-3, atol=2e-3)
    with pytest.raises(ValueError, match="invalid"):
        VariableGaussianPsf((1.0, -2.0), size=11, scale=1.0).compute_kernel_image(1.0, 0.0)


def test_image_psf_shift_is_accurate() -> None:
    kernel = GaussianPsf(2.2, 25).compute_kernel_image(0, 0)
    psf = ImagePsf(kernel)
    img, bbox = psf.compute_image(50.3, 60.8)
    cx, cy = centroid(img, bbox.x0, bbox.y0)
    assert cx == pytest.approx(50.3, abs=1e-6)
    assert cy == pytest.approx(60.8, abs=1e-6)
    exact, _ = GaussianPsf(2.2, 25).compute_image(50.3, 60.8)
    assert np.abs(img - exact).max() < 1e-6
    with pytest.raises(ValueError, match="odd square"):
        ImagePsf(np.ones((4, 4)))


@pytest.mark.parametrize(
    "psf", [*ANALYTIC, ImagePsf(GaussianPsf(1.5, 11).compute_kernel_image(0, 0), (3.0, 4.0))]
)
def test_dict_round_trip(psf: object) -> None:
    d = psf_to_dict(psf)  # type: ignore[arg-type]
    back = psf_from_dict(d)
    assert back == psf
    assert type(back) is type(psf)
    np.testing.assert_array_equal(
        back.compute_kernel_image(3, 4),
        psf.compute_kernel_image(3, 4),  # type: ignore[attr-defined]
    )


def test_unknown_or_conflicting_types_are_rejected() -> None:
    with pytest.raises(ValueError, match="Unknown PSF type 'NoSuchPsf'"):
        psf_from_dict({"type": "NoSuchPsf"})
    with pytest.raises(ValueError, match="already registered"):
        register_psf_type("GaussianPsf", DoubleGaussianPsf)
    with pytest.raises(ValueError, match="sigma"):
        GaussianPsf(-1.0)
    with pytest.raises(ValueError, match="odd"):
        GaussianPsf(1.0, 8)
