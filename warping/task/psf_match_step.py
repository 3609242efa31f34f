"""The PSF-matching step of MakeWarp: adapt the task config to :mod:`warping.psfmatch`."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from warping.exposure import Exposure
from warping.task.config import MakeWarpConfig

logger = logging.getLogger(__name__)

__all__ = ["psf_match_config", "psf_match_warped"]


def psf_match_config(config: MakeWarpConfig) -> Any:
    """``warpAndPsfMatch.psfMatch`` as a :class:`warping.psfmatch.PsfMatchConfig`."""
    from warping.psfmatch import PsfMatchConfig

    pm = config.warpAndPsfMatch.psfMatch
    al = pm.al
    return PsfMatchConfig(
        kernel_size=al.kernelSize,
        size_cell_x=al.sizeCellX,
        size_cell_y=al.sizeCellY,
        alard_sig_gauss=tuple(al.alardSigGauss),
        alard_deg_gauss=tuple(al.alardDegGauss),
        spatial_kernel_order=al.spatialKernelOrder,
        do_auto_pad_psf=pm.doAutoPadPsf,
        auto_pad_psf_to=pm.autoPadPsfTo,
        pad_psf_by=pm.padPsfBy,
    )


def psf_match_warped(warped: Exposure, model_psf: Any, config: MakeWarpConfig) -> Exposure:
    """PSF-match a warped CCD to ``model_psf`` (warp first, then match, as LSST does).

    The result carries the (possibly resized) model PSF; the border of ``kernelSize // 2``
    pixels becomes NO_DATA, and ``metadata['PSFMATCH_EROSION']`` records that width so the inputs
    table can record the eroded valid area.
    """
    from warping.psfmatch import match_to_model

    if warped.psf is None:
        raise ValueError("the warped CCD has no PSF to match from")
    res = match_to_model(
        warped.image,
        warped.variance,
        warped.mask,
        warped.bbox,
        warped.psf,
        model_psf,
        config=psf_match_config(config),
        mask_planes=warped.mask_planes,
    )
    metadata = dict(warped.metadata)
    metadata["PSFMATCH_EROSION"] = config.warpAndPsfMatch.psfMatch.al.kernelSize // 2
    metadata["PSFMATCH_WARNINGS"] = list(res.warnings)
    return dataclasses.replace(
        warped,
        image=res.image,
        variance=res.variance,
        mask=res.mask,
        psf=res.model_psf,
        metadata=metadata,
    )
