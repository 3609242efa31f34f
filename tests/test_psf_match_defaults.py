"""Issue #18 items 1-3: automatic model / basis / kernel size, instrument presets, full wings.

Truth is analytic: Gaussian science PSFs, LSST's double-Gaussian model and its radial profile,
the simulation's own PSF polynomials.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.optimize import brentq

from repo_butler.errors import ConfigError
from warping.geom import Box2I
from warping.masks import MaskPlanes
from warping.psf.analytic import DoubleGaussianPsf, GaussianPsf, make_model_psf
from warping.psfmatch import PsfMatchConfig, match_to_model
from warping.psfmatch.auto import (
    FWHM_PER_SIGMA,
    auto_basis_sigmas,
    auto_kernel_size,
    enclosed_radius,
    psf_fwhm_major,
)
from warping.task.config import MakeWarpConfig, apply_overrides
from warping.task.presets import available_presets, instrument_preset
from warping.task.psf_match_step import psf_match_config
from warping.task.psf_model import config_for_model, resolve_model

PLANES = MaskPlanes.default()


def _double_gaussian_fraction(r: float, s1: float, s2: float, b: float) -> float:
    """Flux fraction of LSST's double Gaussian (peak ratio ``b``) inside radius ``r``."""
    w1, w2 = s1 * s1, b * s2 * s2
    inside = w1 * (1 - math.exp(-r * r / (2 * s1 * s1))) + w2 * (
        1 - math.exp(-r * r / (2 * s2 * s2))
    )
    return inside / (w1 + w2)


def _annuli(img: np.ndarray, rmax: float, width: float = 2.0) -> np.ndarray:
    """Flux in annuli of ``width`` px around the stamp centre, out to ``rmax``."""
    n = img.shape[0]
    ys, xs = np.indices(img.shape) - n // 2
    r = np.hypot(xs, ys)
    edges = np.arange(0.0, rmax + width, width)
    return np.array([img[(r >= a) & (r < b)].sum() for a, b in itertools.pairwise(edges)])


# --- building blocks ---------------------------------------------------------------------------


def test_auto_basis_spans_the_core_and_wing_kernels() -> None:
    # science sigma 1.8, model core 2.6 and wing 6.5 px: sigma_K = sqrt(2.6^2 - 1.8^2) = 1.876,
    # sqrt(6.5^2 - 1.8^2) = 6.246; three Gaussians geometric between them.
    got = auto_basis_sigmas(1.8, 2.6, 6.5, 3)
    lo, hi = math.sqrt(2.6**2 - 1.8**2), math.sqrt(6.5**2 - 1.8**2)
    assert got == pytest.approx((lo, math.sqrt(lo * hi), hi), abs=1e-3)
    # no wing: LSST's spacing (factor 2); a kernel narrower than alardMinSig starts at 0.7 px
    assert auto_basis_sigmas(2.0, 2.1, None, 3) == pytest.approx((0.7, 1.4, 2.8), abs=1e-3)
    assert len(auto_basis_sigmas(1.5, 3.0, 7.5, 4)) == 4


def test_enclosed_radius_of_a_gaussian() -> None:
    # 1 - exp(-r^2 / 2 s^2) = f  ->  r = s sqrt(-2 ln(1 - f))
    stamp = GaussianPsf(3.0, 101).compute_kernel_image(0.0, 0.0)
    for f in (0.5, 0.9, 0.997):
        assert enclosed_radius(stamp, f) == pytest.approx(
            3.0 * math.sqrt(-2 * math.log(1 - f)), abs=0.5
        )


def test_auto_kernel_size_reaches_the_model_wing() -> None:
    fwhm = 6.0
    s1 = fwhm / FWHM_PER_SIGMA
    model = make_model_psf(default_fwhm=fwhm)  # LSST: wing 2.5 x the core, peak ratio 0.1
    r = brentq(lambda x: _double_gaussian_fraction(x, s1, 2.5 * s1, 0.1) - 0.997, 1.0, 100.0)
    size = auto_kernel_size(model, 0.003)
    assert size % 2 == 1
    assert abs(size - (2 * math.ceil(r) + 1)) <= 2  # 41 px here (LSST base: 21)


def test_fwhm_along_the_major_axis() -> None:
    from warping.psf.analytic import VariableGaussianPsf

    psf = VariableGaussianPsf((2.0,), (0.2,), (0.0,), size=41)  # Ixx = 4.8, Iyy = 3.2
    assert psf_fwhm_major(psf, 0.0, 0.0) == pytest.approx(math.sqrt(4.8) * FWHM_PER_SIGMA, rel=1e-3)


