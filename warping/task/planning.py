"""Plan a MakeWarp run in the driver: expand ``--id`` groups into (patch, visit) units.

:func:`plan_units` does every registry access of a run: it validates the ``--id`` data IDs,
expands them (one patch, several patches, or a whole tract = every patch with overlapping inputs,
for one or every filter), reads each candidate calexp's footprint once (headers only), resolves
every input's :class:`~repo_butler.DatasetRef` and plans every output's path. A
:class:`~warping.task.work_units.WarpUnit` then carries all a worker needs.

With ``useVisitSummary*``, every unit's CCDs get the visit's ``visitSummary``; a repository
without that dataset type, or without the visitSummary of a visit to warp, stops the plan before
any work. With ``useVisitSummaryWcs`` the overlap selection uses the rows' WCS (read in the driver,
once per visit), as Gen3 selects on the final WCS. The ``select`` cuts (PSF quality) give each
CCD its visit's visitSummary where there is one; a visit without one is not refused: the task
reports those cuts as not evaluated for its CCDs.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from warping.calexp_footprint import UNREADABLE
from warping.errors import MissingExposureError
from warping.task.calib_sources import COMPONENT_FIELDS, VISIT_SUMMARY, check_dataset_type
from warping.task.companions import check_companion_dataset_types
from warping.task.config import MakeWarpConfig
from warping.task.inputs import fmt_id
from warping.task.run_config import made_with, normalised
from warping.task.work_units import (
    PATCH_KEYS,
    WARP_KEYS,
    PlannedCcd,
    PlannedWarp,
    UnitResult,
    WarpPlan,
    WarpUnit,
)

if TYPE_CHECKING:
    from repo_butler import Butler, DataId, DatasetRef, WorkerIO
    from warping.skymap.geometry import SkyPolygon
    from warping.skymap.tract import PatchInfo, TractInfo

logger = logging.getLogger(__name__)

__all__ = ["FootprintMapper", "plan_units"]

#: Reads the sky footprints of ``(calexp, external WCS)`` pairs (in this process or on workers).
FootprintMapper = Callable[
    ["WorkerIO", list[tuple["DatasetRef", "DatasetRef | None"]]], list["SkyPolygon | str"]
]


def _resolve_ccd(
    butler: Butler,
    ref: DatasetRef,
    config: MakeWarpConfig,
    tract: int,
    visit_summary: DatasetRef | None = None,
    unreadable: str | None = None,
) -> PlannedCcd:
    data_id = ref.data_id.to_dict()
    found: dict[str, DatasetRef] = {}
    if visit_summary is not None:
        found["visit_summary"] = visit_summary

    def need(key: str, dataset_type: str, extra: Mapping[str, Any] | None = None) -> None:
        did = {**data_id, **(extra or {})}
        try:
            found[key] = butler.get_ref(dataset_type, did)
        except LookupError as err:
            raise MissingExposureError(
                f"{dataset_type} not found for {fmt_id(did)}: {err}. Produce it, or turn off the "
                "option that needs it."
            ) from None

    if unreadable is not None:  # its headers could not be read in the plan: not read again
        return PlannedCcd(ref, missing=unreadable)
    try:
        if config.revert_background:
            need("background", "calexpBackground")
        if config.apply_sky_corr:
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
        return PlannedCcd(ref, missing=str(err))
    return PlannedCcd(ref, found)


def _candidate_patches(tract: TractInfo, poly: SkyPolygon, margin: int = 0) -> list[PatchInfo]:
    """Patches whose outer bbox grown by ``margin`` may overlap ``poly`` (each is then confirmed
    by the test on the sky).

    In a gnomonic (TAN) tract, great circles are straight lines, so the pixel-space test of
    ``find_patches_overlapping`` is the sky test; other projections add the neighbours.
    """
    hits = tract.find_patches_overlapping(poly, margin)
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


class _Candidates:
    """The calexps to consider per filter (``--selectId`` applied), queried once per filter."""

    def __init__(self, butler: Butler, select_ids: Sequence[Mapping[str, Any]] | None) -> None:
        self.butler = butler
        self.select_ids = select_ids
        self._cache: dict[str | None, tuple[list[DatasetRef], dict[str, str]]] = {}

    def __call__(self, filter_name: str | None) -> tuple[list[DatasetRef], dict[str, str]]:
        """Refs of the candidate calexps and ``{data ID text: "calexp not found"}``."""
        if filter_name in self._cache:
            return self._cache[filter_name]
        rejected: dict[str, str] = {}
        refs: list[DatasetRef] = []
        base = {} if filter_name is None else {"filter": filter_name}
        if self.select_ids:
            seen = set()
            for sid in self.select_ids:
                query = {**base, **dict(sid)}
                found = self.butler.query_datasets("calexp", data_id=query)
                if not found:
                    rejected[fmt_id(query)] = "calexp not found"
                    logger.warning("Calexp %s not found; skipping it", fmt_id(query))
                for r in found:
                    if r.data_id not in seen:
                        seen.add(r.data_id)
                        refs.append(r)
        else:
            refs = self.butler.query_datasets("calexp", data_id=base or None)
        self._cache[filter_name] = (refs, rejected)
        return refs, rejected


class _VisitSummaries:
    """The visitSummary of each visit: its ref (looked up once) and, for the overlap selection
    with ``useVisitSummaryWcs``, its rows' footprints (the file read once, in the driver)."""

    def __init__(self, butler: Butler) -> None:
        self.butler = butler
        self.dims = butler.dataset_type(VISIT_SUMMARY).dimensions
        self._refs: dict[tuple[tuple[str, Any], ...], DatasetRef | None] = {}
        self._catalogs: dict[str, Any] = {}

    def ref(self, data_id: DataId) -> DatasetRef | None:
        """The visitSummary of a calexp's visit, or None if there is none."""
        key = tuple((k, data_id[k]) for k in self.dims if k in data_id)
        if key not in self._refs:
            try:
                self._refs[key] = self.butler.get_ref(VISIT_SUMMARY, dict(key))
            except LookupError:
                self._refs[key] = None
        return self._refs[key]

    def footprint(self, calexp: DatasetRef) -> SkyPolygon | str | None:
        """The footprint of the calexp's detector under its visitSummary row's WCS; None when
        there is no visitSummary, row or WCS (the calexp's own footprint is used then, and the
        CCD is skipped or the plan refused later, with the reason); a reason (text) when the
        row's WCS gives non-finite coordinates."""
        from warping.skymap.geometry import SkyPolygon

        ref = self.ref(calexp.data_id)
        if ref is None:
            return None
        if ref.path not in self._catalogs:
            try:
                self._catalogs[ref.path] = self.butler.get(ref)
            except Exception as err:  # the unit reports it when it reads the file again
                logger.warning("Cannot read %s for the overlap selection: %s", ref.uri, err)
                self._catalogs[ref.path] = None
        catalog = self._catalogs[ref.path]
        row = None if catalog is None else catalog.rows.get(int(calexp.data_id["ccd"]))
        if row is None or row.wcs is None:
            return None
        bad = (
            f"{UNREADABLE}{ref.uri}: the visitSummary row's WCS of detector "
            f"{calexp.data_id['ccd']} gives non-finite sky coordinates at its corners"
        )
        try:
            poly = SkyPolygon.from_wcs_bbox(row.wcs, row.bbox)
        except Exception as err:  # the unit would warp with this WCS: the CCD is unusable
            logger.warning("visitSummary WCS of %s cannot be evaluated: %s", calexp, err)
            return f"{bad} ({err})"
        if not (np.isfinite(poly.ra).all() and np.isfinite(poly.dec).all()):
            return bad
        return poly


