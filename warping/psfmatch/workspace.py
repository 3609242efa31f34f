"""Scratch buffers of the PSF-matching convolution, owned by whoever runs the matches.

A 2k x 4k CCD needs about 80 MB of tile spectra and about 30 MB of FFT buffers per tile thread.
Allocating them afresh for every CCD costs page faults, so a caller matching many CCDs keeps one
:class:`ConvolutionWorkspace` and passes it to every match; the buffers are freed with
:meth:`ConvolutionWorkspace.release` or when the workspace is no longer referenced.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import TracebackType

import numpy as np

__all__ = ["BAND_ROWS", "ConvolutionWorkspace", "TileBuffers", "TileShape"]

#: Output rows per band of the row pass + combination (their buffers stay in the L2 cache).
BAND_ROWS = 32


@dataclass(frozen=True)
class TileShape:
    """What a tile's FFT buffers depend on."""

    fft_rows: int
    fft_cols: int
    n_terms: int  # spatial terms of the kernel (one column pass each)
    n_x_terms: int  # x terms (one row pass each): order + 1
    variance_rank: int  # variance components (one column and one row pass each)
    tile_rows: int  # largest tile height
    fft_dtype: str  # numpy dtype string of the real FFT data


class TileBuffers:
    """FFT buffers for one tile shape, used by one thread at a time (reused across tiles)."""

    def __init__(self, shape: TileShape) -> None:
        fy, fx = shape.fft_rows, shape.fft_cols
        real = np.dtype(shape.fft_dtype)
        cplx = np.result_type(real, np.complex64)
        nc = fx // 2 + 1
        self.buf_i = np.zeros((fy, fx), real)
        self.buf_v = np.zeros((fy, fx), real)
        self.spec_i = np.empty((fy, nc), cplx)
        self.spec_v = np.empty((fy, nc), cplx)
        self.prod = np.empty((shape.n_terms, fy, nc), cplx)
        self.prod_v = np.empty((shape.variance_rank, fy, nc), cplx)
        band = min(shape.tile_rows, BAND_ROWS)
        self.acc = np.empty((shape.n_x_terms, band, nc), cplx)
        self.rows_i = np.empty((shape.n_x_terms, band, fx), real)
        self.rows_v = np.empty((shape.variance_rank, band, fx), real)

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffers."""
        return sum(a.nbytes for a in vars(self).values() if isinstance(a, np.ndarray))


class ConvolutionWorkspace:
    """Scratch buffers kept between convolutions: per-thread tile FFT buffers and the tile
    spectra of one image shape.

    Lifetime: the buffers are allocated by the first convolution of a shape and kept for the
    next one (same-size CCDs reuse them). Only the latest shape is kept, at most
    ``threads_kept`` sets of tile buffers and one set of spectra, so the memory held is bounded
    by what one convolution of the largest CCD needs (about 110 MB for a 2k x 4k CCD on two
    threads). :meth:`release` (or leaving a ``with`` block) frees them; so does dropping the
    last reference to the workspace.

    Thread safety: taking and returning buffers is guarded by a lock, so the tile threads of a
    convolution (and the thread computing tile spectra during the fit) share one workspace.
    Several matches may run at once on one workspace without error, but each then allocates its
    own buffers when the kept ones are taken; give each concurrent matcher its own workspace.
    """

    def __init__(self, threads_kept: int = 4) -> None:
        if threads_kept < 1:
            raise ValueError(f"threads_kept must be at least 1, got {threads_kept}")
        self._threads_kept = threads_kept
        self._lock = threading.Lock()
        self._tiles: dict[TileShape, list[TileBuffers]] = {}
        self._spectra: dict[tuple[int, int, int, str], tuple[np.ndarray, np.ndarray]] = {}

    def take_tile_buffers(self, shape: TileShape) -> TileBuffers:
        """Free tile buffers for ``shape`` (kept ones when there are, else new ones)."""
        with self._lock:
            free = self._tiles.get(shape)
            if free:
                return free.pop()
        return TileBuffers(shape)

    def give_tile_buffers(self, shape: TileShape, buffers: TileBuffers) -> None:
        """Hand back tile buffers taken with :meth:`take_tile_buffers` (the caller stops
        using them)."""
        with self._lock:
            if shape not in self._tiles:
                self._tiles.clear()  # keep the buffers of the latest tile shape only
            free = self._tiles.setdefault(shape, [])
            if len(free) < self._threads_kept:
                free.append(buffers)

    def take_spectra(
        self, n_tiles: int, fft_rows: int, n_cols: int, dtype: np.dtype
    ) -> tuple[np.ndarray, np.ndarray]:
        """Image and variance spectrum buffers ``(n_tiles, fft_rows, n_cols)`` of ``dtype``."""
        key = (n_tiles, fft_rows, n_cols, np.dtype(dtype).str)
        with self._lock:
            kept = self._spectra.pop(key, None)
        if kept is not None:
            return kept
        shape = (n_tiles, fft_rows, n_cols)
        return np.empty(shape, dtype), np.empty(shape, dtype)

    def give_spectra(self, spec_i: np.ndarray, spec_v: np.ndarray) -> None:
        """Hand back buffers from :meth:`take_spectra` (the caller stops using them)."""
        key = (*spec_i.shape[:3], spec_i.dtype.str)
        with self._lock:
            if key not in self._spectra:
                self._spectra.clear()  # keep the buffers of the latest shape only
            self._spectra[key] = (spec_i, spec_v)

    @property
    def nbytes(self) -> int:
        """Bytes of the buffers kept (not counting those in use)."""
        with self._lock:
            tiles = sum(b.nbytes for free in self._tiles.values() for b in free)
            spectra = sum(a.nbytes + b.nbytes for a, b in self._spectra.values())
        return tiles + spectra

    def release(self) -> None:
        """Free the kept buffers; the next convolution allocates them again."""
        with self._lock:
            self._tiles.clear()
            self._spectra.clear()

    def __enter__(self) -> ConvolutionWorkspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
