"""The model PSF of a patch's PSF-matched warps, decided once per patch.

With ``modelPsf.defaultFwhm = None`` (the default) the model FWHM of a patch is
``modelPsf.autoFwhmFactor`` times the widest input PSF of the patch: every CCD of every visit
overlapping it, measured in the warp frame at the CCD centre (major axis, unweighted second
moments of the warped PSF; one PSF evaluation per CCD). LSST's guidance is the same: the model
is never narrower than the worst-seeing visit. With ``kernel['AL'].kernelSize = None`` the
kernel is sized from the model so it reaches the model's wing
(:func:`warping.psfmatch.auto.auto_kernel_size`). Explicit values of either field win.

The driver decides a :class:`PatchPsfModel` per patch (:func:`survey_patch_models`) and every
unit of the patch carries it, so serial, thread and Dask runs match every visit of the patch to
the same model; the warp's metadata and provenance record it.
"""

from __future__ import annotations

import dataclasses
import logging
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from warping.task.config import MakeWarpConfig
from warping.task.inputs import fmt_id

if TYPE_CHECKING:
    from repo_butler import DataId, WorkerIO
    from warping.psf.base import Psf
    from warping.task.inputs import CcdInput
    from warping.task.make_warp import SkyInfo
    from warping.task.work_units import PlannedCcd, WarpUnit

logger = logging.getLogger(__name__)

__all__ = [
    "PatchPsfModel",
    "config_for_model",
    "input_psf_fwhm",
    "make_config_model_psf",
    "needs_survey",
    "read_ccd_psfs",
    "resolve_model",
    "survey_inputs",
    "survey_patch_models",
]


@dataclass(frozen=True)
class PatchPsfModel:
    """The model PSF and matching-kernel size of one patch's PSF-matched warps.

    Attributes
    ----------
    fwhm
        Model core FWHM, warp pixels.
    kernel_size
        Matching kernel size (odd), pixels.
    fwhm_source, kernel_source
        ``"config"`` (set explicitly or by an instrument preset) or ``"auto"``.
    widest_input_fwhm
        Widest input PSF FWHM of the patch (px, warp frame, CCD centre), when surveyed.
    widest_input
        Data ID of that CCD.
    n_inputs
        CCDs whose PSF was measured.
    """

    fwhm: float
    kernel_size: int
    fwhm_source: str = "config"
    kernel_source: str = "config"
    widest_input_fwhm: float | None = None
    widest_input: str | None = None
    n_inputs: int = 0

    def metadata(self) -> dict[str, Any]:
        """Warp metadata cards describing the model (``PSFMATCH_*``)."""
        out: dict[str, Any] = {
            "PSFMATCH_MODEL_FWHM": round(self.fwhm, 6),
            "PSFMATCH_MODEL_FWHM_SOURCE": self.fwhm_source,
            "PSFMATCH_KERNEL_SIZE": self.kernel_size,
            "PSFMATCH_KERNEL_SIZE_SOURCE": self.kernel_source,
        }
        if self.widest_input_fwhm is not None:
            out["PSFMATCH_WIDEST_INPUT_FWHM"] = round(self.widest_input_fwhm, 6)
            out["PSFMATCH_WIDEST_INPUT"] = self.widest_input or ""
            out["PSFMATCH_N_INPUTS_SURVEYED"] = self.n_inputs
        return out


def needs_survey(config: MakeWarpConfig) -> bool:
    """Whether the input PSFs must be measured first (psfMatched warps with an automatic FWHM)."""
    return config.makePsfMatched and config.modelPsf.defaultFwhm is None


def make_config_model_psf(config: MakeWarpConfig, fwhm: float) -> Psf:
    """LSST's ``GaussianPsfFactory`` model of ``modelPsf`` with core FWHM ``fwhm``."""
    from warping.psf import make_model_psf

    m = config.modelPsf
    return make_model_psf(
        default_fwhm=fwhm, add_wing=m.addWing, wing_fwhm_factor=m.wingFwhmFactor,
        wing_amplitude=m.wingAmplitude, size_factor=m.sizeFactor, min_size=m.minSize,
        max_size=m.maxSize, size=m.size,
    )  # fmt: skip