class _Footprints:
    """Sky footprints of calexps per tract, each calexp's headers read once."""

    def __init__(
        self,
        butler: Butler,
        config: MakeWarpConfig,
        io: WorkerIO,
        mapper: FootprintMapper,
        summaries: _VisitSummaries | None = None,
    ) -> None:
        self.butler, self.config, self.io, self.mapper = butler, config, io, mapper
        self.summaries = summaries if config.useVisitSummaryWcs else None
        self._by_tract: dict[int, dict[DataId, SkyPolygon | str]] = collections.defaultdict(dict)

    def load(self, refs: Sequence[DatasetRef], tract: int) -> None:
        """Read the footprints of ``refs`` not read yet for ``tract``."""
        known = self._by_tract[tract]
        todo = [r for r in refs if r.data_id not in known]
        if not todo:
            return
        items: list[tuple[DatasetRef, DatasetRef | None]] = []
        for r in todo:
            ext = None
            if self.config.doApplyExternalSkyWcs:
                with contextlib.suppress(LookupError):  # a missing one is reported later
                    ext = self.butler.get_ref(
                        f"{self.config.externalSkyWcsName}_wcs",
                        {**r.data_id.to_dict(), "tract": tract},
                    )
            items.append((r, ext))
        found = self.mapper(self.io, items)
        for r, poly in zip(todo, found, strict=True):
            final = None
            if self.summaries is not None and poly != "missing":
                final = self.summaries.footprint(r)  # Gen3 selects on the final WCS
            known[r.data_id] = poly if final is None else final

    def __call__(self, ref: DatasetRef, tract: int) -> SkyPolygon | str:
        """The footprint of ``ref`` (loaded before) for ``tract``."""
        return self._by_tract[tract][ref.data_id]


