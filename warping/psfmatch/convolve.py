"""Spatially varying convolution of image, variance and mask by a :class:`SpatialKernel`.

The kernel at output pixel ``x`` is ``K_x = sum_t T_t(x) K_t`` (``T_t`` the Chebyshev spatial
terms, ``K_t`` fixed kernels), so the image is convolved once per spatial term (6 FFT
convolutions for order 2) and the results are combined with the per-pixel term values, then
divided by the per-pixel kernel sum (LSST ``doNormalize``). This is exact: it equals evaluating
and normalising the kernel at every pixel.

The variance needs ``sum_u K_x(u)^2 V(x-u)``. ``K_x^2`` is sampled over the bbox and reduced
to its leading principal components ``E_p`` (SVD); ``V`` is convolved with each ``E_p`` and
combined with the exact projections ``w_p(x) = <K_x^2, E_p>``. The rank is the smallest that
represents every sampled ``K_x^2`` to a relative L1 error below ``variance_tolerance``, which
bounds the relative variance error for non-negative variance.

Convolutions are FFT based on overlapping tiles (overlap-save), in float32 by default.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numba
import numpy as np
import scipy.fft as sfft

from warping.masks import MaskPlanes
from warping.psfmatch.solve import SpatialKernel, chebyshev_1d, term_exponents

logger = logging.getLogger(__name__)

__all__ = ["ConvolutionInfo", "convolve_spatial", "or_dilate"]


@dataclass(frozen=True)
class ConvolutionInfo:
    """Diagnostics of :func:`convolve_spatial`."""

    variance_rank: int
    variance_rel_error: float  # max sampled relative L1 error of the K^2 approximation
    n_tiles: int


@numba.njit(cache=True, parallel=True)
def _or_rows(a: np.ndarray, h: int, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[y, x] = OR(a[y, x-h : x+h+1])`` (van Herk / Gil-Werman, zeros outside)."""
    height, width = a.shape
    w = 2 * h + 1
    n = -(-(width + 2 * h) // w) * w
    for y in numba.prange(height):
        g = np.zeros(n, a.dtype)
        s = np.zeros(n, a.dtype)
        for i in range(n):
            j = i - h
            v = a[y, j] if 0 <= j < width else 0
            g[i] = v if i % w == 0 else (g[i - 1] | v)
        for i in range(n - 1, -1, -1):
            j = i - h
            v = a[y, j] if 0 <= j < width else 0
            s[i] = v if i % w == w - 1 else (s[i + 1] | v)
        for x in range(width):
            out[y, x] = s[x] | g[x + 2 * h]


@numba.njit(cache=True, parallel=True)
def _or_cols(a: np.ndarray, h: int, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[y, x] = OR(a[y-h : y+h+1, x])``: row-major sweeps over column blocks in parallel."""
    height, width = a.shape
    w = 2 * h + 1
    n = -(-(height + 2 * h) // w) * w
    block = 256
    nblocks = -(-width // block)
    for bi in numba.prange(nblocks):
        x0 = bi * block
        x1 = min(width, x0 + block)
        bw = x1 - x0
        g = np.zeros((n, bw), a.dtype)
        s = np.zeros((n, bw), a.dtype)
        for i in range(n):
            j = i - h
            inside = 0 <= j < height
            first = i % w == 0
            for x in range(bw):
                v = a[j, x0 + x] if inside else 0
                g[i, x] = v if first else (g[i - 1, x] | v)
        for i in range(n - 1, -1, -1):
            j = i - h
            inside = 0 <= j < height
            last = i % w == w - 1
            for x in range(bw):
                v = a[j, x0 + x] if inside else 0
                s[i, x] = v if last else (s[i + 1, x] | v)
        for y in range(height):
            for x in range(bw):
                out[y, x0 + x] = s[y, x] | g[y + 2 * h, x]


def or_dilate(mask: np.ndarray, half_width: int) -> np.ndarray:
    """Bitwise OR of ``mask`` over the ``(2h+1)²`` square around each pixel (zeros outside).

    Works on integer and boolean arrays; every bit plane is dilated at once.
    """
    if half_width <= 0:
        return mask.copy()
    src = mask.view(np.uint8) if mask.dtype == np.bool_ else np.ascontiguousarray(mask)
    if not src.any():
        return np.zeros_like(mask)
    rows = np.empty_like(src)
    _or_rows(src, int(half_width), rows)
    out = np.empty_like(src)
    _or_cols(rows, int(half_width), out)
    return out.view(np.bool_) if mask.dtype == np.bool_ else out


@numba.njit(cache=True, parallel=True)
def _combine(
    conv_i: np.ndarray,
    conv_v: np.ndarray,
    ty_t: np.ndarray,
    tx_t: np.ndarray,
    tys: np.ndarray,
    sx: np.ndarray,
    dx: np.ndarray,
    out_img: np.ndarray,
    out_var: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Per pixel: ``sum_t T_t conv_i[t] / ksum`` and ``sum_p w_p conv_v[p] / ksum²``.

    ``T_t(x, y) = ty_t[t, y] * tx_t[t, x]``; ``ksum = sum_b tys[b, y] * sx[b, x]``;
    ``w_p = sum_j tys[j, y] * dx[p, j, x]``. Inner loops run along x (vectorised).
    """
    nt, th, tw = conv_i.shape
    rank = conv_v.shape[0]
    nsb = sx.shape[0]
    nd = dx.shape[1]
    for y in numba.prange(th):
        img = np.zeros(tw)
        ksum = np.zeros(tw)
        var = np.zeros(tw)
        wp = np.empty(tw)
        for t in range(nt):
            cy = ty_t[t, y]
            for x in range(tw):
                img[x] += cy * tx_t[t, x] * conv_i[t, y, x]
        for b in range(nsb):
            cy = tys[b, y]
            for x in range(tw):
                ksum[x] += cy * sx[b, x]
        for p in range(rank):
            wp[:] = 0.0
            for j in range(nd):
                cy = tys[j, y]
                for x in range(tw):
                    wp[x] += cy * dx[p, j, x]
            for x in range(tw):
                var[x] += wp[x] * conv_v[p, y, x]
        for x in range(tw):
            out_img[y, x] = img[x] / ksum[x]
            out_var[y, x] = var[x] / (ksum[x] * ksum[x])


def _variance_components(
    kernel: SpatialKernel, x_range: tuple[float, float], y_range: tuple[float, float], tol: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Principal components ``E_p`` of ``K_x^2`` over the region and separable weight coefficients.

    Returns ``(components (r, k, k), coeffs (r, 2o+1, 2o+1), max relative L1 error)`` where
    ``w_p(x, y) = sum_{i,j} coeffs[p, j, i] T_i(x') T_j(y')`` exactly (degree 2o per axis).
    """
    order = kernel.order
    kt = kernel.term_kernels()
    k = kt.shape[-1]
    ns = max(5, 2 * order + 3)
    xs = np.linspace(x_range[0], x_range[1], ns)
    ys = np.linspace(y_range[0], y_range[1], ns)
    gx, gy = np.meshgrid(xs, ys)
    terms = kernel.spatial_terms(gx.ravel(), gy.ravel())  # (nt, S)
    sq = (np.tensordot(terms.T, kt, axes=(1, 0)) ** 2).reshape(len(terms.T), k * k)
    _, sv, vt = np.linalg.svd(sq, full_matrices=False)
    l1 = np.abs(sq).sum(axis=1)
    rank, err = len(sv), 0.0
    for r in range(1, len(sv) + 1):
        e = vt[:r]
        resid = sq - (sq @ e.T) @ e
        err = float((np.abs(resid).sum(axis=1) / l1).max())
        if err <= tol:
            rank = r
            break
    comps = vt[:rank]
    # Exact separable representation of w_p on Chebyshev nodes (degree 2*order per axis).
    deg = 2 * order
    nodes = np.cos(np.pi * (np.arange(deg + 1) + 0.5) / (deg + 1))  # in [-1, 1]
    d = kernel.domain
    xmin, xmax, ymin, ymax = d.x0 - 0.5, d.x1 + 0.5, d.y0 - 0.5, d.y1 + 0.5
    nx = 0.5 * (nodes + 1.0) * (xmax - xmin) + xmin
    ny = 0.5 * (nodes + 1.0) * (ymax - ymin) + ymin
    mx, my = np.meshgrid(nx, ny)  # [j (y), i (x)]
    nterms = kernel.spatial_terms(mx.ravel(), my.ravel())
    ksq = (np.tensordot(nterms.T, kt, axes=(1, 0)) ** 2).reshape(-1, k * k)
    wvals = (ksq @ comps.T).T.reshape(rank, deg + 1, deg + 1)  # [p, j, i]
    cx = chebyshev_1d(nodes, deg)  # (deg+1 poly, deg+1 node)
    inv = np.linalg.inv(cx.T)  # node values -> coefficients
    coeffs = np.einsum("ja,pab,ib->pji", inv, wvals, inv)
    return comps.reshape(rank, k, k), coeffs, err


#: FFT sizes tried for the tiles (5-smooth; larger ones were slower per pixel on 2 cores).
_FFT_SIZES = (64, 80, 96, 128, 160, 192, 256, 320, 384, 480, 512, 540, 576, 640, 720, 768)
#: Fixed cost of one tile in units of ``N² log2 N`` (fitted to timings of 256..768 tiles).
_TILE_OVERHEAD = 5.0e5


def _choose_fft_size(height: int, width: int, h: int) -> int:
    """The FFT size whose tiling of the image costs least (``n_tiles * (N² log2 N + c)``)."""

    def cost(n: int) -> float:
        t = n - 2 * h
        return float(-(-height // t) * -(-width // t) * (n * n * np.log2(n) + _TILE_OVERHEAD))

    return min((n for n in _FFT_SIZES if n > 4 * h), key=cost, default=_FFT_SIZES[-1])


def convolve_spatial(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    xy0: tuple[int, int],
    kernel: SpatialKernel,
    mask_planes: MaskPlanes,
    *,
    tile: int | None = None,
    fft_dtype: type = np.float32,
    variance_tolerance: float = 1e-3,
    workers: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, ConvolutionInfo]:
    """Convolve a masked image by a spatially varying, per-pixel normalised kernel.

    Parameters
    ----------
    image, variance, mask
        Arrays of one shape; ``mask`` holds bit planes described by ``mask_planes``.
    xy0
        Parent position of element ``[0, 0]`` (the kernel's spatial terms use parent pixels).
    kernel
        The spatially varying kernel.
    mask_planes
        Must contain ``NO_DATA``.
    tile
        Output tile size of the overlap-save FFT; ``None`` picks the FFT size (64-768) that
        minimises the estimated cost of tiling this image.
    fft_dtype
        ``numpy.float32`` (default, fast) or ``numpy.float64``.
    variance_tolerance
        Relative L1 accuracy of the low-rank ``K^2`` used for the variance.
    workers
        Threads for ``scipy.fft``.

    Returns
    -------
    image, variance, mask, info
        float32 image and variance, int32 mask, and diagnostics. Image ``sum K I / sum K``;
        variance ``sum K^2 V / (sum K)^2``; mask OR over the kernel square. Output pixels whose
        kernel footprint touches a non-finite or NO_DATA input are NaN / +inf with NO_DATA set,
        and a border of ``kernel.size // 2`` pixels is NaN / NO_DATA / +inf.
    """
    if image.shape != variance.shape or image.shape != mask.shape or image.ndim != 2:
        raise ValueError(
            f"image {image.shape}, variance {variance.shape} and mask {mask.shape} must be 2-D "
            "arrays of one shape"
        )
    height, width = image.shape
    h = kernel.half_width
    k = kernel.size
    no_data = mask_planes.bitmask("NO_DATA")
    img_in: np.ndarray = np.asarray(image, dtype=fft_dtype)
    var_in: np.ndarray = np.asarray(variance, dtype=fft_dtype)
    bad = ~np.isfinite(img_in) | ~np.isfinite(var_in) | ((mask & no_data) != 0)
    if bad.any():
        img_in = np.where(bad, 0, img_in).astype(fft_dtype, copy=False)
        var_in = np.where(bad, 0, var_in).astype(fft_dtype, copy=False)

    order = kernel.order
    exps = term_exponents(order)
    kt = kernel.term_kernels()
    ksums = kt.sum(axis=(1, 2))
    x0, y0 = xy0
    comps, wcoef, verr = _variance_components(
        kernel, (x0, x0 + width - 1), (y0, y0 + height - 1), variance_tolerance
    )
    rank = len(comps)
    if tile is None:
        n_fft = _choose_fft_size(height, width, h)
        tile = n_fft - 2 * h
    else:
        n_fft = sfft.next_fast_len(tile + 2 * h, real=True)
    ctype = np.complex64 if fft_dtype == np.float32 else np.complex128
    fk = sfft.rfft2(kt.astype(fft_dtype), s=(n_fft, n_fft), axes=(-2, -1)).astype(ctype)
    fe = sfft.rfft2(comps.astype(fft_dtype), s=(n_fft, n_fft), axes=(-2, -1)).astype(ctype)
    # Kernel-sum coefficients in the separable (x, y) Chebyshev form: S[b, a] for T_a(x) T_b(y).
    exp_a = np.array([a for a, _ in exps], dtype=np.int64)
    exp_b = np.array([b for _, b in exps], dtype=np.int64)
    smat = np.zeros((order + 1, order + 1))
    for (a, b), s in zip(exps, ksums, strict=True):
        smat[b, a] = s

    out_img = np.empty((height, width), dtype=np.float32)
    out_var = np.empty((height, width), dtype=np.float32)
    n_tiles = 0
    for ty in range(0, height, tile):
        th = min(tile, height - ty)
        for tx in range(0, width, tile):
            tw = min(tile, width - tx)
            n_tiles += 1
            # Input region with a halo of h pixels, zero outside the array.
            sy0, sy1 = max(0, ty - h), min(height, ty + th + h)
            sx0, sx1 = max(0, tx - h), min(width, tx + tw + h)
            buf_i = np.zeros((th + 2 * h, tw + 2 * h), dtype=fft_dtype)
            buf_v = np.zeros_like(buf_i)
            oy, ox = sy0 - (ty - h), sx0 - (tx - h)
            buf_i[oy : oy + sy1 - sy0, ox : ox + sx1 - sx0] = img_in[sy0:sy1, sx0:sx1]
            buf_v[oy : oy + sy1 - sy0, ox : ox + sx1 - sx0] = var_in[sy0:sy1, sx0:sx1]
            fi = sfft.rfft2(buf_i, s=(n_fft, n_fft), workers=workers)
            conv_i = sfft.irfft2(fi[None] * fk, s=(n_fft, n_fft), axes=(-2, -1), workers=workers)
            conv_i = conv_i[:, 2 * h : 2 * h + th, 2 * h : 2 * h + tw]
            fv = sfft.rfft2(buf_v, s=(n_fft, n_fft), workers=workers)
            conv_v = sfft.irfft2(fv[None] * fe, s=(n_fft, n_fft), axes=(-2, -1), workers=workers)
            conv_v = conv_v[:, 2 * h : 2 * h + th, 2 * h : 2 * h + tw]
            xn, _ = kernel.normalized_xy(np.arange(x0 + tx, x0 + tx + tw), 0.0)
            _, yn = kernel.normalized_xy(0.0, np.arange(y0 + ty, y0 + ty + th))
            tys = chebyshev_1d(yn, 2 * order)  # (2o+1, th)
            txs = chebyshev_1d(xn, 2 * order)  # (2o+1, tw)
            _combine(
                conv_i,
                conv_v,
                tys[exp_b],
                txs[exp_a],
                tys,
                smat @ txs[: order + 1],
                np.einsum("pji,ix->pjx", wcoef, txs),
                out_img[ty : ty + th, tx : tx + tw],
                out_var[ty : ty + th, tx : tx + tw],
            )

    mask32 = np.asarray(mask, dtype=np.int32)
    any_bad = bool(bad.any())
    # Dilate the bad-pixel map with the mask in one pass, through a bit no plane uses.
    present = int(np.bitwise_or.reduce(mask32, axis=None))
    used = set(mask_planes.bits.values()) | {b for b in range(31) if present >> b & 1}
    spare = next((b for b in range(30, -1, -1) if b not in used), None)
    touched = np.zeros(0, dtype=bool)
    if any_bad and spare is not None:
        out_mask = or_dilate(mask32 | (bad.astype(np.int32) << spare), h)
        touched = (out_mask >> spare & 1).astype(bool)
        out_mask &= ~np.int32(1 << spare)
    else:
        out_mask = or_dilate(mask32, h)
        if any_bad:
            touched = or_dilate(bad.view(np.uint8), h).view(bool)
    if any_bad:
        out_img[touched] = np.nan
        out_var[touched] = np.inf
        out_mask[touched] |= no_data
    # Border where the kernel does not fit: the edge pixel (NaN, NO_DATA, +inf).
    edge = np.zeros((height, width), dtype=bool)
    edge[: min(h, height)] = True
    edge[max(0, height - h) :] = True
    edge[:, : min(h, width)] = True
    edge[:, max(0, width - h) :] = True
    out_img[edge] = np.nan
    out_var[edge] = np.inf
    out_mask[edge] = no_data
    logger.debug(
        "Convolved %dx%d pixels with a %dx%d kernel in %d tiles; variance rank %d (rel err %.2g)",
        width,
        height,
        k,
        k,
        n_tiles,
        rank,
        verr,
    )
    return out_img, out_var, out_mask, ConvolutionInfo(rank, verr, n_tiles)
