"""Alard–Lupton basis kernels: Gaussians times polynomials, renormalised as LSST does."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "SeparableBasis",
    "alard_lupton_basis",
    "make_basis",
    "make_separable_basis",
    "monomial_exponents",
    "renormalize_basis",
]

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
    return _renormalize(basis)[0]


def _renormalize(basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`renormalize_basis` and the matrix ``T`` with ``result = T @ basis`` (same steps)."""
    out = np.array(basis, dtype=float, copy=True)
    tr = np.eye(len(out))
    s0 = out[0].sum()
    if abs(s0) <= _SUM_EPS:
        raise ValueError("the first basis kernel sums to zero and cannot carry the kernel sum")
    out[0] /= s0
    tr[0] /= s0
    for i in range(1, len(out)):
        s = out[i].sum()
        if abs(s) > _SUM_EPS:
            out[i] = out[i] / s - out[0]
            tr[i] = tr[i] / s - tr[0]
        norm = np.sqrt((out[i] ** 2).sum())
        if norm > 0:
            out[i] /= norm
            tr[i] /= norm
    return out, tr


def make_basis(kernel_size: int, sigmas: Sequence[float], degrees: Sequence[int]) -> np.ndarray:
    """Renormalised Alard–Lupton basis of ``kernel_size`` (27 kernels with LSST defaults)."""
    return renormalize_basis(alard_lupton_basis(kernel_size // 2, sigmas, degrees))


@dataclass(frozen=True)
class SeparableBasis:
    """A kernel basis written through separable "raw" kernels.

    ``raw[j][v, u] = functions[iy[j], v] * functions[ix[j], u]`` and the basis is
    ``basis[i] = sum_j transform[i, j] * raw[j]``. Convolving with a separable kernel is a row
    pass then a column pass, which :func:`warping.psfmatch.solve.fit_spatial_kernel` uses to build
    the design matrix with a few matrix products instead of per-kernel FFTs.
    """

    basis: np.ndarray  # (n_basis, k, k)
    functions: np.ndarray  # (n_functions, k) 1-D factors, indexed by offset + h
    ix: np.ndarray  # (n_raw,) factor along x (columns) of raw kernel j
    iy: np.ndarray  # (n_raw,) factor along y (rows) of raw kernel j
    transform: np.ndarray  # (n_basis, n_raw)


def make_separable_basis(
    kernel_size: int, sigmas: Sequence[float], degrees: Sequence[int]
) -> SeparableBasis:
    """:func:`make_basis` together with its separable factorisation.

    Each raw Alard–Lupton kernel ``G_g(u, v) x**p y**q`` is ``f_{g,p}(u) f_{g,q}(v)`` with
    ``f_{g,p}(u) = exp(-u²/2σ_g²) (u/h)**p / sqrt(2πσ_g²)``; the renormalisation is linear, so the
    basis is ``transform @ raw`` with ``transform`` tracked through the same steps.
    """
    h = int(kernel_size) // 2
    u = np.arange(-h, h + 1, dtype=float)
    functions: list[np.ndarray] = []
    ix: list[int] = []
    iy: list[int] = []
    for sigma, degree in zip(sigmas, degrees, strict=True):
        g = np.exp(-u * u / (2.0 * sigma * sigma)) / np.sqrt(2.0 * np.pi * sigma * sigma)
        first = len(functions)
        functions.extend(g * (u / h) ** p for p in range(int(degree) + 1))
        for p, q in monomial_exponents(int(degree)):
            ix.append(first + p)
            iy.append(first + q)
    fun = np.array(functions)
    ix_a, iy_a = np.array(ix, dtype=np.int64), np.array(iy, dtype=np.int64)
    raw = fun[iy_a][:, :, None] * fun[ix_a][:, None, :]  # equals alard_lupton_basis to rounding
    basis, transform = _renormalize(raw)
    return SeparableBasis(basis, fun, ix_a, iy_a, transform)
