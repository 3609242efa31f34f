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

Convolutions are FFT based on overlapping tiles (overlap-save), in float32 by default; the tiles
are processed on a small thread pool (the FFTs and the compiled loops release the GIL). The FFTs
are pocketfft's, built for this CPU (:mod:`warping.psfmatch._fft`), or scipy's binding of it when
no C++ compiler is available. The mask is OR-dilated by runs along rows, then by a sliding OR
along columns, which also sets the non-finite/NO_DATA footprint and the border.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft

from warping.masks import MaskPlanes
from warping.psfmatch import _fft
from warping.psfmatch._pmlib import BandCombiner, BandSummer, dilate_band, gather, multiply
from warping.psfmatch.solve import SpatialKernel, chebyshev_1d, term_exponents

try:  # scipy's pocketfft binding takes output buffers (the public functions always allocate)
    from scipy.fft._pocketfft import pypocketfft as _pfft
except ImportError:  # pragma: no cover - other scipy layouts
    _pfft = None

logger = logging.getLogger(__name__)

__all__ = [
    "ConvolutionInfo",
    "TileSpectra",
    "clear_spectra",
    "clear_workspaces",
    "convolve_spatial",
    "dilate_mask",
    "or_dilate",
    "plan_tile_spectra",
    "tile_spectra",
]


@dataclass(frozen=True)
class ConvolutionInfo:
    """Diagnostics of :func:`convolve_spatial`."""

    variance_rank: int
    variance_rel_error: float  # max sampled relative L1 error of the K^2 approximation
    n_tiles: int
    fft_shape: tuple[int, int] = (0, 0)  # (rows, columns) of each tile's FFT


def or_dilate(mask: np.ndarray, half_width: int) -> np.ndarray:
    """Bitwise OR of ``mask`` over the ``(2h+1)²`` square around each pixel (zeros outside).

    Works on integer (at most 32-bit) and boolean arrays; every bit plane is dilated at once.
    """
    if half_width <= 0:
        return mask.copy()
    if mask.dtype.itemsize > 4:
        raise ValueError(f"or_dilate supports masks of at most 32 bits, got {mask.dtype}")
    dummy = np.zeros((1, 1), np.float32)
    out = np.empty(mask.shape, np.int32)
    dilate_band(_int32_mask(mask), dummy, dummy, False, 0, int(half_width), False, 0,
                mask.shape[0], out)  # fmt: skip
    return out != 0 if mask.dtype == np.bool_ else out.astype(mask.dtype, copy=False)


def dilate_mask(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    half_width: int,
    no_data: int,
    *,
    workers: int = 1,
) -> np.ndarray:
    """The output mask of :func:`convolve_spatial` for a kernel of half-width ``half_width``.

    OR over the ``(2h+1)²`` square, non-finite image/variance pixels counting as ``no_data``,
    and a border of ``h`` pixels set to ``no_data`` alone. It depends only on the kernel size,
    so it can be computed while the kernel is being fitted and passed as ``dilated_mask``.
    """
    if image.shape != mask.shape or variance.shape != mask.shape or mask.ndim != 2:
        raise ValueError("image, variance and mask must be 2-D arrays of one shape")
    _check_mask_dtype(mask)
    mask_in = _int32_mask(mask)
    image, variance = _float_pair(image, variance)
    height = mask.shape[0]
    out = np.empty(mask.shape, dtype=np.int32)
    bands = np.linspace(0, height, min(height, 4 * max(1, workers)) + 1).astype(int)

    def band(r0: int, r1: int) -> None:
        dilate_band(mask_in, image, variance, True, int(no_data), int(half_width), True, r0, r1,
                    out)  # fmt: skip

    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            jobs = [pool.submit(band, int(a), int(b)) for a, b in itertools.pairwise(bands)]
            for job in jobs:
                job.result()
    else:
        band(0, height)
    return out


def _rows_contiguous(a: np.ndarray) -> np.ndarray:
    """``a``, or a C-ordered copy when its rows are not contiguous (the compiled loops take a
    row stride but need unit stride along a row)."""
    if a.ndim == 2 and a.shape[1] > 1 and a.strides[1] != a.itemsize:
        return np.ascontiguousarray(a)
    return a


def _check_mask_dtype(mask: np.ndarray) -> None:
    """Raise ValueError unless ``mask`` holds integer (or bool) bit planes of at most 32 bits."""
    if np.dtype(mask.dtype).itemsize > 4 or mask.dtype.kind not in "iub":
        raise ValueError(f"mask must be an integer array of at most 32 bits, got {mask.dtype}")


