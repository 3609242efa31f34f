"""MakeWarp as independent (patch, visit) units: planned by the driver, run anywhere.

:func:`plan_units` does every registry access of a run in the driver: it expands ``--id``
groups (one patch, several patches, or a whole tract = every patch with overlapping inputs, for
one or every filter), reads each candidate calexp's footprint once (headers only), and resolves
every input's :class:`~repo_butler.DatasetRef`. A :class:`WarpUnit` then carries all it needs.

:func:`execute_unit` runs one unit with no Butler and no registry: it reads the unit's inputs
through fsspec (each file once), calibrates and warps the visit's CCDs, writes the warps and their
provenance sidecars (:mod:`warping.task.deferred`) and returns a picklable :class:`UnitResult`
from which the driver registers the outputs. The same function runs in-process, in a local Dask
cluster or on remote Dask workers, so every executor produces the same bytes.
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from warping.errors import MissingExposureError
from warping.task.config import MakeWarpConfig, config_to_dict
from warping.task.deferred import StoreContext, WrittenDataset, output_path, write_dataset
from warping.task.make_warp import MakeWarpTask, SkyInfo

logger = logging.getLogger(__name__)

__all__ = ["CcdInputs", "UnitResult", "WarpPlan", "WarpUnit", "execute_unit", "plan_units"]

TASK_NAME = "makeWarp"
_SKYMAPS: dict[tuple[str, str, str], Any] = {}
PACKAGES = ("repo-butler", "numpy", "astropy", "scipy")


def fmt_id(data_id: Mapping[str, Any]) -> str:
    """``key=value`` text of a data ID (sorted keys)."""
    return " ".join(f"{k}={v}" for k, v in sorted(dict(data_id).items()))


@dataclass(frozen=True)
class CcdInputs:
    """One CCD of a unit: its calexp and the calibration products the config asks for."""

    ccd: int
    calexp: Any  # DatasetRef
    background: Any = None
    sky_corr: Any = None
    wcs: Any = None
    photo_calib: Any = None
    missing: str | None = None  # a product the config needs does not exist (CCD skipped)


@dataclass(frozen=True)
class WarpUnit:
    """One visit's warps on one patch: everything a worker needs, resolved by the driver."""

    tract: int
    patch: str
    filter: str
    visit: int
    skymap: Any  # DatasetRef of the skymap: workers rebuild the patch geometry from its file
    ccds: tuple[CcdInputs, ...]
    extra_inputs: tuple[Any, ...]  # DatasetRefs recorded in provenance (the skymap)
    outputs: tuple[tuple[str, str, str], ...]  # (warp type, dataset type, storage path)

    @property
    def key(self) -> str:
        """A readable, unique task key (``warp-0-5,4-HSC-I-903988``); no secrets in it."""
        return f"warp-{self.tract}-{self.patch}-{self.filter}-{self.visit}"

    @property
    def patch_id(self) -> dict[str, Any]:
        """``{"tract", "patch", "filter"}``."""
        return {"tract": self.tract, "patch": self.patch, "filter": self.filter}

    def sky_info(self, ctx: StoreContext) -> SkyInfo:
        """The patch geometry, from the skymap file (read once per process and skymap).

        Rebuilding it from the file rather than unpickling a WCS keeps the tract WCS bit-exact
        wherever the unit runs (astropy pickles a WCS through its header text).
        """
        key = (ctx.storage_root, self.skymap.path, self.skymap.checksum)
        skymap = _SKYMAPS.get(key)
        if skymap is None:
            skymap = _SKYMAPS[key] = ctx.read(self.skymap.dataset_type, self.skymap.path)
        return SkyInfo.from_skymap(skymap, self.tract, self.patch)

    @property
    def output_id(self) -> dict[str, Any]:
        """Data ID of the unit's warps."""
        return {**self.patch_id, "visit": self.visit}