def unreadable_reason(poly: SkyPolygon | str) -> str | None:
    """Why a calexp whose footprint could not be read cannot be used (None: it could be read,
    or its file is missing, which the unit reports when it tries to read it)."""
    if isinstance(poly, str) and poly != "missing":
        return poly
    return None


def _place_unlocated(
    plan: WarpPlan,
    groups: dict[DataId, dict[int, list[DatasetRef]]],
    tract: int,
    filter_name: str,
    refs: Sequence[DatasetRef],
    footprint: _Footprints,
) -> None:
    """Tract-wide: a calexp whose footprint is unknown (file missing or unreadable) may belong to
    any warp of its visit, so each of those units lists it as skipped (they are incomplete);
    when its visit lands on no patch, it is reported in ``plan.unplaced``."""
    for r in refs:
        poly = footprint(r, tract)
        if not isinstance(poly, str):
            continue
        visit = int(r.data_id["visit"])
        placed = False
        for pid, by_visit in groups.items():
            same = int(pid["tract"]) == tract and str(pid["filter"]) == filter_name
            if same and visit in by_visit and r not in by_visit[visit]:
                by_visit[visit].append(r)
                placed = True
        if not placed:
            why = "calexp file is missing; run `rb verify`" if poly == "missing" else poly
            plan.unplaced[f"tract={tract} {fmt_id(r.data_id)}"] = why


def _incomplete(butler: Butler, dataset_types: Sequence[str], warp_id: Any) -> bool:
    """Whether a stored warp of this unit lacks CCDs it could not use (then ``--reuse`` redoes
    it: the cause may have been fixed). Reads the warps' metadata tables only."""
    from astropy.io import fits

    from warping.formats.fits_dict import bintable_to_dict
    from warping.task.execution import INCOMPLETE_KEY

    for dataset_type in dataset_types:
        with (
            butler.open_file(dataset_type, warp_id) as fh,
            fits.open(fh, lazy_load_hdus=True, memmap=False) as hdul,
        ):
            for hdu in hdul:
                if hdu.header.get("EXTNAME") == "METADATA":
                    lacking = bintable_to_dict(hdu).get(INCOMPLETE_KEY)
                    if lacking:
                        logger.info(
                            "%s %s lacks CCDs %s: redoing it", dataset_type, warp_id, lacking
                        )
                        return True
    return False


