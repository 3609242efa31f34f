"""MakeWarp over a repository: plan (patch, visit) units, run them, register the warps.

This is LSST's ``runDataRef`` layer around :meth:`warping.task.make_warp.MakeWarpTask.run`:
:func:`run_make_warps` plans the units in the driver (:mod:`warping.task.planning`), runs them with
an executor (:mod:`warping.task.executors`: serial, local Dask cluster or remote scheduler; each
unit runs :func:`warping.task.execution.execute_unit`) and registers the files the units wrote,
as their results arrive (the driver is the only registry writer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from repo_butler.extras import require
from warping.task.config import MakeWarpConfig
from warping.task.work_units import UnitResult, patch_of

if TYPE_CHECKING:
    from repo_butler import Butler, DataId, WorkerIO, WrittenDataset
    from warping.skymap.geometry import SkyPolygon
    from warping.task.executors import DaskExecutor, UnitExecutor
    from warping.task.work_units import WarpPlan

logger = logging.getLogger(__name__)

__all__ = [
    "BatchSummary",
    "ProgressState",
    "RunSummary",
    "VisitSummary",
    "run_make_warp",
    "run_make_warps",
]

#: The driver registers finished units at least this often (seconds), in one registry batch.
REGISTER_EVERY = 1.0
#: With Dask, the calexp headers are read on the cluster when at least this many are needed.
FOOTPRINTS_ON_CLUSTER = 32


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
    traceback: str | None = None
    worker: str = ""
    ccds_unusable: list[int] = field(default_factory=list)  # skipped ones whose data was bad
    outputs_missing: dict[str, str] = field(default_factory=dict)  # warp type asked, not made
    #: ``select`` cuts that could not be evaluated (no statistic): field name -> {CCD: why}
    cuts_not_evaluated: dict[str, dict[int, str]] = field(default_factory=dict)

    @property
    def incomplete(self) -> bool:
        """True when a CCD was left out because its data or PSF could not be used, or a warp
        type asked for was not made while another was."""
        return bool(self.ccds_unusable or self.outputs_missing)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "visit": self.visit,
            "status": self.status,
            "ccds_used": self.ccds_used,
            "ccds_skipped": {str(k): v for k, v in self.ccds_skipped.items()},
            "ccds_unusable": self.ccds_unusable,
            "outputs_missing": self.outputs_missing,
            "cuts_not_evaluated": {
                cut: {str(c): why for c, why in ccds.items()}
                for cut, ccds in self.cuts_not_evaluated.items()
            },
            "incomplete": self.incomplete,
            "goodpix": self.goodpix,
            "outputs": self.outputs,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "worker": self.worker,
        }


@dataclass
class RunSummary:
    """Outcome of :func:`run_make_warp` for one patch."""

    patch_id: DataId  # tract, patch, filter
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

    @property
    def n_incomplete(self) -> int:
        """Visits with CCDs left out because their data or PSF could not be used."""
        return sum(1 for v in self.visits if v.incomplete)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "patch_id": self.patch_id.to_dict(),
            "visits": [v.to_dict() for v in self.visits],
            "not_selected": self.not_selected,
        }


@dataclass
class ProgressState:
    """Live counts over the units of a run (for a progress bar)."""

    total: int = 0
    done: int = 0  # finished without failing (written, empty, reused)
    failed: int = 0
    cancelled: int = 0
    submitted: int = 0
    slots: int = 1  # units that can run at once

    @property
    def running(self) -> int:
        """Units on workers now (in flight, at most one per worker thread)."""
        in_flight = self.submitted - self.done - self.failed - self.cancelled
        return max(0, min(in_flight, self.slots))


@dataclass
class BatchSummary:
    """Outcome of :func:`run_make_warps`: one :class:`RunSummary` per patch, plus run figures."""

    patches: list[RunSummary] = field(default_factory=list)
    failures: list[UnitResult] = field(default_factory=list)  # with data IDs and tracebacks
    n_units: int = 0
    n_reused: int = 0
    n_cancelled: int = 0
    interrupted: bool = False
    executor: str = "serial"
    dashboard_link: str | None = None
    plan_seconds: float = 0.0
    wall_seconds: float = 0.0
    driver_seconds: float = 0.0  # planning + submitting + handling results + registering
    worker_peak_rss_mb: dict[str, float] = field(default_factory=dict)
    reads: dict[str, int] = field(default_factory=dict)  # storage path -> reads over all units
    #: tract-wide: calexps that could not be read and belong to no unit (data ID -> reason)
    unplaced: dict[str, str] = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        """Units that failed."""
        return len(self.failures)

    @property
    def n_written(self) -> int:
        """Units that wrote at least one warp."""
        return sum(p.n_written for p in self.patches)

    @property
    def n_incomplete(self) -> int:
        """Units (visits) with CCDs left out because their data or PSF could not be used."""
        return sum(p.n_incomplete for p in self.patches)

    @property
    def driver_ms_per_unit(self) -> float:
        """Driver time per unit run (planning, submission, result handling, registration)."""
        return 1000.0 * self.driver_seconds / max(1, self.n_units)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "patches": [p.to_dict() for p in self.patches],
            "failed": [
                {
                    "data_id": f.data_id.to_dict(),
                    "error": f.error,
                    "traceback": f.traceback,
                }
                for f in self.failures
            ],
            "units": self.n_units,
            "reused": self.n_reused,
            "cancelled": self.n_cancelled,
            "incomplete": self.n_incomplete,
            "unplaced": self.unplaced,
            "interrupted": self.interrupted,
            "executor": self.executor,
            "wall_seconds": round(self.wall_seconds, 3),
            "driver_ms_per_unit": round(self.driver_ms_per_unit, 3),
            "worker_peak_rss_mb": self.worker_peak_rss_mb,
        }


def _visit_summary(res: UnitResult) -> VisitSummary:
    return VisitSummary(
        visit=res.visit,
        status=res.status,
        ccds_used=list(res.ccds_used),
        ccds_skipped=dict(res.ccds_skipped),
        ccds_unusable=list(res.ccds_unusable),
        outputs_missing=dict(res.outputs_missing),
        cuts_not_evaluated={k: dict(v) for k, v in res.cuts_not_evaluated.items()},
        goodpix=dict(res.goodpix),
        outputs=dict(res.outputs),
        seconds=res.seconds,
        error=res.error,
        traceback=res.traceback,
        worker=res.worker,
    )


def run_make_warps(
    butler: Butler,
    ids: Sequence[Mapping[str, Any]],
    select_ids: Sequence[Mapping[str, Any]] | None = None,
    *,
    config: MakeWarpConfig | None = None,
    reuse: bool = False,
    clobber_config: bool = False,
    jobs: int = 1,
    scheduler: str | None = None,
    dashboard: bool = True,
    progress: Callable[[ProgressState], None] | None = None,
    on_start: Callable[[BatchSummary], None] | None = None,
) -> BatchSummary:
    """Make the warps of several patches or whole tracts (LSST ``makeCoaddTempExp`` at scale).

    Parameters
    ----------
    butler
        Outputs go to its output run. Only this process writes
        its registry; workers write files through fsspec.
    ids
        Data IDs with ``tract`` and optionally ``patch`` (none: every patch with overlapping
        inputs) and ``filter`` (none: every filter).
    select_ids
        Partial calexp data IDs to consider; None means every calexp.
    config
        Task configuration.
    reuse
        Skip units whose warps exist in the output run, made with ``config`` (their provenance
        says), without reading their inputs.
    clobber_config
        Replace the configuration the output run records (:mod:`warping.task.run_config`)
        when it differs from ``config``, instead of refusing.
    jobs
        1: run units in this process. N > 1: a local Dask cluster of N single-threaded worker
        processes.
    scheduler
        ``tcp://HOST:PORT`` of a running Dask scheduler (overrides ``jobs``).
    dashboard
        Serve the local cluster's Dask dashboard.
    progress
        Called with the live counts whenever a unit is submitted or finishes.
    on_start
        Called once the plan is made and the executor is up (``dashboard_link`` set).

    Returns
    -------
    BatchSummary
        ``interrupted`` is True after Ctrl-C: finished units are registered, the others are
        ``cancelled`` (rerun with ``reuse=True`` to complete the run).

    Raises
    ------
    RunConfigMismatchError
        If the output run was made with another configuration and ``clobber_config`` is false
        (checked before any work or write).
    """
    from warping.calexp_footprint import sky_footprints
    from warping.task.executors import DaskExecutor, SerialExecutor
    from warping.task.planning import plan_units
    from warping.task.run_config import check_run_config, record_run_config

    t_start = time.perf_counter()
    config = config or MakeWarpConfig()
    config.validate()
    recorded = check_run_config(butler, config, clobber=clobber_config)  # before any write
    use_dask = bool(scheduler) or jobs > 1
    if use_dask:  # before any work: a missing extra is not a failure halfway
        require("distributed", "dask", "running on Dask (--jobs > 1 or --dask-scheduler)")
    holder: dict[str, DaskExecutor] = {}

    def start_dask() -> DaskExecutor:
        if "dask" not in holder:
            executor = DaskExecutor(jobs=jobs, address=scheduler, dashboard=dashboard)
            holder["dask"] = executor.__enter__()
        return holder["dask"]

    def map_footprints(io: WorkerIO, items: list[Any]) -> list[SkyPolygon | str]:
        # many headers to read: spread them over the cluster (started now, reused for units)
        if use_dask and len(items) >= FOOTPRINTS_ON_CLUSTER:
            return list(start_dask().map_footprints(io, items))
        return sky_footprints(io, items)

    try:
        plan = plan_units(butler, ids, select_ids, config=config, reuse=reuse,
                          map_footprints=map_footprints)  # fmt: skip
        if config.makePsfMatched and plan.units:
            _decide_psf_models(butler, plan, config)
        if plan.all_units:  # the run gets (or holds) warps: it records their config
            record_run_config(butler, recorded)
        # in-process for a single unit unless a cluster is already up or was named explicitly
        if use_dask and (len(plan.units) > 1 or scheduler or "dask" in holder):
            executor: UnitExecutor = start_dask()
        else:
            executor = SerialExecutor()
        batch = _execute(butler, plan, config, executor, progress, on_start)
    finally:
        if "dask" in holder:
            holder["dask"].__exit__(None, None, None)
    batch.wall_seconds = time.perf_counter() - t_start
    return batch


def _decide_psf_models(butler: Butler, plan: WarpPlan, config: MakeWarpConfig) -> None:
    """Decide each patch's model PSF once (in the driver) and give it to every unit of the
    patch, so every executor matches all visits of a patch to the same model."""
    import dataclasses

    from warping.task.execution import unit_sky_info
    from warping.task.psf_model import survey_patch_models

    t0 = time.perf_counter()
    # over every unit of the patch, reused ones too: the model does not depend on what is redone
    todo = {patch_of(u.data_id) for u in plan.units}
    units = [u for u in plan.all_units or plan.units if patch_of(u.data_id) in todo]
    models = survey_patch_models(units, butler.worker_io(), config, unit_sky_info)
    plan.units = [
        dataclasses.replace(u, psf_model=models.get(patch_of(u.data_id))) for u in plan.units
    ]
    seconds = time.perf_counter() - t0
    plan.seconds += seconds
    logger.info("Model PSF of %d patch(es) decided in %.1f s", len(models), seconds)


def _execute(
    butler: Butler,
    plan: WarpPlan,
    config: MakeWarpConfig,
    executor: UnitExecutor,
    progress: Callable[[ProgressState], None] | None,
    on_start: Callable[[BatchSummary], None] | None,
) -> BatchSummary:
    """Run the plan's units on ``executor``; register their outputs as results arrive."""
    from warping.task.executors import InterruptGate

    batch = BatchSummary(n_units=len(plan.units), n_reused=len(plan.reused),
                         plan_seconds=plan.seconds, unplaced=dict(plan.unplaced))  # fmt: skip
    per_patch = {
        pid: RunSummary(patch_id=pid, not_selected=plan.not_selected.get(pid, {}))
        for pid in plan.patches
    }
    state = ProgressState(total=len(plan.units) + len(plan.reused))
    driver = plan.seconds
    pending: list[WrittenDataset] = []
    last_flush = time.perf_counter()

    def flush() -> None:
        nonlocal pending, last_flush
        if pending:
            butler.register(pending)
            pending = []
        last_flush = time.perf_counter()

    def handle(res: UnitResult) -> None:
        nonlocal driver
        t0 = time.perf_counter()
        pending.extend(res.written)
        if res.status == "failed":
            state.failed += 1
            batch.failures.append(res)
            logger.error("Unit %s failed: %s", res.key, res.error)
        elif res.status == "cancelled":
            state.cancelled += 1
            batch.n_cancelled += 1
        else:
            state.done += 1
        if res.worker:
            batch.worker_peak_rss_mb[res.worker] = max(
                batch.worker_peak_rss_mb.get(res.worker, 0.0), res.peak_rss_mb
            )
        for path, n in res.reads.items():
            batch.reads[path] = batch.reads.get(path, 0) + n
        per_patch[patch_of(res.data_id)].visits.append(_visit_summary(res))
        if time.perf_counter() - last_flush >= REGISTER_EVERY:
            flush()
        if progress is not None:
            progress(state)
        driver += time.perf_counter() - t0

    def submitted(_unit: object) -> None:
        state.submitted += 1
        if progress is not None and state.submitted % 16 == 0:
            progress(state)

    for res in plan.reused:
        state.submitted += 1
        handle(res)
    state.slots = executor.n_threads
    batch.executor = type(executor).__name__
    batch.dashboard_link = executor.dashboard_link
    if on_start is not None:
        on_start(batch)
    with InterruptGate() as gate:
        try:
            try:
                io = butler.worker_io()
                for res in executor.run(plan.units, io, config, on_submit=submitted):
                    with gate.hold():  # Ctrl-C waits until the result is recorded
                        handle(res)
                        executor.ack(res)
            except KeyboardInterrupt:
                batch.interrupted = True
                logger.warning("Interrupted: cancelling queued units, waiting for running ones")
                for res in executor.drain():  # a second Ctrl-C stops waiting
                    with gate.hold():
                        handle(res)
                        executor.ack(res)
        finally:
            t0 = time.perf_counter()
            with gate.hold(reraise=False):
                flush()
            batch.interrupted = batch.interrupted or gate.deferred
            driver += time.perf_counter() - t0 + executor.submit_seconds
    for summary in per_patch.values():
        summary.visits.sort(key=lambda v: v.visit)
    batch.patches = list(per_patch.values())
    batch.driver_seconds = driver
    return batch


