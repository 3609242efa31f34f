"""MakeWarp over a repository: select calexps, calibrate, warp per visit, write with provenance.

This is LSST's ``runDataRef`` layer: every butler read and write of the task lives here, around the
pure :meth:`warping.task.make_warp.MakeWarpTask.run`.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from warping.errors import MissingExposureError
from warping.exposure import Exposure
from warping.geom import Box2I
from warping.task.calibrate import calibrate_exposure
from warping.task.config import MakeWarpConfig, config_to_dict
from warping.task.make_warp import MakeWarpTask, SkyInfo

logger = logging.getLogger(__name__)

__all__ = [
    "RunSummary",
    "VisitSummary",
    "get_calibrated_exposure",
    "read_calexp_footprint",
    "run_make_warp",
    "select_calexps",
]

TASK_NAME = "makeWarp"


@dataclass
class VisitSummary:
    """One visit's outcome in a MakeWarp run."""

    visit: int
    status: str  # "written", "empty", "reused", "failed"
    ccds_used: list[int] = field(default_factory=list)
    ccds_skipped: dict[int, str] = field(default_factory=dict)
    goodpix: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # warp type -> uri
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "visit": self.visit,
            "status": self.status,
            "ccds_used": self.ccds_used,
            "ccds_skipped": {str(k): v for k, v in self.ccds_skipped.items()},
            "goodpix": self.goodpix,
            "outputs": self.outputs,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


@dataclass
class RunSummary:
    """Outcome of :func:`run_make_warp` for one patch."""

    patch_id: dict[str, Any]
    visits: list[VisitSummary] = field(default_factory=list)
    not_selected: dict[str, str] = field(default_factory=dict)  # data ID text -> reason

    @property
    def n_written(self) -> int:
        """Visits for which at least one warp was written."""
        return sum(1 for v in self.visits if v.status == "written")

    @property
    def n_failed(self) -> int:
        """Visits that raised an error."""
        return sum(1 for v in self.visits if v.status == "failed")

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "patch_id": self.patch_id,
            "visits": [v.to_dict() for v in self.visits],
            "not_selected": self.not_selected,
        }


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------


def _fmt_id(data_id: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(dict(data_id).items()))


def read_calexp_footprint(butler: Any, ref: Any) -> tuple[Any, Box2I]:
    """WCS and bbox of a stored calexp, reading only its headers (no pixels)."""
    from warping.formats.exposure_fits import read_wcs_and_bbox

    with butler.open_file(ref) as f:
        return read_wcs_and_bbox(f, source=ref.uri)


def _external_wcs(
    butler: Any, config: MakeWarpConfig, data_id: Mapping[str, Any], tract: int
) -> Any:
    name = f"{config.externalSkyWcsName}_wcs"
    return butler.get_ref(name, {**dict(data_id), "tract": tract})


