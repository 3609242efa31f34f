"""How the PSF-matching convolution runs: tiling, FFT precision, variance accuracy, threads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ConvolutionOptions"]


@dataclass(frozen=True)
class ConvolutionOptions:
    """Options of :func:`~warping.psfmatch.convolve.convolve_spatial` and of the tile spectra
    planned for it (:func:`~warping.psfmatch.spectra.plan_tile_spectra` must get the same
    ``tile``, ``workers`` and ``fft_dtype``, which decide the tiles and their FFT buffers).

    Attributes
    ----------
    tile
        Largest output tile of the overlap-save FFT (the image is cut into equal tiles);
        ``None`` picks the tiling whose FFTs cost least for the image.
    fft_dtype
        ``numpy.float32`` (default, fast) or ``numpy.float64``.
    variance_tolerance
        Relative L1 accuracy of the low-rank ``K^2`` used for the variance.
    workers
        Threads working on tiles (and on the mask) at once.
    """

    tile: int | None = None
    fft_dtype: type = np.float32
    variance_tolerance: float = 1e-3
    workers: int = 2

    def __post_init__(self) -> None:
        if self.tile is not None and self.tile < 1:
            raise ValueError(f"tile must be a positive number of pixels or None, got {self.tile}")
        if np.dtype(self.fft_dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(
                f"fft_dtype must be numpy.float32 or numpy.float64, got {self.fft_dtype}"
            )
        if not self.variance_tolerance > 0:
            raise ValueError(f"variance_tolerance must be > 0, got {self.variance_tolerance}")

    @property
    def threads(self) -> int:
        """``workers``, at least 1."""
        return max(1, int(self.workers))

    @property
    def complex_dtype(self) -> np.dtype:
        """dtype of the spectra: complex64 for float32 FFTs, else complex128."""
        return np.dtype(np.complex64 if np.dtype(self.fft_dtype) == np.float32 else np.complex128)
