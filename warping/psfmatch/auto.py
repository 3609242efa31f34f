"""Automatic matching settings: PSF widths, a basis scaled with them, a kernel that holds the wing.

LSST's ``scaleByFwhm`` derives the Alard–Lupton basis from the science and target PSF widths
(the kernel of two Gaussians has ``σ_K² = σ_target² − σ_science²``). Our model PSF is LSST's
double Gaussian (core plus a wing ``wingFwhmFactor`` times wider), so the basis here spans the
kernel of the core *and* the kernel of the wing: its sigmas run geometrically from
``max(min_sigma, σ_K,core)`` to ``σ_K,wing``. The kernel is as wide as the radius that encloses
all but ``wing_tolerance`` of the model's flux, so matched stars carry the model's wing out to
the edge of the stamp the warp declares.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from warping.psf.base import Psf

__all__ = [
    "FWHM_PER_SIGMA",
    "auto_basis_sigmas",
    "auto_kernel_size",
    "enclosed_radius",
    "psf_fwhm_major",
]

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: Smallest basis sigma (pixels): LSST's ``alardMinSig``.
MIN_BASIS_SIGMA = 0.7
#: Ratio of successive basis sigmas when the model has no wing: LSST's ``alardGaussBeta``.
BASIS_BETA = 2.0
#: Smallest automatic kernel: LSST's ``kernelSizeMin``.
MIN_KERNEL_SIZE = 21


def psf_fwhm_major(psf: Psf, x: float, y: float) -> float:
    """FWHM (px) along the major axis of ``psf``'s kernel image at ``(x, y)``.

    From the unweighted second moments (exact for a Gaussian; wings make it larger), the measure
    the deconvolution check uses, so a model at least this wide passes that check.
    """
    ixx, iyy, ixy = psf.second_moments(float(x), float(y))
    major = np.linalg.eigvalsh(np.array([[ixx, ixy], [ixy, iyy]]))[1]
    return float(math.sqrt(max(major, 0.0)) * FWHM_PER_SIGMA)


def auto_basis_sigmas(
    science_sigma: float,
    model_sigma: float,
    wing_sigma: float | None,
    n_gauss: int,
    *,
    min_sigma: float = MIN_BASIS_SIGMA,
) -> tuple[float, ...]:
    """Basis sigmas (px) for matching a ``science_sigma`` PSF to the model, LSST ``scaleByFwhm``.

    Parameters
    ----------
    science_sigma
        Sigma (px) of the science PSF (major axis).
    model_sigma, wing_sigma
        Sigmas of the model's core and of its wing (None: no wing).
    n_gauss
        Number of Gaussians (the length of ``alardDegGauss``).
    min_sigma
        Smallest sigma (LSST ``alardMinSig``).

    Returns
    -------
    tuple of float
        ``n_gauss`` sigmas, geometric from ``max(min_sigma, σ_K,core)`` to ``σ_K,wing`` (no
        wing: to ``σ_K,core · 2²``, LSST's spacing), ``σ_K = sqrt(σ_model² − σ_science²)``.
    """
    if n_gauss < 1:
        raise ValueError(f"n_gauss must be >= 1, got {n_gauss}")
    core = math.sqrt(max(model_sigma**2 - science_sigma**2, 0.0))
    lo = max(min_sigma, core)
    if wing_sigma is not None:
        hi = math.sqrt(max(wing_sigma**2 - science_sigma**2, 0.0))
    else:
        hi = lo * BASIS_BETA ** (n_gauss - 1)
    hi = max(hi, lo * BASIS_BETA) if n_gauss > 1 else lo
    if n_gauss == 1:
        return (round(lo, 4),)
    return tuple(round(float(s), 4) for s in np.geomspace(lo, hi, n_gauss))


def enclosed_radius(stamp: np.ndarray, fraction: float) -> float:
    """Smallest radius (px, from the stamp centre) enclosing ``fraction`` of the stamp's flux."""
    img = np.asarray(stamp, dtype=float)
    ny, nx = img.shape
    ys, xs = np.indices(img.shape, dtype=float)
    r = np.hypot(xs - (nx - 1) / 2.0, ys - (ny - 1) / 2.0).ravel()
    order = np.argsort(r, kind="stable")
    cum = np.cumsum(img.ravel()[order])
    idx = int(np.searchsorted(cum, fraction * cum[-1]))
    return float(r[order][min(idx, len(r) - 1)])


def auto_kernel_size(
    model_psf: Psf,
    wing_tolerance: float,
    *,
    sigmas: Sequence[float] = (),
    max_size: int = 181,
    min_size: int = MIN_KERNEL_SIZE,
) -> int:
    """Matching-kernel size (odd) that reaches the model's wing.

    The half-width is the radius enclosing all but ``wing_tolerance`` of the model PSF's flux
    (measured on a stamp of ``max_size``), and at least 3 times the widest basis sigma (LSST
    sizes the kernel as 6 sigma); clamped to ``[min_size, max_size]``.
    """
    from warping.psfmatch.cells import resize_psf

    if not 0 < wing_tolerance < 1:
        raise ValueError(f"wing_tolerance must be in (0, 1), got {wing_tolerance}")
    big = resize_psf(model_psf, max_size | 1).compute_kernel_image(0.0, 0.0)
    # the model's own normalisation is over its full extent; measure on the unnormalised profile
    radius = enclosed_radius(big, 1.0 - wing_tolerance)
    radius = max(radius, 3.0 * max(sigmas, default=0.0))
    size = 2 * math.ceil(radius) + 1
    return int(min(max(size, min_size), max_size))