def plan_units(
    butler: Butler,
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
        The butler whose output run receives the warps.
    ids
        Data IDs with ``tract`` and optionally ``patch`` and ``filter``: no ``patch`` means every
        patch of the tract that some selected calexp overlaps; no ``filter`` means every filter
        of the candidate calexps.
    select_ids
        Partial calexp data IDs to consider; None means every calexp (of the filter).
    config
        Task configuration.
    reuse
        Units whose warps all exist in the output run, complete and made with ``config`` (their
        provenance says), become ``reused`` results (no inputs read).
    map_footprints
        How to run :func:`warping.calexp_footprint.sky_footprints` over all candidate calexps
        (e.g. spread over Dask workers); the default reads them in this process. Each calexp's
        headers are read once.

    Raises
    ------
    DataIdError
        If a data ID has no ``tract`` or is not valid in the repository.
    DatasetTypeError
        If ``useVisitSummary*`` is on and the repository has no ``visitSummary`` dataset type, or
        the direct warp's companions are asked for and it lacks their dataset types.
    MissingExposureError
        If ``useVisitSummary*`` is on and a visit to warp has no visitSummary (nothing is run).
    IdPackingError
        If a calexp's data ID does not fit ``idGenerator`` (nothing is run).
    """
    from repo_butler.errors import DataIdError
    from warping.calexp_footprint import sky_footprints
    from warping.skymap.geometry import SkyPolygon, polygons_overlap

    t0 = time.perf_counter()
    config = config or MakeWarpConfig()
    config.validate()
    plan = WarpPlan()
    if not ids:
        raise DataIdError("Give at least one --id tract=… [patch=x,y] [filter=…]")
    check_companion_dataset_types(butler.dataset_types, butler.root, config)
    fields = [f"{COMPONENT_FIELDS[c]}=True" for c in config.visit_summary_components]
    summaries = None
    if fields:
        check_dataset_type(butler.dataset_types, butler.root, " and ".join(fields))
        summaries = _VisitSummaries(butler)
    elif config.select.needs_statistics and VISIT_SUMMARY in butler.dataset_types:
        summaries = _VisitSummaries(butler)  # the select cuts' statistics, where there is one
    skymap_ref = butler.get_ref(f"{config.coaddName}Coadd_skyMap")
    skymap = butler.get(skymap_ref)
    candidates = _Candidates(butler, select_ids)
    footprint = _Footprints(
        butler, config, butler.worker_io(), map_footprints or sky_footprints, summaries
    )

    def patch_id(tract_id: int, patch: str, filter_name: str) -> DataId:
        raw = {"tract": tract_id, "patch": patch, "filter": filter_name}
        return butler.dimensions.normalize(raw, order=PATCH_KEYS)

    groups: dict[DataId, dict[int, list[DatasetRef]]] = {}
    for given in ids:
        if "tract" not in given:
            raise DataIdError(
                f"The data ID {dict(given)} lacks 'tract'; give --id tract=… [patch=x,y] [filter=…]"
            )
        raw = butler.dimensions.normalize(given, order=PATCH_KEYS)
        tract_id = int(raw["tract"])
        tract = skymap[tract_id]
        refs, rejected = candidates(None if "filter" not in raw else str(raw["filter"]))
        filters = (
            sorted({str(r.data_id["filter"]) for r in refs})
            if "filter" not in raw
            else [str(raw["filter"])]
        )
        footprint.load(refs, tract_id)
        for filter_name in filters:
            f_refs = [r for r in refs if str(r.data_id["filter"]) == filter_name]
            # tract-wide: candidate patches per calexp, each confirmed on the sky below
            near: dict[tuple[int, int], set[DataId]] = collections.defaultdict(set)
            if "patch" in raw:
                patch_infos = [tract.patch(str(raw["patch"]))]
            else:
                infos: dict[tuple[int, int], PatchInfo] = {}
                for r in f_refs:
                    poly = footprint(r, tract_id)
                    if isinstance(poly, SkyPolygon):
                        for p in _candidate_patches(tract, poly, config.border):
                            infos.setdefault(p.index, p)
                            near[p.index].add(r.data_id)
                patch_infos = [infos[k] for k in sorted(infos, key=lambda t: (t[1], t[0]))]
            for pinfo in patch_infos:
                pid = patch_id(tract_id, pinfo.name, filter_name)
                if pid in groups:
                    continue
                by_visit: dict[int, list[DatasetRef]] = collections.defaultdict(list)
                not_sel = dict(rejected) if "patch" in raw else {}
                patch_poly = tract.patch_polygon(pinfo, margin=config.border)
                for r in f_refs:
                    if "patch" not in raw and r.data_id not in near[pinfo.index]:
                        continue
                    poly = footprint(r, tract_id)
                    if isinstance(poly, str):  # missing or unreadable: where it lies is unknown
                        if "patch" in raw:  # reported as a skipped CCD of its visit
                            by_visit[int(r.data_id["visit"])].append(r)
                        continue
                    if polygons_overlap(patch_poly, poly):
                        by_visit[int(r.data_id["visit"])].append(r)
                    elif "patch" in raw:
                        not_sel[fmt_id(r.data_id)] = "does not overlap the patch"
                if not by_visit and "patch" not in raw:
                    continue  # tract-wide: only patches with overlapping inputs
                groups[pid] = by_visit
                plan.patches.append(pid)
                plan.not_selected[pid] = not_sel
            if "patch" not in raw:
                _place_unlocated(plan, groups, tract_id, filter_name, f_refs, footprint)

    def reasons(ref: DatasetRef, tract_id: int) -> str | None:
        return unreadable_reason(footprint(ref, tract_id))

    new = normalised(config)  # --reuse keeps only warps whose provenance records this config
    packer = config.idGenerator.packer()  # a CCD the id packing cannot hold: one-line error now
    for by_visit in groups.values():
        for refs in by_visit.values():
            for r in refs:
                packer.pack(r.data_id.to_dict())
    lacking: dict[tuple[str, int], None] = {}  # (filter, visit) without a visitSummary
    for pid, by_visit in groups.items():
        tract_id = int(pid["tract"])
        for visit in sorted(by_visit):
            refs = sorted(by_visit[visit], key=lambda r: int(r.data_id["ccd"]))
            vs_ref = None if summaries is None else summaries.ref(refs[0].data_id)
            warp_id = butler.dimensions.normalize({**pid, "visit": visit}, order=WARP_KEYS)
            outputs = tuple(
                PlannedWarp(t, butler.plan_put(config.dataset_type(t), warp_id))
                for t in config.output_types
            )
            unit = WarpUnit(
                warp_id,
                skymap_ref,
                tuple(
                    _resolve_ccd(butler, r, config, tract_id, vs_ref, reasons(r, tract_id))
                    for r in refs
                ),
                outputs,
            )
            plan.all_units.append(unit)
            if (
                reuse
                and all(
                    butler.exists(o.put.dataset_type, warp_id, output_run_only=True)
                    for o in outputs
                )
                and not _incomplete(butler, [o.put.dataset_type for o in outputs], warp_id)
                and all(made_with(butler, o.put.dataset_type, o.put.data_id, new) for o in outputs)
            ):
                uris = {o.warp_type: butler.datastore.uri(o.put.path) for o in outputs}
                plan.reused.append(UnitResult.for_unit(unit, "reused", outputs=uris))
                continue
            if fields and vs_ref is None:  # the select cuts alone report it per CCD instead
                lacking[(str(pid["filter"]), visit)] = None
            plan.units.append(unit)
    if lacking:
        raise _missing_visit_summaries(butler, list(lacking), " and ".join(fields))
    plan.seconds = time.perf_counter() - t0
    return plan


def _missing_visit_summaries(
    butler: Butler, lacking: list[tuple[str, int]], fields: str
) -> MissingExposureError:
    from repo_butler.runs import display_run

    shown = ", ".join(f"visit={v} filter={f}" for f, v in lacking[:10])
    more = f" and {len(lacking) - 10} more" if len(lacking) > 10 else ""
    return MissingExposureError(
        f"{fields}: no {VISIT_SUMMARY} in {butler.root} (runs searched: "
        f"{', '.join(display_run(r) for r in butler.search_runs)}) for {shown}{more}; nothing was "
        f"run. Ingest each visit's file (rb ingest REPO {VISIT_SUMMARY} FILES: the visit and "
        "filter are read from it), select only visits that have one (--selectId visit=…), or "
        "turn the field off."
    )