def select_calexps(
    butler: Any,
    sky_info: SkyInfo,
    filter_name: str,
    select_ids: Sequence[Mapping[str, Any]] | None,
    config: MakeWarpConfig,
) -> tuple[list[Any], dict[str, str]]:
    """Calexp refs of ``filter_name`` whose sky footprint overlaps the patch outer bbox.

    Candidates are the explicit ``select_ids`` (partial data IDs such as ``visit=…, ccd=…``) or,
    if none, every calexp of the filter. The overlap is a polygon test on the sky (valid at the
    poles and across RA=0), using the external WCS when ``doApplyExternalSkyWcs`` is set.

    Returns
    -------
    refs, rejected
        Selected calexp refs sorted by (visit, ccd), and ``{data ID text: reason}`` of the others.
    """
    from warping.skymap.geometry import SkyPolygon, polygons_overlap

    rejected: dict[str, str] = {}
    if select_ids:
        candidates = []
        seen = set()
        for sid in select_ids:
            query = dict(sid)
            query.setdefault("filter", filter_name)
            refs = butler.query_datasets("calexp", data_id=query)
            if not refs:
                rejected[_fmt_id(query)] = "calexp not found"
                logger.warning("Calexp %s not found; skipping it", _fmt_id(query))
            for r in refs:
                if r.data_id not in seen:
                    seen.add(r.data_id)
                    candidates.append(r)
    else:
        candidates = butler.query_datasets("calexp", data_id={"filter": filter_name})
    patch_poly = SkyPolygon.from_wcs_bbox(sky_info.wcs, sky_info.bbox)
    selected = []
    for ref in candidates:
        try:
            try:
                wcs, bbox = read_calexp_footprint(butler, ref)
            except (FileNotFoundError, LookupError):
                # registered but unreadable: keep it, so it is reported as a skipped CCD
                selected.append(ref)
                continue
            if config.doApplyExternalSkyWcs:
                # a missing external WCS is reported when the CCD is calibrated
                with contextlib.suppress(LookupError):
                    ext = _external_wcs(butler, config, ref.data_id, sky_info.tract_id)
                    wcs = butler.get(ext.dataset_type, ext.data_id)
            if wcs is None:
                raise ValueError("no WCS")
            overlaps = polygons_overlap(patch_poly, SkyPolygon.from_wcs_bbox(wcs, bbox))
        except Exception as err:  # a WCS evaluation error deselects the calexp (LSST)
            rejected[_fmt_id(ref.data_id)] = f"footprint unreadable: {err}"
            continue
        if overlaps:
            selected.append(ref)
        else:
            rejected[_fmt_id(ref.data_id)] = "does not overlap the patch"
    selected.sort(key=lambda r: (int(r.data_id["visit"]), int(r.data_id["ccd"])))
    return selected, rejected


def get_calibrated_exposure(
    butler: Any, calexp_ref: Any, config: MakeWarpConfig, tract: int
) -> tuple[Exposure, list[Any]]:
    """Read a calexp and its calibration products and return it calibrated in nJy.

    Raises
    ------
    MissingExposureError
        When the calexp or a requested calibration product does not exist; the message names
        the dataset type and data ID.
    """
    data_id = dict(calexp_ref.data_id)
    used = [calexp_ref]

    def fetch(dataset_type: str, extra: Mapping[str, Any] | None = None) -> Any:
        did = {**data_id, **(extra or {})}
        try:
            ref = butler.get_ref(dataset_type, did)
            obj = butler.get(ref.dataset_type, ref.data_id)
        except LookupError as err:
            raise MissingExposureError(
                f"{dataset_type} not found for {_fmt_id(did)}: {err}. Produce it, or turn off the "
                "option that needs it."
            ) from err
        used.append(ref)
        return obj

    try:
        calexp = butler.get("calexp", calexp_ref.data_id)
    except LookupError as err:
        raise MissingExposureError(f"Exposure not found: calexp {_fmt_id(data_id)}: {err}") from err
    background = None if config.bgSubtracted else fetch("calexpBackground")
    sky_corr = fetch("skyCorr") if config.doApplySkyCorr else None
    wcs = (
        fetch(f"{config.externalSkyWcsName}_wcs", {"tract": tract})
        if config.doApplyExternalSkyWcs
        else None
    )
    if config.doApplyExternalPhotoCalib:
        name = f"{config.externalPhotoCalibName}_photoCalib"
        photo_calib = fetch(
            name, {"tract": tract} if config.externalPhotoCalibName == "jointcal" else None
        )
    else:
        photo_calib = calexp.photo_calib
        if photo_calib is None:
            raise MissingExposureError(
                f"calexp {_fmt_id(data_id)} has no photometric calibration; set "
                "doApplyExternalPhotoCalib=True to use an external one."
            )
    calibrated = calibrate_exposure(
        calexp, photo_calib=photo_calib, background=background, sky_corr=sky_corr, wcs=wcs
    )
    return calibrated, used


# ------------------------------------------------------------------------------------------------
# One visit
# ------------------------------------------------------------------------------------------------