@dataclass
class UnitResult:
    """What a worker returns for one unit (small and picklable)."""

    key: str
    tract: int
    patch: str
    filter: str
    visit: int
    status: str  # "written", "empty", "failed", "cancelled", "reused"
    ccds_used: list[int] = field(default_factory=list)
    ccds_skipped: dict[int, str] = field(default_factory=dict)
    goodpix: dict[str, int] = field(default_factory=dict)
    written: list[WrittenDataset] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)  # warp type -> uri
    seconds: float = 0.0
    error: str | None = None
    traceback: str | None = None
    reads: dict[str, int] = field(default_factory=dict)  # storage path -> full reads
    peak_rss_mb: float = 0.0
    worker: str = ""
    interrupted: bool = False  # Ctrl-C arrived while the outputs were being written

    @property
    def patch_id(self) -> dict[str, Any]:
        """``{"tract", "patch", "filter"}``."""
        return {"tract": self.tract, "patch": self.patch, "filter": self.filter}

    @classmethod
    def for_unit(cls, unit: WarpUnit, status: str, **kw: Any) -> UnitResult:
        """A result of ``unit`` with ``status``."""
        return cls(unit.key, unit.tract, unit.patch, unit.filter, unit.visit, status, **kw)


@dataclass
class WarpPlan:
    """Units to run, units reused, and per patch the calexps that were not selected."""

    units: list[WarpUnit] = field(default_factory=list)
    reused: list[UnitResult] = field(default_factory=list)
    patches: list[dict[str, Any]] = field(default_factory=list)
    not_selected: dict[tuple[int, str, str], dict[str, str]] = field(default_factory=dict)
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------------
# Planning (driver)
# ------------------------------------------------------------------------------------------------


HEADER_BLOCK_SIZE = 2**18
"""Read-ahead block for header-only reads of remote files (s3fs defaults to 50 MiB blocks)."""


def read_footprints(ctx: StoreContext, items: Sequence[tuple[Any, Any]]) -> list[Any]:
    """Sky footprints of calexps from their headers only (runs in the driver or on a worker).

    Parameters
    ----------
    ctx
        Storage access.
    items
        ``(calexp ref, external WCS ref or None)`` pairs.

    Returns
    -------
    list
        Per item a :class:`~warping.skymap.geometry.SkyPolygon`, ``"missing"`` when the calexp's
        file is missing, or ``"footprint unreadable: …"``.
    """
    from warping.formats.exposure_fits import read_wcs_and_bbox
    from warping.skymap.geometry import SkyPolygon

    out: list[Any] = []
    for ref, ext in items:
        try:
            try:
                if "://" in ref.path:
                    import fsspec.core

                    fs, full = fsspec.core.url_to_fs(ref.path, **dict(ctx.storage_options))
                else:
                    store = ctx.datastore()
                    fs, full = store.filesystem, store.full_path(ref.path)
                with fs.open(full, "rb", block_size=HEADER_BLOCK_SIZE) as fh:
                    wcs, bbox = read_wcs_and_bbox(fh, source=ref.uri)
            except (FileNotFoundError, LookupError):
                out.append("missing")
                continue
            if ext is not None:
                with contextlib.suppress(FileNotFoundError):
                    wcs = ctx.read(ext.dataset_type, ext.path)
            if wcs is None:
                raise ValueError("no WCS")
            out.append(SkyPolygon.from_wcs_bbox(wcs, bbox))
        except Exception as err:  # a WCS evaluation error deselects the calexp (LSST)
            out.append(f"footprint unreadable: {err}")
    return out


FootprintMapper = Callable[[StoreContext, list[tuple[Any, Any]]], list[Any]]


def _resolve_ccd(butler: Any, ref: Any, config: MakeWarpConfig, tract: int) -> CcdInputs:
    data_id = ref.data_id.to_dict()
    found: dict[str, Any] = {}

    def need(key: str, dataset_type: str, extra: Mapping[str, Any] | None = None) -> None:
        did = {**data_id, **(extra or {})}
        try:
            found[key] = butler.get_ref(dataset_type, did)
        except LookupError as err:
            raise MissingExposureError(
                f"{dataset_type} not found for {fmt_id(did)}: {err}. Produce it, or turn off the "
                "option that needs it."
            ) from None

    try:
        if not config.bgSubtracted:
            need("background", "calexpBackground")
        if config.doApplySkyCorr:
            need("sky_corr", "skyCorr")
        if config.doApplyExternalSkyWcs:
            need("wcs", f"{config.externalSkyWcsName}_wcs", {"tract": tract})
        if config.doApplyExternalPhotoCalib:
            name = config.externalPhotoCalibName
            need(
                "photo_calib",
                f"{name}_photoCalib",
                {"tract": tract} if name == "jointcal" else None,
            )
    except MissingExposureError as err:
        return CcdInputs(int(data_id["ccd"]), ref, missing=str(err))
    return CcdInputs(int(data_id["ccd"]), ref, **found)


