"""Reading rectangles of warp planes through the butler's datastore.

:class:`WarpPlaneArray` is a lazily indexed 3-D array ``(visit, y, x)`` over one plane of a
list of warp files: indexing it reads only the rows and columns asked for. Dask wraps it
(``dask.array.from_array``), and slicing a Dask array built that way is folded into the read,
so ``stack.image.isel(y=slice(0, 10))`` reads ten rows of each warp.

Uncompressed planes are read as raw big-endian bytes at offsets known from the headers (the
rows of a window in one read when they are close, else row by row); tile-compressed planes
through astropy's ``CompImageHDU.section``, which decompresses only the tiles a window touches.
Files are opened with :meth:`repo_butler.writes.WorkerIO.open`, so the same code reads local
files and S3 objects (ranged requests of at most :data:`REMOTE_BLOCK_SIZE` read-ahead).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from repo_butler.refs import DatasetRef
from repo_butler.writes import WorkerIO
from warping.masks import MaskPlanes
from warping.stack.warp_file import PLANES, PlaneInfo

__all__ = ["REMOTE_BLOCK_SIZE", "PlaneSource", "WarpPlaneArray", "read_plane_section"]

logger = logging.getLogger(__name__)

#: Read-ahead of remote files read through astropy (headers, compressed tiles): small, so a
#: window costs about what it holds.
REMOTE_BLOCK_SIZE = 16 * 1024
#: Rows of a window are read at once when the bytes between them are fewer than this (local
#: files, remote files): a remote request costs about as much time as a megabyte.
MERGE_GAP = {True: 4096, False: 1024 * 1024}


@dataclass(frozen=True)
class PlaneSource:
    """One warp's plane: the dataset, where the plane is, and how to map its mask bits.

    Attributes
    ----------
    ref : DatasetRef
        The warp dataset.
    plane : PlaneInfo
        Where the plane lives in the file.
    shape : tuple of int
        ``(height, width)``.
    mask_bits : tuple of (int, int), optional
        For a MASK plane whose bits differ from the stack's: ``(source bit, stack bit)`` pairs.
    """

    ref: DatasetRef
    plane: PlaneInfo
    shape: tuple[int, int]
    mask_bits: tuple[tuple[int, int], ...] | None = None


def mask_bit_map(src: MaskPlanes, dest: MaskPlanes) -> tuple[tuple[int, int], ...] | None:
    """``(source bit, destination bit)`` pairs re-expressing ``src`` bits in ``dest`` by plane
    name; ``None`` when every plane of ``src`` has the same bit in ``dest``."""
    if all(dest.bits.get(name) == bit for name, bit in src.bits.items()):
        return None
    return tuple((bit, dest.bit(name)) for name, bit in sorted(src.bits.items()))


def _remap(mask: np.ndarray, pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    out = np.zeros_like(mask)
    for src, dest in pairs:
        out |= ((mask >> src) & 1) << dest
    return out


class _Reader:
    """Reads byte ranges of one file into buffers: ``os.preadv`` on a local file (no
    buffering: exactly the bytes asked for), seek and ``readinto`` on an fsspec file."""

    def __init__(self, source: str, *, fd: int | None = None, fh: Any = None) -> None:
        self.source = source
        self.fd = fd
        self.fh = fh

    def read_into(self, view: memoryview, offset: int, plane: PlaneInfo) -> None:
        done = 0
        while done < len(view):
            if self.fd is not None:
                n = os.preadv(self.fd, [view[done:]], offset + done)
            else:
                self.fh.seek(offset + done)
                n = self.fh.readinto(view[done:])
            if not n:
                from warping.errors import FormatError

                raise FormatError(
                    f"{self.source}: {plane.name} plane is truncated (wanted {len(view)} bytes "
                    f"at offset {offset}, got {done})"
                )
            done += n


def _read_raw(
    reader: _Reader, plane: PlaneInfo, width: int, rows: slice, cols: slice, merge_gap: int
) -> np.ndarray:
    """Rows ``rows`` and columns ``cols`` (steps of 1) of an uncompressed plane: one read of
    the span when the bytes between rows are fewer than ``merge_gap``, else one per row."""
    dtype = PLANES[plane.name].newbyteorder(">")
    item = dtype.itemsize
    nrows, ncols = rows.stop - rows.start, cols.stop - cols.start
    if nrows == 0 or ncols == 0:
        return np.empty((nrows, ncols), dtype=dtype)
    gap = (width - ncols) * item
    start = plane.data_offset + (rows.start * width + cols.start) * item
    if gap < merge_gap:  # one read of the span; the columns are cut out here
        span = ((nrows - 1) * width + ncols) * item
        buffer = np.empty(nrows * width, dtype=dtype)
        reader.read_into(buffer.data.cast("B")[:span], start, plane)
        return buffer.reshape(nrows, width)[:, :ncols]
    out = np.empty((nrows, ncols), dtype=dtype)
    for i in range(nrows):
        reader.read_into(out[i].data.cast("B"), start + i * width * item, plane)
    return out


def _read_section_astropy(fh: Any, plane: PlaneInfo, rows: slice, cols: slice) -> np.ndarray:
    """A window of a compressed (or scaled) plane via astropy's ``section``."""
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(fh, lazy_load_hdus=True, memmap=False) as hdul:
            return np.asarray(hdul[plane.index].section[rows, cols])