def resolve_model(
    config: MakeWarpConfig,
    widest: tuple[float, str] | None = None,
    n_inputs: int = 0,
) -> PatchPsfModel:
    """The patch's model from the config and (when the FWHM is automatic) its widest input PSF.

    Raises
    ------
    ValueError
        If the FWHM is automatic and no input PSF could be measured.
    """
    from warping.psfmatch.auto import auto_kernel_size

    fwhm = config.modelPsf.defaultFwhm
    fwhm_source = "config"
    if fwhm is None:
        if widest is None:
            raise ValueError(
                "modelPsf.defaultFwhm is automatic but no input PSF of the patch could be measured"
            )
        fwhm, fwhm_source = config.modelPsf.autoFwhmFactor * widest[0], "auto"
    al = config.warpAndPsfMatch.psfMatch.al
    size = al.kernelSize
    size_source = "config"
    if size is None:
        from warping.task.config import MAX_STAMP

        pm = config.warpAndPsfMatch.psfMatch
        # the PSF stamp is >= autoPadPsfTo x the kernel and at most MAX_STAMP
        largest = int(MAX_STAMP / (pm.pad_ratio if pm.doAutoPadPsf else 1.0)) // 2 * 2 - 1
        size = auto_kernel_size(
            make_config_model_psf(config, fwhm), pm.kernelWingTolerance,
            sigmas=al.alardSigGauss or (), max_size=largest,
        )  # fmt: skip
        size_source = "auto"
    return PatchPsfModel(
        float(fwhm), int(size), fwhm_source, size_source,
        None if widest is None else float(widest[0]), None if widest is None else widest[1],
        n_inputs,
    )  # fmt: skip


def config_for_model(config: MakeWarpConfig, model: PatchPsfModel) -> MakeWarpConfig:
    """``config`` with the patch's model FWHM and kernel size filled in (provenance records it)."""
    pm = config.warpAndPsfMatch.psfMatch
    kernel = dict(pm.kernel)
    kernel["AL"] = dataclasses.replace(pm.al, kernelSize=model.kernel_size)
    new_pm = dataclasses.replace(pm, kernel=types.MappingProxyType(kernel))
    return dataclasses.replace(
        config,
        modelPsf=dataclasses.replace(config.modelPsf, defaultFwhm=model.fwhm),
        warpAndPsfMatch=dataclasses.replace(config.warpAndPsfMatch, psfMatch=new_pm),
    )


def input_psf_fwhm(psf: Psf, wcs: Any, bbox: Any, sky_info: SkyInfo) -> float:
    """Major-axis FWHM (px) of a CCD's PSF, warped to the patch frame, at the CCD's centre (one
    PSF evaluation). ``wcs`` and ``bbox`` are the CCD's."""
    from warping.coadd_psf import WarpedPsf
    from warping.psfmatch.auto import psf_fwhm_major
    from warping.warp import wcs_pair_transform

    cx, cy = bbox.x0 + (bbox.width - 1) / 2.0, bbox.y0 + (bbox.height - 1) / 2.0
    to_warp = wcs_pair_transform(sky_info.wcs, wcs)  # CCD pixels -> warp pixels
    xw, yw = to_warp(np.array([cx]), np.array([cy]))
    warped = WarpedPsf.from_wcs_pair(psf, wcs, sky_info.wcs)
    return psf_fwhm_major(warped, float(xw[0]), float(yw[0]))


def survey_inputs(
    inputs: Sequence[CcdInput], sky_info: SkyInfo, config: MakeWarpConfig
) -> tuple[tuple[float, str] | None, int]:
    """The widest PSF FWHM among ``inputs`` (with its data ID) and how many were measured.

    Each CCD is read and calibrated as the task would (so a visitSummary PSF or an external WCS
    is used when the config asks); CCDs that cannot be used, or that the ``select`` cuts reject,
    are left out here and reported by the units.
    """
    from warping.task.calibrate import UnusableCcdError, load_calibrated
    from warping.task.psf_check import psf_problem
    from warping.task.psf_select import deselected

    widest: tuple[float, str] | None = None
    n = 0
    for inp in inputs:
        if deselected(inp, config.select):
            continue
        try:
            calexp = load_calibrated(inp, config.visit_summary_components)
        except UnusableCcdError:
            continue
        if calexp.psf is None or psf_problem(calexp, f"calexp {fmt_id(inp.data_id)}"):
            continue
        try:
            fwhm = input_psf_fwhm(calexp.psf, calexp.wcs, calexp.bbox, sky_info)
        except Exception as err:  # the unit reports the CCD when it fails there too
            logger.warning("Cannot measure the PSF of %s: %s", fmt_id(inp.data_id), err)
            continue
        n += 1
        if widest is None or fwhm > widest[0]:
            widest = (fwhm, fmt_id(inp.data_id))
    return widest, n


