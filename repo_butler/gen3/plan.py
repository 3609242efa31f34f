"""Which datasets of an export are imported, under which dataset type, data ID and run.

Nothing is read or written here but the export itself: the plan maps each selected Gen3 dataset
to a row of this repository, or says why it is skipped.

* **Dataset types** are mapped by a table the caller passes in (:class:`Gen3TypeRule` per Gen3
  dataset type name: the target type, the formatters accepted, keys filled from others, or a
  reason it is never imported); a dataset type the table lacks, or a formatter it does not
  accept, is skipped with its reason.
* **Data IDs** are expanded with the export's dimension records (``visit`` → ``physical_filter``
  → ``band``), then each Gen3 key becomes the repository dimension of that name or alias
  (``detector`` → ``ccd`` where the repository declares that alias); keys the target type lacks
  are dropped, a Gen3 ``patch`` index becomes ``x,y`` from its record.
* **Collections** become runs: a ``RUN`` a run of the same name with ``/`` written ``.`` (a run
  name here is one path segment); a ``CHAINED`` collection a run with no datasets whose parents
  are its children in order; ``TAGGED`` and ``CALIBRATION`` collections are not runs here (a
  dataset belongs to one run): their datasets are imported into their own runs, and the
  collection is listed as skipped.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from repo_butler.config import DatasetType
from repo_butler.dimensions import DataId, DimensionUniverse
from repo_butler.errors import ConfigError, DataIdError
from repo_butler.gen3.export import Gen3Dataset, Gen3Export
from repo_butler.gen3.vocabulary import GEN3_UNIVERSE, Gen3Records
from repo_butler.query import compile_where

__all__ = [
    "Gen3TypeRule",
    "ImportPlan",
    "PlannedRow",
    "SkippedDataset",
    "build_plan",
    "run_name",
]

logger = logging.getLogger(__name__)

_RUN_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


@dataclass(frozen=True)
class Gen3TypeRule:
    """How datasets of one Gen3 dataset type enter this repository.

    Parameters
    ----------
    target : str
        This repository's dataset type (``""`` with ``refuse``).
    formatters : frozenset of str
        Formatter class names accepted (an export naming another is skipped); empty: any. An
        export that names no formatter (daf_butler's own test data) is accepted.
    fill : Mapping
        Target dimension → the dimension whose value it takes when no Gen3 key gives it
        (``{"pointing": "visit"}``: a Gen2 pointing that Gen3 does not have).
    refuse : str
        Why this known type is never imported (listed with each skipped dataset).
    """

    target: str
    formatters: frozenset[str] = frozenset()
    fill: Mapping[str, str] = field(default_factory=dict)
    refuse: str = ""


@dataclass(frozen=True)
class PlannedRow:
    """One dataset to register: ``source`` is its file's URL or local path."""

    gen3: Gen3Dataset
    dataset_type: DatasetType
    data_id: DataId
    run: str
    source: str


@dataclass(frozen=True)
class SkippedDataset:
    """A dataset of the export that is not imported, and why."""

    dataset_type: str
    data_id: Mapping[str, Any]
    run: str
    reason: str


@dataclass(frozen=True)
class ImportPlan:
    """What an import will do: rows, runs (name → parents, chains after their children), and
    what it skips."""

    rows: tuple[PlannedRow, ...]
    runs: Mapping[str, tuple[str, ...]]
    run_names: Mapping[str, str]
    skipped: tuple[SkippedDataset, ...]
    skipped_collections: Mapping[str, str]
    selected: int


def run_name(gen3_name: str) -> str:
    """The run here for the Gen3 collection ``gen3_name`` (``HSC/runs/RC2`` → ``HSC.runs.RC2``).

    Raises
    ------
    ConfigError
        If the name cannot be written as a run name here (characters other than letters,
        digits, ``_.+-`` and ``/``, or ``..``).
    """
    name = gen3_name.replace("/", ".")
    if not _RUN_OK.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"the Gen3 collection {gen3_name!r} has no run name here: run names take letters, "
            "digits and '_.+-' ('/' becomes '.'); import the other collections with --collection"
        )
    return name


