"""Whole-file reads of local files without copying them: a read-only memory map.

A dataset read to be decoded at once (a calexp: ~100 MB) is hashed and converted straight from
the page cache, with no ``bytes`` copy of the file in between (that copy, and the page faults of
a fresh 100 MB buffer, cost about as much as hashing it). Used by
:meth:`repo_butler.datastore.FsspecDatastore.get_buffer` on local paths.

Files in a repository are replaced by rename (:mod:`repo_butler.local_writes`), never rewritten in
place, so a map keeps showing the file that was opened even if a writer replaces it meanwhile.
"""

from __future__ import annotations

import mmap
import os

__all__ = ["ReadBuffer", "map_file"]

ReadBuffer = bytes | mmap.mmap
"""The content of a file: ``bytes``, or a read-only :class:`mmap.mmap` (slicing and the buffer
protocol work on both; ``len`` is the size)."""

#: Files smaller than this are read into ``bytes`` (a map costs a few system calls).
MAP_MIN_BYTES = 1 << 20


def map_file(path: str) -> ReadBuffer:
    """The content of the local file ``path``: a read-only map, or ``bytes`` when it is small.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (other ``OSError`` as raised by the OS).
    """
    with open(path, "rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < MAP_MIN_BYTES:
            return fh.read()
        try:
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # e.g. a filesystem that cannot map files
            return fh.read()
