"""The PSF-matching step of MakeWarp: adapt the task config to :mod:`warping.psfmatch`."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from warping.exposure import Exposure
from warping.task.config import MakeWarpConfig
from warping.task.psf_noise import matched_variance

if TYPE_CHECKING:
    from warping.psfmatch import ConvolutionWorkspace

logger = logging.getLogger(__name__)

__all__ = ["PsfMatchStep", "psf_match_config", "psf_match_warped"]


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


def psf_match_warped(
    warped: Exposure,
    model_psf: Any,
    config: MakeWarpConfig,
    *,
    workspace: ConvolutionWorkspace | None = None,
) -> Exposure:
    """PSF-match a warped CCD to ``model_psf`` (warp first, then match, as LSST does).

    The result carries the (possibly resized) model PSF; the border of ``kernelSize // 2``
    pixels becomes NO_DATA, and ``metadata['PSFMATCH_EROSION']`` records that width so the inputs
    table can record the eroded valid area. ``workspace`` keeps the convolution's scratch
    buffers for the next CCD (None: allocated for this call only).
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
        workspace=workspace,
    )
    metadata = dict(warped.metadata)
    metadata["PSFMATCH_EROSION"] = config.warpAndPsfMatch.psfMatch.al.kernelSize // 2
    metadata["PSFMATCH_WARNINGS"] = list(res.warnings)
    # honest variance plane (or LSST's, by varianceMode) and the noise summary: issue #18 item 4
    variance, noise_metadata = matched_variance(warped, res, config)
    metadata.update(noise_metadata)
    return dataclasses.replace(
        warped,
        image=res.image,
        variance=variance,
        mask=res.mask,
        psf=res.model_psf,
        metadata=metadata,
    )


class PsfMatchStep:
    """The task's PSF-matching step: :func:`psf_match_warped` with a convolution workspace that
    lives as long as this object (one per task), so the CCDs of a visit reuse its buffers.
    """

    def __init__(self) -> None:
        self.workspace: ConvolutionWorkspace | None = None  # made by the first match

    def __call__(self, warped: Exposure, model_psf: Any, config: MakeWarpConfig) -> Exposure:
        """PSF-match ``warped`` (see :func:`psf_match_warped`)."""
        if self.workspace is None:
            from warping.psfmatch import ConvolutionWorkspace

            self.workspace = ConvolutionWorkspace()
        return psf_match_warped(warped, model_psf, config, workspace=self.workspace)
