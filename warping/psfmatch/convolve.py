"""Spatially varying convolution of image, variance and mask by a :class:`SpatialKernel`.

The kernel at output pixel ``x`` is ``K_x = sum_t T_t(x) K_t`` (``T_t = Tx_a(x) Ty_b(y)`` the
Chebyshev spatial terms, ``K_t`` fixed kernels), so the image is convolved once per spatial term
and the results are combined with the per-pixel term values, then divided by the per-pixel kernel
sum (LSST ``doNormalize``). This is exact: it equals evaluating and normalising the kernel at every
pixel. The 2-D inverse FFT is split into its column and row passes: ``Ty_b(y)`` commutes with the
row pass, so the ``(order+1)(order+2)/2`` column passes are summed per ``a`` before only
``order + 1`` row passes (3 instead of 6 for order 2), each over the output rows only.

The variance needs ``sum_u K_x(u)^2 V(x-u)``. ``K_x^2`` is sampled over the bbox and reduced
to its leading principal components ``E_p`` (SVD); ``V`` is convolved with each ``E_p`` and
combined with the exact projections ``w_p(x) = <K_x^2, E_p>``. The rank is the smallest that
represents every sampled ``K_x^2`` to a relative L1 error below ``variance_tolerance``, which
bounds the relative variance error for non-negative variance.

Convolutions are FFT based on overlapping tiles (overlap-save, :mod:`~warping.psfmatch.tiling`),
in float32 by default; the tiles are processed on a small thread pool (the FFTs and the compiled
loops release the GIL). The FFTs are pocketfft's, built for this CPU (:mod:`warping.psfmatch._fft`),
or scipy's public :mod:`scipy.fft` when no C++ compiler is available
(:mod:`~warping.psfmatch.fft_passes`). The output mask comes from
:func:`~warping.psfmatch.dilation.dilate_mask`; scratch buffers from a
:class:`~warping.psfmatch.workspace.ConvolutionWorkspace`.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

import warping.psfmatch._fft as _fft
from warping.masks import MaskPlanes
from warping.psfmatch._match_loops import BandCombiner, BandSummer, Window, gather, multiply
from warping.psfmatch.arrays import check_mask_dtype, float_pair, int32_mask
from warping.psfmatch.dilation import dilate_mask
from warping.psfmatch.fft_passes import ifft_columns_inplace, irfft_rows_into, rfft2_into
from warping.psfmatch.options import ConvolutionOptions
from warping.psfmatch.solve import SpatialKernel, chebyshev_1d, term_exponents
from warping.psfmatch.spectra import TileSpectra
from warping.psfmatch.tiling import tile_grid, tile_starts
from warping.psfmatch.workspace import BAND_ROWS, ConvolutionWorkspace, TileShape

logger = logging.getLogger(__name__)

__all__ = ["ConvolutionInfo", "convolve_spatial"]


@dataclass(frozen=True)
class ConvolutionInfo:
    """Diagnostics of :func:`convolve_spatial`."""

    variance_rank: int
    variance_rel_error: float  # max sampled relative L1 error of the K^2 approximation
    n_tiles: int
    fft_shape: tuple[int, int] = (0, 0)  # (rows, columns) of each tile's FFT


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
    ns = max(9, 2 * order + 3)
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


def convolve_spatial(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    xy0: tuple[int, int],
    kernel: SpatialKernel,
    mask_planes: MaskPlanes,
    options: ConvolutionOptions = ConvolutionOptions(),
    *,
    dilated_mask: np.ndarray | None = None,
    spectra: TileSpectra | None = None,
    workspace: ConvolutionWorkspace | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, ConvolutionInfo]:
    """Convolve a masked image by a spatially varying, per-pixel normalised kernel.

    Parameters
    ----------
    image, variance, mask
        Arrays of one shape; ``mask`` holds bit planes (at most 32 bits) described by
        ``mask_planes``.
    xy0
        Parent position of element ``[0, 0]`` (the kernel's spatial terms use parent pixels).
    kernel
        The spatially varying kernel.
    mask_planes
        Must contain ``NO_DATA``.
    options
        Tiling, FFT precision, variance accuracy and threads.
    dilated_mask
        The result of :func:`dilate_mask` for this kernel's half-width, if already computed
        (it is used, and returned, as the output mask).
    spectra
        The result of :func:`~warping.psfmatch.spectra.plan_tile_spectra` for these arrays,
        this kernel's half-width and ``options``, if planned beforehand (released afterwards:
        its buffers go back to its workspace).
    workspace
        Where the tile FFT buffers are taken from and handed back to, to be reused by the next
        convolution; ``None``: buffers of this call only (reused across its tiles).

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
    check_mask_dtype(mask)
    height, width = image.shape
    h = kernel.half_width
    k = kernel.size
    no_data = int(mask_planes.bitmask("NO_DATA"))
    workers = options.threads
    fft_dtype = np.dtype(options.fft_dtype)
    work = workspace if workspace is not None else ConvolutionWorkspace()
    # the tiles are gathered here only when their spectra were not computed beforehand
    if spectra is None:
        image_f, variance_f = float_pair(image, variance)
        mask_in = int32_mask(mask)

    order = kernel.order
    exps = term_exponents(order)
    kt = kernel.term_kernels()
    ksums = kt.sum(axis=(1, 2))
    x0, y0 = xy0
    comps, wcoef, verr = _variance_components(
        kernel, (x0, x0 + width - 1), (y0, y0 + height - 1), options.variance_tolerance
    )
    rank = len(comps)
    grid = tile_grid(height, width, h, options.tile, workers)
    _, _, th_max, tw_max, fy, fx = grid
    if spectra is not None and spectra.released:
        raise ValueError("these tile spectra were already used by a convolution; compute new ones")
    if spectra is not None and (
        spectra.shape != (height, width) or spectra.half_width != h or spectra.grid != grid
    ):
        raise ValueError(
            f"spectra were computed for a {spectra.shape} image with half-width "
            f"{spectra.half_width} and tiles {spectra.grid}, not {(height, width)}, {h}, {grid}"
        )
    ctype = options.complex_dtype
    # Kernel spectra: the padding rows are zero, so the row transforms cover the k rows only.
    fk = sfft.fft(sfft.rfft(kt.astype(fft_dtype), n=fx, axis=-1), n=fy, axis=-2, workers=workers)
    fe = sfft.fft(sfft.rfft(comps.astype(fft_dtype), n=fx, axis=-1), n=fy, axis=-2, workers=workers)
    fk, fe = fk.astype(ctype, copy=False), fe.astype(ctype, copy=False)
    if spectra is not None and spectra.spec_i.dtype != ctype:
        raise ValueError(f"spectra are {spectra.spec_i.dtype}, this convolution uses {ctype}")
    a_of_t = np.array([a for a, _ in exps], dtype=np.int64)
    b_of_t = np.array([b for _, b in exps], dtype=np.int64)
    # Kernel-sum coefficients in the separable (x, y) Chebyshev form: S[b, a] for T_a(x) T_b(y).
    smat = np.zeros((order + 1, order + 1))
    for (a, b), s in zip(exps, ksums, strict=True):
        smat[b, a] = s
    out_img = np.empty((height, width), dtype=np.float32)
    out_var = np.empty((height, width), dtype=np.float32)

    tile_shape = TileShape(fy, fx, len(exps), order + 1, rank, th_max, fft_dtype.str)
    compiled = _fft.available()  # the compiled FFTs, else scipy's (decided once per call)
    sxs_all = np.arange(x0, x0 + width + tw_max)
    sys_all = np.arange(y0, y0 + height + th_max)

    def do_tile(n: int, ty: int, tx: int) -> None:
        th, tw = min(th_max, height - ty), min(tw_max, width - tx)
        ws = work.take_tile_buffers(tile_shape)
        try:
            if spectra is None:
                window = Window(ty - h, tx - h, th + 2 * h, tw + 2 * h)
                gather(image_f, variance_f, mask_in, no_data, window, ws.buf_i, ws.buf_v)
                spec_i = rfft2_into(ws.buf_i, ws.spec_i, compiled)
                spec_v = rfft2_into(ws.buf_v, ws.spec_v, compiled)
            else:  # computed here unless a background thread has started this tile
                spec_i, spec_v = spectra.tile(n, ws.buf_i, ws.buf_v)
            xn, _ = kernel.normalized_xy(sxs_all[tx : tx + tw], 0.0)
            _, yn = kernel.normalized_xy(0.0, sys_all[ty : ty + th_max])
            tys = chebyshev_1d(yn, 2 * order).astype(np.float32)  # (2o+1, th_max)
            txs = chebyshev_1d(xn, 2 * order)  # (2o+1, tw)
            # Column passes: image per term, variance per component, each product transformed
            # right after it is formed, while it is still in cache (measured 4-16 % faster than
            # all products first; blocks of columns made pocketfft slower).
            for spec, kspec, prod in ((spec_i, fk, ws.prod), (spec_v, fe, ws.prod_v)):
                for t in range(len(kspec)):
                    multiply(spec, kspec[t : t + 1], prod[t : t + 1])
                    ifft_columns_inplace(prod[t : t + 1], compiled)
            z, zv = ws.prod, ws.prod_v
            tx_a = np.ascontiguousarray(txs[: order + 1], dtype=np.float32)
            sxk = (smat @ txs[: order + 1]).astype(np.float32)
            dxs = np.ascontiguousarray(np.einsum("pji,ix->pjx", wcoef, txs), dtype=np.float32)
            # Row passes and the per-pixel combination in bands of output rows: image Ty_b
            # summed per a then one row pass per a, variance one row pass per component.
            # (the compiled loops' arguments are checked once per tile, not per band)
            sum_band = BandSummer(z, tys, a_of_t, b_of_t, ws.acc)
            combine_band = BandCombiner(ws.rows_i, tx_a, ws.rows_v, 2 * h, tys, sxk, dxs, tx,
                                        out_mask, no_data, out_img, out_var)  # fmt: skip
            for r0 in range(0, th, BAND_ROWS):
                nr = min(BAND_ROWS, th - r0)
                sum_band(2 * h + r0, r0, nr)
                irfft_rows_into(ws.acc[:, :nr], fx, ws.rows_i[:, :nr], compiled)
                irfft_rows_into(zv[:, 2 * h + r0 : 2 * h + r0 + nr], fx, ws.rows_v[:, :nr],
                                 compiled)  # fmt: skip
                combine_band(nr, r0, ty + r0)
        finally:
            work.give_tile_buffers(tile_shape, ws)

    # The dilated mask (with the border and the footprint of bad pixels) comes first: the tiles
    # blank the pixels it marks NO_DATA.
    if dilated_mask is None:
        out_mask = dilate_mask(image, variance, mask, h, no_data, workers=workers)
    elif dilated_mask.shape != image.shape or dilated_mask.dtype != np.int32:
        raise ValueError(
            f"dilated_mask must be int32 of shape {image.shape}, got {dilated_mask.dtype} "
            f"{dilated_mask.shape}"
        )
    else:
        out_mask = dilated_mask
    starts = tile_starts(height, width, grid)
    # Last tile first: a background thread filling ``spectra`` works from the first one.
    tile_order = list(reversed(list(enumerate(starts))))
    try:
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                jobs = [pool.submit(do_tile, n, ty, tx) for n, (ty, tx) in tile_order]
                for job in jobs:
                    job.result()
        else:  # one usable thread (e.g. a Dask worker): no pool at all
            for n, (ty, tx) in tile_order:
                do_tile(n, ty, tx)
    finally:
        if spectra is not None:
            spectra.release()
    logger.debug(
        "Convolved %dx%d pixels with a %dx%d kernel in %d tiles of FFT %dx%d; variance rank %d "
        "(rel err %.2g)",
        width,
        height,
        k,
        k,
        len(starts),
        fy,
        fx,
        rank,
        verr,
    )
    return out_img, out_var, out_mask, ConvolutionInfo(rank, verr, len(starts), (fy, fx))
