"""The compiled pocketfft build (warping.psfmatch._fft) against numpy's FFTs, and its fallback."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from warping.psfmatch import _fft

needs_lib = pytest.mark.skipif(not _fft.available(), reason="no C++ compiler for the FFT library")


def _cplx(rng: np.random.Generator, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)


@needs_lib
@pytest.mark.parametrize(
    ("real", "cplx", "tol"), [(np.float32, np.complex64, 2e-6), (np.float64, np.complex128, 1e-13)]
)
def test_transforms_equal_numpy(real: type, cplx: type, tol: float) -> None:
    rng = np.random.default_rng(3)
    # c2c in place along axis 1 of a 3-D array (the convolution's column pass), odd lengths
    a = _cplx(rng, (3, 45, 17), cplx)
    want = np.fft.ifft(a, axis=1)
    _fft.c2c(a, a, (1,), False, 1.0 / a.shape[1])
    assert np.abs(a - want).max() < tol * np.abs(want).max()
    # forward 2-D real transform of a padded tile
    r = rng.normal(size=(40, 48)).astype(real)
    out = np.empty((40, 25), cplx)
    _fft.r2c(r, out, (0, 1))
    want = np.fft.rfft2(r)
    assert np.abs(out - want).max() < tol * np.abs(want).max()
    # backward complex-to-real along rows, from a strided band view into a band buffer
    z = _cplx(rng, (2, 30, 25), cplx)
    band = z[:, 7:19]
    rows = np.full((2, 12, 48), np.nan, real)
    _fft.c2r(band, rows, -1, 1.0 / 48)
    want = np.fft.irfft(band, n=48, axis=-1)
    assert np.abs(rows - want).max() < tol * np.abs(want).max()


@needs_lib
def test_transforms_refuse_bad_arguments() -> None:
    a = np.zeros((4, 6), np.complex64)
    with pytest.raises(TypeError, match="complex"):
        _fft.c2c(a.real.copy(), a, (0,), True, 1.0)
    with pytest.raises(ValueError, match="differ"):
        _fft.c2c(a, np.zeros((4, 5), np.complex64), (0,), True, 1.0)
    with pytest.raises(ValueError, match="expected"):
        _fft.r2c(np.zeros((4, 6), np.float32), np.zeros((4, 6), np.complex64), (0, 1))
    with pytest.raises(ValueError, match="expected"):  # precision mismatch
        _fft.c2r(np.zeros((4, 4), np.complex128), np.zeros((4, 6), np.float32), -1, 1.0)
    with pytest.raises(TypeError, match="native"):
        _fft.c2c(a.astype(">c8"), a.astype(">c8"), (0,), True, 1.0)


def test_an_installation_without_the_fft_build_falls_back_to_scipy(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Installed without a C++ compiler (meson.build then skips the FFT builds), the library is
    reported unavailable (logged once) instead of failing: the convolution uses scipy's FFTs."""
    monkeypatch.setattr(_fft, "_lib", None)
    monkeypatch.setattr(_fft, "_failed", None)
    monkeypatch.setattr(_fft, "variant", lambda: "not_built")
    with caplog.at_level(logging.WARNING, logger="warping.psfmatch._fft"):
        assert _fft.library() is None
        assert not _fft.available()
    assert "scipy's FFTs" in caplog.text and "_fft_not_built" in caplog.text
    assert "without a C++ compiler" in caplog.text


def test_both_fft_builds_are_installed_on_x86_64() -> None:
    """The baseline and the AVX2 build are both in the package, whatever this CPU has: the
    choice between them is made at run time."""
    import platform

    from warping.warp._clib import compiled_path

    assert compiled_path("warping.psfmatch._fft_base") is not None
    if platform.machine() == "x86_64":
        assert compiled_path("warping.psfmatch._fft_avx2") is not None


def test_convolution_same_with_either_fft(monkeypatch: pytest.MonkeyPatch) -> None:
    """REPO_BUTLER_FFT=scipy selects scipy's public FFTs: same pixels to float32 rounding."""
    from warping.geom import Box2I
    from warping.masks import MaskPlanes
    from warping.psfmatch.convolve import convolve_spatial
    from warping.psfmatch.options import ConvolutionOptions
    from warping.psfmatch.solve import SpatialKernel

    rng = np.random.default_rng(5)
    k = 9
    yy, xx = np.mgrid[-4:5, -4:5]
    basis = np.array([np.exp(-(xx**2 + yy**2) / (2 * s * s)) for s in (1.0, 2.0)])
    basis /= basis.sum(axis=(1, 2))[:, None, None]
    coeffs = np.array([[1.0, 0.0, 0.0], [0.3, 0.1, -0.1]])
    kernel = SpatialKernel(basis.reshape(2, k, k), coeffs, 1, Box2I(0, 0, 120, 100))
    img = rng.normal(100.0, 10.0, (100, 120)).astype(np.float32)
    var = rng.uniform(50.0, 150.0, (100, 120)).astype(np.float32)
    mask = np.zeros((100, 120), np.int32)
    planes = MaskPlanes.default()
    monkeypatch.setenv("REPO_BUTLER_FFT", "scipy")
    ref = convolve_spatial(img, var, mask, (0, 0), kernel, planes, ConvolutionOptions(tile=40))
    monkeypatch.delenv("REPO_BUTLER_FFT")
    got = convolve_spatial(img, var, mask, (0, 0), kernel, planes, ConvolutionOptions(tile=40))
    ok = np.isfinite(ref[0])
    np.testing.assert_allclose(got[0][ok], ref[0][ok], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(got[1][ok], ref[1][ok], rtol=1e-5)
    np.testing.assert_array_equal(got[2], ref[2])


@pytest.mark.parametrize("step", [1, 2])
def test_scipy_column_pass_writes_into_its_input(step: int) -> None:
    """The scipy fallback of the in-place column pass leaves the transform in the array it was
    given, also for a strided view scipy cannot transform in place."""
    from warping.psfmatch.fft_passes import ifft_columns_inplace

    rng = np.random.default_rng(3)
    a = (rng.normal(size=(3, 16, 10)) + 1j * rng.normal(size=(3, 16, 10))).astype(np.complex64)
    view = a[:, :, ::step]
    want = np.fft.ifft(view.astype(np.complex128), axis=1)
    assert ifft_columns_inplace(view, compiled=False) is view
    np.testing.assert_allclose(a[:, :, ::step], want, rtol=1e-5, atol=1e-6)
