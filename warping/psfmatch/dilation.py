"""OR-dilation of mask bit planes: the output mask of the PSF-matching convolution.

The mask is OR-dilated by runs along rows, then by a sliding OR along columns (compiled loop),
which also sets the non-finite/NO_DATA footprint and the border.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from warping.psfmatch._match_loops import Dilation, dilate_band
from warping.psfmatch.arrays import check_mask_dtype, float_pair, int32_mask

__all__ = ["dilate_mask", "or_dilate"]


def or_dilate(mask: np.ndarray, half_width: int) -> np.ndarray:
    """Bitwise OR of ``mask`` over the ``(2h+1)²`` square around each pixel (zeros outside).

    Works on integer (at most 32-bit) and boolean arrays; every bit plane is dilated at once.
    """
    if half_width <= 0:
        return mask.copy()
    if mask.dtype.itemsize > 4:
        raise ValueError(f"or_dilate supports masks of at most 32 bits, got {mask.dtype}")
    dummy = np.zeros((1, 1), np.float32)
    out = np.empty(mask.shape, np.int32)
    dilate_band(int32_mask(mask), dummy, dummy, Dilation(int(half_width)), 0, mask.shape[0], out)
    return out != 0 if mask.dtype == np.bool_ else out.astype(mask.dtype, copy=False)


def dilate_mask(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    half_width: int,
    no_data: int,
    *,
    workers: int = 1,
) -> np.ndarray:
    """The output mask of :func:`~warping.psfmatch.convolve.convolve_spatial` for a kernel of
    half-width ``half_width``.

    OR over the ``(2h+1)²`` square, non-finite image/variance pixels counting as ``no_data``,
    and a border of ``h`` pixels set to ``no_data`` alone. It depends only on the kernel size,
    so it can be computed while the kernel is being fitted and passed as ``dilated_mask``.
    """
    if image.shape != mask.shape or variance.shape != mask.shape or mask.ndim != 2:
        raise ValueError("image, variance and mask must be 2-D arrays of one shape")
    check_mask_dtype(mask)
    mask_in = int32_mask(mask)
    image, variance = float_pair(image, variance)
    height = mask.shape[0]
    out = np.empty(mask.shape, dtype=np.int32)
    bands = np.linspace(0, height, min(height, 4 * max(1, workers)) + 1).astype(int)

    dilation = Dilation(int(half_width), int(no_data), check_finite=True, border=True)

    def band(r0: int, r1: int) -> None:
        dilate_band(mask_in, image, variance, dilation, r0, r1, out)

    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            jobs = [pool.submit(band, int(a), int(b)) for a, b in itertools.pairwise(bands)]
            for job in jobs:
                job.result()
    else:
        band(0, height)
    return out
