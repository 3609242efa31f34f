"""Forward FFTs of the image and variance tiles of a convolution, computable ahead of it.

They do not depend on the kernel, so :func:`~warping.psfmatch.match_to_model` plans them and a
second thread computes them while the kernel is being fitted.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

import warping.psfmatch._fft as _fft
from warping.psfmatch._match_loops import Window, gather
from warping.psfmatch.arrays import float_pair, int32_mask
from warping.psfmatch.fft_passes import rfft2_into
from warping.psfmatch.options import ConvolutionOptions
from warping.psfmatch.tiling import TileGrid, tile_grid, tile_starts
from warping.psfmatch.workspace import ConvolutionWorkspace

__all__ = ["TileSpectra", "plan_tile_spectra"]


@dataclass
class TileSpectra:
    """Forward FFTs of every image and variance tile of one convolution.

    :func:`plan_tile_spectra` plans them, a second thread may compute them (:meth:`fill`), and
    :func:`~warping.psfmatch.convolve.convolve_spatial` takes each tile's spectra with
    :meth:`tile`. Each tile is claimed once, by whichever thread gets to it first: a convolution
    that starts before the second thread is done computes the remaining tiles itself instead of
    waiting. ``spec_i[n]`` / ``spec_v[n]`` belong to tile ``starts[n]``; ``grid`` is
    :func:`~warping.psfmatch.tiling.tile_grid`'s answer for the image. The spectrum buffers come
    from ``workspace`` (when given) and go back to it on :meth:`release`.
    """

    shape: tuple[int, int]
    half_width: int
    grid: TileGrid
    starts: list[tuple[int, int]]
    spec_i: np.ndarray
    spec_v: np.ndarray
    released: bool = field(default=False, init=False)
    # (image, variance, int32 mask, NO_DATA bits) the tiles are gathered from
    _sources: tuple[np.ndarray, np.ndarray, np.ndarray, int] | None = field(
        default=None, repr=False
    )
    workspace: ConvolutionWorkspace | None = field(default=None, repr=False)
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
            window = Window(ty - h, tx - h, th + 2 * h, tw + 2 * h)
            gather(image, variance, mask_in, no_data, window, buf_i, buf_v)
            compiled = _fft.available()
            rfft2_into(buf_i, self.spec_i[n], compiled)
            rfft2_into(buf_v, self.spec_v[n], compiled)
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
        """Hand the spectrum buffers back to the workspace for the next convolution of this tile
        shape (once; the spectra must not be used afterwards). Tiles nobody has started are
        claimed here so that no thread writes into the buffers after they are handed back;
        tiles being computed are waited for."""
        for n in range(len(self.starts)):
            if self._claim(n):
                self._done[n].set()
        for event in self._done:
            event.wait()
        with self._lock:
            if self.released:
                return
            self.released = True
        if self.workspace is not None:
            self.workspace.give_spectra(self.spec_i, self.spec_v)


def plan_tile_spectra(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    half_width: int,
    no_data: int,
    options: ConvolutionOptions = ConvolutionOptions(),
    *,
    workspace: ConvolutionWorkspace | None = None,
) -> TileSpectra:
    """The tiles of ``image`` and ``variance`` and buffers for their spectra (from
    ``workspace`` when given), none computed yet (:meth:`TileSpectra.fill` computes them;
    :meth:`TileSpectra.tile` one at a time).

    ``plan_tile_spectra(...).fill()`` computes them all on the calling thread.

    Bad inputs (NO_DATA, non-finite image or variance) are zeroed exactly as
    :func:`~warping.psfmatch.convolve.convolve_spatial` does; pass the result as its
    ``spectra`` with the same ``options`` (``tile``, ``workers`` and ``fft_dtype`` decide the
    tiles).
    """
    height, width = image.shape
    h = int(half_width)
    mask_in = int32_mask(mask)
    image, variance = float_pair(image, variance)
    grid = tile_grid(height, width, h, options.tile, options.threads)
    _, _, _, _, fy, fx = grid
    starts = tile_starts(height, width, grid)
    cplx = options.complex_dtype
    if workspace is not None:
        spec_i, spec_v = workspace.take_spectra(len(starts), fy, fx // 2 + 1, cplx)
    else:
        spec_i = np.empty((len(starts), fy, fx // 2 + 1), cplx)
        spec_v = np.empty_like(spec_i)
    sources = (image, variance, mask_in, int(no_data))
    return TileSpectra((height, width), h, grid, starts, spec_i, spec_v, sources, workspace)