def build_plan(
    export: Gen3Export,
    universe: DimensionUniverse,
    dataset_types: Mapping[str, DatasetType],
    rules: Mapping[str, Gen3TypeRule],
    *,
    root: str,
    collections: Sequence[str] | None = None,
    where: str | None = None,
    gen3_types: Sequence[str] | None = None,
) -> ImportPlan:
    """Map the selected datasets of ``export`` into a repository (see the module docstring).

    Parameters
    ----------
    export : Gen3Export
        The parsed export.
    universe, dataset_types
        The repository's dimensions and dataset types.
    rules : Mapping
        Gen3 dataset type name → :class:`Gen3TypeRule`.
    root : str
        Directory (path or URL) the export's relative paths start from.
    collections : sequence of str, optional
        Import only these collections (a chain: its members; a tagged one: its datasets).
    where : str, optional
        Expression on Gen3 dimensions (``visit = 903334 AND detector IN (16..24)``).
    gen3_types : sequence of str, optional
        Import only these Gen3 dataset types.

    Raises
    ------
    ConfigError
        For an unknown collection or dataset type named in the selection, or a run name that
        cannot be written here.
    QuerySyntaxError
        For a bad ``where``.
    DataIdError
        If two datasets of the export would become the same dataset here with different files.
    """
    chosen_ids = _collection_members(export, collections)
    if gen3_types:
        known = {d.dataset_type for d in export.datasets} | set(export.dataset_types)
        unknown = sorted(set(gen3_types) - known)
        if unknown:
            raise ConfigError(
                f"{export.source}: no dataset type {', '.join(map(repr, unknown))} in the export; "
                f"it has {', '.join(sorted(known)) or 'none'}"
            )
    records = Gen3Records(export.records)
    candidates: list[tuple[Gen3Dataset, dict[str, Any]]] = []
    for ds in export.datasets:
        if chosen_ids is not None and ds.dataset_id not in chosen_ids:
            continue
        if gen3_types and ds.dataset_type not in gen3_types:
            continue
        candidates.append((ds, records.expand(ds.data_id)))
    if where:
        keep = _matching(where, [full for _, full in candidates])
        candidates = [c for i, c in enumerate(candidates) if i in keep]
    mapper = _Mapper(universe, dataset_types, rules, records)
    rows: list[PlannedRow] = []
    skipped: list[SkippedDataset] = []
    names: dict[str, str] = {}
    for ds, full in candidates:
        found = mapper.map(ds, full)
        if isinstance(found, str):
            skipped.append(SkippedDataset(ds.dataset_type, ds.data_id, ds.run, found))
            continue
        dt, did = found
        run = names.setdefault(ds.run, run_name(ds.run))
        rows.append(PlannedRow(ds, dt, did, run, _source(root, ds.path)))
    rows = _dedupe(rows, skipped)
    runs, skipped_collections = _runs(export, names, collections)
    _check_run_names(names, runs)
    return ImportPlan(
        tuple(rows), runs, names, tuple(skipped), skipped_collections, len(candidates)
    )


class _Mapper:
    def __init__(
        self,
        universe: DimensionUniverse,
        dataset_types: Mapping[str, DatasetType],
        rules: Mapping[str, Gen3TypeRule],
        records: Gen3Records,
    ) -> None:
        self.universe = universe
        self.dataset_types = dataset_types
        self.rules = rules
        self.records = records

    def map(self, ds: Gen3Dataset, full: Mapping[str, Any]) -> tuple[DatasetType, DataId] | str:
        """The target type and data ID of ``ds``, or why it is skipped."""
        rule = self.rules.get(ds.dataset_type)
        if rule is None:
            return f"dataset type {ds.dataset_type!r} is not one this repository imports"
        if rule.refuse:
            return rule.refuse
        if ds.formatter is not None and rule.formatters and ds.formatter not in rule.formatters:
            return f"formatter {ds.formatter} is not one we read for {ds.dataset_type}"
        dt = self.dataset_types.get(rule.target)
        if dt is None:
            return f"this repository has no dataset type {rule.target!r} (for {ds.dataset_type})"
        values: dict[str, Any] = {}
        for key, value in full.items():
            name = key if key in self.universe else self.universe.aliases.get(key)
            if name is None or name not in dt.dimensions:
                continue
            if key == "patch":
                value = self.records.patch_xy(full)
                if value is None:
                    return f"patch {full['patch']} has no record with cell_x/cell_y in the export"
            if name in values and values[name] != value:
                return f"{name} is given twice ({values[name]!r} and {value!r})"
            values[name] = value
        for dim, other in rule.fill.items():
            if dim in dt.dimensions and dim not in values and other in values:
                values[dim] = values[other]
        missing = [d for d in dt.dimensions if d not in values]
        if missing:
            return (
                f"no Gen3 key gives {', '.join(missing)} of {dt.name}: add the aliases (e.g. "
                "detector for ccd) with `rb migrate REPO`"
            )
        try:
            return dt, self.universe.normalize(values, order=dt.dimensions)
        except DataIdError as err:
            return f"not a valid {dt.name} data ID here: {err}"


