"""Drive the compiled warping core (``_ckernel.c``): argument packing, threads, block map.

Arrays only, no WCS. Source positions come from a coarse grid of exact transform evaluations
(``gx``, ``gy``, local source pixel coordinates) and are interpolated bilinearly inside each grid
cell, independently per cell (no running accumulation, so a NaN node only spoils its own cells).

Grid layout along x: node ``k`` sits at destination column ``-1 + k*L`` for ``k < K-1`` and the
last node at ``W-1``; along y the nodes sit at ``origin_y + k*L`` (last one clipped the same way).
Column ``-1`` / row ``origin_y`` provide the positions needed by the relative-area term.

:func:`warp_band` takes five frozen parameter objects (:class:`SourcePixels`,
:class:`PositionGrid`, :class:`WarpKernel`, :class:`OutputPixels`, :class:`PixelRules`);
:func:`_core_args` is the one place that packs them into the C struct.

Design: the C core releases the GIL (ctypes), so :func:`warp_band` hands row blocks to a thread
pool. float32 Lanczos data take an AVX2 vector path when the CPU has it (4 source floats widened
to float64 per instruction); the full-footprint mask OR (``grow_full_mask`` planes) is skipped
wherever a coarse "any grow bit nearby" block map is zero (exact: the map covers every footprint
of the block). Source rows whose length is a multiple of 512 bytes are copied to a padded
buffer first (cache-set aliasing).
"""

from __future__ import annotations

import ctypes
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from warping._threads import submit
from warping.row_padding import aliasing_rows, contiguous_rows, padded_copy
from warping.warp._clib import CoreArgs, library
from warping.warp._kernels import KernelSpec, weight_table

__all__ = [
    "BLOCK_ROWS",
    "MAP_BLOCK",
    "OutputPixels",
    "PixelRules",
    "PositionGrid",
    "SourcePixels",
    "WarpKernel",
    "block_map",
    "warp_band",
]

#: Destination rows per unit of work handed to a thread.
BLOCK_ROWS = 64
#: Source block size of :func:`block_map` (``1 << MAP_SHIFT`` pixels); must exceed the largest
#: kernel width (10). Must match ``RB_MAP_SHIFT`` in ``_ckernel.c``.
MAP_SHIFT = 4
MAP_BLOCK = 1 << MAP_SHIFT


def _ptr(a: np.ndarray) -> int:
    return int(a.ctypes.data)


def _unaliased(a: np.ndarray) -> np.ndarray:
    """``a`` (2-D), or a copy whose rows are one cache line longer when its row stride is a
    multiple of 512 bytes (:mod:`warping.row_padding`: the padded rows make the warp ~2x faster).

    Images read from FITS files already come with padded rows (no copy here).
    """
    return padded_copy(a) if aliasing_rows(a) else a


def _row_stride(a: np.ndarray) -> int:
    """Row stride of ``a`` in elements (rows must be contiguous)."""
    if (a.shape[1] > 1 and a.strides[1] != a.itemsize) or a.strides[0] % a.itemsize:
        raise TypeError(f"array rows must be contiguous, got strides {a.strides}")
    return a.strides[0] // a.itemsize


