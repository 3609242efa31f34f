"""Run one planned MakeWarp unit anywhere: in the driver, a local Dask worker or a remote one.

:func:`execute_unit` needs no butler and no registry: it binds the unit's CCDs to handles that
read through a :class:`~repo_butler.WorkerIO` (each file once), runs
:meth:`~warping.task.make_warp.MakeWarpTask.run` (which reads, calibrates and warps them), writes
the warps and their provenance sidecars and returns a picklable
:class:`~warping.task.work_units.UnitResult` from which the driver registers the outputs. The
same function runs under every executor, so every executor produces the same bytes.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import platform
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from warping.task.config import MakeWarpConfig, config_to_dict
from warping.task.make_warp import MakeWarpTask, SkyInfo, WarpCancelledError
from warping.task.output_compression import warp_payload
from warping.task.work_units import UnitResult, WarpUnit

if TYPE_CHECKING:
    from repo_butler import WorkerIO, WrittenDataset
    from warping.skymap.skymaps import BaseSkyMap

logger = logging.getLogger(__name__)

#: Warp metadata key listing the CCDs a unit could not use (absent when it is complete).
INCOMPLETE_KEY = "CCDS_UNUSABLE"

__all__ = ["TASK_NAME", "error_summary", "execute_unit", "unit_sky_info"]

TASK_NAME = "makeWarp"
PACKAGES = ("repo-butler", "numpy", "astropy", "scipy")
_SKYMAPS: dict[tuple[str, str, str], BaseSkyMap] = {}


def unit_sky_info(unit: WarpUnit, io: WorkerIO, border: int = 0) -> SkyInfo:
    """The unit's patch geometry, from the skymap file (read once per process and skymap); the
    warp's bbox is the outer bbox grown by ``border`` (``MakeWarpConfig.border``).

    Rebuilding it from the file rather than unpickling a WCS keeps the tract WCS bit-exact
    wherever the unit runs (astropy pickles a WCS through its header text).
    """
    key = (io.storage_root, unit.skymap.path, unit.skymap.checksum)
    skymap = _SKYMAPS.get(key)
    if skymap is None:
        skymap = _SKYMAPS[key] = io.read(unit.skymap)
    return SkyInfo.from_skymap(skymap, unit.tract, unit.patch, border=border)


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[list[Any]]:
    """Hold Ctrl-C while a unit's files are written (main thread only).

    Yields the list of signals caught meanwhile; the caller reports them instead of raising, so
    the files just written still reach the registry.
    """
    caught: list[Any] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = signal.signal(signal.SIGINT, lambda *a: caught.append(a))
    try:
        yield caught
    finally:
        signal.signal(signal.SIGINT, previous)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def error_summary(err: BaseException) -> tuple[str, str]:
    """One-line ``Type: message (at file:line)`` and a short traceback (last 5 frames)."""
    tb = traceback.extract_tb(err.__traceback__)
    where = f" (at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
    frames = "".join(traceback.format_list(tb[-5:]))
    return f"{type(err).__name__}: {err}{where}", frames + f"{type(err).__name__}: {err}"


def _why_not_made(warp_type: str, warps: Any) -> str:
    """Why a requested warp type has no exposure: its CCDs' reasons, or no good pixel."""
    why = sorted({o.reasons[warp_type] for o in warps.ccds if warp_type in o.reasons})
    return "; ".join(why) if why else f"no good pixel of the {warp_type} warp lands on the patch"


