"""Compiled loop of :meth:`warping.coadd_psf.WarpedPsf.compute_kernel_images` (numba).

Kept out of :mod:`warping.coadd_psf` so that importing it (every ``make-warp`` process does, for
``CoaddPsf``) does not import numba (~0.2 s); only evaluating warped PSF images does.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["_lanczos_taps", "_resample_lanczos_batch"]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _lanczos_taps(f: float, n: int, ang_s: np.ndarray, ang_c: np.ndarray, w: np.ndarray) -> float:
    """Lanczos-``n`` weights of taps ``a = -(n-1) .. n`` at fractional offset ``f``; their sum.

    ``L(a - f) = sinc(a - f) sinc((a - f) / n)`` with ``sin(pi (a - f)) = (-1)^(a+1) sin(pi f)``
    and ``sin(pi (a - f) / n)`` by angle addition from ``ang_s/ang_c = sin/cos(pi a / n)``, so
    two trigonometric calls serve all ``2n`` taps (values equal the direct formula to rounding).
    ``sin(pi f) = sin(n theta)`` comes from the Chebyshev recurrence in ``cos(theta)``.
    """
    theta = np.pi * f / n
    st = np.sin(theta)
    ct = np.cos(theta)
    # sin(pi f) = sin(n theta) by the recurrence sin(k t) = 2 cos(t) sin((k-1) t) - sin((k-2) t).
    s_prev, s_cur = 0.0, st
    for _ in range(n - 1):
        s_prev, s_cur = s_cur, 2.0 * ct * s_cur - s_prev
    spf = s_cur
    total = 0.0
    for k in range(2 * n):
        a = k - (n - 1)
        x = np.pi * (a - f)
        if abs(x) <= 1e-5:
            w[k] = 1.0
        else:
            sign = 1.0 if (a + 1) % 2 == 0 else -1.0
            w[k] = sign * spf * (ang_s[k] * ct - ang_c[k] * st) / (x * (x / n))
        total += w[k]
    return total


@numba.njit(cache=True, nogil=True, fastmath=True)
def _resample_lanczos_batch(
    src: np.ndarray,
    src_shape: np.ndarray,
    src_xy0: np.ndarray,
    start: np.ndarray,
    du: np.ndarray,
    dv: np.ndarray,
    half: np.ndarray,
    n: int,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Lanczos-``n`` resampling of one small source image per cell, zero outside it.

    Cell ``c``: output pixel ``(i, j)`` (``i, j < 2 half[c] + 1``) samples source parent
    position ``start[c] + i * dv[c] + j * du[c]`` (``du``/``dv``: source step per output column
    / row) from ``src[c, :h, :w]`` whose pixel ``[0, 0]`` is parent ``src_xy0[c]``. Weights are
    normalised by their sums per axis, as :func:`warping.coadd_psf.resample_zero_padded`.
    """
    wx = np.empty(2 * n)
    wy = np.empty(2 * n)
    taps = np.arange(-(n - 1), n + 1).astype(np.float64)
    ang_s = np.sin(np.pi * taps / n)
    ang_c = np.cos(np.pi * taps / n)
    for c in range(src.shape[0]):
        hs, ws = src_shape[c, 0], src_shape[c, 1]
        size = 2 * half[c] + 1
        for i in range(size):
            for j in range(size):
                u = start[c, 0] + i * dv[c, 0] + j * du[c, 0] - src_xy0[c, 0]
                v = start[c, 1] + i * dv[c, 1] + j * du[c, 1] - src_xy0[c, 1]
                i0 = int(np.floor(u))
                j0 = int(np.floor(v))
                sx = _lanczos_taps(u - i0, n, ang_s, ang_c, wx)
                sy = _lanczos_taps(v - j0, n, ang_s, ang_c, wy)
                acc = 0.0
                for ky in range(2 * n):
                    row = j0 + ky - (n - 1)
                    if row < 0 or row >= hs:
                        continue
                    part = 0.0
                    for kx in range(2 * n):
                        col = i0 + kx - (n - 1)
                        if 0 <= col < ws:
                            part += wx[kx] * src[c, row, col]
                    acc += wy[ky] * part
                out[c, i, j] = acc / (sx * sy)
