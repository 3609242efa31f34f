"""MakeWarp: calibrate and warp one visit's CCDs onto a skymap patch.

:meth:`MakeWarpTask.run` takes one :class:`~warping.task.inputs.CcdInput` per CCD (a data ID and
lazy handles to the calexp and its calibrations), reads each through its handles, applies the
calibrations and returns the requested warps in memory; :mod:`warping.task.execution` writes
them and :mod:`warping.task.runner` plans and registers around it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from astropy.wcs import WCS

from warping.coadd_psf import CoaddPsf, WarpedPsf
from warping.errors import WarpingError
from warping.exposure import Exposure
from warping.geom import Box2I
from warping.polygon import mask_outside
from warping.task.assemble import copy_good_pixels
from warping.task.calibrate import UnusableCcdError, load_calibrated
from warping.task.config import MakeWarpConfig
from warping.task.input_recorder import WarpInputsRecorder
from warping.task.inputs import fmt_id
from warping.task.psf_check import psf_problem
from warping.task.psf_noise import NOISE_KEY, VARIANCE_KEY, merge_noise_summaries
from warping.task.psf_select import select_input

if TYPE_CHECKING:
    from repo_butler import DataId
    from warping.skymap.skymaps import BaseSkyMap
    from warping.task.inputs import CcdInput
    from warping.task.psf_model import PatchPsfModel

logger = logging.getLogger(__name__)

__all__ = [
    "CcdOutcome",
    "MakeWarpTask",
    "SkyInfo",
    "VisitWarps",
    "WarpCancelledError",
    "ccd_exposure_id",
]

#: HSC's ``ccdExposureId = visit * 200 + ccd``: the default ``idGenerator`` packing.
CCDS_PER_VISIT_ID = 200


def ccd_exposure_id(visit: int, ccd: int) -> int:
    """The per-CCD id of the default ``idGenerator`` (HSC packing ``visit * 200 + ccd``)."""
    return int(visit) * CCDS_PER_VISIT_ID + int(ccd)


@dataclass(frozen=True)
class SkyInfo:
    """Where warps go: a tract's WCS and one patch's outer bbox (LSST ``makeSkyInfo``)."""

    tract_id: int
    patch_name: str
    wcs: WCS
    bbox: Box2I

    @classmethod
    def from_skymap(
        cls,
        skymap: BaseSkyMap,
        tract_id: int,
        patch: str | tuple[int, int] | int,
        *,
        border: int = 0,
    ) -> SkyInfo:
        """Look up ``tract_id`` and ``patch`` in a skymap; the warp's bbox is the patch's outer
        bbox grown by ``border`` pixels on each side (``MakeWarpConfig.border``)."""
        tract = skymap[tract_id]
        info = tract.patch(patch)
        return cls(int(tract_id), str(info.name), tract.wcs, info.outer_bbox.grow(border))


@dataclass
class CcdOutcome:
    """What happened to one CCD of a visit."""

    ccd: int
    data_id: DataId
    loaded: bool = True  # False: skipped before warping (missing or unusable inputs)
    goodpix: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None  # reason, when the CCD contributed nothing at all
    unusable: bool = False  # True: its data or PSF could not be used (the output is incomplete)
    reasons: dict[str, str] = field(default_factory=dict)  # warp type -> why it was not made
    notes: list[str] = field(default_factory=list)  # warnings (e.g. PSF deconvolution)
    #: ``select`` cuts that are on but lack this CCD's statistic: field name -> why
    not_evaluated: dict[str, str] = field(default_factory=dict)

    @property
    def used(self) -> bool:
        """True when the CCD contributed pixels to at least one warp."""
        return any(v > 0 for v in self.goodpix.values())


@dataclass
class VisitWarps:
    """The result of :meth:`MakeWarpTask.run` for one visit."""

    visit: int
    exposures: dict[str, Exposure | None]
    goodpix: dict[str, int]
    ccds: list[CcdOutcome]
    seconds: float = 0.0
    psf_model: PatchPsfModel | None = None  # the model the psfMatched warp was matched to


class WarpCancelledError(WarpingError, RuntimeError):
    """The run was cancelled (Ctrl-C in the driver) before it finished."""


PsfMatcher = Callable[[Exposure, Any, MakeWarpConfig], Exposure]


def _psf_match_unavailable(warped: Exposure, model_psf: Any, config: MakeWarpConfig) -> Exposure:
    raise NotImplementedError(
        "PSF-matched warps are not available in this build: makePsfMatched=True needs the "
        "Alard-Lupton matcher (warping.psfmatch). Set makePsfMatched=False."
    )


def default_psf_matcher() -> PsfMatcher:
    """The PSF-matching step plugged into the task (:mod:`warping.task.psf_match_step`), with
    its own convolution workspace."""
    try:
        from warping.task.psf_match_step import PsfMatchStep
    except ImportError:  # the matcher package is optional at this seam
        return _psf_match_unavailable
    return PsfMatchStep()


class MakeWarpTask:
    """Warp and optionally PSF-match the calexps of one visit onto a patch.

    Parameters
    ----------
    config
        Task configuration; validated on construction.
    psf_matcher
        The PSF-matching step ``(warped_ccd, model_psf, config) -> matched_ccd``; the default is
        the Alard-Lupton matcher.
    """

    def __init__(
        self, config: MakeWarpConfig | None = None, *, psf_matcher: PsfMatcher | None = None
    ) -> None:
        self.config = config or MakeWarpConfig()
        self.config.validate()
        self.psf_matcher = psf_matcher or default_psf_matcher()

    # -- helpers --------------------------------------------------------------------------------
    def warping_control(self) -> Any:
        """The :class:`warping.warp.WarpingControl` built from ``warpAndPsfMatch.warp``."""
        from warping.warp import WarpingControl

        w = self.config.warpAndPsfMatch.warp
        return WarpingControl(
            kernel=w.warpingKernelName,
            mask_kernel=w.maskWarpingKernelName,
            interp_length=w.interpLength,
            grow_full_mask=tuple(w.growFullMask),
        )

    def model_psf(self, model: PatchPsfModel | None = None) -> Any:
        """The model PSF of PSF-matched warps (``modelPsf``, with ``model``'s FWHM when given),
        or None when not matching."""
        if not self.config.makePsfMatched:
            return None
        from warping.task.psf_model import make_config_model_psf

        fwhm = model.fwhm if model is not None else self.config.modelPsf.defaultFwhm
        if fwhm is None:
            raise ValueError("modelPsf.defaultFwhm is automatic: give the patch's model")
        return make_config_model_psf(self.config, fwhm)

    def resolve_psf_model(
        self, inputs: Sequence[CcdInput], sky_info: SkyInfo
    ) -> PatchPsfModel | None:
        """The model for these inputs when the driver gave none (None when not matching).

        With an automatic FWHM this reads the inputs once more to measure their PSFs; only the
        given inputs count, so a run through :func:`warping.task.runner.run_make_warps` (which
        decides it once per patch over every visit) is the way to match a patch's visits alike.
        """
        from warping.task.psf_model import needs_survey, resolve_model, survey_inputs

        if not self.config.makePsfMatched:
            return None
        if needs_survey(self.config):
            widest, n = survey_inputs(inputs, sky_info, self.config)
            if widest is None:
                return None
            return resolve_model(self.config, widest, n)
        return resolve_model(self.config)

    def _empty_warp(self, sky_info: SkyInfo) -> Exposure:
        from warping.photocalib import PhotoCalib

        warp = Exposure.empty(sky_info.bbox, wcs=sky_info.wcs)
        warp.photo_calib = PhotoCalib(1.0)
        warp.metadata["BUNIT"] = "nJy"
        return warp

    def warp_ccd(
        self,
        calexp: Exposure,
        sky_info: SkyInfo,
        model_psf: Any,
        outcome: CcdOutcome | None = None,
        config: MakeWarpConfig | None = None,
    ) -> dict[str, Exposure | None]:
        """Warp one calibrated CCD (and PSF-match it if asked): LSST ``WarpAndPsfMatch.run``.

        A PSF-matching failure makes only the ``psfMatched`` entry None (reason in ``outcome``).
        ``config`` is the task's config with the patch's model filled in
        (:func:`warping.task.psf_model.config_for_model`); default the task's own.
        """
        from warping.warp import warp_exposure

        match_config = config or self.config

        if calexp.wcs is None:
            raise ValueError("the calexp has no WCS")
        max_bbox = sky_info.bbox
        if self.config.makePsfMatched:
            al = self.config.warpAndPsfMatch.psfMatch.al
            max_bbox = max_bbox.grow(2 * max(al.sizeCellX, al.sizeCellY))
        warped = warp_exposure(
            calexp, sky_info.wcs, max_bbox=max_bbox, control=self.warping_control()
        )
        if calexp.psf is not None:
            warped.psf = WarpedPsf.from_wcs_pair(
                calexp.psf, calexp.wcs, sky_info.wcs, kernel=self.config.coaddPsf.warpingKernelName
            )
        out: dict[str, Exposure | None] = {}
        if self.config.makeDirect:
            out["direct"] = warped
        if self.config.makePsfMatched:
            if warped.bbox.is_empty():
                out["psfMatched"] = warped
            else:
                try:
                    if model_psf is None:
                        raise ValueError(
                            "no model PSF: the patch's automatic model FWHM needs at least one "
                            "input PSF that can be measured; set modelPsf.defaultFwhm"
                        )
                    matched: Exposure | None = self.psf_matcher(warped, model_psf, match_config)
                except Exception as err:
                    logger.warning("Cannot PSF-match CCD %s: %s", calexp.id, err)
                    if outcome is not None:  # the psfMatched warp lacks this CCD: incomplete
                        outcome.reasons["psfMatched"] = f"cannot PSF-match: {err}"
                        outcome.unusable = True
                    matched = None
                if matched is not None and outcome is not None:
                    outcome.notes.extend(matched.metadata.get("PSFMATCH_WARNINGS", []))
                out["psfMatched"] = matched
        return out

    def _add_companions(
        self,
        companions: dict[str, Exposure],
        calexp: Exposure,
        direct: Exposure,
        sky_info: SkyInfo,
        data_id: DataId,
        outcome: CcdOutcome,
    ) -> None:
        """Warp a CCD's masked-fraction and noise images and copy them into the visit's
        companions of the direct warp (the pixels copied are counted in ``outcome.goodpix``);
        a failure marks the CCD unusable for them."""
        from warping.task.companions import warp_companions

        try:
            for t, exp in warp_companions(calexp, sky_info, self.config, data_id, direct):
                outcome.goodpix[t] = copy_good_pixels(companions[t], exp, self.config.badMaskPlanes)
                del exp
        except Exception as err:  # like a PSF-matching failure: those outputs are incomplete
            logger.warning("CCD %s: cannot warp its %s: %s", fmt_id(data_id),
                           "/".join(companions), err)  # fmt: skip
            for t in companions:
                outcome.reasons[t] = f"cannot warp it: {type(err).__name__}: {err}"
                outcome.goodpix[t] = 0
            outcome.unusable = True

    # -- the task -------------------------------------------------------------------------------
    def run(
        self,
        inputs: Sequence[CcdInput],
        sky_info: SkyInfo,
        visit: int,
        *,
        cancelled: Callable[[], bool] | None = None,
        psf_model: PatchPsfModel | None = None,
    ) -> VisitWarps:
        """Calibrate and warp one visit's CCDs onto a patch and assemble the requested warps.

        Each CCD is read through its handles when its turn comes (the only I/O), calibrated
        (background added back, sky correction subtracted, external WCS, nJy: see
        :func:`warping.task.calibrate.calibrate_exposure`), warped and copied into the visit's
        warps, so at most one calexp is in memory at a time.

        Parameters
        ----------
        inputs
            The visit's CCDs in the order they should be copied (sorted by CCD: later CCDs win
            where they overlap).
        sky_info
            Target tract WCS and patch outer bbox.
        visit
            The visit (every input's data ID names it or leaves it out).
        cancelled
            Checked before each CCD; when it returns True the run stops with
            :class:`WarpCancelledError`.
        psf_model
            The patch's model PSF for psfMatched warps (decided once per patch by the driver);
            None: decided from these inputs (:meth:`resolve_psf_model`).

        Returns
        -------
        VisitWarps
            ``exposures[warp_type]`` is None when no pixel landed (unless ``doWriteEmptyWarps``).
            It also holds the direct warp's companions asked for (``maskedFraction``,
            ``noise0`` ...: :mod:`warping.task.companions`), made exactly when the direct warp
            is (None, with the CCDs' reasons, when no CCD could be warped into one).
            A CCD whose data or PSF cannot be used is skipped with the reason in its outcome
            (``loaded`` False, ``unusable`` True): no warp holds pixels whose PSF is unknown.

        Raises
        ------
        ValueError
            If an input belongs to another visit.
        WarpCancelledError
            If ``cancelled`` returned True.
        """
        t0 = time.perf_counter()
        visit_id = int(visit)
        others = {inp.data_id.get("visit") for inp in inputs} - {visit_id} - {None}
        if others:
            raise ValueError(
                f"MakeWarpTask.run warps one visit ({visit_id}) at a time; got inputs of visits "
                f"{sorted(others, key=str)}"
            )
        cfg = self.config
        types_ = cfg.warp_types
        warps = {t: self._empty_warp(sky_info) for t in types_}
        goodpix = dict.fromkeys(types_, 0)
        recorders = {t: WarpInputsRecorder(cfg.inputRecorder, visit_id) for t in types_}
        packer = cfg.idGenerator.packer()
        # every id before any work: a data ID the packing cannot hold fails the visit, naming it
        ccd_ids = [packer.pack({"visit": visit_id, **inp.data_id.to_dict()}) for inp in inputs]
        noise: dict[str, list[tuple[int, dict[str, Any]]]] = {t: [] for t in types_}
        first: dict[str, _FirstCcd | None] = dict.fromkeys(types_)
        companions = {t: self._empty_warp(sky_info) for t in cfg.companion_types}
        psf_model = psf_model or self.resolve_psf_model(inputs, sky_info)
        model_psf = match_config = None
        if cfg.makePsfMatched and psf_model is not None:
            from warping.task.psf_model import config_for_model

            model_psf = self.model_psf(psf_model)
            match_config = config_for_model(cfg, psf_model)
        outcomes: list[CcdOutcome] = []
        for inp, ccd_id in zip(inputs, ccd_ids, strict=True):
            if cancelled is not None and cancelled():
                raise WarpCancelledError(f"visit {visit_id}: cancelled")
            ccd = inp.ccd
            outcome = CcdOutcome(ccd, inp.data_id)
            outcomes.append(outcome)
            data_id = inp.data_id.to_dict()
            try:
                if cfg.select.active and not inp.missing:  # PSF-quality cuts (issue #22)
                    decision = select_input(inp, cfg.select)
                    outcome.not_evaluated.update(decision.not_evaluated)
                    if not decision.selected:
                        logger.info("Visit %s CCD %s rejected by select: %s", visit_id, ccd,
                                    decision.reason)  # fmt: skip
                        raise UnusableCcdError(f"rejected by select: {decision.reason}")
                calexp = load_calibrated(inp, cfg.visit_summary_components)
            except UnusableCcdError as err:
                outcome.skipped, outcome.loaded, outcome.unusable = str(err), False, True
                for rec in recorders.values():
                    rec.add_error(ccd_id, ccd, data_id)
                continue
            why = psf_problem(calexp, f"calexp {fmt_id(inp.data_id)}")
            if why is not None:  # its warp's CoaddPsf (or PSF matching) would fail
                logger.warning("Visit %s CCD %s skipped: %s", visit_id, ccd, why)
                outcome.skipped, outcome.loaded, outcome.unusable = why, False, True
                for rec in recorders.values():
                    rec.add_error(ccd_id, ccd, data_id)
                continue
            if mask_outside(calexp):  # outside its valid polygon: NO_DATA before warping
                logger.debug(
                    "Visit %s CCD %s: pixels outside the valid polygon masked", visit_id, ccd
                )
            try:
                warped = self.warp_ccd(calexp, sky_info, model_psf, outcome, match_config)
            except Exception as err:  # LSST logs and skips any failure of one CCD
                outcome.skipped, outcome.unusable = f"{type(err).__name__}: {err}", True
                logger.warning("Visit %s CCD %s could not be warped: %s", visit_id, ccd, err)
                for rec in recorders.values():
                    rec.add_error(ccd_id, ccd, data_id)
                continue
            for t in types_:
                exp = warped[t]
                if exp is None:  # this warp type failed for the CCD (PSF matching)
                    outcome.goodpix[t] = 0
                    recorders[t].add_error(ccd_id, ccd, data_id)
                    continue
                n = copy_good_pixels(warps[t], exp, cfg.badMaskPlanes)
                outcome.goodpix[t] = n
                goodpix[t] += n
                if NOISE_KEY in exp.metadata:  # PSF-matched: the CCD's noise summary
                    noise[t].append((n, exp.metadata[NOISE_KEY]))
                if n > 0 and first[t] is None:  # not the exposure: its arrays would stay alive
                    first[t] = _FirstCcd(
                        exp.id, exp.filter, exp.visit_info, exp.psf,
                        exp.metadata.get(VARIANCE_KEY, "lsst"),
                    )  # fmt: skip
                recorders[t].add_ccd(
                    calexp, ccd_id, ccd, data_id, n, valid_bbox=_ccd_valid_bbox(calexp, exp),
                    valid_polygon=calexp.valid_polygon, ap_corr_map=calexp.ap_corr_map,
                )  # fmt: skip
            direct = warped.get("direct")
            del warped
            exp = None  # else the last warped CCD lives on while the next one is read
            if companions and direct is not None:
                self._add_companions(companions, calexp, direct, sky_info, inp.data_id, outcome)
            del calexp, direct
            if not outcome.used and outcome.skipped is None:
                outcome.skipped = "; ".join(outcome.reasons.values()) or "no good pixels on patch"
        exposures: dict[str, Exposure | None] = {}
        for t in types_:
            warp = warps[t]
            src = first[t]
            if goodpix[t] > 0 and src is not None:
                warp.id = src.id
                warp.filter = src.filter
                warp.visit_info = src.visit_info
                warp.coadd_inputs = recorders[t].finish(goodpix[t], src.filter or "")
                if t == "direct":
                    warp.psf = CoaddPsf(
                        recorders[t].contributing(),
                        sky_info.wcs,
                        kernel=cfg.coaddPsf.warpingKernelName,
                    )
                else:
                    warp.psf = src.psf  # the (resized) model PSF set by the matcher
                    if psf_model is not None:
                        warp.metadata.update(psf_model.metadata())
                    warp.metadata[VARIANCE_KEY] = src.variance_mode
                    if noise[t]:
                        warp.metadata[NOISE_KEY] = merge_noise_summaries(noise[t])
                exposures[t] = warp
            elif cfg.doWriteEmptyWarps:
                exposures[t] = warp
            else:
                exposures[t] = None
                logger.info("Visit %s lands no pixels on patch %s (%s)", visit_id,
                            sky_info.patch_name, t)  # fmt: skip
        pixels = {t: sum(o.goodpix.get(t, 0) for o in outcomes) for t in companions}
        _finish_companions(companions, pixels, exposures, first.get("direct"))
        seconds = time.perf_counter() - t0
        return VisitWarps(int(visit_id), exposures, goodpix, outcomes, seconds, psf_model)


def _finish_companions(
    companions: dict[str, Exposure],
    pixels: dict[str, int],
    exposures: dict[str, Exposure | None],
    src: _FirstCcd | None,
) -> None:
    """Add the companions to ``exposures``: written when the direct warp is, unless no CCD
    could be warped for them while the direct warp holds pixels (then reported missing)."""
    direct = exposures.get("direct")
    for t, warp in companions.items():
        if direct is None or (src is not None and pixels[t] == 0):
            exposures[t] = None
            continue
        if src is not None:
            warp.id, warp.filter, warp.visit_info = src.id, src.filter, src.visit_info
        if t == "maskedFraction":  # a fraction: no photometric calibration, no nJy
            warp.photo_calib = None
            warp.metadata.pop("BUNIT", None)
        exposures[t] = warp


class _FirstCcd(NamedTuple):
    """What a warp takes from the first CCD that landed pixels on it."""

    id: int | None
    filter: str | None
    visit_info: Any
    psf: Any
    variance_mode: str  # PSFMATCH_VARIANCE of a PSF-matched CCD


def _ccd_valid_bbox(calexp: Exposure, warped: Exposure) -> Box2I:
    """The CCD's valid region in its own pixels (eroded by the matching kernel for psfMatched)."""
    erosion = int(warped.metadata.get("PSFMATCH_EROSION", 0))
    return calexp.bbox.grow(-erosion) if erosion else calexp.bbox
