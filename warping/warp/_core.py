"""Drive the compiled warping core (``_ckernel.c``): argument packing, threads, block map.

Arrays only, no WCS. Source positions come from a coarse grid of exact transform evaluations
(``gx``, ``gy``, local source pixel coordinates) and are interpolated bilinearly inside each grid
cell, independently per cell (no running accumulation, so a NaN node only spoils its own cells).

Grid layout along x: node ``k`` sits at destination column ``-1 + k*L`` for ``k < K-1`` and the
last node at ``W-1``; along y the nodes sit at ``origin_y + k*L`` (last one clipped the same way).
Column ``-1`` / row ``origin_y`` provide the positions needed by the relative-area term.

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

import numpy as np

from warping._threads import submit
from warping.warp._clib import CoreArgs, library

__all__ = ["BLOCK_ROWS", "MAP_BLOCK", "block_map", "warp_band"]

#: Destination rows per unit of work handed to a thread.
BLOCK_ROWS = 64
#: Source block size of :func:`block_map` (``1 << MAP_SHIFT`` pixels); must exceed the largest
#: kernel width (10). Must match ``RB_MAP_SHIFT`` in ``_ckernel.c``.
MAP_SHIFT = 4
MAP_BLOCK = 1 << MAP_SHIFT


def _ptr(a: np.ndarray) -> int:
    return int(a.ctypes.data)


def _unaliased(a: np.ndarray) -> np.ndarray:
    """``a`` (2-D, C-contiguous), or a copy whose rows are one cache line longer when the row
    length is a multiple of 512 bytes.

    With such strides (e.g. 2048-pixel float32 rows: 8 KiB) the rows of a kernel footprint all
    fall in the same few L1 cache sets and evict each other; the padded copy costs one pass over
    the array and makes the warp ~2x faster. Returns a view of the padded buffer (row stride
    ``a.shape[1] + 64 / itemsize`` elements).
    """
    row_bytes = a.shape[1] * a.itemsize
    if a.shape[0] < 8 or row_bytes % 512 != 0:
        return a
    extra = 64 // a.itemsize
    buf = np.empty((a.shape[0], a.shape[1] + extra), dtype=a.dtype)
    buf[:, : a.shape[1]] = a
    return buf[:, : a.shape[1]]


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


@functools.lru_cache(maxsize=8)
def _padded_table(table_bytes: bytes, shape: tuple[int, int]) -> np.ndarray:
    """Copy of a weight table with columns zero-padded to a multiple of 4 (vector path)."""
    table = np.frombuffer(table_bytes, dtype=np.float64).reshape(shape)
    width = 4 * (-(-shape[1] // 4))
    out = np.zeros((shape[0], width), dtype=np.float64)
    out[:, : shape[1]] = table
    return out


def warp_band(
    src_img: np.ndarray,
    src_var: np.ndarray,
    src_mask: np.ndarray,
    do_var: bool,
    mask_in: bool,
    mask_out: bool,
    nodes_x: np.ndarray,
    nodes_y: np.ndarray,
    gx: np.ndarray,
    gy: np.ndarray,
    ga: np.ndarray,
    step: int,
    origin_y: int,
    row_start: int,
    row_stop: int,
    out_img: np.ndarray,
    out_var: np.ndarray,
    out_mask: np.ndarray,
    kind: int,
    n: int,
    table: np.ndarray,
    mkind: int,
    mn: int,
    grow_bits: int,
    nodata_bits: int,
    pad_value: float,
    conserve_flux: bool,
    threads: int = 1,
) -> int:
    """Warp destination rows ``row_start .. row_stop-1`` on ``threads`` threads; good pixel count.

    ``src_img``/``src_var``/``out_img``/``out_var`` share one dtype (float32 or float64), masks are
    int32, grids float64 C-contiguous (checked). ``kind``/``n``/``table`` describe the image
    kernel (:func:`warping.warp._kernels.weight_table`), ``mkind``/``mn`` the mask kernel.
    ``grow_bits`` are OR'ed over the full image-kernel footprint (all bits when the mask kernel
    is the image kernel).
    """
    dtype = src_img.dtype
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"warp core supports float32/float64 images, got {dtype}")
    for name, arr in {"src_img": src_img, "src_var": src_var}.items():
        if arr.dtype != dtype or not arr.flags.c_contiguous:
            raise TypeError(f"{name} must be C-contiguous {dtype}, got {arr.dtype}")
    if src_mask.dtype != np.int32 or not src_mask.flags.c_contiguous:
        raise TypeError(f"src_mask must be C-contiguous int32, got {src_mask.dtype}")
    # outputs may be views with padded rows (e.g. a bbox inside a larger array)
    for name, arr, want in (
        ("out_img", out_img, dtype),
        ("out_var", out_var, dtype),
        ("out_mask", out_mask, np.dtype(np.int32)),
    ):
        if arr.dtype != want or arr.ndim != 2:
            raise TypeError(f"{name} must be a 2-D {want} array, got {arr.dtype}")
        _row_stride(arr)
    if do_var and out_var.shape != out_img.shape:
        raise ValueError(f"out_var shape {out_var.shape} != out_img shape {out_img.shape}")
    if mask_out and out_mask.shape != out_img.shape:
        raise ValueError(f"out_mask shape {out_mask.shape} != out_img shape {out_img.shape}")
    same = mkind == kind and mn == n
    full_bits = -1 if same else int(grow_bits)
    want_map = mask_in and mask_out and full_bits != 0
    nrows = row_stop - row_start
    parallel = threads > 1 and nrows > BLOCK_ROWS
    pool = ThreadPoolExecutor(max_workers=threads) if parallel else None
    try:
        # padded copies and the block map are independent passes over the source: overlap them
        fut_img = submit(pool, _unaliased, src_img)
        fut_var = submit(pool, _unaliased, src_var) if do_var else None
        fut_mask = submit(pool, _unaliased, src_mask) if mask_in else None
        fut_map = submit(pool, block_map, src_mask, full_bits) if want_map else None
        src_img = fut_img.result()
        if fut_var is not None:
            src_var = fut_var.result()
            if _row_stride(src_var) != _row_stride(src_img):  # tiny arrays are never padded
                src_var = np.ascontiguousarray(src_var)
                src_img = np.ascontiguousarray(src_img)
        if fut_mask is not None:
            src_mask = fut_mask.result()
        full_map = fut_map.result() if fut_map is not None else None
        grids = [np.ascontiguousarray(g, dtype=np.float64) for g in (nodes_x, nodes_y, gx, gy, ga)]
        nodes_x, nodes_y, gx, gy, ga = grids
        if gx.shape != (nodes_y.size, nodes_x.size) or gy.shape != gx.shape:
            raise ValueError(f"grid shape {gx.shape} != ({nodes_y.size}, {nodes_x.size})")
        if conserve_flux and ga.shape != gx.shape:
            raise ValueError(f"area grid shape {ga.shape} != {gx.shape}")
        hd, wd = out_img.shape
        if not 0 <= row_start <= row_stop <= hd:
            raise ValueError(f"rows {row_start}..{row_stop} outside 0..{hd}")

        use_map = False
        if full_map is not None and full_map.any():
            use_map = True
        elif full_map is not None:  # no such bit anywhere: the full-footprint OR is 0 everywhere
            full_bits = 0
        if full_map is None:
            full_map = np.zeros((1, 1), dtype=np.uint8)
        table = np.ascontiguousarray(table, dtype=np.float64)
        dtable = _padded_table(table.tobytes(), table.shape) if dtype == np.float32 else None
        tsum = np.ascontiguousarray(table.sum(axis=1))
        args = CoreArgs(
            src_img=_ptr(src_img),
            src_var=_ptr(src_var),
            src_mask=_ptr(src_mask),
            hs=src_img.shape[0],
            ws=src_img.shape[1],
            sstride=_row_stride(src_img),
            mstride=_row_stride(src_mask),
            do_var=int(bool(do_var)),
            mask_in=int(bool(mask_in)),
            mask_out=int(bool(mask_out)),
            nodes_x=_ptr(nodes_x),
            nnx=nodes_x.size,
            nodes_y=_ptr(nodes_y),
            nny=nodes_y.size,
            gx=_ptr(gx),
            gy=_ptr(gy),
            ga=_ptr(ga),
            step=int(step),
            origin_y=int(origin_y),
            out_img=_ptr(out_img),
            out_var=_ptr(out_var),
            out_mask=_ptr(out_mask),
            wd=wd,
            ostride=_row_stride(out_img),
            vstride=_row_stride(out_var),
            omstride=_row_stride(out_mask) if out_mask.size else 0,
            kind=int(kind),
            n=int(n),
            table=_ptr(table),
            dtable=_ptr(dtable) if dtable is not None else None,
            tsum=_ptr(tsum),
            tstride=dtable.shape[1] if dtable is not None else 0,
            rows=table.shape[0] - 2,
            mkind=int(mkind),
            mn=int(mn),
            full_bits=int(full_bits),
            nodata_bits=int(nodata_bits),
            pad_value=float(pad_value),
            conserve_flux=int(bool(conserve_flux)),
            full_map=_ptr(full_map),
            map_cols=full_map.shape[1],
            use_full_map=int(use_map),
        )
        lib = library()
        core = lib.rb_warp_rows_f32 if dtype == np.float32 else lib.rb_warp_rows_f64
        ref = ctypes.byref(args)
        keep = (src_img, src_var, src_mask, grids, out_img, out_var, out_mask, table, dtable, tsum)

        def run(rows: tuple[int, int]) -> int:
            scratch = np.empty(3 * nodes_x.size, dtype=np.float64)
            return int(core(ref, rows[0], rows[1], _ptr(scratch)))

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
