"""Shared numerics for PSF models: Gaussian sampling, Lanczos resampling, stamp geometry."""

from __future__ import annotations

import functools
import math

import numpy as np

from warping.geom import Box2I

__all__ = [
    "dirichlet_shift_matrix",
    "fourier_shift",
    "gaussian_samples",
    "lanczos_matrix",
    "odd_size",
    "stamp_offsets",
]


def odd_size(n: float) -> int:
    """Smallest odd integer >= ``n`` (at least 1)."""
    k = max(1, math.ceil(n))
    return k if k % 2 == 1 else k + 1


def stamp_offsets(x: float, y: float, size: int) -> tuple[np.ndarray, np.ndarray, Box2I]:
    """Pixel offsets ``(dx, dy)`` from ``(x, y)`` of a ``size``-square stamp centred on the nearest
    pixel, and the stamp's parent-pixel bbox. ``dx`` has shape ``(size,)`` (columns), ``dy`` rows.
    """
    half = size // 2
    cx = math.floor(x + 0.5)
    cy = math.floor(y + 0.5)
    bbox = Box2I(cx - half, cy - half, size, size)
    dx = np.arange(bbox.x0, bbox.x0 + size, dtype=float) - x
    dy = np.arange(bbox.y0, bbox.y0 + size, dtype=float) - y
    return dx, dy, bbox


def gaussian_samples(
    dx: np.ndarray, dy: np.ndarray, ixx: float, iyy: float, ixy: float
) -> np.ndarray:
    """Unnormalised 2-D Gaussian with moments ``(ixx, iyy, ixy)`` at offsets ``dy[:,None], dx``."""
    det = ixx * iyy - ixy * ixy
    if not det > 0:
        raise ValueError(f"Gaussian moments ({ixx}, {iyy}, {ixy}) are not positive definite")
    xx = dx[None, :]
    yy = dy[:, None]
    q = (iyy * xx * xx - 2.0 * ixy * xx * yy + ixx * yy * yy) / det
    return np.exp(-0.5 * q)


def lanczos_matrix(positions: np.ndarray, n_in: int, order: int = 5) -> np.ndarray:
    """Weights ``W[k, m]`` so that ``sum_m W[k, m] f[m]`` Lanczos-interpolates ``f`` (defined on
    integer positions ``0 .. n_in-1``, zero outside) at ``positions[k]``."""
    m = np.arange(n_in, dtype=float)
    t = positions[:, None] - m[None, :]
    w = np.sinc(t) * np.sinc(t / order)
    w[np.abs(t) >= order] = 0.0
    return w


@functools.lru_cache(maxsize=16)
def _toeplitz_index(n: int) -> np.ndarray:
    r = np.arange(n)
    return r[:, None] - r[None, :] + (n - 1)


def dirichlet_shift_matrix(n: int, shift: float, period: int) -> np.ndarray:
    """``M`` (n x n) with ``(M @ f)[r] = Σ_c D(r - c - shift) f[c]``: the band-limited (Fourier)
    shift by ``shift`` of ``f`` treated as periodic with odd ``period`` >= n (zero-extended up to
    it). ``D(t) = sin(πt) / (period · sin(πt / period))`` is the periodic sinc of that period."""
    if period % 2 != 1 or period < n:
        raise ValueError(f"period must be odd and >= {n}, got {period}")
    t = np.arange(-(n - 1), n, dtype=float) - shift  # every r - c - shift
    den = period * np.sin(np.pi * t / period)
    exact = np.abs(den) < 1e-300  # t is a multiple of the period: D = 1 (odd period)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.sin(np.pi * t) / den
    d[exact] = 1.0
    return np.asarray(d[_toeplitz_index(n)])


def fourier_shift(image: np.ndarray, fx: float, fy: float, pad: int = 0) -> np.ndarray:
    """``image`` moved by ``(fx, fy)`` pixels (+x = towards higher column index) with an exact
    sinc (Fourier phase) shift; same shape as ``image``.

    The shift is periodic over the transformed array: with ``pad = 0`` flux near one edge
    reappears at the other, which is harmless for images whose edges are ~0. ``pad`` zero pixels
    added on every side first (and cropped after) treat the image as zero outside instead.
    Odd-sized axes use the equivalent separable Dirichlet-kernel matrices (fast for PSF stamps).
    """
    h, w = image.shape
    if h % 2 == 1 and w % 2 == 1:
        my = dirichlet_shift_matrix(h, fy, h + 2 * pad)
        mx = dirichlet_shift_matrix(w, fx, w + 2 * pad)
        return np.asarray(my @ image @ mx.T)
    work = np.pad(image, pad) if pad > 0 else image
    hh, ww = work.shape
    phase = np.exp(
        -2j * np.pi * (np.fft.fftfreq(ww)[None, :] * fx + np.fft.fftfreq(hh)[:, None] * fy)
    )
    out = np.fft.ifft2(np.fft.fft2(work) * phase).real
    if pad > 0:
        out = out[pad:-pad, pad:-pad]
    return np.asarray(out)
