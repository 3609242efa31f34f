"""The FFT passes of the PSF-matching convolution, on the compiled pocketfft build or scipy.

``compiled`` selects :mod:`warping.psfmatch._fft` (pocketfft built for this CPU); otherwise the
public :mod:`scipy.fft` functions run on one thread each (the tiles already run on a thread
pool). scipy's public functions allocate their outputs, so the results are copied into the
caller's buffers; the column pass is done in place (``overwrite_x``) when scipy can.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

import warping.psfmatch._fft as _fft

__all__ = ["ifft_columns_inplace", "irfft_rows_into", "rfft2_into"]


def rfft2_into(a: np.ndarray, out: np.ndarray, compiled: bool) -> np.ndarray:
    """Unnormalised 2-D real FFT of ``a`` written into ``out``."""
    if compiled:
        _fft.r2c(a, out, (0, 1))
    else:
        out[...] = sfft.rfft2(a, workers=1)
    return out


def ifft_columns_inplace(a: np.ndarray, compiled: bool) -> np.ndarray:
    """Inverse FFT along axis 1 (``1/n`` normalised) of ``a``, written back into ``a``."""
    if compiled:
        _fft.c2c(a, a, (1,), False, 1.0 / a.shape[1])
        return a
    res = sfft.ifft(a, axis=1, workers=1, overwrite_x=True)
    if not np.may_share_memory(res, a):  # scipy could not transform in place
        a[...] = res
    return a


def irfft_rows_into(a: np.ndarray, n: int, out: np.ndarray, compiled: bool) -> np.ndarray:
    """Inverse real FFT along the last axis (``n`` points, ``1/n`` normalised) into ``out``."""
    if compiled:
        _fft.c2r(a, out, -1, 1.0 / n)
    else:
        out[...] = sfft.irfft(a, n=n, axis=-1, workers=1)
    return out
