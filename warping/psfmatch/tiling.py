"""The overlap-save tiling of the PSF-matching convolution: tile and FFT sizes."""

from __future__ import annotations

import functools
import math

import scipy.fft as sfft

__all__ = ["TileGrid", "tile_grid", "tile_starts"]

#: Largest FFT length tried per axis (longer transforms fall out of cache and get slower).
MAX_FFT = 800
#: Fixed cost of one tile (allocations, calls) in units of ``pixel * log2(pixels)`` of its FFT.
TILE_OVERHEAD = 1.0e6

#: ``(rows of tiles, columns of tiles, tile height, tile width, FFT rows, FFT columns)``.
TileGrid = tuple[int, int, int, int, int, int]


@functools.lru_cache(maxsize=64)  # a pure function's answers (small tuples), not buffers
def tile_grid(height: int, width: int, h: int, tile: int | None, workers: int) -> TileGrid:
    """``(rows of tiles, columns of tiles, tile height, tile width, FFT rows, FFT columns)``.

    The image is split into equal tiles whose FFT (tile + ``2h`` halo, padded to a fast length)
    costs least in total, counting the tiles each of ``workers`` threads runs in turn; ``tile``
    forces tiles of at most ``tile`` pixels a side.
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
        if th + 2 * h > MAX_FFT and n_y < height:
            continue
        for n_x in range(1, max(1, width // max(32, 2 * h)) + 1):
            tw = -(-width // n_x)
            if tw + 2 * h > MAX_FFT and n_x < width:
                continue
            _, _, fy, fx = shape(n_y, n_x)
            per_tile = fy * fx * math.log2(max(2, fy * fx)) + TILE_OVERHEAD
            cost = -(-(n_y * n_x) // workers) * per_tile
            if best is None or cost < best[0]:
                best = (cost, n_y, n_x)
            if tw + 2 * h < 4 * h:
                break
        if th + 2 * h < 4 * h:
            break
    assert best is not None
    return (best[1], best[2], *shape(best[1], best[2]))


def tile_starts(height: int, width: int, grid: TileGrid) -> list[tuple[int, int]]:
    """``(row, column)`` of the first output pixel of each tile, row by row."""
    _, _, th_max, tw_max, _, _ = grid
    return [(ty, tx) for ty in range(0, height, th_max) for tx in range(0, width, tw_max)]
