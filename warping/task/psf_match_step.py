"""The PSF-matching step of MakeWarp: adapt the task config to :mod:`warping.psfmatch`."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from warping.exposure import Exposure
from warping.geom import Box2I
from warping.task.config import MakeWarpConfig
from warping.task.psf_noise import matched_variance

if TYPE_CHECKING:
    from warping.psf.base import Psf
    from warping.psfmatch import ConvolutionWorkspace

logger = logging.getLogger(__name__)

__all__ = ["PsfMatchStep", "psf_match_config", "psf_match_warped"]


def psf_match_config(
    config: MakeWarpConfig,
    model_psf: Psf | None = None,
    science_psf: Psf | None = None,
    bbox: Box2I | None = None,
) -> Any:
    """``warpAndPsfMatch.psfMatch`` as a :class:`warping.psfmatch.PsfMatchConfig`.

    Automatic fields are resolved here: ``kernelSize = None`` from ``model_psf``
    (:func:`warping.psfmatch.auto.auto_kernel_size`), ``alardSigGauss = None`` from the width of
    ``science_psf`` at the centre of ``bbox`` and the model's core and wing widths
    (:func:`warping.psfmatch.auto.auto_basis_sigmas`, LSST ``scaleByFwhm``).
    """
    from warping.psfmatch import PsfMatchConfig
    from warping.psfmatch.auto import FWHM_PER_SIGMA, auto_basis_sigmas, auto_kernel_size

    pm = config.warpAndPsfMatch.psfMatch
    al = pm.al
    sigmas = al.alardSigGauss
    if sigmas is None:
        fwhm = config.modelPsf.defaultFwhm
        if science_psf is None or bbox is None or fwhm is None:
            raise ValueError(
                "kernel['AL'].alardSigGauss is automatic: it needs the model FWHM, the science "
                "PSF and the CCD's bbox"
            )
        from warping.psfmatch.auto import psf_fwhm_major

        cx, cy = bbox.x0 + (bbox.width - 1) / 2.0, bbox.y0 + (bbox.height - 1) / 2.0
        science_sigma = psf_fwhm_major(science_psf, cx, cy) / FWHM_PER_SIGMA
        model_sigma = fwhm / FWHM_PER_SIGMA
        wing = model_sigma * config.modelPsf.wingFwhmFactor if config.modelPsf.addWing else None
        sigmas = auto_basis_sigmas(science_sigma, model_sigma, wing, len(al.alardDegGauss))
    size = al.kernelSize
    if size is None:
        if model_psf is None:
            raise ValueError("kernel['AL'].kernelSize is automatic: it needs the model PSF")
        size = auto_kernel_size(model_psf, pm.kernelWingTolerance, sigmas=sigmas)
    return PsfMatchConfig(
        kernel_size=size,
        size_cell_x=al.sizeCellX,
        size_cell_y=al.sizeCellY,
        alard_sig_gauss=tuple(sigmas),
        alard_deg_gauss=tuple(al.alardDegGauss),
        spatial_kernel_order=al.spatialKernelOrder,
        do_auto_pad_psf=pm.doAutoPadPsf,
        auto_pad_psf_to=pm.pad_ratio,
        pad_psf_by=pm.padPsfBy,
        deconvolution_tolerance=pm.deconvolutionTolerance,
        max_noise_gain=pm.maxNoiseGain,
        max_kernel_abs_sum=pm.maxKernelAbsSum,
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
    match_config = psf_match_config(config, model_psf, warped.psf, _valid_bbox(warped))
    res = match_to_model(
        warped.image,
        warped.variance,
        warped.mask,
        warped.bbox,
        warped.psf,
        model_psf,
        config=match_config,
        mask_planes=warped.mask_planes,
        workspace=workspace,
    )
    metadata = dict(warped.metadata)
    metadata["PSFMATCH_EROSION"] = match_config.kernel_size // 2
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


def _valid_bbox(warped: Exposure) -> Box2I:
    """Where the warped CCD has data (not NO_DATA), for measuring its PSF at the centre; the
    whole bbox when every pixel is NO_DATA."""
    import numpy as np

    no_data = warped.mask_planes.bitmask("NO_DATA")
    good = (np.asarray(warped.mask) & no_data) == 0
    if not good.any():
        return warped.bbox
    rows = np.flatnonzero(good.any(axis=1))
    cols = np.flatnonzero(good.any(axis=0))
    b = warped.bbox
    return Box2I(b.x0 + int(cols[0]), b.y0 + int(rows[0]), int(cols[-1] - cols[0] + 1),
                 int(rows[-1] - rows[0] + 1))  # fmt: skip


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