def read_plane_section(io: WorkerIO, source: PlaneSource, rows: slice, cols: slice) -> np.ndarray:
    """Read ``[rows, cols]`` (steps of 1, within the plane) of one warp's plane.

    Returns a native-endian array of the plane's dtype; quantized planes get their +inf back
    (``RBZBLINF``) and mask bits are re-expressed in the stack's planes.
    """
    plane = source.plane
    ref = source.ref
    local_path = None if "://" in ref.path else io.datastore().local_path(ref.path)
    via_astropy = plane.compressed or plane.scaled
    if local_path is not None:
        if via_astropy:
            with open(local_path, "rb") as fh:
                data = _read_section_astropy(fh, plane, rows, cols)
        else:
            fd = os.open(local_path, os.O_RDONLY)
            try:
                reader = _Reader(ref.uri, fd=fd)
                data = _read_raw(reader, plane, source.shape[1], rows, cols, MERGE_GAP[True])
            finally:
                os.close(fd)
    else:
        # raw reads know their byte ranges: no read-ahead (1 byte) on remote files
        with io.open(ref, block_size=REMOTE_BLOCK_SIZE if via_astropy else 1) as fh:
            if via_astropy:
                data = _read_section_astropy(fh, plane, rows, cols)
            else:
                reader = _Reader(ref.uri, fh=fh)
                data = _read_raw(reader, plane, source.shape[1], rows, cols, MERGE_GAP[False])
    out = np.asarray(data, dtype=PLANES[plane.name])  # native byte order
    if plane.blank_is_inf:
        out = np.where(np.isnan(out), np.float32(np.inf), out)
    if source.mask_bits is not None:
        out = _remap(out, source.mask_bits)
    return out


def _axis(key: Any, n: int) -> tuple[int, int, Any]:
    """``(start, stop, local index)``: the range of ``range(n)`` that ``key`` touches and the
    index selecting ``key``'s elements from that range (an int drops the axis)."""
    if isinstance(key, slice):
        start, stop, step = key.indices(n)
        if step == 1:
            return start, max(start, stop), slice(None)
        idx = np.arange(start, stop, step)
    else:
        idx = np.arange(n)[key]
    if np.ndim(idx) == 0:
        i = int(idx)
        return i, i + 1, 0
    if idx.size == 0:
        return 0, 0, slice(0, 0)
    lo, hi = int(idx.min()), int(idx.max()) + 1
    return lo, hi, idx - lo


class WarpPlaneArray:
    """One plane of several warps as a lazily read array ``(visit, y, x)``.

    Parameters
    ----------
    io : WorkerIO
        Reads the files (picklable: Dask workers in other processes reopen the datastore).
    sources : sequence of PlaneSource
        One per visit, in the stack's order; all of one shape.
    """

    ndim = 3

    def __init__(self, io: WorkerIO, sources: Sequence[PlaneSource]) -> None:
        self.io = io
        self.sources = tuple(sources)
        height, width = self.sources[0].shape
        self.shape = (len(self.sources), height, width)
        self.dtype = PLANES[self.sources[0].plane.name]

    def __repr__(self) -> str:
        plane = self.sources[0].plane.name
        return f"WarpPlaneArray({plane}, shape={self.shape}, {self.io!r})"

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1 :]
        key = key + (slice(None),) * (3 - len(key))
        if len(key) != 3 or any(k is None for k in key):
            raise IndexError(f"WarpPlaneArray takes up to 3 indices, got {key!r}")
        v0, v1, v_local = _axis(key[0], self.shape[0])
        y0, y1, y_local = _axis(key[1], self.shape[1])
        x0, x1, x_local = _axis(key[2], self.shape[2])
        out = np.empty((v1 - v0, y1 - y0, x1 - x0), dtype=self.dtype)
        wanted = np.arange(v0, v1)[v_local]  # only the warps selected are read
        for i in sorted({int(i) for i in np.atleast_1d(wanted)}):
            if y1 > y0 and x1 > x0:
                out[i - v0] = read_plane_section(
                    self.io, self.sources[i], slice(y0, y1), slice(x0, x1)
                )
        return _select(out, v_local, y_local, x_local)


def _select(out: np.ndarray, v: Any, y: Any, x: Any) -> np.ndarray:
    """Apply per-axis local indices (slices, integer arrays or ints) one axis at a time, so
    integer arrays on several axes select outer products (NumPy's basic + orthogonal indexing,
    as Dask's getter expects)."""
    axis = 0
    for idx in (v, y, x):
        if isinstance(idx, int):
            out = np.take(out, idx, axis=axis)
            continue
        if isinstance(idx, slice):
            out = out[(slice(None),) * axis + (idx,)]
        else:
            out = np.take(out, idx, axis=axis)
        axis += 1
    return out