def block_map(mask: np.ndarray, bits: int) -> np.ndarray:
    """Coarse "bits nearby" map: ``out[R, C] = 1`` when ``mask & bits`` is nonzero anywhere in
    source block ``(R, C)`` (``MAP_BLOCK`` pixels square) or one of its 8 neighbours, else 0.

    Any kernel footprint (at most ``2 * 5`` taps, ``MAP_BLOCK > 10``) of a pixel with floor
    position in block ``(R, C)`` lies inside those 9 blocks, so a 0 proves its OR is 0.
    """
    m = np.asarray(mask)
    if m.dtype != np.int32 or m.ndim != 2 or m.strides[1] != 4:
        m = np.ascontiguousarray(m, dtype=np.int32)
    h, w = m.shape
    nby, nbx = -(-h // MAP_BLOCK), -(-w // MAP_BLOCK)
    out = np.zeros((nby, nbx), dtype=np.uint8)
    scratch = np.empty((nby + 2) * (nbx + 2), dtype=np.uint8)
    lib = library()
    lib.rb_block_map(_ptr(m), h, w, _row_stride(m), ctypes.c_int32(bits), _ptr(scratch), _ptr(out))
    return out


@dataclass(frozen=True)
class SourcePixels:
    """Source arrays of one shape: image and variance of one dtype (float32 or float64), int32 mask.

    ``variance``/``mask`` are placeholders (e.g. 1x1 zeros) when ``has_variance``/``has_mask`` is
    False; the core then never reads them.
    """

    image: np.ndarray
    variance: np.ndarray
    mask: np.ndarray
    has_variance: bool
    has_mask: bool

    def __post_init__(self) -> None:
        dtype = self.image.dtype
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"warp core supports float32/float64 images, got {dtype}")
        for name, arr in {"src_img": self.image, "src_var": self.variance}.items():
            if arr.dtype != dtype or not contiguous_rows(arr):
                raise TypeError(f"{name} must be a 2-D {dtype} array with contiguous rows")
        if self.mask.dtype != np.int32 or not contiguous_rows(self.mask):
            raise TypeError("src_mask must be a 2-D int32 array with contiguous rows")


@dataclass(frozen=True)
class PositionGrid:
    """Exact source positions at the nodes of the coarse destination grid (module docstring).

    ``gx``/``gy`` (and ``ga``, the relative area, when flux is conserved) have shape
    ``(nodes_y.size, nodes_x.size)``; ``step`` is the node spacing and ``origin_y`` the
    destination row of the first node row. Arrays are converted to C-contiguous float64.
    """

    nodes_x: np.ndarray
    nodes_y: np.ndarray
    gx: np.ndarray
    gy: np.ndarray
    ga: np.ndarray
    step: int
    origin_y: int

    def __post_init__(self) -> None:
        for name in ("nodes_x", "nodes_y", "gx", "gy", "ga"):
            arr = np.ascontiguousarray(getattr(self, name), dtype=np.float64)
            object.__setattr__(self, name, arr)
        if (
            self.gx.shape != (self.nodes_y.size, self.nodes_x.size)
            or self.gy.shape != self.gx.shape
        ):
            raise ValueError(
                f"grid shape {self.gx.shape} != ({self.nodes_y.size}, {self.nodes_x.size})"
            )


@dataclass(frozen=True)
class WarpKernel:
    """Image kernel (``kind``/``n`` and its weight table) and mask kernel of one warp.

    Build it with :meth:`from_specs`, which returns one shared, read-only value per pair of
    kernels (building the tables costs ~5 ms, as much as warping a small CCD).
    """

    kind: int
    n: int
    table: np.ndarray
    #: ``table`` with columns zero-padded to a multiple of 4 (float32 vector path)
    padded: np.ndarray
    #: row sums of ``table``
    tsum: np.ndarray
    mask_kind: int
    mask_n: int

    @classmethod
    def from_specs(cls, spec: KernelSpec, mask_spec: KernelSpec) -> WarpKernel:
        """Weight tables of image kernel ``spec``; ``mask_spec`` ORs the mask planes (built
        once per pair of kernels and process; the arrays are read-only)."""
        return _warp_kernel(spec, mask_spec)

    @property
    def same_for_mask(self) -> bool:
        """Whether the mask kernel is the image kernel."""
        return self.mask_kind == self.kind and self.mask_n == self.n


