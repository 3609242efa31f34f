"""Exact, fast warping of images, masks and variances (LSST afw ``warpExposure`` semantics).

Kernels follow afw (``nearest``, ``bilinear``, ``lanczos2`` ... ``lanczos5``); the image is
multiplied by the relative pixel area so total flux is conserved; variance is propagated with the
squared weights; mask bits are OR'ed over the mask kernel's footprint (``grow_full_mask`` planes
over the full kernel footprint). See ``notes/readme_warp.md`` for conventions and accuracy figures.
"""

from warping.warp._high_level import (
    WarpingControl,
    WarpResult,
    compute_warped_bbox,
    warp_exposure,
    warp_image,
    warp_with_transform,
)
from warping.warp._kernels import KERNEL_NAMES, kernel_weights
from warping.warp._transform import wcs_pair_transform

__all__ = [
    "KERNEL_NAMES",
    "WarpResult",
    "WarpingControl",
    "compute_warped_bbox",
    "kernel_weights",
    "warp_exposure",
    "warp_image",
    "warp_with_transform",
    "wcs_pair_transform",
]