def _candidate_patches(tract: Any, poly: Any) -> list[Any]:
    """Patches that may overlap ``poly`` (each is then confirmed by the test on the sky).

    In a gnomonic (TAN) tract, great circles are straight lines, so the pixel-space test of
    ``find_patches_overlapping`` is the sky test; other projections add the neighbours.
    """
    hits = tract.find_patches_overlapping(poly)
    if tract.config.projection == "TAN":
        return list(hits)
    nx, ny = tract.num_patches
    out: set[tuple[int, int]] = set()
    for p in hits:
        x, y = p.index
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                if 0 <= x + dx < nx and 0 <= y + dy < ny:
                    out.add((x + dx, y + dy))
    return [tract.patch(xy) for xy in sorted(out, key=lambda t: (t[1], t[0]))]


def plan_units(
    butler: Any,
    ids: Sequence[Mapping[str, Any]],
    select_ids: Sequence[Mapping[str, Any]] | None = None,
    *,
    config: MakeWarpConfig | None = None,
    reuse: bool = False,
    map_footprints: FootprintMapper | None = None,
) -> WarpPlan:
    """Expand ``--id`` data IDs into (patch, visit) units after the registry query.

    Parameters
    ----------
    butler
        The :class:`repo_butler.Butler` whose output run receives the warps.
    ids
        Data IDs with ``tract`` and optionally ``patch`` and ``filter``: no ``patch`` means every
        patch of the tract that some selected calexp overlaps; no ``filter`` means every filter
        of the candidate calexps.
    select_ids
        Partial calexp data IDs to consider; None means every calexp (of the filter).
    config
        Task configuration.
    reuse
        Units whose warps all exist in the output run become ``reused`` results (no inputs read).
    map_footprints
        How to run :func:`read_footprints` over all candidate calexps (e.g. spread over Dask
        workers); the default reads them in this process. Each calexp's headers are read once.

    Raises
    ------
    DataIdError
        If a data ID has no ``tract``.
    """
    from repo_butler.errors import DataIdError
    from warping.skymap.geometry import SkyPolygon, polygons_overlap

    t0 = time.perf_counter()
    config = config or MakeWarpConfig()
    config.validate()
    plan = WarpPlan()
    if not ids:
        raise DataIdError("Give at least one --id tract=… [patch=x,y] [filter=…]")
    skymap_type = f"{config.coaddName}Coadd_skyMap"
    skymap_ref = butler.get_ref(skymap_type)
    skymap = butler.get(skymap_ref)
    candidates_cache: dict[str | None, tuple[list[Any], dict[str, str]]] = {}

    def candidates(filter_name: str | None) -> tuple[list[Any], dict[str, str]]:
        if filter_name in candidates_cache:
            return candidates_cache[filter_name]
        rejected: dict[str, str] = {}
        refs: list[Any] = []
        base = {} if filter_name is None else {"filter": filter_name}
        if select_ids:
            seen = set()
            for sid in select_ids:
                query = {**base, **dict(sid)}
                found = butler.query_datasets("calexp", data_id=query)
                if not found:
                    rejected[fmt_id(query)] = "calexp not found"
                    logger.warning("Calexp %s not found; skipping it", fmt_id(query))
                for r in found:
                    if r.data_id not in seen:
                        seen.add(r.data_id)
                        refs.append(r)
        else:
            refs = butler.query_datasets("calexp", data_id=base or None)
        candidates_cache[filter_name] = (refs, rejected)
        return refs, rejected

    ctx = StoreContext.from_butler(butler)
    footprints: dict[tuple[Any, int], Any] = {}  # (calexp data ID, tract) -> polygon | str

    def load_footprints(refs: Sequence[Any], tract: int) -> None:
        todo = [r for r in refs if (r.data_id, tract) not in footprints]
        if not todo:
            return
        items = []
        for r in todo:
            ext = None
            if config.doApplyExternalSkyWcs:
                with contextlib.suppress(LookupError):  # a missing one is reported later
                    ext = butler.get_ref(
                        f"{config.externalSkyWcsName}_wcs", {**r.data_id.to_dict(), "tract": tract}
                    )
            items.append((r, ext))
        found = (map_footprints or read_footprints)(ctx, items)
        for r, poly in zip(todo, found, strict=True):
            footprints[(r.data_id, tract)] = poly

    def footprint(ref: Any, tract: int) -> Any:
        return footprints[(ref.data_id, tract)]

    groups: dict[tuple[int, str, str], dict[int, list[Any]]] = {}
    for raw in ids:
        if "tract" not in raw:
            raise DataIdError(
                f"The data ID {dict(raw)} lacks 'tract'; give --id tract=… [patch=x,y] [filter=…]"
            )
        tract_id = int(raw["tract"])
        tract = skymap[tract_id]
        refs, rejected = candidates(raw.get("filter"))
        filters = (
            sorted({str(r.data_id["filter"]) for r in refs})
            if "filter" not in raw
            else [str(raw["filter"])]
        )
        load_footprints(refs, tract_id)
        for filter_name in filters:
            f_refs = [r for r in refs if str(r.data_id["filter"]) == filter_name]
            # tract-wide: candidate patches per calexp, each confirmed on the sky below
            near: dict[tuple[int, int], set[Any]] = collections.defaultdict(set)
            if "patch" in raw:
                patch_infos = [tract.patch(raw["patch"])]
            else:
                infos: dict[tuple[int, int], Any] = {}
                for r in f_refs:
                    poly = footprint(r, tract_id)
                    if isinstance(poly, SkyPolygon):
                        for p in _candidate_patches(tract, poly):
                            infos.setdefault(p.index, p)
                            near[p.index].add(r.data_id)
                patch_infos = [infos[k] for k in sorted(infos, key=lambda t: (t[1], t[0]))]
            for pinfo in patch_infos:
                gkey = (tract_id, pinfo.name, filter_name)
                if gkey in groups:
                    continue
                by_visit: dict[int, list[Any]] = collections.defaultdict(list)
                not_sel = dict(rejected) if "patch" in raw else {}
                patch_poly = tract.patch_polygon(pinfo)
                for r in f_refs:
                    if "patch" not in raw and r.data_id not in near[pinfo.index]:
                        continue
                    poly = footprint(r, tract_id)
                    if isinstance(poly, str) and poly == "missing":
                        if "patch" in raw:  # reported as a skipped CCD of its visit
                            by_visit[int(r.data_id["visit"])].append(r)
                        continue
                    if isinstance(poly, str):
                        not_sel[fmt_id(r.data_id)] = poly
                    elif polygons_overlap(patch_poly, poly):
                        by_visit[int(r.data_id["visit"])].append(r)
                    elif "patch" in raw:
                        not_sel[fmt_id(r.data_id)] = "does not overlap the patch"
                if not by_visit and "patch" not in raw:
                    continue  # tract-wide: only patches with overlapping inputs
                groups[gkey] = by_visit
                plan.patches.append({"tract": tract_id, "patch": pinfo.name, "filter": filter_name})
                plan.not_selected[gkey] = not_sel

    for (tract_id, patch_name, filter_name), by_visit in groups.items():
        for visit in sorted(by_visit):
            refs = sorted(by_visit[visit], key=lambda r: int(r.data_id["ccd"]))
            out_id = {"tract": tract_id, "patch": patch_name, "filter": filter_name, "visit": visit}
            outputs = tuple(
                (t, config.dataset_type(t), output_path(butler, config.dataset_type(t), out_id))
                for t in config.warp_types
            )
            unit = WarpUnit(
                tract_id,
                patch_name,
                filter_name,
                visit,
                skymap_ref,
                tuple(_resolve_ccd(butler, r, config, tract_id) for r in refs),
                (skymap_ref,),
                outputs,
            )
            if reuse and all(
                butler.exists(dt, out_id, output_run_only=True) for _, dt, _ in outputs
            ):
                uris = {t: butler.datastore.uri(path) for t, _, path in outputs}
                plan.reused.append(UnitResult.for_unit(unit, "reused", outputs=uris))
                continue
            plan.units.append(unit)
    plan.seconds = time.perf_counter() - t0
    return plan