def _output_ids(patch_id: Mapping[str, Any], visit: int) -> dict[str, Any]:
    return {"tract": patch_id["tract"], "patch": patch_id["patch"], "filter": patch_id["filter"],
            "visit": visit}  # fmt: skip


def _warps_exist_in_output(butler: Any, config: MakeWarpConfig, ids: Mapping[str, Any]) -> bool:
    return all(
        butler.exists(config.dataset_type(t), ids, output_run_only=True) for t in config.warp_types
    )


def process_visit(
    butler: Any,
    visit: int,
    refs: Sequence[Any],
    sky_info: SkyInfo,
    patch_id: Mapping[str, Any],
    config: MakeWarpConfig,
    *,
    reuse: bool = False,
    extra_inputs: Sequence[Any] = (),
) -> VisitSummary:
    """Calibrate, warp and write the warps of one visit; never raises for one bad CCD."""
    from repo_butler import Provenance
    from repo_butler.provenance import now_iso

    start = now_iso()
    t0 = time.perf_counter()
    summary = VisitSummary(visit=visit, status="empty")
    out_ids = _output_ids(patch_id, visit)
    if reuse and _warps_exist_in_output(butler, config, out_ids):
        summary.status = "reused"
        for t in config.warp_types:
            summary.outputs[t] = butler.uri(config.dataset_type(t), out_ids)
        return summary
    calexps, ccds, data_ids, inputs = [], [], [], list(extra_inputs)
    for ref in refs:
        ccd = int(ref.data_id["ccd"])
        try:
            exp, used = get_calibrated_exposure(butler, ref, config, sky_info.tract_id)
        except MissingExposureError as err:
            logger.warning("Calexp %s not usable; skipping it: %s", _fmt_id(ref.data_id), err)
            summary.ccds_skipped[ccd] = str(err)
            continue
        calexps.append(exp)
        ccds.append(ccd)
        data_ids.append(ref.data_id.to_dict())
        inputs.extend(used)
    task = MakeWarpTask(config)
    result = task.run(calexps, ccds, sky_info, visit, data_ids)
    for outcome in result.ccds:
        if outcome.used:
            summary.ccds_used.append(outcome.ccd)
        elif outcome.skipped:
            summary.ccds_skipped[outcome.ccd] = outcome.skipped
    summary.goodpix = dict(result.goodpix)
    used_ccds = set(summary.ccds_used)
    kept_inputs = [
        r for r in inputs
        if "ccd" not in r.data_id or int(r.data_id["ccd"]) in used_ccds
    ]  # fmt: skip
    for warp_type, exposure in result.exposures.items():
        if exposure is None:
            continue
        provenance = Provenance.build(
            TASK_NAME,
            config_to_dict(config),
            kept_inputs,
            start=start,
            end=now_iso(),
            packages=("repo-butler", "numpy", "astropy", "numba"),
        )
        ref = butler.put(
            exposure, config.dataset_type(warp_type), out_ids, provenance=provenance, overwrite=True
        )
        summary.outputs[warp_type] = ref.uri
    summary.status = "written" if summary.outputs else "empty"
    summary.seconds = time.perf_counter() - t0
    return summary


def _process_visit_in_worker(args: tuple[Any, ...]) -> VisitSummary:
    """Process-pool entry: re-open the butler in the worker and process one visit."""
    from repo_butler import Butler

    root, rerun, storage_options, visit, ref_ids, sky_info, patch_id, config, reuse, extra = args
    butler = Butler(root, rerun=rerun, storage_options=storage_options)
    refs = [butler.get_ref("calexp", did) for did in ref_ids]
    extra_refs = [butler.get_ref(t, did) for t, did in extra]
    try:
        return process_visit(butler, visit, refs, sky_info, patch_id, config, reuse=reuse,
                             extra_inputs=extra_refs)  # fmt: skip
    except Exception as err:
        return VisitSummary(visit, "failed", error=_error_text(err))


