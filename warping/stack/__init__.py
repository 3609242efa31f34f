"""Warp stacks: the warps of one patch as a lazy ``xarray.Dataset`` ``(visit, y, x)``.

:func:`open_warp_stack` queries the butler for the warps of a tract, patch and filter (direct or
PSF-matched), reads their headers and tables, and returns Dask-backed ``image``, ``variance`` and
``mask`` variables that read only the pixels asked for, through the butler's datastore (local
disk or S3 alike). :func:`warp_metadata` gives each warp's PSF, inputs, WCS and calibration
without reading pixels. The user documentation is ``docs/coadd.md`` ("Warp stacks").
"""

from __future__ import annotations

from warping.stack.dataset import open_warp_stack, warp_dataset_types
from warping.stack.errors import (
    NoWarpsError,
    NoWcsError,
    UnknownWarpTypeError,
    WarpBBoxMismatchError,
    WarpStackError,
)
from warping.stack.metadata import WarpMeta, warp_metadata

__all__ = [
    "NoWarpsError",
    "NoWcsError",
    "UnknownWarpTypeError",
    "WarpBBoxMismatchError",
    "WarpMeta",
    "WarpStackError",
    "open_warp_stack",
    "warp_dataset_types",
    "warp_metadata",
]
