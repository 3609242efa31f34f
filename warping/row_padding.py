"""Image rows padded against cache aliasing, shared by the FITS reader and the warp core.

When a 2-D array's rows are a multiple of 512 bytes long (e.g. 2048-pixel float32 rows: 8 KiB,
HSC's CCD width), the rows under a warp kernel's footprint all fall in the same few L1 cache sets
and evict each other; rows one cache line longer make the warp about twice as fast. The FITS
reader decodes such images straight into padded rows, so the warp needs no padded copy.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ALIAS_BYTES",
    "aliasing_rows",
    "as_rows",
    "contiguous_rows",
    "empty_rows",
    "padded_copy",
]

#: Row strides that are a multiple of this many bytes alias in the L1 cache.
ALIAS_BYTES = 512
#: Padding added to such rows: one cache line.
PAD_BYTES = 64
#: Arrays with fewer rows are never padded (a kernel footprint spans at most 10 rows).
MIN_ROWS = 8


def aliasing_rows(a: np.ndarray) -> bool:
    """Whether the 2-D array ``a`` should be padded: enough rows, and rows that are not
    contiguous or whose stride is a multiple of :data:`ALIAS_BYTES`."""
    if a.ndim != 2 or a.shape[0] < MIN_ROWS:
        return False
    if a.shape[1] > 1 and a.strides[1] != a.itemsize:
        return True
    return a.strides[0] % ALIAS_BYTES == 0


def empty_rows(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """An uninitialised array of ``shape``; a 2-D one whose rows would alias is a view of a
    buffer with rows :data:`PAD_BYTES` longer (row stride ``shape[1] * itemsize + 64``)."""
    dt = np.dtype(dtype)
    if len(shape) != 2 or shape[0] < MIN_ROWS or (shape[1] * dt.itemsize) % ALIAS_BYTES:
        return np.empty(shape, dtype=dt)
    extra = -(-PAD_BYTES // dt.itemsize)
    return np.empty((shape[0], shape[1] + extra), dtype=dt)[:, : shape[1]]


def as_rows(a: np.ndarray, dtype: np.dtype | type | None = None) -> np.ndarray:
    """``a`` itself when it is 2-D with contiguous rows of ``dtype`` (padded or not), else a
    copy in :func:`empty_rows` (what ``np.ascontiguousarray`` is for a C routine that takes a
    row stride, without copying an image read with padded rows)."""
    arr = np.asarray(a)
    dt = arr.dtype if dtype is None else np.dtype(dtype)
    if arr.ndim != 2:
        return np.ascontiguousarray(arr, dtype=dt)
    if arr.dtype == dt and contiguous_rows(arr):
        return arr
    return padded_copy(arr, dt)


def padded_copy(a: np.ndarray, dtype: np.dtype | type | None = None) -> np.ndarray:
    """A copy of ``a`` (converted to ``dtype``, default its own) in :func:`empty_rows`: padded
    when its rows would alias. Copies of two planes of one shape share one row stride."""
    out = empty_rows(a.shape, a.dtype if dtype is None else dtype)
    out[...] = a
    return out


def contiguous_rows(a: np.ndarray) -> bool:
    """Whether the 2-D array ``a`` has contiguous rows, in order and not overlapping (any row
    stride: C-contiguous, padded, or a box of a larger array); what the C loops take."""
    if a.ndim != 2:
        return False
    if a.shape[1] > 1 and a.strides[1] != a.itemsize:
        return False
    return a.shape[0] <= 1 or a.strides[0] >= a.shape[1] * a.itemsize