# --- full wings: stacked matched stars against the declared PSF --------------------------------


def _star_field(
    sigma: float, n: int = 384, step: int = 64
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    img = np.zeros((n, n))
    stamp = GaussianPsf(sigma, 61).compute_kernel_image(0.0, 0.0)
    pos = [(x, y) for y in range(step, n - step + 1, step) for x in range(step, n - step + 1, step)]
    for x, y in pos:
        img[y - 30 : y + 31, x - 30 : x + 31] += 1000.0 * stamp
    return img, pos


def _stack(img: np.ndarray, pos: list[tuple[int, int]], half: int) -> np.ndarray:
    cut = [img[y - half : y + half + 1, x - half : x + half + 1] for x, y in pos]
    good = [c for c in cut if c.shape == (2 * half + 1,) * 2 and np.isfinite(c).all()]
    assert len(good) >= 4
    return np.sum(good, axis=0) / (1000.0 * len(good))


def _match_stars(
    sigma: float, config: PsfMatchConfig, fwhm: float
) -> tuple[np.ndarray, np.ndarray]:
    img, pos = _star_field(sigma)
    bbox = Box2I(0, 0, img.shape[1], img.shape[0])
    res = match_to_model(
        img, np.ones_like(img), np.zeros(img.shape, np.int32), bbox, GaussianPsf(sigma, 41),
        make_model_psf(default_fwhm=fwhm), config=config, mask_planes=PLANES,
    )  # fmt: skip
    declared = res.model_psf.compute_kernel_image(0.0, 0.0)
    return _stack(res.image, pos, declared.shape[0] // 2), declared


@pytest.mark.parametrize("sigma", [1.53, 2.04])  # FWHM 3.6 and 4.8 px, the demo's range
def test_matched_stars_carry_the_declared_psf_out_to_its_edge(sigma: float) -> None:
    fwhm = 1.15 * 4.8  # the automatic model of a patch whose widest input is 4.8 px
    cfg = MakeWarpConfig(makePsfMatched=True)
    cfg = config_for_model(cfg, resolve_model(cfg, (4.8, "ccd"), 1))
    model = make_model_psf(default_fwhm=fwhm)
    bbox = Box2I(0, 0, 384, 384)
    auto = psf_match_config(cfg, model, GaussianPsf(sigma, 41), bbox)
    stars, declared = _match_stars(sigma, auto, fwhm)
    half = declared.shape[0] // 2
    s1 = fwhm / FWHM_PER_SIGMA
    truth = DoubleGaussianPsf(2 * half + 1, s1, 2.5 * s1, 0.1).compute_kernel_image(0.0, 0.0)
    diff = np.abs(_annuli(stars, half) - _annuli(declared, half))
    assert diff.max() < 1e-3, diff  # issue #18's goal: 0.1 % of the flux in every annulus
    # the declared stamp holds the analytic model: all but 0.02 % of it lies inside the stamp's
    # inscribed circle (1.2 x the 39-px kernel: 47 px; LSST's 1.4 gives 55 px and 0.001 %), so
    # a PSF fit loses < 2e-4 of the flux, a fifth of the 0.1 % goal
    total = _double_gaussian_fraction(half, s1, 2.5 * s1, 0.1)
    assert half == 23 and total > 0.9998
    assert np.abs(_annuli(declared, half) - _annuli(truth, half)).max() < 1e-4
    # star size: Gaussian-weighted radius within 0.1 % of the declared PSF's
    ys, xs = np.indices(stars.shape) - half
    w = np.exp(-(xs**2 + ys**2) / (2 * s1 * s1)) * (xs**2 + ys**2)
    assert (w * stars).sum() / (w * declared).sum() == pytest.approx(1.0, abs=2e-3)


def test_the_27_pixel_kernel_misses_the_wing() -> None:
    """The seed's fixed 27-px kernel on the same stars fails the same test: the check can fail."""
    fwhm = 6.0
    seed = PsfMatchConfig(kernel_size=27, alard_sig_gauss=(1.5, 3.0, 6.0))
    stars, declared = _match_stars(2.04, seed, fwhm)
    half = declared.shape[0] // 2
    diff = _annuli(stars, half) - _annuli(declared, half)
    assert np.abs(diff).max() > 2e-3  # stars lack the outer wing (issue #18: 0.75 % at 16-20 px)
    assert diff[-1] < 0


# --- model per patch, explicit settings, presets -----------------------------------------------


def test_resolve_model_auto_and_explicit() -> None:
    cfg = MakeWarpConfig(makePsfMatched=True)
    auto = resolve_model(cfg, (4.0, "visit=1 ccd=2"), 5)
    assert auto.fwhm == pytest.approx(4.6) and auto.fwhm_source == "auto"
    assert auto.kernel_source == "auto" and auto.kernel_size % 2 == 1
    assert auto.metadata()["PSFMATCH_WIDEST_INPUT"] == "visit=1 ccd=2"
    explicit = apply_overrides(
        cfg, ["modelPsf.defaultFwhm=7.0", "warpAndPsfMatch.psfMatch.kernel['AL'].kernelSize=33"]
    )
    m = resolve_model(explicit)
    assert (m.fwhm, m.fwhm_source, m.kernel_size, m.kernel_source) == (7.0, "config", 33, "config")
    with pytest.raises(ValueError, match="no input PSF"):
        resolve_model(cfg)
    effective = config_for_model(cfg, auto)
    assert effective.modelPsf.defaultFwhm == pytest.approx(4.6)
    assert effective.warpAndPsfMatch.psfMatch.al.kernelSize == auto.kernel_size


def test_explicit_basis_wins_over_the_automatic_one() -> None:
    cfg = apply_overrides(
        MakeWarpConfig(),
        [
            "makePsfMatched=True",
            "modelPsf.defaultFwhm=6",
            "warpAndPsfMatch.psfMatch.kernel['AL'].alardSigGauss=[1.5, 3.0, 6.0]",
        ],
    )
    model = make_model_psf(default_fwhm=6.0)
    got = psf_match_config(cfg, model, GaussianPsf(2.0, 41), Box2I(0, 0, 100, 100))
    assert got.alard_sig_gauss == (1.5, 3.0, 6.0)
    assert got.kernel_size == auto_kernel_size(model, 0.003, sigmas=(1.5, 3.0, 6.0))


def test_hsc_preset_carries_production_values_and_user_settings_win() -> None:
    assert "HSC" in available_presets()
    hsc = apply_overrides(MakeWarpConfig(), instrument="hsc")
    al = hsc.warpAndPsfMatch.psfMatch.al
    assert hsc.makePsfMatched and hsc.modelPsf.defaultFwhm == 7.7
    assert al.kernelSize == 29 and al.alardSigGauss == (1.0, 2.0, 4.5)
    assert hsc.warpAndPsfMatch.psfMatch.pad_ratio == 1.4  # LSST's value, as Subaru runs
    assert hsc.warpAndPsfMatch.warp.warpingKernelName == "lanczos5"
    assert hsc.coaddPsf.warpingKernelName == "lanczos5"
    user = ["modelPsf.defaultFwhm=9", "warpAndPsfMatch.psfMatch.kernel['AL'].kernelSize=None"]
    mine = apply_overrides(
        MakeWarpConfig(), user, instrument="HSC",
        files=[("f.py", "config.coaddPsf.warpingKernelName = 'lanczos3'\n")],
    )  # fmt: skip
    assert mine.modelPsf.defaultFwhm == 9.0
    assert mine.warpAndPsfMatch.psfMatch.al.kernelSize is None  # back to automatic
    assert mine.coaddPsf.warpingKernelName == "lanczos3"
    assert mine.warpAndPsfMatch.psfMatch.al.alardSigGauss == (1.0, 2.0, 4.5)
    with pytest.raises(
        ConfigError, match=r"No make-warp config preset for instrument 'CFHT' \(presets: HSC"
    ):
        instrument_preset("CFHT")


def test_automatic_stamp_is_1_2_kernels_and_an_explicit_ratio_wins() -> None:
    """autoPadPsfTo None: fitted and declared stamps of next_odd(1.2 x kernel) (a 39-px kernel:
    47 px, where LSST's 1.4 gives 55); a value given wins."""
    from warping.psfmatch.cells import build_cell_set

    model = make_model_psf(default_fwhm=5.52)
    bbox = Box2I(0, 0, 300, 300)
    sizes = {}
    for extra in ([], ["warpAndPsfMatch.psfMatch.autoPadPsfTo=1.4"]):
        cfg = apply_overrides(MakeWarpConfig(), ["makePsfMatched=True", "modelPsf.defaultFwhm=5.52",
                                                 *extra])  # fmt: skip
        got = psf_match_config(cfg, model, GaussianPsf(1.53, 25), bbox)
        cells = build_cell_set(bbox, GaussianPsf(1.53, 25), model, got)
        sizes[got.auto_pad_psf_to] = (got.kernel_size, cells.psf_size)
    assert sizes == {1.2: (39, 47), 1.4: (39, 55)}