def run_make_warp(
    butler: Butler,
    patch_id: Mapping[str, Any],
    select_ids: Sequence[Mapping[str, Any]] | None = None,
    *,
    config: MakeWarpConfig | None = None,
    reuse: bool = False,
    clobber_config: bool = False,
    jobs: int = 1,
    scheduler: str | None = None,
) -> RunSummary:
    """Make the warps of one patch (LSST ``MakeCoaddTempExpTask.runDataRef``).

    Parameters
    ----------
    butler
        Outputs go to its output run (``rerun``).
    patch_id
        ``{"tract": int, "patch": "x,y", "filter": str}``.
    select_ids
        Partial calexp data IDs to consider (``{"visit": 903988, "ccd": 16}``); None means every
        calexp of the filter whose footprint overlaps the patch.
    config
        Task configuration.
    reuse
        Skip visits whose requested warps already exist in the output run, made with ``config``,
        without reading inputs.
    clobber_config
        Replace the output run's recorded configuration when it differs from ``config``.
    jobs
        Worker processes of a local Dask cluster (1: in this process).
    scheduler
        Address of a running Dask scheduler.

    Raises
    ------
    RunConfigMismatchError
        If the output run was made with another configuration and ``clobber_config`` is false.
    KeyboardInterrupt
        After Ctrl-C, once finished visits are registered.
    """
    for key in ("tract", "patch", "filter"):
        if key not in patch_id:
            raise ValueError(
                f"The patch data ID {dict(patch_id)} lacks {key!r}; give --id tract=… patch=x,y "
                "filter=…"
            )
    batch = run_make_warps(
        butler,
        [patch_id],
        select_ids,
        config=config,
        reuse=reuse,
        clobber_config=clobber_config,
        jobs=jobs,
        scheduler=scheduler,
        dashboard=False,
    )
    if batch.interrupted:
        raise KeyboardInterrupt
    return batch.patches[0]