def _int32_mask(mask: np.ndarray) -> np.ndarray:
    """``mask`` as native int32 with contiguous rows (bool and narrower integer masks are
    widened, bit patterns kept)."""
    m = mask.view(np.uint8) if mask.dtype == np.bool_ else mask
    return _rows_contiguous(m if m.dtype == np.dtype(np.int32) else m.astype(np.int32))


def _float_pair(image: np.ndarray, variance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image and variance in one native float dtype (float32 when both are, else float64) with
    contiguous rows."""
    f32 = np.dtype(np.float32)
    dt = f32 if image.dtype == variance.dtype == f32 else np.dtype(np.float64)
    return (_rows_contiguous(image.astype(dt, copy=False)),
            _rows_contiguous(variance.astype(dt, copy=False)))  # fmt: skip


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


#: Largest FFT length tried per axis (longer transforms fall out of cache and get slower).
_MAX_FFT = 800
#: Fixed cost of one tile (allocations, calls) in units of ``pixel * log2(pixels)`` of its FFT.
_TILE_OVERHEAD = 1.0e6


@functools.lru_cache(maxsize=64)
def _tile_grid(
    height: int, width: int, h: int, tile: int | None, workers: int
) -> tuple[int, int, int, int, int, int]:
    """``(rows of tiles, columns of tiles, tile height, tile width, FFT rows, FFT columns)``.

    The image is split into equal tiles whose FFT (tile + ``2h`` halo, padded to a fast length)
    costs least in total, counting the tiles each of ``workers`` threads runs in turn.
    """

    def shape(n_y: int, n_x: int) -> tuple[int, int, int, int]:
        th, tw = -(-height // n_y), -(-width // n_x)
        return (th, tw, sfft.next_fast_len(th + 2 * h, real=True),
                sfft.next_fast_len(tw + 2 * h, real=True))  # fmt: skip

    if tile is not None:
        n_y, n_x = -(-height // tile), -(-width // tile)
        return (n_y, n_x, *shape(n_y, n_x))
    best: tuple[float, int, int] | None = None
    for n_y in range(1, max(1, height // max(32, 2 * h)) + 1):
        th = -(-height // n_y)
        if th + 2 * h > _MAX_FFT and n_y < height:
            continue
        for n_x in range(1, max(1, width // max(32, 2 * h)) + 1):
            tw = -(-width // n_x)
            if tw + 2 * h > _MAX_FFT and n_x < width:
                continue
            _, _, fy, fx = shape(n_y, n_x)
            per_tile = fy * fx * math.log2(max(2, fy * fx)) + _TILE_OVERHEAD
            cost = -(-(n_y * n_x) // workers) * per_tile
            if best is None or cost < best[0]:
                best = (cost, n_y, n_x)
            if tw + 2 * h < 4 * h:
                break
        if th + 2 * h < 4 * h:
            break
    assert best is not None
    return (best[1], best[2], *shape(best[1], best[2]))


#: Output rows per band of the row pass + combination (their buffers stay in the L2 cache).
_BAND_ROWS = 32


class _Workspace:
    """Per-thread FFT buffers for one tile shape (reused across tiles and calls)."""

    def __init__(self, key: tuple[int, int, int, int, int, int, str]) -> None:
        fy, fx, nt, n_a, rank, th, dt = key
        real, cplx = np.dtype(dt), np.result_type(np.dtype(dt), np.complex64)
        nc = fx // 2 + 1
        self.buf_i = np.zeros((fy, fx), real)
        self.buf_v = np.zeros((fy, fx), real)
        self.spec_i = np.empty((fy, nc), cplx)
        self.spec_v = np.empty((fy, nc), cplx)
        self.prod = np.empty((nt, fy, nc), cplx)
        self.prod_v = np.empty((rank, fy, nc), cplx)
        band = min(th, _BAND_ROWS)
        self.acc = np.empty((n_a, band, nc), cplx)
        self.rows_i = np.empty((n_a, band, fx), real)
        self.rows_v = np.empty((rank, band, fx), real)


_WS_LOCK = threading.Lock()
_WS_CACHE: dict[tuple[int, int, int, int, int, int, str], list[_Workspace]] = {}
#: Workspaces kept per tile shape between calls (one per worker thread is enough).
_WS_KEEP = 4


def _acquire(key: tuple[int, int, int, int, int, int, str]) -> _Workspace:
    """A free workspace for ``key`` (buffers are large: reusing them avoids fresh pages)."""
    with _WS_LOCK:
        free = _WS_CACHE.get(key)
        if free:
            return free.pop()
    return _Workspace(key)


def _release(key: tuple[int, int, int, int, int, int, str], ws: _Workspace) -> None:
    with _WS_LOCK:
        if key not in _WS_CACHE:
            _WS_CACHE.clear()  # keep the buffers of the latest tile shape only
        free = _WS_CACHE.setdefault(key, [])
        if len(free) < _WS_KEEP:
            free.append(ws)


def clear_workspaces() -> None:
    """Free the FFT workspaces kept between calls (about 50 MB per worker thread for a 2k x 4k
    CCD); the next call allocates them again."""
    with _WS_LOCK:
        _WS_CACHE.clear()


_SPEC_LOCK = threading.Lock()
_SPEC_CACHE: dict[tuple[int, int, int, str], list[np.ndarray]] = {}


@dataclass
class TileSpectra:
    """Forward FFTs of every image and variance tile of one convolution.

    They do not depend on the kernel, so :func:`~warping.psfmatch.match_to_model` plans them
    (:func:`plan_tile_spectra`) and a second thread computes them (:meth:`fill`) while the
    kernel is being fitted; :func:`convolve_spatial` then takes each tile's spectra with
    :meth:`tile`. Each tile is claimed once, by whichever thread gets to it first: a convolution
    that starts before the second thread is done computes the remaining tiles itself instead of
    waiting. ``spec_i[n]`` / ``spec_v[n]`` belong to tile ``starts[n]``; ``grid`` is
    :func:`_tile_grid`'s answer for the image.
    """

    shape: tuple[int, int]
    half_width: int
    grid: tuple[int, int, int, int, int, int]
    starts: list[tuple[int, int]]
    spec_i: np.ndarray
    spec_v: np.ndarray
    released: bool = field(default=False, init=False)
    # (image, variance, int32 mask, NO_DATA bits) the tiles are gathered from
    _sources: tuple[np.ndarray, np.ndarray, np.ndarray, int] | None = field(
        default=None, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _claimed: list[bool] = field(default_factory=list, init=False, repr=False)
    _done: list[threading.Event] = field(default_factory=list, init=False, repr=False)
    _errors: dict[int, BaseException] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.starts)
        ready = self._sources is None  # spectra handed in already computed
        self._claimed = [ready] * n
        self._done = [threading.Event() for _ in range(n)]
        if ready:
            for event in self._done:
                event.set()

    def _claim(self, n: int) -> bool:
        with self._lock:
            if self._claimed[n]:
                return False
            self._claimed[n] = True
            return True

    def _compute(self, n: int, buf_i: np.ndarray, buf_v: np.ndarray) -> None:
        """Gather tile ``n`` into the scratch buffers and transform it (after a claim)."""
        try:
            assert self._sources is not None
            image, variance, mask_in, no_data = self._sources
            height, width = self.shape
            h = self.half_width
            _, _, th_max, tw_max, _, _ = self.grid
            ty, tx = self.starts[n]
            th, tw = min(th_max, height - ty), min(tw_max, width - tx)
            gather(image, variance, mask_in, no_data, ty - h, tx - h, th + 2 * h, tw + 2 * h,
                   buf_i, buf_v)  # fmt: skip
            compiled = _fft.available()
            _rfft2_into(buf_i, self.spec_i[n], compiled)
            _rfft2_into(buf_v, self.spec_v[n], compiled)
        except BaseException as exc:
            self._errors[n] = exc
            raise
        finally:
            self._done[n].set()

    def _scratch(self) -> tuple[np.ndarray, np.ndarray]:
        _, _, _, _, fy, fx = self.grid
        real = np.zeros(0, self.spec_i.dtype).real.dtype
        return np.zeros((fy, fx), real), np.zeros((fy, fx), real)

    def fill(self) -> TileSpectra:
        """Compute every tile not claimed yet, in order (the background thread's job)."""
        bufs: tuple[np.ndarray, np.ndarray] | None = None
        for n in range(len(self.starts)):
            if self._claim(n):
                bufs = bufs or self._scratch()
                self._compute(n, *bufs)
        return self

    def tile(
        self, n: int, buf_i: np.ndarray | None = None, buf_v: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Spectra of tile ``n``: computed here (in ``buf_i``/``buf_v`` scratch of the FFT
        shape) if no other thread has claimed it, else waited for."""
        if self.released:
            raise ValueError("these tile spectra were released; compute new ones")
        if self._claim(n):
            if buf_i is None or buf_v is None:
                buf_i, buf_v = self._scratch()
            self._compute(n, buf_i, buf_v)
        else:
            self._done[n].wait()
            if n in self._errors:
                raise RuntimeError(f"computing the spectra of tile {n} failed") from self._errors[n]
        return self.spec_i[n], self.spec_v[n]

    def release(self) -> None:
        """Hand the spectrum buffers back for the next convolution of this tile shape (once;
        the spectra must not be used afterwards). Tiles nobody has started are claimed here so
        that no thread writes into the buffers after they are handed back; tiles being computed
        are waited for."""
        for n in range(len(self.starts)):
            if self._claim(n):
                self._done[n].set()
        for event in self._done:
            event.wait()
        key = (*self.spec_i.shape[:3], self.spec_i.dtype.str)
        with _SPEC_LOCK:
            if self.released:
                return
            self.released = True
            if key not in _SPEC_CACHE:
                _SPEC_CACHE.clear()  # keep the buffers of the latest shape only
            _SPEC_CACHE[key] = [self.spec_i, self.spec_v]


def _spectrum_buffers(n: int, fy: int, nc: int, cplx: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    key = (n, fy, nc, cplx.str)
    with _SPEC_LOCK:
        cached = _SPEC_CACHE.pop(key, None)
    if cached is not None:
        return cached[0], cached[1]
    return np.empty((n, fy, nc), cplx), np.empty((n, fy, nc), cplx)


def clear_spectra() -> None:
    """Free the tile-spectrum buffers kept between calls."""
    with _SPEC_LOCK:
        _SPEC_CACHE.clear()


def plan_tile_spectra(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    half_width: int,
    no_data: int,
    *,
    tile: int | None = None,
    workers: int = 2,
    fft_dtype: type = np.float32,
) -> TileSpectra:
    """The tiles of ``image`` and ``variance`` and buffers for their spectra, none computed yet
    (:meth:`TileSpectra.fill` computes them; :meth:`TileSpectra.tile` one at a time).

    Bad inputs (NO_DATA, non-finite image or variance) are zeroed exactly as
    :func:`convolve_spatial` does; pass the result as its ``spectra`` with the same ``tile``,
    ``workers`` and ``fft_dtype``.
    """
    height, width = image.shape
    h = int(half_width)
    mask_in = _int32_mask(mask)
    image, variance = _float_pair(image, variance)
    grid = _tile_grid(height, width, h, tile, max(1, int(workers)))
    _, _, th_max, tw_max, fy, fx = grid
    starts = [(ty, tx) for ty in range(0, height, th_max) for tx in range(0, width, tw_max)]
    cplx = np.result_type(np.dtype(fft_dtype), np.complex64)
    spec_i, spec_v = _spectrum_buffers(len(starts), fy, fx // 2 + 1, cplx)
    sources = (image, variance, mask_in, int(no_data))
    return TileSpectra((height, width), h, grid, starts, spec_i, spec_v, sources)


def tile_spectra(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    half_width: int,
    no_data: int,
    *,
    tile: int | None = None,
    workers: int = 2,
    fft_dtype: type = np.float32,
) -> TileSpectra:
    """Gather and forward-transform every tile of ``image`` and ``variance`` (one thread):
    :func:`plan_tile_spectra` then :meth:`TileSpectra.fill`."""
    return plan_tile_spectra(
        image, variance, mask, half_width, no_data, tile=tile, workers=workers,
        fft_dtype=fft_dtype,
    ).fill()  # fmt: skip


def _rfft2_into(a: np.ndarray, out: np.ndarray, compiled: bool) -> np.ndarray:
    """Unnormalised 2-D real FFT of ``a`` written into ``out`` (``compiled``: with
    :mod:`warping.psfmatch._fft`, else scipy)."""
    if compiled:
        _fft.r2c(a, out, (0, 1))
        return out
    if _pfft is not None:
        return np.asarray(_pfft.r2c(a, (0, 1), True, 0, out, 1))
    out[...] = sfft.rfft2(a, workers=1)
    return out


def _ifft_columns_inplace(a: np.ndarray, compiled: bool) -> np.ndarray:
    """Inverse FFT along axis 1 (``1/n`` normalised), in place."""
    if compiled:
        _fft.c2c(a, a, (1,), False, 1.0 / a.shape[1])
        return a
    if _pfft is not None:
        return np.asarray(_pfft.c2c(a, (1,), False, 2, a, 1))
    return np.asarray(sfft.ifft(a, axis=1, workers=1, overwrite_x=True))


def _irfft_rows_into(a: np.ndarray, n: int, out: np.ndarray, compiled: bool) -> np.ndarray:
    """Inverse real FFT along the last axis (``1/n`` normalised) written into ``out``."""
    if compiled:
        _fft.c2r(a, out, -1, 1.0 / n)
        return out
    if _pfft is not None:
        return np.asarray(_pfft.c2r(a, (a.ndim - 1,), n, False, 2, out, 1))
    out[...] = sfft.irfft(a, n=n, axis=-1, workers=1)
    return out


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
    dilated_mask: np.ndarray | None = None,
    spectra: TileSpectra | None = None,
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
    tile
        Largest output tile of the overlap-save FFT (the image is cut into equal tiles);
        ``None`` picks the tiling whose FFTs cost least for this image.
    fft_dtype
        ``numpy.float32`` (default, fast) or ``numpy.float64``.
    variance_tolerance
        Relative L1 accuracy of the low-rank ``K^2`` used for the variance.
    workers
        Threads working on tiles (and on the mask) at once.
    dilated_mask
        The result of :func:`dilate_mask` for this kernel's half-width, if already computed
        (it is used, and returned, as the output mask).
    spectra
        The result of :func:`tile_spectra` for these arrays and this kernel's half-width, if
        already computed (its buffers are handed back for reuse afterwards).

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
    _check_mask_dtype(mask)
    height, width = image.shape
    h = kernel.half_width
    k = kernel.size
    no_data = int(mask_planes.bitmask("NO_DATA"))
    workers = max(1, int(workers))
    # the tiles are gathered here only when their spectra were not computed beforehand
    if spectra is None:
        image_f, variance_f = _float_pair(image, variance)
        mask_in = _int32_mask(mask)

    order = kernel.order
    exps = term_exponents(order)
    kt = kernel.term_kernels()
    ksums = kt.sum(axis=(1, 2))
    x0, y0 = xy0
    comps, wcoef, verr = _variance_components(
        kernel, (x0, x0 + width - 1), (y0, y0 + height - 1), variance_tolerance
    )
    rank = len(comps)
    grid = _tile_grid(height, width, h, tile, workers)
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
    ctype = np.complex64 if fft_dtype == np.float32 else np.complex128
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

    ws_key = (fy, fx, len(exps), order + 1, rank, th_max, np.dtype(fft_dtype).str)
    compiled = _fft.available()  # the compiled FFTs, else scipy's (decided once per call)
    sxs_all = np.arange(x0, x0 + width + tw_max)
    sys_all = np.arange(y0, y0 + height + th_max)

    def do_tile(n: int, ty: int, tx: int) -> None:
        th, tw = min(th_max, height - ty), min(tw_max, width - tx)
        ws = _acquire(ws_key)
        try:
            if spectra is None:
                gather(image_f, variance_f, mask_in, no_data, ty - h, tx - h, th + 2 * h,
                       tw + 2 * h, ws.buf_i, ws.buf_v)  # fmt: skip
                spec_i = _rfft2_into(ws.buf_i, ws.spec_i, compiled)
                spec_v = _rfft2_into(ws.buf_v, ws.spec_v, compiled)
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
                    _ifft_columns_inplace(prod[t : t + 1], compiled)
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
            for r0 in range(0, th, _BAND_ROWS):
                nr = min(_BAND_ROWS, th - r0)
                sum_band(2 * h + r0, r0, nr)
                _irfft_rows_into(ws.acc[:, :nr], fx, ws.rows_i[:, :nr], compiled)
                _irfft_rows_into(zv[:, 2 * h + r0 : 2 * h + r0 + nr], fx, ws.rows_v[:, :nr],
                                 compiled)  # fmt: skip
                combine_band(nr, r0, ty + r0)
        finally:
            _release(ws_key, ws)

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
    starts = [(ty, tx) for ty in range(0, height, th_max) for tx in range(0, width, tw_max)]
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
