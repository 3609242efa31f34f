"""The compiled warping core: image, variance and mask of a block of destination rows in one pass.

Arrays only, no WCS. Source positions come from a coarse grid of exact transform evaluations
(``gx``, ``gy``, local source pixel coordinates) and are interpolated bilinearly inside each grid
cell, independently per cell (no running accumulation, so a NaN node only spoils its own cells).

Grid layout along x: node ``k`` sits at destination column ``-1 + k*L`` for ``k < K-1`` and the
last node at ``W-1``; along y the nodes sit at ``origin_y + k*L`` (last one clipped the same way).
Column ``-1`` / row ``origin_y`` provide the positions needed by the relative-area term.

Design (for speed and for compile time on a fresh clone, where the numba cache is empty):

* one compiled function per array dtype (the kernel half-width ``n`` is a run-time argument), no
  ``parallel=True`` (its parfor lowering dominated compile time) and no forced inlining; the
  function releases the GIL and :func:`warp_band` runs row blocks on a Python thread pool;
* the separable weights of a pixel are computed once (image and squared variance weights) and
  reused; mask footprints need only the tap range, not weights;
* the full-footprint mask OR (``grow_full_mask`` planes) is skipped wherever a coarse
  "any grow bit nearby" block map is zero (exact: the map covers every footprint of the block).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np

__all__ = ["BLOCK_ROWS", "MAP_BLOCK", "TILE_COLS", "TILE_ROWS", "block_map", "warp_band"]

#: LLVM fast-math flags: only re-association and FMA contraction, so sums pipeline and vectorise.
#: No ``nnan``/``ninf``: NaN and infinity keep their IEEE meaning (NaN inputs propagate,
#: validity tests on NaN positions still fail).
FASTMATH = {"reassoc", "contract"}

#: Destination tile walked at a time: keeps the source footprint of a tile in cache and TLB when
#: the warp rotates (a whole destination row would stride across every source row).
TILE_ROWS = 32
TILE_COLS = 64
#: Destination rows per unit of work handed to a thread (a multiple of ``TILE_ROWS``).
BLOCK_ROWS = 128
#: Source block size (``1 << MAP_SHIFT`` pixels) of :func:`block_map`; must exceed the largest
#: kernel half-width (5).
MAP_SHIFT = 4
MAP_BLOCK = 1 << MAP_SHIFT

_KIND_NEAREST = 0
_KIND_BILINEAR = 1


@numba.njit(cache=True, nogil=True)
def block_map(mask: np.ndarray, bits: int) -> np.ndarray:  # pragma: no cover - compiled
    """Coarse "bits nearby" map: ``out[R, C] = 1`` when ``mask & bits`` is nonzero anywhere in
    source block ``(R, C)`` (``MAP_BLOCK`` pixels square) or one of its 8 neighbours, else 0.

    Any kernel footprint (at most ``2 * 5`` taps, ``MAP_BLOCK > 5``) of a pixel with floor
    position in block ``(R, C)`` lies inside those 9 blocks, so a 0 proves its OR is 0.
    """
    h, w = mask.shape
    nby = (h + MAP_BLOCK - 1) // MAP_BLOCK
    nbx = (w + MAP_BLOCK - 1) // MAP_BLOCK
    blk = np.zeros((nby + 2, nbx + 2), dtype=np.uint8)
    for r in range(h):
        rb = r // MAP_BLOCK + 1
        for cb in range(nbx):
            c0 = cb * MAP_BLOCK
            c1 = min(c0 + MAP_BLOCK, w)
            acc = 0
            for c in range(c0, c1):
                acc |= mask[r, c]
            if acc & bits:
                blk[rb, cb + 1] = 1
    out = np.zeros((nby, nbx), dtype=np.uint8)
    for rb in range(nby):
        for cb in range(nbx):
            out[rb, cb] = (
                blk[rb, cb] | blk[rb, cb + 1] | blk[rb, cb + 2]
                | blk[rb + 1, cb] | blk[rb + 1, cb + 1] | blk[rb + 1, cb + 2]
                | blk[rb + 2, cb] | blk[rb + 2, cb + 1] | blk[rb + 2, cb + 2]
            )  # fmt: skip
    return out


@numba.njit(cache=True, nogil=True)
def _mask_footprint(
    src_mask: np.ndarray, mkind: int, mn: int, i0: int, j0: int, fx: float, fy: float
) -> int:  # pragma: no cover - compiled
    """OR of the mask over the mask kernel's footprint (its nonzero taps) at ``(i0+fx, j0+fy)``."""
    if mkind == _KIND_NEAREST:
        mxl = 0 if fx < 0.5 else 1
        mxh = mxl
        myl = 0 if fy < 0.5 else 1
        myh = myl
    elif mkind == _KIND_BILINEAR:
        mxl = 0
        mxh = 0 if fx == 0.0 else 1
        myl = 0
        myh = 0 if fy == 0.0 else 1
    else:
        mxl = mn - 1 if fx == 0.0 else 0
        mxh = mn - 1 if fx == 0.0 else 2 * mn - 1
        myl = mn - 1 if fy == 0.0 else 0
        myh = mn - 1 if fy == 0.0 else 2 * mn - 1
    mbx = i0 - (mn - 1)
    mby = j0 - (mn - 1)
    m = 0
    for b in range(myl, myh + 1):
        row = mby + b
        for a in range(mxl, mxh + 1):
            m |= src_mask[row, mbx + a]
    return m


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH)
def _warp_rows(
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
    full_bits: int,
    nodata_bits: int,
    pad_value: float,
    conserve_flux: bool,
    full_map: np.ndarray,
    use_full_map: bool,
) -> int:  # pragma: no cover - compiled
    """Warp destination rows ``row_start .. row_stop-1``; return the number of good pixels.

    Parameters follow :func:`warping.warp.warp_with_transform`; ``kind``/``n``/``table`` describe
    the image kernel, ``mkind``/``mn`` the mask kernel (see :mod:`warping.warp._kernels`).
    ``full_bits`` are the mask bits OR'ed over the full image-kernel footprint (the
    ``grow_full_mask`` bits, all bits when the mask kernel is the image kernel, 0 when the source
    has none of them). ``full_map`` (when ``use_full_map``) is :func:`block_map` of those bits:
    where it is 0 the full-footprint OR is known to be 0 and is skipped.
    """
    hs, ws = src_img.shape
    wd = out_img.shape[1]
    nk = 2 * n
    rows = table.shape[0] - 2
    same = mkind == kind and mn == n
    lanczos3 = kind == 2 and n == 3
    mkind_bilinear = mkind == _KIND_BILINEAR and not same
    do_full = mask_in and mask_out and full_bits != 0
    ncol = gx.shape[1]
    last_cell = ncol - 2
    nny = nodes_y.shape[0]
    wx = np.zeros(nk)
    wy = np.zeros(nk)
    wx2 = np.zeros(nk)
    wy2 = np.zeros(nk)
    colx = np.empty(ncol)
    coly = np.empty(ncol)
    cola = np.empty(ncol)
    good = 0
    ulo = n - 1.0
    uhi = ws - n
    vhi = hs - n
    for ja in range(row_start, row_stop, TILE_ROWS):
        jb = min(ja + TILE_ROWS, row_stop)
        for ia in range(0, wd, TILE_COLS):
            ib = min(ia + TILE_COLS, wd)
            klo = min(max((ia + 1) // step, 0), last_cell)
            khi = min(max((ib - 1 + 1) // step, 0), last_cell) + 2
            if khi > ncol:
                khi = ncol
            for j in range(ja, jb):
                # first stage: grid columns interpolated to row j
                ky = min(max((j - origin_y) // step, 0), nny - 2)
                ylo = nodes_y[ky]
                ty = (j - ylo) / (nodes_y[ky + 1] - ylo)
                for c in range(klo, khi):
                    if ty == 0.0:
                        colx[c] = gx[ky, c]
                        coly[c] = gy[ky, c]
                    elif ty == 1.0:
                        colx[c] = gx[ky + 1, c]
                        coly[c] = gy[ky + 1, c]
                    else:
                        colx[c] = gx[ky, c] + ty * (gx[ky + 1, c] - gx[ky, c])
                        coly[c] = gy[ky, c] + ty * (gy[ky + 1, c] - gy[ky, c])
                    if conserve_flux:
                        if ty == 0.0:
                            cola[c] = ga[ky, c]
                        elif ty == 1.0:
                            cola[c] = ga[ky + 1, c]
                        else:
                            cola[c] = ga[ky, c] + ty * (ga[ky + 1, c] - ga[ky, c])
                i = ia
                while i < ib:
                    k = min(max((i + 1) // step, 0), last_cell)
                    lo = int(nodes_x[k])
                    hi = int(nodes_x[k + 1])
                    stop = hi + 1 if k == last_cell else hi
                    if stop > ib:
                        stop = ib
                    inv = 1.0 / (hi - lo)
                    x0 = colx[k]
                    y0 = coly[k]
                    dx = (colx[k + 1] - x0) * inv
                    dy = (coly[k + 1] - y0) * inv
                    a0 = 1.0
                    da = 0.0
                    if conserve_flux:
                        a0 = cola[k]
                        da = (cola[k + 1] - a0) * inv
                    for ii in range(i, stop):
                        m = ii - lo
                        if m == 0:
                            u = x0
                            v = y0
                            area = a0
                        else:
                            u = x0 + m * dx
                            v = y0 + m * dy
                            area = a0 + m * da
                        # validity: the whole footprint lies inside the source (NaN fails too)
                        if not (u >= ulo and u < uhi and v >= ulo and v < vhi and area == area):
                            out_img[j, ii] = pad_value
                            if do_var:
                                out_var[j, ii] = np.inf
                            if mask_out:
                                out_mask[j, ii] = nodata_bits
                            continue
                        good += 1
                        i0 = int(u)  # u >= 0 here, so truncation is floor
                        j0 = int(v)
                        fx = u - i0
                        fy = v - j0
                        if lanczos3 and fx != 0.0 and fy != 0.0:
                            # hot path (default kernel, full footprint): weights in registers
                            tx = fx * rows
                            kx = min(int(tx), rows - 1)
                            tx -= kx
                            ty2 = fy * rows
                            ky2 = min(int(ty2), rows - 1)
                            ty2 -= ky2
                            x0w = table[kx, 0] + tx * (table[kx + 1, 0] - table[kx, 0])
                            x1w = table[kx, 1] + tx * (table[kx + 1, 1] - table[kx, 1])
                            x2w = table[kx, 2] + tx * (table[kx + 1, 2] - table[kx, 2])
                            x3w = table[kx, 3] + tx * (table[kx + 1, 3] - table[kx, 3])
                            x4w = table[kx, 4] + tx * (table[kx + 1, 4] - table[kx, 4])
                            x5w = table[kx, 5] + tx * (table[kx + 1, 5] - table[kx, 5])
                            y0w = table[ky2, 0] + ty2 * (table[ky2 + 1, 0] - table[ky2, 0])
                            y1w = table[ky2, 1] + ty2 * (table[ky2 + 1, 1] - table[ky2, 1])
                            y2w = table[ky2, 2] + ty2 * (table[ky2 + 1, 2] - table[ky2, 2])
                            y3w = table[ky2, 3] + ty2 * (table[ky2 + 1, 3] - table[ky2, 3])
                            y4w = table[ky2, 4] + ty2 * (table[ky2 + 1, 4] - table[ky2, 4])
                            y5w = table[ky2, 5] + ty2 * (table[ky2 + 1, 5] - table[ky2, 5])
                            sx = x0w + x1w + x2w + x3w + x4w + x5w
                            sy = y0w + y1w + y2w + y3w + y4w + y5w
                            scale = area / (sx * sy)
                            bx = i0 - 2
                            by = j0 - 2
                            r0 = src_img[by, bx:]
                            r1 = src_img[by + 1, bx:]
                            r2 = src_img[by + 2, bx:]
                            r3 = src_img[by + 3, bx:]
                            r4 = src_img[by + 4, bx:]
                            r5 = src_img[by + 5, bx:]
                            acc = (
                                y0w
                                * (
                                    x0w * r0[0]
                                    + x1w * r0[1]
                                    + x2w * r0[2]
                                    + x3w * r0[3]
                                    + x4w * r0[4]
                                    + x5w * r0[5]
                                )
                                + y1w
                                * (
                                    x0w * r1[0]
                                    + x1w * r1[1]
                                    + x2w * r1[2]
                                    + x3w * r1[3]
                                    + x4w * r1[4]
                                    + x5w * r1[5]
                                )
                                + y2w
                                * (
                                    x0w * r2[0]
                                    + x1w * r2[1]
                                    + x2w * r2[2]
                                    + x3w * r2[3]
                                    + x4w * r2[4]
                                    + x5w * r2[5]
                                )
                                + y3w
                                * (
                                    x0w * r3[0]
                                    + x1w * r3[1]
                                    + x2w * r3[2]
                                    + x3w * r3[3]
                                    + x4w * r3[4]
                                    + x5w * r3[5]
                                )
                                + y4w
                                * (
                                    x0w * r4[0]
                                    + x1w * r4[1]
                                    + x2w * r4[2]
                                    + x3w * r4[3]
                                    + x4w * r4[4]
                                    + x5w * r4[5]
                                )
                                + y5w
                                * (
                                    x0w * r5[0]
                                    + x1w * r5[1]
                                    + x2w * r5[2]
                                    + x3w * r5[3]
                                    + x4w * r5[4]
                                    + x5w * r5[5]
                                )
                            )
                            out_img[j, ii] = acc * scale
                            if do_var:
                                q0 = src_var[by, bx:]
                                q1 = src_var[by + 1, bx:]
                                q2 = src_var[by + 2, bx:]
                                q3 = src_var[by + 3, bx:]
                                q4 = src_var[by + 4, bx:]
                                q5 = src_var[by + 5, bx:]
                                a0w = x0w * x0w
                                a1w = x1w * x1w
                                a2w = x2w * x2w
                                a3w = x3w * x3w
                                a4w = x4w * x4w
                                a5w = x5w * x5w
                                accv = (
                                    y0w
                                    * y0w
                                    * (
                                        a0w * q0[0]
                                        + a1w * q0[1]
                                        + a2w * q0[2]
                                        + a3w * q0[3]
                                        + a4w * q0[4]
                                        + a5w * q0[5]
                                    )
                                    + y1w
                                    * y1w
                                    * (
                                        a0w * q1[0]
                                        + a1w * q1[1]
                                        + a2w * q1[2]
                                        + a3w * q1[3]
                                        + a4w * q1[4]
                                        + a5w * q1[5]
                                    )
                                    + y2w
                                    * y2w
                                    * (
                                        a0w * q2[0]
                                        + a1w * q2[1]
                                        + a2w * q2[2]
                                        + a3w * q2[3]
                                        + a4w * q2[4]
                                        + a5w * q2[5]
                                    )
                                    + y3w
                                    * y3w
                                    * (
                                        a0w * q3[0]
                                        + a1w * q3[1]
                                        + a2w * q3[2]
                                        + a3w * q3[3]
                                        + a4w * q3[4]
                                        + a5w * q3[5]
                                    )
                                    + y4w
                                    * y4w
                                    * (
                                        a0w * q4[0]
                                        + a1w * q4[1]
                                        + a2w * q4[2]
                                        + a3w * q4[3]
                                        + a4w * q4[4]
                                        + a5w * q4[5]
                                    )
                                    + y5w
                                    * y5w
                                    * (
                                        a0w * q5[0]
                                        + a1w * q5[1]
                                        + a2w * q5[2]
                                        + a3w * q5[3]
                                        + a4w * q5[4]
                                        + a5w * q5[5]
                                    )
                                )
                                out_var[j, ii] = accv * (scale * scale)
                            if mask_out:
                                mbits = 0
                                if mask_in:
                                    if do_full and (
                                        not use_full_map
                                        or full_map[j0 >> MAP_SHIFT, i0 >> MAP_SHIFT] != 0
                                    ):
                                        mfull = 0
                                        for b in range(6):
                                            for a in range(6):
                                                mfull |= src_mask[by + b, bx + a]
                                        mbits = mfull & full_bits
                                    if mkind_bilinear:
                                        mbits |= (
                                            src_mask[j0, i0]
                                            | src_mask[j0, i0 + 1]
                                            | src_mask[j0 + 1, i0]
                                            | src_mask[j0 + 1, i0 + 1]
                                        )
                                    elif not same:
                                        mbits |= _mask_footprint(
                                            src_mask, mkind, mn, i0, j0, fx, fy
                                        )
                                out_mask[j, ii] = mbits
                            continue
                        # one-axis weights and the nonzero tap range [xl, xh] / [yl, yh]
                        if kind == _KIND_BILINEAR:
                            wx[0] = 1.0 - fx
                            wx[1] = fx
                            wy[0] = 1.0 - fy
                            wy[1] = fy
                            xl = 0
                            xh = 0 if fx == 0.0 else 1
                            yl = 0
                            yh = 0 if fy == 0.0 else 1
                        elif kind == _KIND_NEAREST:
                            xl = 0 if fx < 0.5 else 1
                            xh = xl
                            yl = 0 if fy < 0.5 else 1
                            yh = yl
                            wx[0] = 1.0 - xl
                            wx[1] = 1.0 * xl
                            wy[0] = 1.0 - yl
                            wy[1] = 1.0 * yl
                        else:
                            tx = fx * rows
                            kx = min(int(tx), rows - 1)
                            tx -= kx
                            tyy = fy * rows
                            kyy = min(int(tyy), rows - 1)
                            tyy -= kyy
                            for a in range(nk):
                                t0 = table[kx, a]
                                wx[a] = t0 + tx * (table[kx + 1, a] - t0)
                                t1 = table[kyy, a]
                                wy[a] = t1 + tyy * (table[kyy + 1, a] - t1)
                            if fx == 0.0:
                                xl = n - 1
                                xh = n - 1
                            else:
                                xl = 0
                                xh = nk - 1
                            if fy == 0.0:
                                yl = n - 1
                                yh = n - 1
                            else:
                                yl = 0
                                yh = nk - 1
                        sx = 0.0
                        sy = 0.0
                        for a in range(nk):
                            sx += wx[a]
                            sy += wy[a]
                        scale = area / (sx * sy)
                        bx = i0 - (n - 1)
                        by = j0 - (n - 1)
                        acc = 0.0
                        for b in range(yl, yh + 1):
                            row = by + b
                            s = 0.0
                            for a in range(xl, xh + 1):
                                s += wx[a] * src_img[row, bx + a]
                            acc += wy[b] * s
                        out_img[j, ii] = acc * scale
                        if do_var:
                            for a in range(nk):
                                wx2[a] = wx[a] * wx[a]
                                wy2[a] = wy[a] * wy[a]
                            accv = 0.0
                            for b in range(yl, yh + 1):
                                row = by + b
                                s = 0.0
                                for a in range(xl, xh + 1):
                                    s += wx2[a] * src_var[row, bx + a]
                                accv += wy2[b] * s
                            out_var[j, ii] = accv * (scale * scale)
                        if mask_out:
                            mbits = 0
                            if mask_in:
                                if do_full and (
                                    not use_full_map
                                    or full_map[j0 >> MAP_SHIFT, i0 >> MAP_SHIFT] != 0
                                ):
                                    mfull = 0
                                    for b in range(yl, yh + 1):
                                        row = by + b
                                        for a in range(xl, xh + 1):
                                            mfull |= src_mask[row, bx + a]
                                    mbits = mfull & full_bits
                                if not same:
                                    mbits |= _mask_footprint(src_mask, mkind, mn, i0, j0, fx, fy)
                            out_mask[j, ii] = mbits
                    i = stop
    return good


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
    mtable: np.ndarray,
    grow_bits: int,
    nodata_bits: int,
    pad_value: float,
    conserve_flux: bool,
    threads: int = 1,
) -> int:
    """Warp destination rows ``row_start .. row_stop-1`` on ``threads`` threads; good pixel count.

    Arguments are those of :func:`_warp_rows` (``mtable`` is accepted for compatibility and not
    needed: mask footprints depend only on the tap range). Row blocks of :data:`BLOCK_ROWS` are
    handed to a thread pool; the compiled function releases the GIL.
    """
    del mtable
    same = mkind == kind and mn == n
    full_bits = -1 if same else int(grow_bits)
    use_map = False
    full_map = np.zeros((1, 1), dtype=np.uint8)
    if mask_in and mask_out and full_bits != 0:
        full_map = block_map(src_mask, int(full_bits))  # one pass over the mask
        if full_map.any():
            use_map = True
        else:  # no such bit anywhere: the full-footprint OR is 0 everywhere
            full_bits = 0
    args: tuple[Any, ...] = (
        src_img,
        src_var,
        src_mask,
        bool(do_var),
        bool(mask_in),
        bool(mask_out),
        nodes_x,
        nodes_y,
        gx,
        gy,
        ga,
        int(step),
        int(origin_y),
    )
    tail: tuple[Any, ...] = (
        out_img,
        out_var,
        out_mask,
        int(kind),
        int(n),
        table,
        int(mkind),
        int(mn),
        int(full_bits),
        int(nodata_bits),
        float(pad_value),
        bool(conserve_flux),
        full_map,
        use_map,
    )
    core: Any = _warp_rows
    nrows = row_stop - row_start
    if threads <= 1 or nrows <= BLOCK_ROWS:
        return int(core(*args, row_start, row_stop, *tail))
    blocks = [(r, min(r + BLOCK_ROWS, row_stop)) for r in range(row_start, row_stop, BLOCK_ROWS)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        goods = list(pool.map(lambda rb: int(core(*args, rb[0], rb[1], *tail)), blocks))
    return int(sum(goods))