# ------------------------------------------------------------------------------------------------
# Execution (anywhere)
# ------------------------------------------------------------------------------------------------


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


def execute_unit(
    unit: WarpUnit,
    ctx: StoreContext,
    config: MakeWarpConfig,
    cancelled: Callable[[], bool] | None = None,
    journal: list[WrittenDataset] | None = None,
) -> UnitResult:
    """Calibrate, warp and write one unit; never raises (failures become a ``failed`` result).

    Parameters
    ----------
    unit
        The planned unit.
    ctx
        Storage root, options and formatters (no registry access happens here).
    config
        Task configuration.
    cancelled
        Checked before each CCD and before writing: when it returns True the unit stops without
        writing anything (status ``cancelled``).
    journal
        Each written dataset is appended here as soon as its files exist, so an in-process
        caller interrupted by Ctrl-C can still register them.
    """
    from repo_butler import Provenance
    from repo_butler.provenance import ProvenanceInput, now_iso
    from warping.task.calibrate import calibrate_exposure

    t0 = time.perf_counter()
    start = now_iso()
    result = UnitResult.for_unit(unit, "empty", worker=f"{platform.node()}:{os.getpid()}")
    reads: collections.Counter[str] = collections.Counter()

    def read(dataset_type: str, ref: Any) -> Any:
        reads[ref.path] += 1
        return ctx.read(dataset_type, ref.path)

    try:
        sky_info = unit.sky_info(ctx)
        calexps, ccds, data_ids, inputs = [], [], [], list(unit.extra_inputs)
        for c in unit.ccds:
            if cancelled is not None and cancelled():
                result.status = "cancelled"
                return result
            did = c.calexp.data_id.to_dict()
            if c.missing:
                result.ccds_skipped[c.ccd] = c.missing
                logger.warning("Calexp %s not usable; skipping it: %s", fmt_id(did), c.missing)
                continue
            try:
                calexp = read("calexp", c.calexp)
            except FileNotFoundError:
                why = (
                    f"Exposure not found: calexp {fmt_id(did)}: file {c.calexp.uri} is "
                    "missing; run `rb verify`"
                )
                result.ccds_skipped[c.ccd] = why
                logger.warning("Calexp %s not usable; skipping it: %s", fmt_id(did), why)
                continue
            products: dict[str, Any] = {}
            try:
                for key in ("background", "sky_corr", "wcs", "photo_calib"):
                    ref = getattr(c, key)
                    if ref is not None:
                        products[key] = read(ref.dataset_type, ref)
            except FileNotFoundError as err:
                why = f"{err}: a calibration product's file is missing; run `rb verify`"
                result.ccds_skipped[c.ccd] = why
                continue
            photo_calib = products.get("photo_calib", calexp.photo_calib)
            if photo_calib is None:
                result.ccds_skipped[c.ccd] = (
                    f"calexp {fmt_id(did)} has no photometric calibration; set "
                    "doApplyExternalPhotoCalib=True to use an external one."
                )
                continue
            calexps.append(
                calibrate_exposure(
                    calexp,
                    photo_calib=photo_calib,
                    background=products.get("background"),
                    sky_corr=products.get("sky_corr"),
                    wcs=products.get("wcs"),
                )
            )
            ccds.append(c.ccd)
            data_ids.append(did)
            inputs.extend([c.calexp, *(getattr(c, k) for k in products)])
            del calexp, products
        warps = MakeWarpTask(config).run(calexps, ccds, sky_info, unit.visit, data_ids)
        del calexps
        for outcome in warps.ccds:
            if outcome.used:
                result.ccds_used.append(outcome.ccd)
            elif outcome.skipped:
                result.ccds_skipped[outcome.ccd] = outcome.skipped
        result.goodpix = dict(warps.goodpix)
        used = set(result.ccds_used)
        kept = [
            ProvenanceInput.from_ref(r)
            for r in inputs
            if "ccd" not in r.data_id or int(r.data_id["ccd"]) in used
        ]
        paths = {t: (dt, path) for t, dt, path in unit.outputs}
        if cancelled is not None and cancelled():
            result.status = "cancelled"
            return result
        with _sigint_deferred() as caught:
            for warp_type, exposure in warps.exposures.items():
                if exposure is None:
                    continue
                provenance = Provenance.build(
                    TASK_NAME,
                    config_to_dict(config),
                    kept,
                    start=start,
                    end=now_iso(),
                    packages=PACKAGES,
                )
                dtype, path = paths[warp_type]
                w = write_dataset(ctx, exposure, dtype, unit.output_id, path, provenance)
                result.written.append(w)
                if journal is not None:
                    journal.append(w)
                result.outputs[warp_type] = w.uri
        result.interrupted = bool(caught)
        result.status = "written" if result.written else "empty"
    except Exception as err:
        result.status = "failed"
        result.error, result.traceback = error_summary(err)
        logger.error("Unit %s failed: %s", unit.key, result.error)
    finally:
        result.reads = dict(reads)
        result.seconds = time.perf_counter() - t0
        result.peak_rss_mb = _peak_rss_mb()
    return result
