"""Input arrays as the compiled PSF-matching loops take them: native dtypes, contiguous rows."""

from __future__ import annotations

import numpy as np

__all__ = ["check_mask_dtype", "float_pair", "int32_mask", "rows_contiguous"]


def rows_contiguous(a: np.ndarray) -> np.ndarray:
    """``a``, or a C-ordered copy when its rows are not contiguous (the compiled loops take a
    row stride but need unit stride along a row)."""
    if a.ndim == 2 and a.shape[1] > 1 and a.strides[1] != a.itemsize:
        return np.ascontiguousarray(a)
    return a


def check_mask_dtype(mask: np.ndarray) -> None:
    """Raise ValueError unless ``mask`` holds integer (or bool) bit planes of at most 32 bits."""
    if np.dtype(mask.dtype).itemsize > 4 or mask.dtype.kind not in "iub":
        raise ValueError(f"mask must be an integer array of at most 32 bits, got {mask.dtype}")


def int32_mask(mask: np.ndarray) -> np.ndarray:
    """``mask`` as native int32 with contiguous rows (bool and narrower integer masks are
    widened, bit patterns kept)."""
    m = mask.view(np.uint8) if mask.dtype == np.bool_ else mask
    return rows_contiguous(m if m.dtype == np.dtype(np.int32) else m.astype(np.int32))


def float_pair(image: np.ndarray, variance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image and variance in one native float dtype (float32 when both are, else float64) with
    contiguous rows."""
    f32 = np.dtype(np.float32)
    dt = f32 if image.dtype == variance.dtype == f32 else np.dtype(np.float64)
    return (rows_contiguous(image.astype(dt, copy=False)),
            rows_contiguous(variance.astype(dt, copy=False)))  # fmt: skip