@functools.lru_cache(maxsize=32)
def _warp_kernel(spec: KernelSpec, mask_spec: KernelSpec) -> WarpKernel:
    table = np.ascontiguousarray(weight_table(spec.name), dtype=np.float64)
    padded = np.zeros((table.shape[0], 4 * (-(-table.shape[1] // 4))), dtype=np.float64)
    padded[:, : table.shape[1]] = table
    tsum = np.ascontiguousarray(table.sum(axis=1))
    for arr in (table, padded, tsum):
        arr.flags.writeable = False
    return WarpKernel(spec.kind, spec.n, table, padded, tsum, mask_spec.kind, mask_spec.n)


@dataclass(frozen=True)
class OutputPixels:
    """Destination arrays (image dtype = source dtype, int32 mask); views with padded rows are
    allowed. ``variance``/``mask`` may be placeholders when the source has no variance /
    ``has_mask`` is False."""

    image: np.ndarray
    variance: np.ndarray
    mask: np.ndarray
    has_mask: bool


@dataclass(frozen=True)
class PixelRules:
    """Mask and value rules: ``grow_bits`` are OR'ed over the full image-kernel footprint,
    ``nodata_bits`` mark pad pixels, whose image value is ``pad_value``; ``conserve_flux``
    multiplies by the relative area."""

    grow_bits: int
    nodata_bits: int
    pad_value: float
    conserve_flux: bool


def _check_outputs(src: SourcePixels, out: OutputPixels) -> None:
    # outputs may be views with padded rows (e.g. a bbox inside a larger array)
    dtype = src.image.dtype
    for name, arr, want in (
        ("out_img", out.image, dtype),
        ("out_var", out.variance, dtype),
        ("out_mask", out.mask, np.dtype(np.int32)),
    ):
        if arr.dtype != want or arr.ndim != 2:
            raise TypeError(f"{name} must be a 2-D {want} array, got {arr.dtype}")
        _row_stride(arr)
    if src.has_variance and out.variance.shape != out.image.shape:
        raise ValueError(f"out_var shape {out.variance.shape} != out_img shape {out.image.shape}")
    if out.has_mask and out.mask.shape != out.image.shape:
        raise ValueError(f"out_mask shape {out.mask.shape} != out_img shape {out.image.shape}")


def _core_args(
    src: SourcePixels,
    reading: tuple[np.ndarray, np.ndarray, np.ndarray],
    grid: PositionGrid,
    kernel: WarpKernel,
    out: OutputPixels,
    rules: PixelRules,
    full_bits: int,
    full_map: np.ndarray,
    use_map: bool,
) -> CoreArgs:
    """The C struct ``rb_args`` for these parameters (the only place that packs it).

    ``reading`` holds the arrays the core reads in place of ``src``'s (copies with padded rows,
    :func:`_unaliased`); ``full_bits`` the bits OR'ed over the full footprint; ``full_map`` the
    :func:`block_map` of those bits, used when ``use_map``. The caller keeps every array alive
    while the struct is in use.
    """
    img, var, msk = reading
    f32 = img.dtype == np.float32
    return CoreArgs(
        src_img=_ptr(img),
        src_var=_ptr(var),
        src_mask=_ptr(msk),
        hs=img.shape[0],
        ws=img.shape[1],
        sstride=_row_stride(img),
        mstride=_row_stride(msk),
        do_var=int(bool(src.has_variance)),
        mask_in=int(bool(src.has_mask)),
        mask_out=int(bool(out.has_mask)),
        nodes_x=_ptr(grid.nodes_x),
        nnx=grid.nodes_x.size,
        nodes_y=_ptr(grid.nodes_y),
        nny=grid.nodes_y.size,
        gx=_ptr(grid.gx),
        gy=_ptr(grid.gy),
        ga=_ptr(grid.ga),
        step=int(grid.step),
        origin_y=int(grid.origin_y),
        out_img=_ptr(out.image),
        out_var=_ptr(out.variance),
        out_mask=_ptr(out.mask),
        wd=out.image.shape[1],
        ostride=_row_stride(out.image),
        vstride=_row_stride(out.variance),
        omstride=_row_stride(out.mask) if out.mask.size else 0,
        kind=int(kernel.kind),
        n=int(kernel.n),
        table=_ptr(kernel.table),
        dtable=_ptr(kernel.padded) if f32 else None,
        tsum=_ptr(kernel.tsum),
        tstride=kernel.padded.shape[1] if f32 else 0,
        rows=kernel.table.shape[0] - 2,
        mkind=int(kernel.mask_kind),
        mn=int(kernel.mask_n),
        full_bits=int(full_bits),
        nodata_bits=int(rules.nodata_bits),
        pad_value=float(rules.pad_value),
        conserve_flux=int(bool(rules.conserve_flux)),
        full_map=_ptr(full_map),
        map_cols=full_map.shape[1],
        use_full_map=int(use_map),
    )


def warp_band(
    src: SourcePixels,
    grid: PositionGrid,
    kernel: WarpKernel,
    out: OutputPixels,
    rules: PixelRules,
    rows: tuple[int, int],
    threads: int = 1,
) -> int:
    """Warp destination rows ``rows[0] .. rows[1]-1`` on ``threads`` threads; good pixel count.

    Parameters
    ----------
    src, grid, kernel, out, rules
        Source pixels, source positions on the coarse grid, kernels, destination arrays and the
        mask/value rules (see each class).
    rows
        Destination row range ``(start, stop)``.
    threads
        Threads for the compiled core (row blocks of :data:`BLOCK_ROWS`).
    """
    _check_outputs(src, out)
    row_start, row_stop = rows
    full_bits = -1 if kernel.same_for_mask else int(rules.grow_bits)
    want_map = src.has_mask and out.has_mask and full_bits != 0
    nrows = row_stop - row_start
    parallel = threads > 1 and nrows > BLOCK_ROWS
    pool = ThreadPoolExecutor(max_workers=threads) if parallel else None
    try:
        # padded copies and the block map are independent passes over the source: overlap them
        fut_img = submit(pool, _unaliased, src.image)
        fut_var = submit(pool, _unaliased, src.variance) if src.has_variance else None
        fut_mask = submit(pool, _unaliased, src.mask) if src.has_mask else None
        fut_map = submit(pool, block_map, src.mask, full_bits) if want_map else None
        src_img, src_var, src_mask = fut_img.result(), src.variance, src.mask
        if fut_var is not None:
            src_var = fut_var.result()
            if _row_stride(src_var) != _row_stride(src_img):  # the core takes one stride for both
                src_var = padded_copy(src_var)
                src_img = padded_copy(src_img)
        if fut_mask is not None:
            src_mask = fut_mask.result()
        full_map = fut_map.result() if fut_map is not None else None
        if rules.conserve_flux and grid.ga.shape != grid.gx.shape:
            raise ValueError(f"area grid shape {grid.ga.shape} != {grid.gx.shape}")
        hd = out.image.shape[0]
        if not 0 <= row_start <= row_stop <= hd:
            raise ValueError(f"rows {row_start}..{row_stop} outside 0..{hd}")
        use_map = False
        if full_map is not None and full_map.any():
            use_map = True
        elif full_map is not None:  # no such bit anywhere: the full-footprint OR is 0 everywhere
            full_bits = 0
        if full_map is None:
            full_map = np.zeros((1, 1), dtype=np.uint8)
        # the padded views keep their parent buffers alive for as long as ``reading`` lives
        reading = (src_img, src_var, src_mask)
        args = _core_args(src, reading, grid, kernel, out, rules, full_bits, full_map, use_map)
        lib = library()
        core = lib.rb_warp_rows_f32 if src_img.dtype == np.float32 else lib.rb_warp_rows_f64
        ref = ctypes.byref(args)
        keep = (reading, grid, out, kernel, full_map)

        def run(block: tuple[int, int]) -> int:
            scratch = np.empty(3 * grid.nodes_x.size, dtype=np.float64)
            return int(core(ref, block[0], block[1], _ptr(scratch)))

        if pool is None:
            good = run((row_start, row_stop))
        else:
            blocks = [
                (r, min(r + BLOCK_ROWS, row_stop)) for r in range(row_start, row_stop, BLOCK_ROWS)
            ]
            good = sum(pool.map(run, blocks))
        del keep
        return int(good)
    finally:
        if pool is not None:
            pool.shutdown()
