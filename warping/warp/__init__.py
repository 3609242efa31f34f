"""Exact, fast warping of images, masks and variances (LSST afw ``warpExposure`` semantics).

Kernels follow afw (``nearest``, ``bilinear``, ``lanczos2`` ... ``lanczos5``); the image is
multiplied by the relative pixel area so total flux is conserved; variance is propagated with the
squared weights; mask bits are OR'ed over the mask kernel's footprint (``grow_full_mask`` planes
over the full kernel footprint). See the README for conventions and accuracy figures.
"""

from typing import TYPE_CHECKING

from repo_butler._lazy import lazy_getattr

if TYPE_CHECKING:
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

#: Public name -> defining module; imported on first access (keeps ``rb warp-image`` start-up
#: free of modules it does not need).
_EXPORTS = {
    "KERNEL_NAMES": "warping.warp._kernels",
    "kernel_weights": "warping.warp._kernels",
    "WarpResult": "warping.warp._high_level",
    "WarpingControl": "warping.warp._high_level",
    "compute_warped_bbox": "warping.warp._high_level",
    "warp_exposure": "warping.warp._high_level",
    "warp_image": "warping.warp._high_level",
    "warp_with_transform": "warping.warp._high_level",
    "wcs_pair_transform": "warping.warp._transform",
}

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

__getattr__ = lazy_getattr("warping.warp", _EXPORTS, globals())
