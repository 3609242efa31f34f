"""Coadds: combine the warps of a patch (LSST ``AssembleCoaddTask``).

:func:`assemble` is pure compute on a warp stack (:func:`warping.stack.open_warp_stack`'s
``xarray.Dataset``), tile by tile; :func:`~warping.coadd.task.assemble_coadd` reads the stack
from a butler, assembles it and writes a ``deepCoadd`` with its CoaddPsf, inputs and provenance.
User documentation: ``docs/coadd.md`` ("Coadds").
"""

from __future__ import annotations

from warping.coadd.assemble import CoaddResult, assemble, compute_weights
from warping.coadd.combine import IQR_TO_SIGMA, coadd_planes, combine_tile
from warping.coadd.config import STATISTICS, WEIGHTINGS, CoaddConfig
from warping.coadd.errors import CoaddConfigError, CoaddError, MismatchedWarpsError, NoWarpsError
from warping.coadd.psf import coadd_inputs, coadd_psf

__all__ = [
    "IQR_TO_SIGMA",
    "STATISTICS",
    "WEIGHTINGS",
    "CoaddConfig",
    "CoaddConfigError",
    "CoaddError",
    "CoaddResult",
    "MismatchedWarpsError",
    "NoWarpsError",
    "assemble",
    "coadd_inputs",
    "coadd_planes",
    "coadd_psf",
    "combine_tile",
    "compute_weights",
]