def _error_text(err: BaseException) -> str:
    tb = traceback.extract_tb(err.__traceback__)
    where = f" (at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
    return f"{type(err).__name__}: {err}{where}"


# ------------------------------------------------------------------------------------------------
# The patch
# ------------------------------------------------------------------------------------------------


def run_make_warp(
    butler: Any,
    patch_id: Mapping[str, Any],
    select_ids: Sequence[Mapping[str, Any]] | None = None,
    *,
    config: MakeWarpConfig | None = None,
    reuse: bool = False,
    jobs: int = 1,
    progress: Callable[[VisitSummary], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> RunSummary:
    """Make the warps of one patch (LSST ``MakeCoaddTempExpTask.runDataRef``).

    Parameters
    ----------
    butler
        A :class:`repo_butler.Butler`; outputs go to its output run (``rerun``).
    patch_id
        ``{"tract": int, "patch": "x,y", "filter": str}``.
    select_ids
        Partial calexp data IDs to consider (``{"visit": 903988, "ccd": 16}``); None means every
        calexp of the filter whose footprint overlaps the patch.
    config
        Task configuration.
    reuse
        Skip visits whose requested warps already exist in the output run, without reading inputs.
    jobs
        Number of worker processes (visits are processed in parallel when > 1).
    progress
        Called with each finished visit's summary.
    on_plan
        Called once with the number of visits to process.
    """
    config = config or MakeWarpConfig()
    config.validate()
    for key in ("tract", "patch", "filter"):
        if key not in patch_id:
            raise ValueError(
                f"The patch data ID {dict(patch_id)} lacks {key!r}; give --id tract=… patch=x,y "
                "filter=…"
            )
    skymap_type = f"{config.coaddName}Coadd_skyMap"
    skymap_ref = butler.get_ref(skymap_type)
    skymap = butler.get(skymap_type)
    sky_info = SkyInfo.from_skymap(skymap, int(patch_id["tract"]), patch_id["patch"])
    patch_id = {**dict(patch_id), "patch": sky_info.patch_name}
    summary = RunSummary(patch_id=dict(patch_id))
    refs, rejected = select_calexps(butler, sky_info, str(patch_id["filter"]), select_ids, config)
    summary.not_selected = rejected
    by_visit: dict[int, list[Any]] = defaultdict(list)
    for ref in refs:
        by_visit[int(ref.data_id["visit"])].append(ref)
    if on_plan is not None:
        on_plan(len(by_visit))
    if not by_visit:
        logger.warning("No calexp of filter %s overlaps patch %s of tract %s",
                       patch_id["filter"], patch_id["patch"], patch_id["tract"])  # fmt: skip
        return summary
    visits = sorted(by_visit)
    if jobs <= 1 or len(visits) == 1:
        for visit in visits:
            try:
                vs = process_visit(butler, visit, by_visit[visit], sky_info, patch_id, config,
                                   reuse=reuse, extra_inputs=[skymap_ref])  # fmt: skip
            except Exception as err:
                logger.exception("Visit %s failed", visit)
                vs = VisitSummary(visit, "failed", error=_error_text(err))
            summary.visits.append(vs)
            if progress is not None:
                progress(vs)
        return summary
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    args = [
        (butler.root, butler.rerun_spec, butler.storage_options, v,
         [r.data_id.to_dict() for r in by_visit[v]], sky_info, patch_id, config, reuse,
         [(skymap_ref.dataset_type, skymap_ref.data_id.to_dict())])
        for v in visits
    ]  # fmt: skip
    results: dict[int, VisitSummary] = {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_process_visit_in_worker, a): a[3] for a in args}
        for fut in as_completed(futures):
            visit = futures[fut]
            try:
                vs = fut.result()
            except Exception as err:
                vs = VisitSummary(visit, "failed", error=_error_text(err))
            results[visit] = vs
            if progress is not None:
                progress(vs)
    summary.visits = [results[v] for v in visits]
    return summary