def execute_unit(
    unit: WarpUnit,
    io: WorkerIO,
    config: MakeWarpConfig,
    cancelled: Callable[[], bool] | None = None,
    journal: list[WrittenDataset] | None = None,
    task: MakeWarpTask | None = None,
) -> UnitResult:
    """Calibrate, warp and write one unit; never raises (failures become a ``failed`` result).

    Parameters
    ----------
    unit
        The planned unit.
    io
        Storage root, options and formatters (no registry access happens here).
    config
        Task configuration.
    cancelled
        Checked before each CCD and before writing: when it returns True the unit stops without
        writing anything (status ``cancelled``).
    journal
        Each written dataset is appended here as soon as its files exist, so an in-process
        caller interrupted by Ctrl-C can still register them.
    task
        The task to run, kept by the executor across units so its PSF-matching buffers are
        reused (default: a new ``MakeWarpTask(config)``).
    """
    from repo_butler import Provenance
    from repo_butler.provenance import ProvenanceInput, now_iso

    t0 = time.perf_counter()
    start = now_iso()
    result = UnitResult.for_unit(unit, "empty", worker=f"{platform.node()}:{os.getpid()}")
    reads: collections.Counter[str] = collections.Counter()
    try:
        sky_info = unit_sky_info(unit, io, config.border)
        shared: dict[str, Any] = {}  # the visit's visitSummary: read once for all its CCDs
        inputs = [c.bind(io, reads, shared) for c in unit.ccds]
        task = task if task is not None else MakeWarpTask(config)
        warps = task.run(
            inputs, sky_info, unit.visit, cancelled=cancelled, psf_model=unit.psf_model
        )
        used_config = config
        if warps.psf_model is not None:  # provenance records the model the warps were matched to
            from warping.task.psf_model import config_for_model

            used_config = config_for_model(config, warps.psf_model)
        # CCDs skipped before warping first, then the others (the order summaries list them)
        for outcome in sorted(warps.ccds, key=lambda o: o.loaded):
            if outcome.used:
                result.ccds_used.append(outcome.ccd)
                if outcome.reasons:  # in some warps but not all (PSF matching failed)
                    result.ccds_skipped[outcome.ccd] = "; ".join(
                        f"not in the {t} warp: {why}" for t, why in outcome.reasons.items()
                    )
            elif outcome.skipped:
                result.ccds_skipped[outcome.ccd] = outcome.skipped
            if outcome.unusable:
                result.ccds_unusable.append(outcome.ccd)
            for cut, why in outcome.not_evaluated.items():
                result.cuts_not_evaluated.setdefault(cut, {})[outcome.ccd] = why
        result.goodpix = dict(warps.goodpix)
        made = [t for t in config.output_types if warps.exposures.get(t) is not None]
        if made:  # a type asked for but not made while another was: the output is incomplete
            for t in config.output_types:
                if t not in made:
                    result.outputs_missing[t] = _why_not_made(t, warps)
        used = set(result.ccds_used)
        # each stored input once (the CCDs of a visit share its visitSummary)
        used_refs = {r.path: r for inp in inputs if inp.ccd in used for r in inp.refs()}
        kept = [ProvenanceInput.from_ref(unit.skymap)] + [
            ProvenanceInput.from_ref(r) for r in used_refs.values()
        ]
        if cancelled is not None and cancelled():
            raise WarpCancelledError(f"{unit.key}: cancelled before writing")
        with _sigint_deferred() as caught:
            for planned in unit.outputs:
                exposure = warps.exposures.get(planned.warp_type)
                if exposure is None:
                    continue
                if result.ccds_unusable:  # marked, so that --reuse redoes it rather than keep it
                    exposure.metadata[INCOMPLETE_KEY] = ",".join(
                        map(str, sorted(result.ccds_unusable))
                    )
                payload, recorded = warp_payload(  # compressed outputs (#19)
                    exposure, planned.put.data_id.to_dict(), config, config_to_dict(used_config)
                )
                provenance = Provenance.build(
                    TASK_NAME,
                    recorded,
                    kept,
                    start=start,
                    end=now_iso(),
                    packages=PACKAGES,
                )
                w = io.write(planned.put, payload, provenance)
                result.written.append(w)
                if journal is not None:
                    journal.append(w)
                result.outputs[planned.warp_type] = w.uri
        result.interrupted = bool(caught)
        result.status = "written" if result.written else "empty"
    except WarpCancelledError:
        result.status = "cancelled"
    except Exception as err:
        result.status = "failed"
        result.error, result.traceback = error_summary(err)
        logger.error("Unit %s failed: %s", unit.key, result.error)
    finally:
        result.reads = dict(reads)
        result.seconds = time.perf_counter() - t0
        result.peak_rss_mb = _peak_rss_mb()
    return result
