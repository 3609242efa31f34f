"""Unit tests of warping.psfmatch against analytic truth (config, basis, cells, fit, convolve)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import convolve2d

from repo_butler.errors import ConfigError, RepoButlerError
from warping.geom import Box2I
from warping.masks import MaskPlanes
from warping.psf.base import Psf, PsfError
from warping.psfmatch import PsfMatchConfig, PsfMatchError, PsfMatchRejected, match_to_model
from warping.psfmatch.basis import (
    alard_lupton_basis,
    make_basis,
    make_separable_basis,
    renormalize_basis,
)
from warping.psfmatch.cells import build_cell_set, next_odd_integer
from warping.psfmatch.convolve import convolve_spatial
from warping.psfmatch.dilation import dilate_mask, or_dilate
from warping.psfmatch.model_match import check_deconvolution
from warping.psfmatch.options import ConvolutionOptions
from warping.psfmatch.solve import (
    SpatialKernel,
    _cell_design,
    _separable_normal_equations,
    fit_spatial_kernel,
)
from warping.psfmatch.spectra import plan_tile_spectra

PLANES = MaskPlanes.default()
NO_DATA = PLANES.bitmask("NO_DATA")


class _GaussPsf(Psf):
    """Test-only elliptical Gaussian (sampled at pixel centres) with linearly varying sigmas."""

    def __init__(
        self,
        sx: float,
        sy: float | None = None,
        rho: float = 0.0,
        size: int = 25,
        grad: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
        centre: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.sx, self.sy, self.rho, self.size = sx, sx if sy is None else sy, rho, size
        self.grad, self.centre = grad, centre

    def sigmas(self, x: float, y: float) -> tuple[float, float]:
        dx, dy = x - self.centre[0], y - self.centre[1]
        g = self.grad
        return self.sx + g[0] * dx + g[1] * dy, self.sy + g[2] * dx + g[3] * dy

    def _stamp(self, x: float, y: float, fx: float, fy: float) -> np.ndarray:
        sx, sy = self.sigmas(x, y)
        h = self.size // 2
        off = np.arange(-h, h + 1, dtype=float)
        v, u = np.meshgrid(off - fy, off - fx, indexing="ij")
        r = self.rho
        q = (u / sx) ** 2 - 2 * r * u * v / (sx * sy) + (v / sy) ** 2
        k = np.exp(-q / (2 * (1 - r * r)))
        return k / k.sum()

    def compute_kernel_image(self, x: float, y: float) -> np.ndarray:
        return self._stamp(x, y, 0.0, 0.0)

    def compute_image(self, x: float, y: float) -> tuple[np.ndarray, Box2I]:
        ix, iy = round(x), round(y)
        h = self.size // 2
        return self._stamp(x, y, x - ix, y - iy), Box2I(ix - h, iy - h, self.size, self.size)

    def average_position(self) -> tuple[float, float]:
        return self.centre


class _ConvolvedPsf(Psf):
    """Test-only PSF: another PSF's kernel image convolved with a fixed known kernel."""

    def __init__(self, psf: Psf, kernel: np.ndarray) -> None:
        self.psf, self.kernel = psf, kernel

    def compute_kernel_image(self, x: float, y: float) -> np.ndarray:
        k = convolve2d(self.psf.compute_kernel_image(x, y), self.kernel, mode="full")
        return k / k.sum()

    def compute_image(self, x: float, y: float) -> tuple[np.ndarray, Box2I]:
        raise NotImplementedError

    def average_position(self) -> tuple[float, float]:
        return self.psf.average_position()


def _gauss_kernel(sigma: float, half: int) -> np.ndarray:
    off = np.arange(-half, half + 1, dtype=float)
    v, u = np.meshgrid(off, off, indexing="ij")
    k = np.exp(-(u * u + v * v) / (2 * sigma * sigma))
    return k / k.sum()


# --- config -------------------------------------------------------------------------------