def _collection_members(export: Gen3Export, names: Sequence[str] | None) -> set[str] | None:
    """Dataset IDs of the chosen collections (``None``: no choice, every dataset)."""
    if not names:
        return None
    unknown = [n for n in names if n not in export.collections]
    if unknown:
        raise ConfigError(
            f"{export.source}: no collection {', '.join(map(repr, unknown))} in the export; it "
            f"has {', '.join(export.collections) or 'none'}"
        )
    by_run: dict[str, list[str]] = {}
    for ds in export.datasets:
        by_run.setdefault(ds.run, []).append(ds.dataset_id)
    out: set[str] = set()
    seen: set[str] = set()

    def add(name: str) -> None:
        coll = export.collections.get(name)
        if name in seen or coll is None:
            return
        seen.add(name)
        if coll.type == "CHAINED":
            for child in coll.children:
                add(child)
        elif coll.type == "RUN":
            out.update(by_run.get(name, ()))
        else:
            out.update(coll.dataset_ids)

    for name in names:
        add(name)
    return out


def _matching(where: str, data_ids: Sequence[Mapping[str, Any]]) -> set[int]:
    """Indices of the data IDs matching ``where`` (Gen3 keys; a key a data ID lacks is NULL)."""
    names = GEN3_UNIVERSE.names
    sql, params, _ = compile_where(where, GEN3_UNIVERSE, lambda d: f'"{d}"')
    con = sqlite3.connect(":memory:")
    try:
        cols = ", ".join(f'"{n}"' for n in names)
        con.execute(f"CREATE TABLE ids (i INTEGER, {cols})")
        rows = ((i, *(_sql_value(did.get(n)) for n in names)) for i, did in enumerate(data_ids))
        con.executemany(f"INSERT INTO ids VALUES (?, {', '.join('?' * len(names))})", rows)
        return {i for (i,) in con.execute(f"SELECT i FROM ids WHERE {sql}", params)}
    finally:
        con.close()


def _sql_value(value: Any) -> int | str | None:
    if value is None or isinstance(value, int | str):
        return value
    return str(value)


def _source(root: str, path: str) -> str:
    """The export's ``path`` as a URL or local path (relative ones start at ``root``)."""
    if "://" in path or path.startswith("/"):
        return path
    return f"{root.rstrip('/')}/{path}"


def _dedupe(rows: list[PlannedRow], skipped: list[SkippedDataset]) -> list[PlannedRow]:
    """Drop a row that repeats another (same dataset and file); refuse two files for one."""
    seen: dict[tuple[str, str, str], PlannedRow] = {}
    out = []
    for row in rows:
        key = (row.dataset_type.name, row.data_id.key, row.run)
        twin = seen.get(key)
        if twin is None:
            seen[key] = row
            out.append(row)
        elif twin.source == row.source:
            skipped.append(
                SkippedDataset(row.gen3.dataset_type, row.gen3.data_id, row.gen3.run,
                               f"the same file as dataset {twin.gen3.dataset_id}")
            )  # fmt: skip
        else:
            raise DataIdError(
                f"{row.gen3.dataset_type} {dict(row.gen3.data_id)} ({row.source}) and "
                f"{twin.gen3.dataset_type} {dict(twin.gen3.data_id)} ({twin.source}) would both "
                f"be {row.dataset_type.name} {row.data_id} in run {row.run!r}; import them "
                "separately (--collection, --where)"
            )
    return out


def _runs(
    export: Gen3Export, names: dict[str, str], chosen: Iterable[str] | None
) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Runs to define (children before chains) and the collections skipped, with reasons."""
    runs: dict[str, tuple[str, ...]] = {names[r]: () for r in names}
    skipped: dict[str, str] = {}
    for coll in export.collections.values():
        if coll.type in ("TAGGED", "CALIBRATION"):
            skipped[coll.name] = (
                f"{coll.type} collection: not a run here (a dataset belongs to one run); its "
                "datasets are imported into their own runs"
            )
    wanted = set(chosen) if chosen else None

    def chain(name: str, stack: tuple[str, ...]) -> str | None:
        coll = export.collections.get(name)
        if coll is None or name in stack:
            return None
        if coll.type == "RUN":
            return names.get(name)
        if coll.type != "CHAINED":
            return None
        parents = [p for c in coll.children if (p := chain(c, (*stack, name))) is not None]
        if not parents:
            return None
        ours = names.setdefault(name, run_name(name))
        runs[ours] = tuple(dict.fromkeys(parents))
        return ours

    for coll in export.collections.values():
        if coll.type == "CHAINED" and (wanted is None or coll.name in wanted):
            chain(coll.name, ())
    return runs, skipped


def _check_run_names(names: Mapping[str, str], runs: Mapping[str, tuple[str, ...]]) -> None:
    by_ours: dict[str, str] = {}
    for gen3, ours in names.items():
        other = by_ours.setdefault(ours, gen3)
        if other != gen3:
            raise ConfigError(
                f"the Gen3 collections {other!r} and {gen3!r} would both be the run {ours!r} "
                "here; import them separately (--collection)"
            )
