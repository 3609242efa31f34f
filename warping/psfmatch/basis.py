"""Alard–Lupton basis kernels: Gaussians times polynomials, renormalised as LSST does."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["alard_lupton_basis", "make_basis", "monomial_exponents", "renormalize_basis"]

#: LSST's threshold below which a basis sum counts as zero (single-precision epsilon).
_SUM_EPS = float(np.finfo(np.float32).eps)


def monomial_exponents(degree: int) -> list[tuple[int, int]]:
    """Exponents ``(p, q)`` of ``x**p * y**q`` of total degree <= ``degree``.

    The order is afw ``PolynomialFunction2``'s: ``1, x, y, x², xy, y², x³, ...``.
    """
    return [(n - j, j) for n in range(degree + 1) for j in range(n + 1)]


def alard_lupton_basis(
    half_width: int, sigmas: Sequence[float], degrees: Sequence[int]
) -> np.ndarray:
    """Raw (not yet renormalised) Alard–Lupton kernels on a ``(2h+1)²`` stamp.

    For each Gaussian ``G_g`` (circular, unit integral, ``sigma_g``) and each monomial of total
    degree <= ``degrees[g]`` in ``x = u/h, y = v/h`` (``u, v`` pixel offsets from the centre),
    the kernel is ``G_g(u, v) * x**p * y**q``.

    Parameters
    ----------
    half_width
        ``h = kernel_size // 2``; the stamp is ``2h+1`` pixels wide.
    sigmas, degrees
        One sigma (pixels) and one polynomial degree per Gaussian.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_basis, 2h+1, 2h+1)``, float64, indexed ``[i, v + h, u + h]``.
    """
    if len(sigmas) != len(degrees):
        raise ValueError(f"{len(sigmas)} sigmas but {len(degrees)} degrees")
    h = int(half_width)
    if h < 1:
        raise ValueError(f"half_width must be >= 1, got {half_width}")
    offs = np.arange(-h, h + 1, dtype=float)
    v, u = np.meshgrid(offs, offs, indexing="ij")
    x, y = u / h, v / h
    kernels = []
    for sigma, degree in zip(sigmas, degrees, strict=True):
        g = np.exp(-(u * u + v * v) / (2.0 * sigma * sigma)) / (2.0 * np.pi * sigma * sigma)
        for p, q in monomial_exponents(int(degree)):
            kernels.append(g * x**p * y**q)
    return np.array(kernels)


def renormalize_basis(basis: np.ndarray) -> np.ndarray:
    """LSST ``renormalizeKernelList``: the first kernel carries the sum, the rest sum to zero.

    ``B_0`` is scaled to unit sum. Every later kernel with a non-negligible sum is divided by its
    sum and has ``B_0`` subtracted (so it sums to zero); then each later kernel is scaled to unit
    L2 norm. A kernel ``sum_i a_i B_i`` therefore has sum ``a_0``.
    """
    out = np.array(basis, dtype=float, copy=True)
    s0 = out[0].sum()
    if abs(s0) <= _SUM_EPS:
        raise ValueError("the first basis kernel sums to zero and cannot carry the kernel sum")
    out[0] /= s0
    for i in range(1, len(out)):
        s = out[i].sum()
        if abs(s) > _SUM_EPS:
            out[i] = out[i] / s - out[0]
        norm = np.sqrt((out[i] ** 2).sum())
        if norm > 0:
            out[i] /= norm
    return out


def make_basis(kernel_size: int, sigmas: Sequence[float], degrees: Sequence[int]) -> np.ndarray:
    """Renormalised Alard–Lupton basis of ``kernel_size`` (27 kernels with LSST defaults)."""
    return renormalize_basis(alard_lupton_basis(kernel_size // 2, sigmas, degrees))