def test_config_defaults_are_lsst() -> None:
    c = PsfMatchConfig()
    assert (c.kernel_size, c.size_cell_x, c.size_cell_y) == (21, 128, 128)
    assert c.alard_sig_gauss == (0.7, 1.5, 3.0) and c.alard_deg_gauss == (4, 2, 2)
    assert (c.spatial_kernel_order, c.do_auto_pad_psf, c.auto_pad_psf_to, c.pad_psf_by) == (
        2,
        True,
        1.4,
        0,
    )
    assert c.n_basis == 27 and c.n_spatial_terms == 6


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kernel_size": 20}, "kernelSize"),
        ({"kernel_size": 1}, "kernelSize"),
        ({"alard_sig_gauss": (1.0, 2.0)}, "alardDegGauss"),
        ({"auto_pad_psf_to": 2.5}, "autoPadPsfTo"),
        ({"auto_pad_psf_to": 0.9}, "autoPadPsfTo"),
        ({"pad_psf_by": 5}, "padPsfBy"),
        ({"size_cell_x": 0}, "sizeCellX"),
        ({"alard_sig_gauss": (0.7, -1.5, 3.0)}, "alardSigGauss"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        PsfMatchConfig(**kwargs)


def test_config_troubleshooting_knobs_via_lsst_names() -> None:
    c = PsfMatchConfig.from_lsst(
        {
            "kernelSize": 27,
            "sizeCellX": 64,
            "sizeCellY": 64,
            "autoPadPsfTo": 1.6,
            "alardSigGauss": [1.5, 3.0, 6.0],
        }
    )
    assert (c.kernel_size, c.size_cell_x, c.size_cell_y, c.auto_pad_psf_to) == (27, 64, 64, 1.6)
    assert c.alard_sig_gauss == (1.5, 3.0, 6.0)
    c2 = PsfMatchConfig.from_lsst({"doAutoPadPsf": False, "padPsfBy": 6}, base=c)
    assert (c2.do_auto_pad_psf, c2.pad_psf_by, c2.kernel_size) == (False, 6, 27)
    with pytest.raises(ConfigError, match="padPsfBy"):
        PsfMatchConfig.from_lsst({"doAutoPadPsf": False, "padPsfBy": 7})
    with pytest.raises(ConfigError, match="Unknown"):
        PsfMatchConfig.from_lsst({"kernelSise": 27})


# --- basis --------------------------------------------------------------------------------


def test_basis_count_order_and_renormalisation() -> None:
    raw = alard_lupton_basis(10, (0.7, 1.5, 3.0), (4, 2, 2))
    assert raw.shape == (27, 21, 21)
    # Term 1 of the first Gaussian is G * x with x = u / h (PolynomialFunction2 order 1, x, y...).
    off = np.arange(-10, 11) / 10.0
    g = np.exp(-(off[None, :] ** 2 + off[:, None] ** 2) * 100 / (2 * 0.49)) / (2 * np.pi * 0.49)
    np.testing.assert_allclose(raw[1], g * off[None, :], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(raw[2], g * off[:, None], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(raw[4], g * off[None, :] * off[:, None], rtol=1e-12, atol=1e-300)
    b = renormalize_basis(raw)
    assert b[0].sum() == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(b[1:].sum(axis=(1, 2)), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.sqrt((b[1:] ** 2).sum(axis=(1, 2))), 1.0, rtol=1e-12)
    assert make_basis(27, (1.5, 3.0, 6.0), (4, 2, 2)).shape == (27, 27, 27)


# --- cells, padding, errors ---------------------------------------------------------------


def test_auto_padding_and_manual_padding_sizes() -> None:
    sci, model = _GaussPsf(1.5, size=15), _GaussPsf(2.5, size=15)
    bbox = Box2I(0, 0, 200, 200)
    assert next_odd_integer(21 * 1.4) == 31 and next_odd_integer(29 * 1.4) == 41
    cells = build_cell_set(bbox, sci, model, PsfMatchConfig())
    assert cells.psf_size == 31 and cells.padding == 16
    assert cells.model_stamps.shape[1:] == (31, 31)
    # Cells: bbox grown by one cell on each side, (200+256)//128 = 3 per axis.
    assert (cells.n_cells_x, cells.n_cells_y, cells.n_cells) == (3, 3, 9)
    np.testing.assert_array_equal(cells.centres[0], [-128 + 64, -128 + 64])
    for pad in (0, 2, 4):
        cfg = PsfMatchConfig(kernel_size=11, do_auto_pad_psf=False, pad_psf_by=pad)
        assert build_cell_set(bbox, sci, model, cfg).psf_size == 15 + pad


def test_kernel_too_big_for_stamp_is_a_clear_error() -> None:
    sci, model = _GaussPsf(1.5, size=15), _GaussPsf(2.5, size=15)
    cfg = PsfMatchConfig(do_auto_pad_psf=False, pad_psf_by=0)
    with pytest.raises(PsfMatchError, match=r"Kernel size 21 is too big.*kernelSize") as info:
        match_to_model(
            np.zeros((200, 200)),
            np.ones((200, 200)),
            np.zeros((200, 200), np.int32),
            Box2I(0, 0, 200, 200),
            sci,
            model,
            config=cfg,
            mask_planes=PLANES,
        )
    assert isinstance(info.value, RepoButlerError) and isinstance(info.value, ValueError)


def test_insufficient_area_is_a_clear_error() -> None:
    sci, model = _GaussPsf(1.5), _GaussPsf(2.5)
    with pytest.raises(PsfMatchError, match="Insufficient area to match"):
        match_to_model(
            np.zeros((15, 300)),
            np.ones((15, 300)),
            np.zeros((15, 300), np.int32),
            Box2I(5, 5, 300, 15),
            sci,
            model,
            config=PsfMatchConfig(),
            mask_planes=PLANES,
        )
    with pytest.raises(PsfMatchError, match="Insufficient area to match"):
        match_to_model(
            np.zeros((50, 50)),
            np.ones((50, 50)),
            np.zeros((50, 50), np.int32),
            Box2I(0, 0, 50, 50),
            sci,
            model,
            config=PsfMatchConfig(),
            mask_planes=PLANES,
            valid_bbox=Box2I(500, 500, 10, 10),
        )


# --- kernel recovery ----------------------------------------------------------------------


@pytest.mark.parametrize("separable", [False, True])
@pytest.mark.parametrize("sig_gauss", [(0.7, 1.5, 3.0), (1.5, 3.0, 6.0)])
def test_fit_recovers_known_kernel(sig_gauss: tuple[float, ...], separable: bool) -> None:
    """Model = science PSF * known Gaussian (sigma 2): the fitted kernel reproduces it.

    Both design paths: per-kernel FFTs (plain basis array) and separable row/column products.
    """
    known = _gauss_kernel(2.0, 10)
    sci = _GaussPsf(1.6, 1.9, 0.2, size=21)
    model = _ConvolvedPsf(sci, known)  # 41x41 stamps
    cfg = PsfMatchConfig(alard_sig_gauss=sig_gauss)
    cells = build_cell_set(Box2I(0, 0, 256, 256), sci, model, cfg)
    sep = make_separable_basis(21, cfg.alard_sig_gauss, cfg.alard_deg_gauss)
    basis = sep if separable else make_basis(21, cfg.alard_sig_gauss, cfg.alard_deg_gauss)
    kernel, fit = fit_spatial_kernel(cells, basis, 2)
    assert fit.residual_max.max() < 2e-3
    assert np.all(fit.residual_rms <= fit.residual_max + 1e-12)  # rms from normal equations
    for x, y in [(0.0, 0.0), (128.0, 128.0), (250.0, 30.0)]:
        k = kernel.kernel_image(x, y)
        assert kernel.kernel_sum(x, y) == pytest.approx(1.0, abs=1e-12)
        # The fitted kernel, seen through the science PSF, equals the known one.
        s = sci.compute_kernel_image(x, y)
        through = convolve2d(s, k, mode="full")
        np.testing.assert_allclose(through, convolve2d(s, known, "full"), atol=2e-3 * known.max())
        # Its second moment equals the known kernel's (sigma^2 = 4) within 1 %.
        off = np.arange(-10, 11, dtype=float)
        ixx = (k.sum(axis=0) * off**2).sum()
        iyy = (k.sum(axis=1) * off**2).sum()
        assert ixx == pytest.approx(4.0, rel=1e-2) and iyy == pytest.approx(4.0, rel=1e-2)
    if sig_gauss == (1.5, 3.0, 6.0):
        # A basis as wide as the kernel recovers it pixel by pixel too.
        np.testing.assert_allclose(kernel.kernel_image(128, 128), known, atol=1e-2 * known.max())


@pytest.mark.parametrize("sig_gauss", [(0.7, 1.5, 3.0), (1.5, 3.0, 6.0)])
def test_separable_basis_is_the_lsst_basis(sig_gauss: tuple[float, ...]) -> None:
    """Row x column factors rebuild the raw kernels and the transform the renormalised ones."""
    sep = make_separable_basis(21, sig_gauss, (4, 2, 2))
    raw = sep.functions[sep.iy][:, :, None] * sep.functions[sep.ix][:, None, :]
    np.testing.assert_allclose(raw, alard_lupton_basis(10, sig_gauss, (4, 2, 2)), atol=1e-16)
    np.testing.assert_allclose(sep.basis, make_basis(21, sig_gauss, (4, 2, 2)), atol=1e-15)
    rebuilt = np.einsum("ij,jvu->ivu", sep.transform, raw)
    np.testing.assert_allclose(rebuilt, sep.basis, atol=1e-14)


@pytest.mark.parametrize("full", [True, False])
def test_separable_normal_equations_equal_fft_design(full: bool) -> None:
    """M = C C^T and b = C R from separable passes equal those of the per-kernel FFT design."""
    sci = _GaussPsf(1.5, 1.8, 0.15, grad=(4e-4, 0.0, 0.0, 3e-4))
    model = _GaussPsf(2.6, size=31)
    cells = build_cell_set(Box2I(0, 0, 400, 300), sci, model, PsfMatchConfig())
    sep = make_separable_basis(21, (0.7, 1.5, 3.0), (4, 2, 2))
    n, size = cells.n_cells, cells.psf_size
    r = cells.model_stamps if full else cells.model_stamps[:, 10 : size - 10, 10 : size - 10]
    r = r.reshape(n, -1)
    c = _cell_design(cells.science_stamps, sep.basis, full=full)
    m_fft, b_fft = c @ c.transpose(0, 2, 1), (c @ r[:, :, None])[:, :, 0]
    # Chunks of 5 cells on 2 threads exercise the partial last chunk and the thread split.
    m_sep, b_sep, rr = _separable_normal_equations(
        cells.science_stamps, r, sep, full=full, chunk=5, workers=2
    )
    d = np.sqrt(np.einsum("cii->ci", m_fft))
    assert np.abs((m_sep - m_fft) / d[:, :, None] / d[:, None, :]).max() < 1e-13
    assert np.abs(b_sep - b_fft).max() < 1e-13 * np.abs(b_fft).max()
    np.testing.assert_allclose(rr, (r * r).sum(axis=1), rtol=1e-14)


def test_fit_recovers_spatially_varying_kernel() -> None:
    """Known kernel sigma varies across the field: recovered at several positions."""
    sci = _GaussPsf(1.8, size=21)

    class _VaryingModel(Psf):
        def kernel_sigma(self, x: float, y: float) -> float:
            return 1.6 + 0.8 * (x + y) / 1024.0

        def compute_kernel_image(self, x: float, y: float) -> np.ndarray:
            k = convolve2d(
                sci.compute_kernel_image(x, y), _gauss_kernel(self.kernel_sigma(x, y), 10)
            )
            return k / k.sum()

        def compute_image(self, x: float, y: float) -> tuple[np.ndarray, Box2I]:
            raise NotImplementedError

        def average_position(self) -> tuple[float, float]:
            return (256.0, 256.0)

    model = _VaryingModel()
    cfg = PsfMatchConfig(alard_sig_gauss=(1.5, 3.0, 6.0))
    cells = build_cell_set(Box2I(0, 0, 512, 512), sci, model, cfg)
    kernel, _ = fit_spatial_kernel(cells, make_basis(21, (1.5, 3.0, 6.0), (4, 2, 2)), 2)
    off = np.arange(-10, 11, dtype=float)
    for x, y in [(0.0, 0.0), (256.0, 256.0), (511.0, 0.0), (511.0, 511.0)]:
        k = kernel.kernel_image(x, y)
        ixx = (k.sum(axis=0) * off**2).sum()
        want = (_gauss_kernel(model.kernel_sigma(x, y), 10).sum(axis=0) * off**2).sum()
        assert ixx == pytest.approx(want, rel=1e-2)


# --- convolution --------------------------------------------------------------------------


def _noisy_planes(bbox: Box2I, *, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 noise image (100 ± 10), non-uniform variance (50-150) and an empty int32 mask."""
    rng = np.random.default_rng(seed)
    img = rng.normal(100.0, 10.0, bbox.shape).astype(np.float32)
    var = rng.uniform(50.0, 150.0, bbox.shape).astype(np.float32)
    return img, var, np.zeros(bbox.shape, np.int32)


def _fitted_kernel(bbox: Box2I, order: int = 2) -> tuple[SpatialKernel, _GaussPsf, _GaussPsf]:
    sci = _GaussPsf(1.5, 1.7, 0.1, grad=(5e-4, 0.0, 0.0, 4e-4), centre=(100.0, 100.0))
    model = _GaussPsf(2.6, size=31)
    cfg = PsfMatchConfig()
    cells = build_cell_set(bbox, sci, model, cfg)
    kernel, _ = fit_spatial_kernel(cells, make_basis(21, (0.7, 1.5, 3.0), (4, 2, 2)), order)
    return kernel, sci, model


@pytest.mark.parametrize("order", [2, 0, 1, 3])
def test_convolution_equals_per_pixel_normalised_kernel(order: int) -> None:
    """FFT term convolution == sum_u K_x(u) I(x-u) with K_x evaluated and normalised at x, for
    every spatial order (the combination step has a fast path for the <= 5 terms of order 2)."""
    bbox = Box2I(37, -20, 300, 260)
    kernel, _, _ = _fitted_kernel(bbox, order)
    assert kernel.order == order
    rng = np.random.default_rng(5)
    img = rng.normal(100.0, 10.0, bbox.shape)
    var = rng.uniform(50.0, 150.0, bbox.shape)
    mask = np.zeros(bbox.shape, np.int32)
    out_i, out_v, _, info = convolve_spatial(
        img,
        var,
        mask,
        (bbox.x0, bbox.y0),
        kernel,
        PLANES,
        ConvolutionOptions(tile=128, fft_dtype=np.float64),
    )
    assert info.n_tiles == 9
    h = 10
    worst_i = worst_v = 0.0
    for r, c in [
        (h, h),
        (50, 200),
        (130, 17),
        (bbox.height - h - 1, bbox.width - h - 1),
        (200, 140),
    ]:
        k = kernel.kernel_image(bbox.x0 + c, bbox.y0 + r)
        patch = img[r - h : r + h + 1, c - h : c + h + 1][::-1, ::-1]
        vpatch = var[r - h : r + h + 1, c - h : c + h + 1][::-1, ::-1]
        worst_i = max(worst_i, abs(out_i[r, c] - (k * patch).sum()) / 100.0)
        worst_v = max(worst_v, abs(out_v[r, c] / (k * k * vpatch).sum() - 1))
    assert worst_i < 1e-6  # float32 output of a ~100-count image
    assert worst_v < info.variance_rel_error + 1e-6 and info.variance_rel_error <= 1e-3


def test_every_pixel_of_a_star_field_against_per_pixel_kernels() -> None:
    """Image and variance at every output pixel against the kernel evaluated at that pixel.

    Stars on a sky with Poisson variance (sky + counts): the variance has sharp structure, the
    case where the low-rank ``K^2`` approximation errs most. The image is exact; the variance
    error stays within the documented ``variance_tolerance`` (1e-3).
    """
    bbox = Box2I(-40, 25, 150, 130)
    kernel, sci, _ = _fitted_kernel(bbox)
    img = np.full(bbox.shape, 50.0)
    rng = np.random.default_rng(11)
    for x, y in rng.uniform([bbox.x0 + 5, bbox.y0 + 5], [bbox.x1 - 5, bbox.y1 - 5], (12, 2)):
        stamp, bb = sci.compute_image(float(x), float(y))
        part = bb.intersection(bbox)
        img[part.slices(bbox)] += rng.uniform(1e3, 1e5) * stamp[part.slices(bb)]
    var = img.copy()  # gain 1
    mask = np.zeros(bbox.shape, np.int32)
    out_i, out_v, _, info = convolve_spatial(
        img, var, mask, (bbox.x0, bbox.y0), kernel, PLANES, ConvolutionOptions(fft_dtype=np.float64)
    )
    h = kernel.half_width
    ys, xs = np.mgrid[bbox.y0 + h : bbox.y1 - h + 1, bbox.x0 + h : bbox.x1 - h + 1]
    terms = kernel.spatial_terms(xs.ravel().astype(float), ys.ravel().astype(float))
    kx = np.tensordot(terms.T, kernel.term_kernels(), axes=(1, 0))  # (n, k, k)
    kx /= kx.sum(axis=(1, 2))[:, None, None]
    win = np.lib.stride_tricks.sliding_window_view
    pi = win(img, (2 * h + 1, 2 * h + 1))[:, :, ::-1, ::-1].reshape(len(kx), 2 * h + 1, -1)
    pv = win(var, (2 * h + 1, 2 * h + 1))[:, :, ::-1, ::-1].reshape(len(kx), 2 * h + 1, -1)
    want_i = (kx * pi).sum(axis=(1, 2)).reshape(xs.shape)
    want_v = (kx * kx * pv).sum(axis=(1, 2)).reshape(xs.shape)
    inner = (slice(h, -h), slice(h, -h))
    assert np.abs(out_i[inner] - want_i).max() < 1e-6 * img.max()  # float32 output
    rel_v = np.abs(out_v[inner] / want_v - 1).max()
    assert rel_v <= 1e-3, (rel_v, info)
    assert np.isfinite(out_i[inner]).all() and np.isnan(out_i[:h]).all()


def test_public_scipy_fft_fallback_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the compiled FFT library the public scipy.fft path is used: same pixels."""
    bbox = Box2I(3, -7, 140, 120)
    kernel, _, _ = _fitted_kernel(bbox)
    img, var, mask = _noisy_planes(bbox, seed=12)
    opts = ConvolutionOptions(tile=64)
    fast = convolve_spatial(img, var, mask, (bbox.x0, bbox.y0), kernel, PLANES, opts)
    monkeypatch.setenv("REPO_BUTLER_FFT", "scipy")
    slow = convolve_spatial(img, var, mask, (bbox.x0, bbox.y0), kernel, PLANES, opts)
    assert fast[3].n_tiles == slow[3].n_tiles == 6
    np.testing.assert_allclose(slow[0], fast[0], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(slow[1], fast[1], rtol=1e-5)
    np.testing.assert_array_equal(slow[2], fast[2])


def _noise_match_inputs(
    bbox: Box2I, centre: tuple[float, float], *, seed: int
) -> tuple[_GaussPsf, _GaussPsf, np.ndarray, np.ndarray, np.ndarray]:
    """Science and model PSFs (the fitted-kernel pair) and a float32 noise image, flat variance
    and empty mask over ``bbox``."""
    sci = _GaussPsf(1.5, 1.7, 0.1, grad=(5e-4, 0.0, 0.0, 4e-4), centre=centre)
    model = _GaussPsf(2.6, size=31)
    rng = np.random.default_rng(seed)
    img = rng.normal(100.0, 10.0, bbox.shape).astype(np.float32)
    var = np.full(bbox.shape, 100.0, np.float32)
    return sci, model, img, var, np.zeros(bbox.shape, np.int32)


def test_released_buffers_are_rebuilt_with_the_same_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A workspace keeps the scratch buffers between matches (bounded: the latest shape only)
    and release() frees them; kept, released or no workspace, the pixels are the same."""
    from warping.psfmatch import ConvolutionWorkspace

    bbox = Box2I(0, 0, 160, 140)
    sci, model, img, var, mask = _noise_match_inputs(bbox, (80.0, 70.0), seed=13)

    def run(workspace: ConvolutionWorkspace | None) -> tuple[np.ndarray, ...]:
        res = match_to_model(
            img, var, mask, bbox, sci, model, config=PsfMatchConfig(), mask_planes=PLANES,
            workspace=workspace,
        )  # fmt: skip
        return res.image, res.variance, res.mask

    # (one and two threads tile the image differently: each is compared with itself)
    threaded_results = [run(None)]
    with ConvolutionWorkspace() as threaded:
        threaded_results += [run(threaded), run(threaded)]
        assert threaded.nbytes > 0
    assert threaded.nbytes == 0  # freed on leaving the block
    # one thread: exactly one set of tile buffers and the tile spectra are kept
    monkeypatch.setenv("REPO_BUTLER_THREADS", "1")
    workspace = ConvolutionWorkspace()
    assert workspace.nbytes == 0
    single_results = [run(None), run(workspace)]
    kept = workspace.nbytes
    assert kept > img.nbytes  # tile spectra and FFT buffers
    single_results.append(run(workspace))
    assert workspace.nbytes == kept  # reused, not accumulated
    workspace.release()
    assert workspace.nbytes == 0
    single_results.append(run(workspace))
    for results in (threaded_results, single_results):
        for other in results[1:]:
            for a, b in zip(results[0], other, strict=True):
                np.testing.assert_array_equal(a, b)


def test_float32_fft_matches_float64_on_star_field() -> None:
    bbox = Box2I(0, 0, 256, 256)
    kernel, sci, _ = _fitted_kernel(bbox)
    img = np.full(bbox.shape, 10.0)
    for x, y in [(60.3, 70.8), (190.1, 40.4), (128.5, 200.2)]:
        stamp, bb = sci.compute_image(x, y)
        img[bb.slices(bbox)] += 1e6 * stamp
    var = img.copy()
    mask = np.zeros(bbox.shape, np.int32)
    a = convolve_spatial(
        img, var, mask, (0, 0), kernel, PLANES, ConvolutionOptions(fft_dtype=np.float32)
    )
    b = convolve_spatial(
        img, var, mask, (0, 0), kernel, PLANES, ConvolutionOptions(fft_dtype=np.float64)
    )
    ok = np.isfinite(b[0])
    # Error relative to the sky noise (sqrt(10) ~ 3.2 counts): far below it.
    assert np.abs(a[0][ok] - b[0][ok]).max() < 1e-2
    assert np.abs(a[1][ok] / b[1][ok] - 1).max() < 1e-3  # measured 3.6e-4


def test_mask_or_dilation_nan_and_border() -> None:
    bbox = Box2I(0, 0, 120, 100)
    _, sci, model = _fitted_kernel(bbox)
    img = np.ones(bbox.shape)
    var = np.ones(bbox.shape)
    mask = np.zeros(bbox.shape, np.int32)
    sat, cr = PLANES.bitmask("SAT"), PLANES.bitmask("CR")
    mask[50, 60] = sat
    mask[52, 61] = cr
    img[30, 30] = np.nan
    res = match_to_model(
        img, var, mask, bbox, sci, model, config=PsfMatchConfig(), mask_planes=PLANES
    )
    h = 10
    # OR over the 21x21 footprint, bit by bit.
    want = np.zeros(bbox.shape, np.int32)
    want[40:61, 50:71] |= sat
    want[42:63, 51:72] |= cr
    inner = (slice(h, -h), slice(h, -h))
    got = res.mask & (sat | cr)
    np.testing.assert_array_equal(got[inner], want[inner])
    # NaN input poisons exactly the outputs whose footprint touches it.
    nan_zone = np.zeros(bbox.shape, bool)
    nan_zone[20:41, 20:41] = True
    np.testing.assert_array_equal(np.isnan(res.image)[inner], nan_zone[inner])
    assert np.all((res.mask[nan_zone] & NO_DATA) != 0) and np.all(np.isinf(res.variance[nan_zone]))
    # Border of kernel_size // 2 is the edge pixel (NaN, NO_DATA, +inf).
    border = np.ones(bbox.shape, bool)
    border[inner] = False
    assert np.all(np.isnan(res.image[border])) and np.all(res.mask[border] == NO_DATA)
    assert np.all(np.isinf(res.variance[border]))
    # Away from defects a flat image stays flat (unit-sum kernel everywhere).
    clean = ~nan_zone & ~border
    np.testing.assert_allclose(res.image[clean], 1.0, rtol=1e-6)
    assert res.eroded_bbox == Box2I(10, 10, 100, 80)


def test_precomputed_dilated_mask_gives_the_same_result() -> None:
    """dilate_mask (run while the kernel is fitted) == the mask convolve_spatial makes itself."""
    bbox = Box2I(0, 0, 150, 130)
    kernel, _, _ = _fitted_kernel(bbox)
    rng = np.random.default_rng(9)
    img = rng.normal(100.0, 10.0, bbox.shape).astype(np.float32)
    var = np.full(bbox.shape, 100.0, np.float32)
    mask = np.zeros(bbox.shape, np.int32)
    mask[60:64, 70] = PLANES.bitmask("SAT")
    mask[:, :5] = NO_DATA
    img[100, 100] = np.inf
    var[20, 30] = np.nan
    own = convolve_spatial(img, var, mask, (0, 0), kernel, PLANES)
    pre = dilate_mask(img, var, mask, kernel.half_width, NO_DATA, workers=2)
    given = convolve_spatial(img, var, mask, (0, 0), kernel, PLANES, dilated_mask=pre)
    for a, b in zip(own[:3], given[:3], strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isnan(own[0][100, 100]) and np.isinf(own[1][20, 30])
    assert (own[2][95:106, 95:106] & NO_DATA).all() and (own[2][20, 30] & NO_DATA)
    with pytest.raises(ValueError, match="dilated_mask"):
        convolve_spatial(img, var, mask, (0, 0), kernel, PLANES, dilated_mask=pre[:-1])


def test_precomputed_tile_spectra_give_the_same_result() -> None:
    """Planned and filled tile spectra (made while the kernel is fitted) == the FFTs
    convolve_spatial makes itself, bad pixels included; spent or mismatched spectra are refused."""
    bbox = Box2I(0, 0, 150, 130)
    kernel, _, _ = _fitted_kernel(bbox)
    img, var, mask = _noisy_planes(bbox, seed=10)
    mask[:, :5] = NO_DATA
    img[100, 100] = np.inf
    var[20, 30] = np.nan
    own = convolve_spatial(img, var, mask, (0, 0), kernel, PLANES, ConvolutionOptions(tile=48))
    spectra = plan_tile_spectra(
        img, var, mask, kernel.half_width, NO_DATA, ConvolutionOptions(tile=48)
    ).fill()
    assert len(spectra.starts) > 4  # several tiles, edge tiles included
    given = convolve_spatial(
        img, var, mask, (0, 0), kernel, PLANES, ConvolutionOptions(tile=48), spectra=spectra
    )
    for a, b in zip(own[:3], given[:3], strict=True):
        np.testing.assert_array_equal(a, b)
    assert spectra.released
    with pytest.raises(ValueError, match="already used"):
        convolve_spatial(
            img, var, mask, (0, 0), kernel, PLANES, ConvolutionOptions(tile=48), spectra=spectra
        )
    other = plan_tile_spectra(
        img, var, mask, kernel.half_width, NO_DATA, ConvolutionOptions(tile=64)
    ).fill()
    with pytest.raises(ValueError, match="tiles"):
        convolve_spatial(
            img, var, mask, (0, 0), kernel, PLANES, ConvolutionOptions(tile=48), spectra=other
        )


def test_planned_tile_spectra_are_shared_between_threads() -> None:
    """A convolution given planned spectra computes the tiles no other thread has claimed and
    waits for the others: with a concurrent fill, with none, and with a fill that finished first,
    the pixels equal those of a convolution that makes its own FFTs."""
    import threading

    bbox = Box2I(0, 0, 150, 130)
    kernel, _, _ = _fitted_kernel(bbox)
    img, var, mask = _noisy_planes(bbox, seed=12)
    mask[60:64, 70:90] = NO_DATA
    own = convolve_spatial(img, var, mask, (0, 0), kernel, PLANES, ConvolutionOptions(tile=32))
    h = kernel.half_width
    for mode in ("concurrent", "none", "before"):
        planned = plan_tile_spectra(img, var, mask, h, NO_DATA, ConvolutionOptions(tile=32))
        assert len(planned.starts) > 8
        filler = threading.Thread(target=planned.fill)
        if mode == "before":
            planned.fill()
        elif mode == "concurrent":
            filler.start()
        got = convolve_spatial(
            img, var, mask, (0, 0), kernel, PLANES, ConvolutionOptions(tile=32), spectra=planned
        )
        if mode == "concurrent":
            filler.join()
        for a, b in zip(own[:3], got[:3], strict=True):
            np.testing.assert_array_equal(a, b)
        assert planned.released
        with pytest.raises(ValueError, match="released"):
            planned.tile(0)
    # released before use: the unclaimed tiles are taken off the table, nothing is computed
    planned = plan_tile_spectra(img, var, mask, h, NO_DATA, ConvolutionOptions(tile=32))
    planned.release()
    assert planned.fill() is planned and planned.released


@pytest.mark.parametrize("half", [1, 3, 10, 20])
def test_or_dilate_matches_bruteforce(half: int) -> None:
    rng = np.random.default_rng(2)
    m = np.where(rng.random((37, 29)) < 0.02, rng.integers(1, 1 << 12, (37, 29)), 0).astype(
        np.int32
    )
    m[5, 3:17] = 6  # a run of one value
    m[20:, 25] = 1 << 30
    got = or_dilate(m, half)
    want = np.zeros_like(m)
    for y in range(37):
        for x in range(29):
            want[y, x] = np.bitwise_or.reduce(
                m[max(0, y - half) : y + half + 1, max(0, x - half) : x + half + 1].ravel()
            )
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(or_dilate(m != 0, half), want != 0)


# --- deconvolution ------------------------------------------------------------------------


def test_deconvolution_is_rejected_before_the_fit_with_advice() -> None:
    # Elliptical science PSF: wider than the model along x only (sigma 2.8 vs 2.3 px).
    sci = _GaussPsf(2.8, 1.6, 0.0)
    model = _GaussPsf(2.3, size=25)
    bbox = Box2I(0, 0, 150, 150)
    args = (np.zeros(bbox.shape), np.ones(bbox.shape), np.zeros(bbox.shape, np.int32), bbox, sci)
    cells = build_cell_set(bbox, sci, model, PsfMatchConfig())
    check = check_deconvolution(cells, rel_tol=0.01)
    assert check.deconvolves and check.n_cells_deconvolving == cells.n_cells
    assert check.science_fwhm_major == pytest.approx(2.8 * 2.3548, rel=0.02)
    # Analytic: M_model - M_sci along x = 2.3^2 - 2.8^2 = -2.55 px^2 (stamps hold > 99.9 %).
    assert check.min_eigenvalue == pytest.approx(2.3**2 - 2.8**2, rel=0.02)
    with pytest.raises(PsfMatchRejected, match="would deconvolve") as err:
        match_to_model(*args, model, config=PsfMatchConfig(), mask_planes=PLANES)
    assert isinstance(err.value, PsfMatchError)  # the task skips the CCD with the message
    assert "modelPsf.defaultFwhm" in str(err.value) and "worst-seeing" in str(err.value)
    # The tolerance is the bound: -2.55 px^2 is 26 % of trace(M_sci) = 2.8^2 + 1.6^2 = 10.4.
    res = match_to_model(
        *args, model, config=PsfMatchConfig(deconvolution_tolerance=0.3, max_noise_gain=1e9,
                                            max_kernel_abs_sum=1e9), mask_planes=PLANES,
    )  # fmt: skip
    assert res.deconvolution.deconvolves is False
    # A model wider in every direction passes (with a basis wide enough not to oscillate).
    seed = PsfMatchConfig(alard_sig_gauss=(1.5, 3.0, 6.0))
    res2 = match_to_model(*args, _GaussPsf(3.0, size=25), config=seed, mask_planes=PLANES)
    assert not res2.deconvolution.deconvolves


def test_kernel_bounds_reject_an_oscillating_kernel() -> None:
    """LSST's base basis (0.7-3 px) matching an elliptical PSF (sigma 2.8 x 1.6 px) to a round
    one (3.0 px): the fitted kernel has sum|K| >> 1 and a noise gain > 1, so the CCD is rejected;
    with a wider basis the kernel is positive and its noise gain that of the analytic kernel,
    an elliptical Gaussian of sigmas sqrt(3^2 - 2.8^2) x sqrt(3^2 - 1.6^2) px."""
    bbox = Box2I(0, 0, 150, 150)
    args = (np.zeros(bbox.shape), np.ones(bbox.shape), np.zeros(bbox.shape, np.int32), bbox)
    sci, model = _GaussPsf(2.8, 1.6), _GaussPsf(3.0, size=25)
    with pytest.raises(PsfMatchRejected, match=r"sum\|K\| = [0-9.]+ > maxKernelAbsSum=1.5"):
        match_to_model(*args, sci, model, config=PsfMatchConfig(), mask_planes=PLANES)
    seed = PsfMatchConfig(alard_sig_gauss=(1.5, 3.0, 6.0))
    with pytest.raises(PsfMatchRejected, match=r"noise gain .* > maxNoiseGain=0.1"):
        match_to_model(
            *args, sci, model, mask_planes=PLANES,
            config=PsfMatchConfig(alard_sig_gauss=(1.5, 3.0, 6.0), max_noise_gain=0.1),
        )  # fmt: skip
    ok = match_to_model(*args, sci, model, config=seed, mask_planes=PLANES)
    assert ok.fit.kernel_l1.max() < 1.1
    # sum K^2 of an elliptical Gaussian = 1 / (4 pi sx sy): gain 0.171 (fitted: 0.186)
    analytic = 1.0 / np.sqrt(4 * np.pi * np.sqrt(3.0**2 - 2.8**2) * np.sqrt(3.0**2 - 1.6**2))
    assert np.sqrt(ok.fit.kernel_sum_sq.max()) == pytest.approx(analytic, rel=0.15)


class _PartialPsf(_GaussPsf):
    """Test-only PSF that is undefined (raises PsfError) left of ``x_min``."""

    def __init__(self, x_min: float) -> None:
        super().__init__(1.6)
        self.x_min = x_min

    def compute_kernel_image(self, x: float, y: float) -> np.ndarray:
        if x < self.x_min:
            raise PsfError(f"no PSF at x={x}")
        return super().compute_kernel_image(x, y)


def test_cells_without_science_psf_are_skipped_and_reported() -> None:
    bbox = Box2I(0, 0, 300, 200)
    args = (np.zeros(bbox.shape), np.ones(bbox.shape), np.zeros(bbox.shape, np.int32), bbox)
    res = match_to_model(
        *args, _PartialPsf(0.0), _GaussPsf(2.5), config=PsfMatchConfig(), mask_planes=PLANES
    )
    # Grown bbox 556x456 -> 4x3 cells; the column of centres at x = -64 has no PSF.
    assert res.n_cells == 9
    assert "3 of 12 PSF cells skipped" in res.warnings[0]
    with pytest.raises(PsfMatchError, match="No kernel candidates"):
        match_to_model(
            *args, _PartialPsf(1e9), _GaussPsf(2.5), config=PsfMatchConfig(), mask_planes=PLANES
        )


def test_lsst_valid_fit_region_also_conserves_kernel_sum() -> None:
    bbox = Box2I(0, 0, 200, 200)
    res = match_to_model(
        np.ones(bbox.shape),
        np.ones(bbox.shape),
        np.zeros(bbox.shape, np.int32),
        bbox,
        _GaussPsf(1.6),
        _GaussPsf(2.5),
        config=PsfMatchConfig(),
        mask_planes=PLANES,
        fit_region="valid",
    )
    assert res.kernel.kernel_sum(50.0, 150.0) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(res.image[10:-10, 10:-10], 1.0, rtol=1e-6)


@pytest.mark.parametrize("nd", [1, 3, 5, 7])
def test_combine_step_matches_numpy_formula(nd: int) -> None:
    """The compiled per-pixel combination (image terms, kernel sum, variance weights w_p built
    from ``nd`` y terms, NO_DATA blanking) equals the plain numpy formula for every term count,
    with strided row buffers as the convolution passes them."""
    from warping.psfmatch._match_loops import BandCombiner

    rng = np.random.default_rng(nd)
    th, tw, c0, rank, n_a = 13, 37, 4, 3, 2
    # views of larger buffers (as the banded row passes hand them over)
    rows_i = rng.normal(size=(n_a, th + 5, tw + 2 * c0)).astype(np.float32)[:, : th + 2]
    rows_v = rng.uniform(1, 2, size=(rank, th + 5, tw + 2 * c0)).astype(np.float32)[:, : th + 2]
    tx_a = rng.normal(size=(n_a, tw)).astype(np.float32)
    # positive terms: no cancellation, so float32 results are good to ~1e-6
    tys = rng.uniform(0.5, 1.0, size=(nd, th + 2)).astype(np.float32)
    sx = rng.uniform(0.5, 1.0, size=(nd, tw)).astype(np.float32)
    dx = rng.uniform(0.5, 1.0, size=(rank, nd, tw)).astype(np.float32)
    no_data = PLANES.bitmask("NO_DATA")
    y0, x0 = 3, 5
    out_mask = np.zeros((th + 6, tw + 9), np.int32)
    out_mask[y0 + 2, x0 + 7] = no_data
    out_img = np.zeros(out_mask.shape, np.float32)
    out_var = np.zeros(out_mask.shape, np.float32)
    ry = 2  # row offset into the y terms
    BandCombiner(rows_i, tx_a, rows_v, c0, tys, sx, dx, x0, out_mask, no_data, out_img,
                 out_var)(th, ry, y0)  # fmt: skip
    t = tys[:, ry : ry + th].astype(float)
    ksum = np.einsum("br,bc->rc", t, sx)
    img = np.einsum("arc,ac->rc", rows_i[:, :th, c0 : c0 + tw], tx_a) / ksum
    w = np.einsum("jr,pjc->prc", t, dx)
    var = np.einsum("prc,prc->rc", w, rows_v[:, :th, c0 : c0 + tw]) / ksum**2
    got_i = out_img[y0 : y0 + th, x0 : x0 + tw]
    got_v = out_var[y0 : y0 + th, x0 : x0 + tw]
    bad = out_mask[y0 : y0 + th, x0 : x0 + tw] != 0
    assert np.isnan(got_i[bad]).all() and np.isposinf(got_v[bad]).all()
    np.testing.assert_allclose(got_i[~bad], img[~bad], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_v[~bad], var[~bad], rtol=1e-5)
    assert (out_img[:y0] == 0).all() and (out_img[y0 + th :] == 0).all()  # nothing else written


@pytest.mark.parametrize("cdtype", [np.complex64, np.complex128])
def test_spectrum_loops_match_numpy(cdtype: type) -> None:
    """The compiled spectrum product and the sum over y terms equal their numpy formulas."""
    from warping.psfmatch._match_loops import BandSummer, multiply

    rng = np.random.default_rng(7)
    fy, nc, nt = 12, 7, 6

    def cplx(*shape: int) -> np.ndarray:
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(cdtype)

    f, k = cplx(fy, nc), cplx(nt, fy, nc)
    out = np.empty((nt, fy, nc), cdtype)
    multiply(f, k, out)
    tol = 1e-5 if cdtype == np.complex64 else 1e-12
    np.testing.assert_allclose(out, f[None] * k, rtol=tol)
    ty = rng.normal(size=(3, 20)).astype(np.float32)
    a_of_t, b_of_t = np.array([0, 1, 2, 0, 1, 0]), np.array([0, 0, 0, 1, 1, 2])
    acc = np.full((3, 8, nc), np.nan, cdtype)  # rows beyond nrows must stay untouched
    r0, ry, nrows = 3, 5, 6
    BandSummer(out, ty, a_of_t, b_of_t, acc)(r0, ry, nrows)
    want = np.zeros((3, nrows, nc), complex)
    for t in range(nt):
        want[a_of_t[t]] += ty[b_of_t[t], ry : ry + nrows, None] * out[t, r0 : r0 + nrows]
    np.testing.assert_allclose(acc[:, :nrows], want, rtol=tol, atol=tol)
    assert np.isnan(acc[:, nrows:]).all()


def test_compiled_loops_reject_bad_layouts() -> None:
    """Wrong dtypes or layouts are refused with a clear error, never read out of bounds."""
    from warping.psfmatch._match_loops import BandCombiner, BandSummer, Window, gather, multiply

    f = np.zeros((4, 3), np.complex64)
    with pytest.raises(ValueError, match="contiguous last axis"):
        multiply(f, np.zeros((2, 4, 3), np.complex128), np.zeros((2, 4, 3), np.complex64))
    with pytest.raises(ValueError, match="do not match"):
        multiply(f, np.zeros((2, 4, 2), np.complex64), np.zeros((2, 4, 3), np.complex64))
    img = np.zeros((5, 5), np.float32)
    with pytest.raises(TypeError, match="int32"):
        gather(img, img, np.zeros((5, 5), np.int16), 1, Window(0, 0, 3, 3), img.copy(), img.copy())
    with pytest.raises(ValueError, match="contiguous rows"):
        gather(img[:, ::2], img[:, ::2], np.zeros((5, 3), np.int32), 1, Window(0, 0, 3, 3),
               img.copy(), img.copy())  # fmt: skip
    rows = np.zeros((1, 4, 6), np.float32)
    t = np.zeros((1, 4), np.float32)
    out = np.zeros((4, 4), np.float32)
    mask = np.zeros((4, 4), np.int32)
    band = BandCombiner(rows, t, rows, 0, np.zeros((1, 9), np.float32), t,
                        np.zeros((1, 1, 4), np.float32), 0, mask, 1, out, out.copy())  # fmt: skip
    with pytest.raises(ValueError, match="out of range"):  # th beyond the row buffers
        band(9, 0, 0)
    band(4, 0, 0)  # the whole buffer
    for th, ry, y0 in ((5, 0, 0), (2, 8, 0), (2, 0, 3), (-1, 0, 0)):
        with pytest.raises(ValueError, match="out of range"):
            band(th, ry, y0)
    with pytest.raises(ValueError, match="inconsistent shapes"):  # tile wider than the output
        BandCombiner(rows, t, rows, 0, np.zeros((1, 9), np.float32), t,
                     np.zeros((1, 1, 4), np.float32), 1, mask, 1, out, out.copy())  # fmt: skip
    z = np.zeros((2, 10, 3), np.complex64)
    summer = BandSummer(z, np.ones((2, 10), np.float32), [0, 0], [0, 1],
                        np.zeros((1, 4, 3), np.complex64))  # fmt: skip
    summer(6, 6, 4)
    for r0, ry, nrows in ((7, 0, 4), (0, 7, 4), (0, 0, 5), (-1, 0, 1)):
        with pytest.raises(ValueError, match="out of range"):
            summer(r0, ry, nrows)
    with pytest.raises(ValueError, match="inconsistent shapes"):  # negative term index
        BandSummer(z, np.ones((2, 10), np.float32), [0, -1], [0, 1],
                   np.zeros((1, 4, 3), np.complex64))  # fmt: skip


def test_convolution_accepts_any_layout_and_byte_order() -> None:
    """Fortran-ordered, big-endian and bool/int16 inputs give the same result as native C-ordered
    float32/int32 ones (the compiled loops get converted copies where needed)."""
    bbox = Box2I(0, 0, 96, 80)
    kernel, _, _ = _fitted_kernel(bbox)
    img, var, mask = _noisy_planes(bbox, seed=11)
    mask[40, 50] = PLANES.bitmask("BAD")
    ref = convolve_spatial(img, var, mask, (0, 0), kernel, PLANES)
    odd = convolve_spatial(
        np.asfortranarray(img).astype(">f4"),
        np.asfortranarray(var),
        np.asfortranarray(mask.astype(np.int16)),
        (0, 0),
        kernel,
        PLANES,
    )
    for a, b in zip(ref[:3], odd[:3], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        or_dilate(np.asfortranarray(mask != 0), 2), or_dilate(mask != 0, 2)
    )


def test_one_usable_thread_starts_no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """With REPO_BUTLER_THREADS=1 (as in Dask workers) the whole match runs on the calling
    thread, and gives the 2-thread result to float32 precision (the tiling may differ)."""
    import threading

    bbox = Box2I(0, 0, 300, 260)
    sci, model, img, var, mask = _noise_match_inputs(bbox, (100.0, 100.0), seed=3)
    cfg = PsfMatchConfig()
    two = match_to_model(img, var, mask, bbox, sci, model, config=cfg, mask_planes=PLANES)
    started: list[str] = []
    real_start = threading.Thread.start

    def counting_start(self: threading.Thread) -> None:
        started.append(self.name)
        real_start(self)

    monkeypatch.setenv("REPO_BUTLER_THREADS", "1")
    monkeypatch.setattr(threading.Thread, "start", counting_start)
    one = match_to_model(img, var, mask, bbox, sci, model, config=cfg, mask_planes=PLANES)
    assert started == []
    ok = np.isfinite(two.image)
    np.testing.assert_array_equal(ok, np.isfinite(one.image))
    np.testing.assert_allclose(one.image[ok], two.image[ok], rtol=2e-6, atol=1e-4)
    np.testing.assert_allclose(one.variance[ok], two.variance[ok], rtol=2e-6)
    np.testing.assert_array_equal(one.mask, two.mask)


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    y0=st.integers(-12, 12),
    x0=st.integers(-12, 12),
    ny=st.integers(0, 14),
    nx=st.integers(0, 14),
    seed=st.integers(0, 2**16),
    f64_in=st.booleans(),
    f64_out=st.booleans(),
)
def test_gather_matches_numpy_for_any_window(
    h: int, w: int, y0: int, x0: int, ny: int, nx: int, seed: int, f64_in: bool, f64_out: bool
) -> None:
    """The compiled tile gather, for windows overlapping the array anywhere (or not at all):
    in-bounds good pixels copied, everything else (outside, NO_DATA, NaN/inf) zero."""
    from warping.psfmatch._match_loops import Window, gather

    rng = np.random.default_rng(seed)
    fin = np.float64 if f64_in else np.float32
    img = rng.normal(size=(h, w)).astype(fin)
    var = rng.uniform(1, 2, size=(h, w)).astype(fin)
    img[rng.random((h, w)) < 0.1] = np.nan
    var[rng.random((h, w)) < 0.1] = np.inf
    mask = np.where(rng.random((h, w)) < 0.1, 256, 0).astype(np.int32)
    rows, cols = ny + 2, nx + 3
    fout = np.float64 if f64_out else np.float32
    bi = np.full((rows, cols), 7.0, fout)  # stale values must all be overwritten
    bv = np.full((rows, cols), 7.0, fout)
    gather(img, var, mask, 256, Window(y0, x0, ny, nx), bi, bv)
    want_i = np.zeros((rows, cols))
    want_v = np.zeros((rows, cols))
    for r in range(min(ny, rows)):
        for c in range(min(nx, cols)):
            y, x = y0 + r, x0 + c
            if 0 <= y < h and 0 <= x < w:
                ok = mask[y, x] == 0 and np.isfinite(img[y, x]) and np.isfinite(var[y, x])
                if ok:
                    want_i[r, c], want_v[r, c] = img[y, x], var[y, x]
    np.testing.assert_array_equal(bi, want_i.astype(fout))
    np.testing.assert_array_equal(bv, want_v.astype(fout))


@pytest.mark.parametrize(
    ("y0", "x0", "ny", "nx", "rows", "cols"),
    [
        (0, 0, 4, 9, 4, 4),  # window wider than the buffer
        (-2, -1, 6, 12, 3, 5),  # and taller, starting outside the array
        (1, -9, 3, 20, 3, 4),  # starting further left than the buffer is wide
        (0, 6, 5, 7, 4, 3),  # reaching past the array's right edge
        (0, 0, 9, 9, 1, 1),  # a one-pixel buffer
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gather_never_writes_past_a_buffer_smaller_than_its_window(
    y0: int, x0: int, ny: int, nx: int, rows: int, cols: int, dtype: type
) -> None:
    """A window larger than the buffer is cut to the buffer: the compiled gather once wrote
    ``nx - cols`` values past the end of its last row (a heap overflow, found by an
    AddressSanitizer build; glibc aborts such a process later with "corrupted size vs.
    prev_size"). The buffers are views of larger arrays whose extra rows must stay untouched."""
    from warping.psfmatch._match_loops import Window, gather

    rng = np.random.default_rng(rows * 100 + cols)
    img = rng.normal(size=(8, 8)).astype(dtype)
    var = rng.uniform(1, 2, size=(8, 8)).astype(dtype)
    mask = np.zeros((8, 8), np.int32)
    big_i = np.full((rows + 2, cols), -5.0, dtype)
    big_v = np.full((rows + 2, cols), -5.0, dtype)
    gather(img, var, mask, 1, Window(y0, x0, ny, nx), big_i[:rows], big_v[:rows])
    assert (big_i[rows:] == -5.0).all() and (big_v[rows:] == -5.0).all()
    with pytest.raises(ValueError, match="must be one 2-D shape"):
        gather(img, var, mask, 1, Window(y0, x0, ny, nx), big_i[:rows], np.zeros(3, dtype))
    with pytest.raises(ValueError, match="differ"):
        gather(img, var[:7], mask, 1, Window(y0, x0, ny, nx), big_i[:rows], big_v[:rows])
    want = np.zeros((rows, cols), dtype)
    for r in range(min(ny, rows)):
        for c in range(min(nx, cols)):
            if 0 <= y0 + r < 8 and 0 <= x0 + c < 8:
                want[r, c] = img[y0 + r, x0 + c]
    np.testing.assert_array_equal(big_i[:rows], want)


@settings(max_examples=30, deadline=None)
@given(
    p=st.integers(5, 23),
    h=st.integers(1, 4),
    inset=st.integers(0, 3),
    n=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_cell_gram_equals_explicit_design(p: int, h: int, inset: int, n: int, seed: int) -> None:
    """The compiled design Gram equals the design built with scipy's 2-D convolution, for any
    stamp size (rows not a multiple of the vector width), kernel size and window."""
    from warping.psfmatch._match_loops import cell_gram

    k = 2 * h + 1
    q = p - 2 * min(inset, (p - 1) // 2)
    offset = (p - q) // 2
    rng = np.random.default_rng(seed)
    sci = rng.normal(size=(n, p, p))
    target = rng.normal(size=(n, q * q))
    fun = rng.normal(size=(3, k))
    ix, iy = np.array([0, 1, 2, 0]), np.array([0, 0, 1, 2])
    tr = np.tril(rng.normal(size=(4, 4)))
    tr[2, 1] = 0.0  # zeros in the transform are skipped
    got = np.full((n, 5, 5), np.nan)
    cell_gram(sci, target, fun, ix, iy, tr, offset, q, got)
    raw = fun[iy][:, :, None] * fun[ix][:, None, :]
    for c in range(n):
        full = np.array([convolve2d(sci[c], r, mode="full") for r in raw])  # offset -h
        win = full[:, h + offset : h + offset + q, h + offset : h + offset + q].reshape(4, -1)
        e = np.vstack([tr @ win, target[c]])
        want = e @ e.T
        scale = np.sqrt(np.outer(np.diag(want), np.diag(want)))
        assert np.abs(got[c] - want).max() <= 1e-13 * scale.max()


def test_cell_gram_refuses_bad_arguments() -> None:
    from warping.psfmatch._match_loops import cell_gram

    sci, target = np.zeros((2, 9, 9)), np.zeros((2, 81))
    fun, ix, iy = np.ones((2, 3)), np.array([0, 1]), np.array([1, 0])
    out = np.zeros((2, 3, 3))
    with pytest.raises(ValueError, match="lower triangular"):
        cell_gram(sci, target, fun, ix, iy, np.ones((2, 2)), 0, 9, out)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        cell_gram(sci, target, fun, ix, iy, np.eye(2), 1, 9, out)  # window past the stamp
    with pytest.raises(ValueError, match="inconsistent shapes"):
        cell_gram(sci, target, fun, np.array([0, 2]), iy, np.eye(2), 0, 9, out)  # no function 2
    with pytest.raises(ValueError, match="inconsistent shapes"):
        cell_gram(sci, target, np.ones((2, 4)), ix, iy, np.eye(2), 0, 9, out)  # even kernel


@pytest.mark.slow
def test_cell_gram_is_memory_safe(tmp_path: Path) -> None:
    """The compiled design loop stays inside its buffers for every stamp size, kernel size and
    window offset (AddressSanitizer build of the C sources; hypothesis found a heap overflow for
    offsets larger than the kernel half-width, now fixed)."""
    import shutil
    import subprocess

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    flags = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-Wno-psabi"]
    # leak checking needs ptrace, which containers often forbid; the driver frees everything
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=0", "UBSAN_OPTIONS": "halt_on_error=1"}
    probe_src = tmp_path / "probe.c"
    probe_src.write_text("int main(void) { return 0; }\n")
    probe = tmp_path / "probe"
    built = subprocess.run([cc, *flags, "-o", str(probe), str(probe_src)], capture_output=True)
    if built.returncode != 0 or subprocess.run([str(probe)], env=env).returncode != 0:
        pytest.skip("AddressSanitizer programs cannot be built or run on this machine")
    exe = tmp_path / "asan_cell_gram"
    driver = Path(__file__).parent / "c" / "asan_cell_gram.c"
    root = Path(__file__).resolve().parents[1]
    sources = (
        root / "warping" / "warp" / "_ckernel.c",
        root / "warping" / "psfmatch" / "_match_loops.c",
    )
    build = subprocess.run(
        [cc, *flags, "-o", str(exe), str(driver), *(str(s) for s in sources), "-lm"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ok 2508 configurations" in run.stdout


def test_convolution_options_refuse_bad_values() -> None:
    with pytest.raises(ValueError, match="tile"):
        ConvolutionOptions(tile=0)
    with pytest.raises(ValueError, match="fft_dtype"):
        ConvolutionOptions(fft_dtype=np.float16)
    with pytest.raises(ValueError, match="variance_tolerance"):
        ConvolutionOptions(variance_tolerance=0.0)
    assert ConvolutionOptions(workers=0).threads == 1
    assert ConvolutionOptions(fft_dtype=np.float64).complex_dtype == np.complex128


def test_dilate_band_refuses_rows_or_outputs_that_do_not_fit() -> None:
    """The compiled dilation writes rows r0..r1 of ``out`` (and reads the mask rows around
    them): bands outside the mask or an ``out`` smaller than them would be written past."""
    from warping.psfmatch._match_loops import Dilation, dilate_band

    mask = np.zeros((6, 5), np.int32)
    mask[2, 3] = 4
    dummy = np.zeros((1, 1), np.float32)
    for r0, r1, shape in ((-1, 3, (6, 5)), (2, 7, (7, 5)), (4, 3, (6, 5)), (0, 6, (5, 5)),
                          (0, 6, (6, 4))):  # fmt: skip
        with pytest.raises(ValueError, match="dilate_band: rows"):
            dilate_band(mask, dummy, dummy, Dilation(1), r0, r1, np.zeros(shape, np.int32))
    out = np.full((7, 5), -1, np.int32)  # a larger out: rows past r1 untouched
    dilate_band(mask, dummy, dummy, Dilation(1), 1, 4, out)
    assert (out[[0, 4, 5, 6]] == -1).all()
    want = np.zeros((6, 5), np.int32)
    want[1:4, 2:5] = 4
    np.testing.assert_array_equal(out[1:4], want[1:4])