def read_ccd_psfs(
    ccds: Sequence[PlannedCcd], io: WorkerIO, sky_info: SkyInfo, config: MakeWarpConfig
) -> tuple[tuple[float, str] | None, int]:
    """:func:`survey_inputs` for planned CCDs, reading only each calexp's headers, PSF and WCS
    tables (and the external WCS when the config applies one), not its pixels.

    With a ``useVisitSummary*`` field the CCDs are read and calibrated in full instead (the PSF
    or WCS then come from the visitSummary row). CCDs the ``select`` cuts reject are left out.
    """
    from warping.calexp_footprint import HEADER_BLOCK_SIZE
    from warping.formats.exposure_fits import read_psf_wcs_and_bbox
    from warping.task.psf_select import deselected

    shared: dict[str, Any] = {}  # the visit's visitSummary: read once for all its CCDs
    if config.visit_summary_components:
        return survey_inputs([c.bind(io, shared=shared) for c in ccds], sky_info, config)
    widest: tuple[float, str] | None = None
    n = 0
    for ccd in ccds:
        did = fmt_id(ccd.data_id)
        if ccd.missing or deselected(ccd.bind(io, shared=shared), config.select):
            continue
        try:
            with io.open(ccd.calexp, block_size=HEADER_BLOCK_SIZE) as fh:
                psf, wcs, bbox = read_psf_wcs_and_bbox(fh, ccd.calexp.uri)
            if "wcs" in ccd.products:  # the external WCS the unit will use
                wcs = io.read(ccd.products["wcs"])
            if psf is None or wcs is None:
                continue  # the unit skips the CCD with the reason
            fwhm = input_psf_fwhm(psf, wcs, bbox, sky_info)
        except Exception as err:  # the unit reports the CCD when it fails there too
            logger.warning("Cannot measure the PSF of %s: %s", did, err)
            continue
        n += 1
        if widest is None or fwhm > widest[0]:
            widest = (fwhm, did)
    return widest, n


def survey_patch_models(
    units: Sequence[WarpUnit],
    io: WorkerIO,
    config: MakeWarpConfig,
    sky_info_of: Callable[[WarpUnit, WorkerIO], SkyInfo],
) -> dict[DataId, PatchPsfModel]:
    """Decide the model of every patch with psfMatched units: one :class:`PatchPsfModel` each.

    When the FWHM is automatic, every CCD of the patch's units is read in this process, but
    only its headers, PSF and WCS tables (:func:`read_ccd_psfs`); otherwise only the kernel is
    sized. A patch none of whose input PSFs can be measured gets no entry (its units then fail
    the psfMatched warp with the reason). ``sky_info_of`` gives a unit's patch geometry
    (:func:`warping.task.execution.unit_sky_info`).
    """
    from warping.task.work_units import patch_of

    by_patch: dict[DataId, list[WarpUnit]] = {}
    for unit in units:
        by_patch.setdefault(patch_of(unit.data_id), []).append(unit)
    out: dict[DataId, PatchPsfModel] = {}
    for pid, patch_units in by_patch.items():
        widest: tuple[float, str] | None = None
        n = 0
        if needs_survey(config):
            sky_info = sky_info_of(patch_units[0], io)
            for unit in patch_units:
                w, k = read_ccd_psfs(unit.ccds, io, sky_info, config)
                n += k
                if w is not None and (widest is None or w[0] > widest[0]):
                    widest = w
            if widest is None:
                logger.warning("No input PSF of patch %s could be measured", fmt_id(pid))
                continue
        out[pid] = resolve_model(config, widest, n)
        logger.info("Patch %s: model PSF %s", fmt_id(pid), out[pid])
    return out
