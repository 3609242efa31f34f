"""The compiled warping core: image, variance and mask of one band of destination rows in one pass.

Arrays only, no WCS. Source positions come from a coarse grid of exact transform evaluations
(``gx``, ``gy``, local source pixel coordinates) and are interpolated bilinearly inside each grid
cell, independently per cell (no running accumulation, so a NaN node only spoils its own cells).

Grid layout along x: node ``k`` sits at destination column ``-1 + k*L`` for ``k < K-1`` and the
last node at ``W-1``; along y the nodes sit at ``origin_y + k*L`` (last one clipped the same way).
Column ``-1`` / row ``origin_y`` provide the positions needed by the relative-area term.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from warping.warp._kernels import _table_weights

__all__ = ["TILE_COLS", "TILE_ROWS", "warp_band"]

#: LLVM fast-math flags: only re-association and FMA contraction, so sums pipeline and vectorise.
#: No ``nnan``/``ninf``: NaN and infinity keep their IEEE meaning (NaN inputs propagate,
#: validity tests on NaN positions still fail).
FASTMATH = {"reassoc", "contract"}

#: Destination tile processed by one thread at a time: keeps the source footprint of a tile in
#: cache and TLB when the warp rotates (a whole destination row would stride across every
#: source row).
TILE_ROWS = 32
TILE_COLS = 64


@numba.njit(cache=True, inline="always")
def _lerp(a: float, b: float, t: float) -> float:  # pragma: no cover - compiled
    """Linear interpolation that is exact (and ignores the other end) at ``t == 0`` / ``t == 1``."""
    if t == 0.0:
        return a
    if t == 1.0:
        return b
    return a + t * (b - a)


@numba.njit(cache=True, inline="always")
def _cell(
    i: int, origin: int, step: int, nodes: np.ndarray
) -> tuple[int, float]:  # pragma: no cover
    """Grid cell index and fractional position of destination index ``i``."""
    k = (i - origin) // step
    last = nodes.shape[0] - 2
    if k > last:
        k = last
    if k < 0:
        k = 0
    lo = nodes[k]
    t = (i - lo) / (nodes[k + 1] - lo)
    return k, t


@numba.njit(cache=True, inline="always")
def _row_positions(
    j: int,
    origin_y: int,
    step: int,
    nodes_y: np.ndarray,
    gx: np.ndarray,
    gy: np.ndarray,
    colx: np.ndarray,
    coly: np.ndarray,
    c0: int,
    c1: int,
) -> None:  # pragma: no cover - compiled
    """Interpolate grid columns ``c0 .. c1-1`` to destination row ``j`` (first stage)."""
    k, t = _cell(j, origin_y, step, nodes_y)
    for c in range(c0, min(c1, gx.shape[1])):
        colx[c] = _lerp(gx[k, c], gx[k + 1, c], t)
        coly[c] = _lerp(gy[k, c], gy[k + 1, c], t)


@numba.njit(cache=True, inline="always", fastmath=FASTMATH)
def _pixel(
    u: float,
    v: float,
    area: float,
    j: int,
    i: int,
    src_img: np.ndarray,
    src_var: np.ndarray,
    src_mask: np.ndarray,
    do_var: bool,
    mask_in: bool,
    mask_out: bool,
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
    wx: np.ndarray,
    wy: np.ndarray,
    mwx: np.ndarray,
    mwy: np.ndarray,
) -> int:  # pragma: no cover - compiled
    """Compute destination pixel ``[j, i]`` from source position ``(u, v)``; 1 if good else 0."""
    hs, ws = src_img.shape
    # validity: the whole 2n x 2n footprint lies inside the source (NaN fails too)
    if not (u >= n - 1 and u < ws - n and v >= n - 1 and v < hs - n and area == area):
        out_img[j, i] = pad_value
        if do_var:
            out_var[j, i] = np.inf
        if mask_out:
            out_mask[j, i] = nodata_bits
        return 0
    i0 = int(math.floor(u))  # noqa: RUF046 (numba returns float)
    j0 = int(math.floor(v))  # noqa: RUF046
    fx = u - i0
    fy = v - j0
    nk = 2 * n
    xlo, xhi = _table_weights(kind, n, fx, wx, table)
    ylo, yhi = _table_weights(kind, n, fy, wy, table)
    sx = 0.0
    for a in range(nk):
        sx += wx[a]
    sy = 0.0
    for b in range(nk):
        sy += wy[b]
    scale = area / (sx * sy)
    bx = i0 - (n - 1)
    by = j0 - (n - 1)
    if xlo == 0 and ylo == 0 and xhi == nk - 1 and yhi == nk - 1:
        # full footprint: constant trip counts (n is a compile-time literal) unroll and pipeline
        acc = 0.0
        for b in range(nk):
            row = by + b
            s = 0.0
            for a in range(nk):
                s += wx[a] * src_img[row, bx + a]
            acc += wy[b] * s
        out_img[j, i] = acc * scale
        if do_var:
            accv = 0.0
            for b in range(nk):
                row = by + b
                s = 0.0
                for a in range(nk):
                    s += wx[a] * wx[a] * src_var[row, bx + a]
                accv += wy[b] * wy[b] * s
            out_var[j, i] = accv * scale * scale
    else:
        acc = 0.0
        for b in range(ylo, yhi + 1):
            row = by + b
            s = 0.0
            for a in range(xlo, xhi + 1):
                s += wx[a] * src_img[row, bx + a]
            acc += wy[b] * s
        out_img[j, i] = acc * scale
        if do_var:
            accv = 0.0
            for b in range(ylo, yhi + 1):
                row = by + b
                s = 0.0
                for a in range(xlo, xhi + 1):
                    s += wx[a] * wx[a] * src_var[row, bx + a]
                accv += wy[b] * wy[b] * s
            out_var[j, i] = accv * scale * scale
    if mask_out:
        m = 0
        if mask_in:
            same = mkind == kind and mn == n
            if grow_bits != 0 or same:
                mfull = 0
                for b in range(ylo, yhi + 1):
                    row = by + b
                    for a in range(xlo, xhi + 1):
                        mfull |= src_mask[row, bx + a]
                m = mfull if same else (mfull & grow_bits)
            if not same:
                mxlo, mxhi = _table_weights(mkind, mn, fx, mwx, mtable)
                mylo, myhi = _table_weights(mkind, mn, fy, mwy, mtable)
                mbx = i0 - (mn - 1)
                mby = j0 - (mn - 1)
                for b in range(mylo, myhi + 1):
                    row = mby + b
                    for a in range(mxlo, mxhi + 1):
                        m |= src_mask[row, mbx + a]
        out_mask[j, i] = m
    return 1


@numba.njit(cache=True, inline="always", fastmath=FASTMATH)
def _warp_band(
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
) -> int:  # pragma: no cover - compiled
    """Warp destination rows ``row_start .. row_stop-1``; return the number of good pixels.

    Parameters follow :func:`warping.warp.warp_with_transform`; ``kind``/``n``/``table`` describe
    the image kernel and ``mkind``/``mn``/``mtable`` the mask kernel (see
    :mod:`warping.warp._kernels`). ``mask_in`` says ``src_mask`` is real, ``mask_out`` that
    ``out_mask`` must be written, ``do_var`` that variance is propagated.

    Work is split into tiles of ``TILE_ROWS x TILE_COLS`` destination pixels (parallel over rows
    of tiles). Inside a tile row, pixels are walked grid cell by grid cell: the position is
    ``node + m * delta`` with ``m`` the offset from the cell's first node, so every cell is
    interpolated independently and exactly reproduces the nodes.
    """
    wd = out_img.shape[1]
    nk = 2 * n
    nmk = 2 * mn
    nrows = row_stop - row_start
    ntb = (nrows + TILE_ROWS - 1) // TILE_ROWS
    ngood = np.zeros(ntb, dtype=np.int64)
    ncol = gx.shape[1]
    last_cell = ncol - 2
    for tb in prange(ntb):
        ja = row_start + tb * TILE_ROWS
        jb = min(ja + TILE_ROWS, row_stop)
        wx = np.empty(nk)
        wy = np.empty(nk)
        mwx = np.empty(nmk)
        mwy = np.empty(nmk)
        colx = np.empty(ncol)
        coly = np.empty(ncol)
        cola = np.empty(ncol)
        good = 0
        for ia in range(0, wd, TILE_COLS):
            ib = min(ia + TILE_COLS, wd)
            klo, _t = _cell(ia, -1, step, nodes_x)
            khi, _t = _cell(ib - 1, -1, step, nodes_x)
            for j in range(ja, jb):
                _row_positions(j, origin_y, step, nodes_y, gx, gy, colx, coly, klo, khi + 2)
                if conserve_flux:
                    _row_positions(j, origin_y, step, nodes_y, ga, ga, cola, cola, klo, khi + 2)
                i = ia
                while i < ib:
                    k, _t = _cell(i, -1, step, nodes_x)
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
                        good += _pixel(
                            u,
                            v,
                            area,
                            j,
                            ii,
                            src_img,
                            src_var,
                            src_mask,
                            do_var,
                            mask_in,
                            mask_out,
                            out_img,
                            out_var,
                            out_mask,
                            kind,
                            n,
                            table,
                            mkind,
                            mn,
                            mtable,
                            grow_bits,
                            nodata_bits,
                            pad_value,
                            wx,
                            wy,
                            mwx,
                            mwy,
                        )
                    i = stop
        ngood[tb] = good
    return int(ngood.sum())


@numba.njit(cache=True, parallel=True, fastmath=FASTMATH)
def _warp_band_1(  # type: ignore[no-untyped-def]
    src_img,
    src_var,
    src_mask,
    do_var,
    mask_in,
    mask_out,
    nodes_x,
    nodes_y,
    gx,
    gy,
    ga,
    step,
    origin_y,
    row_start,
    row_stop,
    out_img,
    out_var,
    out_mask,
    kind,
    table,
    mkind,
    mn,
    mtable,
    grow_bits,
    nodata_bits,
    pad_value,
    conserve_flux,
):  # pragma: no cover - compiled
    return _warp_band(
        src_img,
        src_var,
        src_mask,
        do_var,
        mask_in,
        mask_out,
        nodes_x,
        nodes_y,
        gx,
        gy,
        ga,
        step,
        origin_y,
        row_start,
        row_stop,
        out_img,
        out_var,
        out_mask,
        kind,
        1,
        table,
        mkind,
        mn,
        mtable,
        grow_bits,
        nodata_bits,
        pad_value,
        conserve_flux,
    )


@numba.njit(cache=True, parallel=True, fastmath=FASTMATH)
def _warp_band_2(  # type: ignore[no-untyped-def]
    src_img,
    src_var,
    src_mask,
    do_var,
    mask_in,
    mask_out,
    nodes_x,
    nodes_y,
    gx,
    gy,
    ga,
    step,
    origin_y,
    row_start,
    row_stop,
    out_img,
    out_var,
    out_mask,
    kind,
    table,
    mkind,
    mn,
    mtable,
    grow_bits,
    nodata_bits,
    pad_value,
    conserve_flux,
):  # pragma: no cover - compiled
    return _warp_band(
        src_img,
        src_var,
        src_mask,
        do_var,
        mask_in,
        mask_out,
        nodes_x,
        nodes_y,
        gx,
        gy,
        ga,
        step,
        origin_y,
        row_start,
        row_stop,
        out_img,
        out_var,
        out_mask,
        kind,
        2,
        table,
        mkind,
        mn,
        mtable,
        grow_bits,
        nodata_bits,
        pad_value,
        conserve_flux,
    )


@numba.njit(cache=True, parallel=True, fastmath=FASTMATH)
def _warp_band_3(  # type: ignore[no-untyped-def]
    src_img,
    src_var,
    src_mask,
    do_var,
    mask_in,
    mask_out,
    nodes_x,
    nodes_y,
    gx,
    gy,
    ga,
    step,
    origin_y,
    row_start,
    row_stop,
    out_img,
    out_var,
    out_mask,
    kind,
    table,
    mkind,
    mn,
    mtable,
    grow_bits,
    nodata_bits,
    pad_value,
    conserve_flux,
):  # pragma: no cover - compiled
    return _warp_band(
        src_img,
        src_var,
        src_mask,
        do_var,
        mask_in,
        mask_out,
        nodes_x,
        nodes_y,
        gx,
        gy,
        ga,
        step,
        origin_y,
        row_start,
        row_stop,
        out_img,
        out_var,
        out_mask,
        kind,
        3,
        table,
        mkind,
        mn,
        mtable,
        grow_bits,
        nodata_bits,
        pad_value,
        conserve_flux,
    )


@numba.njit(cache=True, parallel=True, fastmath=FASTMATH)
def _warp_band_4(  # type: ignore[no-untyped-def]
    src_img,
    src_var,
    src_mask,
    do_var,
    mask_in,
    mask_out,
    nodes_x,
    nodes_y,
    gx,
    gy,
    ga,
    step,
    origin_y,
    row_start,
    row_stop,
    out_img,
    out_var,
    out_mask,
    kind,
    table,
    mkind,
    mn,
    mtable,
    grow_bits,
    nodata_bits,
    pad_value,
    conserve_flux,
):  # pragma: no cover - compiled
    return _warp_band(
        src_img,
        src_var,
        src_mask,
        do_var,
        mask_in,
        mask_out,
        nodes_x,
        nodes_y,
        gx,
        gy,
        ga,
        step,
        origin_y,
        row_start,
        row_stop,
        out_img,
        out_var,
        out_mask,
        kind,
        4,
        table,
        mkind,
        mn,
        mtable,
        grow_bits,
        nodata_bits,
        pad_value,
        conserve_flux,
    )


@numba.njit(cache=True, parallel=True, fastmath=FASTMATH)
def _warp_band_5(  # type: ignore[no-untyped-def]
    src_img,
    src_var,
    src_mask,
    do_var,
    mask_in,
    mask_out,
    nodes_x,
    nodes_y,
    gx,
    gy,
    ga,
    step,
    origin_y,
    row_start,
    row_stop,
    out_img,
    out_var,
    out_mask,
    kind,
    table,
    mkind,
    mn,
    mtable,
    grow_bits,
    nodata_bits,
    pad_value,
    conserve_flux,
):  # pragma: no cover - compiled
    return _warp_band(
        src_img,
        src_var,
        src_mask,
        do_var,
        mask_in,
        mask_out,
        nodes_x,
        nodes_y,
        gx,
        gy,
        ga,
        step,
        origin_y,
        row_start,
        row_stop,
        out_img,
        out_var,
        out_mask,
        kind,
        5,
        table,
        mkind,
        mn,
        mtable,
        grow_bits,
        nodata_bits,
        pad_value,
        conserve_flux,
    )


_BANDS = {1: _warp_band_1, 2: _warp_band_2, 3: _warp_band_3, 4: _warp_band_4, 5: _warp_band_5}


def warp_band(*args: object) -> int:
    """Dispatch to the core compiled for the image kernel half-width ``n`` (argument 20).

    Arguments are those of :func:`_warp_band`; ``n`` is a compile-time constant in each
    specialisation so the ``2n``-tap loops unroll.
    """
    n = int(args[19])  # type: ignore[call-overload]
    rest = args[:19] + args[20:]
    return int(_BANDS[n](*rest))
