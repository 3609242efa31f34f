"""Ingest: register existing files as datasets, copying, moving or linking them into place.

Each file's data ID comes from the file itself (when the dataset type's formatter can read it),
its path, the data ID given, the registry and the formatter's rule defaults
(:mod:`repo_butler.ingest_ids`). ``copy`` and ``move`` place the file at its template path,
``symlink`` links it there (local only) and ``direct`` registers it where it is (absolute URL).

A batch is all or nothing. Every file is read, identified and checked before anything is
written; a failure while placing or registering (an I/O error, a concurrent writer) undoes the
files placed and the rows inserted so far. A file whose dataset is already registered in the run
with the same content (same data ID, or same checksum under another data ID of the same dataset
type) is skipped and reported, so re-running an ingest is harmless; the same data ID with
different content is an error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args, overload

from repo_butler.checksums import checksum_bytes
from repo_butler.datastore import Datastore, TransferMode
from repo_butler.errors import ConfigError, DataIdError, DatasetExistsError, StorageError
from repo_butler.ingest_ids import DataIdDeriver, DerivedDataId
from repo_butler.lookup import DatasetLookup
from repo_butler.provenance import now_iso
from repo_butler.refs import DatasetRef
from repo_butler.registry import DatasetRecord, Registry
from repo_butler.runs import display_run, run_prefix

__all__ = [
    "TRANSFERS",
    "IngestReport",
    "IngestedFile",
    "Placement",
    "ingest_files",
    "place_and_register",
]

logger = logging.getLogger(__name__)

TRANSFERS: tuple[str, ...] = get_args(TransferMode)


@dataclass(frozen=True)
class IngestedFile:
    """What happened to one file of an ingest.

    Parameters
    ----------
    source : str
        The file as given.
    status : {"ingested", "skipped", "planned"}
        ``skipped``: its dataset was already registered (see ``reason``); ``planned``: a dry run.
    ref : DatasetRef
        The dataset it is (for ``skipped``, the one already registered).
    derived : DerivedDataId
        Its data ID and where each value came from.
    reason : str
        Why it was skipped (``""`` otherwise).
    """

    source: str
    status: Literal["ingested", "skipped", "planned"]
    ref: DatasetRef
    derived: DerivedDataId
    reason: str = ""

    def line(self) -> str:
        """One report line: status, dataset, data ID with origins, file (and reason)."""
        rule = f" [{self.derived.rule}]" if self.derived.rule else ""
        text = f"{self.status:<8} {self.ref.dataset_type} {self.derived.describe()}{rule} <- "
        text += self.source
        return text + (f": {self.reason}" if self.reason else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``rb ingest --format json``)."""
        return {
            "source": self.source,
            "status": self.status,
            "dataset_type": self.ref.dataset_type,
            "data_id": self.ref.data_id.to_dict(),
            "origins": dict(self.derived.origins),
            "rule": self.derived.rule,
            "run": self.ref.run,
            "uri": self.ref.uri,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class IngestReport(Sequence[DatasetRef]):
    """The outcome of an ingest: a sequence of one :class:`DatasetRef` per file, in order, plus
    what happened to each file (:attr:`files`)."""

    files: tuple[IngestedFile, ...]

    @overload
    def __getitem__(self, index: int) -> DatasetRef: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[DatasetRef]: ...
    def __getitem__(self, index: int | slice) -> DatasetRef | Sequence[DatasetRef]:
        if isinstance(index, slice):
            return [f.ref for f in self.files[index]]
        return self.files[index].ref

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[DatasetRef]:
        return (f.ref for f in self.files)

    @property
    def ingested(self) -> list[IngestedFile]:
        """Files registered by this ingest."""
        return [f for f in self.files if f.status == "ingested"]

    @property
    def skipped(self) -> list[IngestedFile]:
        """Files whose dataset was already registered."""
        return [f for f in self.files if f.status == "skipped"]

    def summary(self, dataset_type: str) -> str:
        """``ingested 2 calexp dataset(s), skipped 1 already ingested``."""
        planned = sum(f.status == "planned" for f in self.files)
        if planned:
            return f"dry run: would ingest {planned} {dataset_type} dataset(s)" + (
                f", skip {len(self.skipped)} already ingested" if self.skipped else ""
            )
        text = f"ingested {len(self.ingested)} {dataset_type} dataset(s)"
        return text + (f", skipped {len(self.skipped)} already ingested" if self.skipped else "")


@dataclass(frozen=True)
class _Read:
    source: str
    src_path: str
    fs: Any
    derived: DerivedDataId
    checksum: str
    size: int


@dataclass(frozen=True)
class _Planned:
    source: str
    src_path: str
    fs: Any
    record: DatasetRecord
    derived: DerivedDataId


def ingest_files(
    lookup: DatasetLookup,
    run: str,
    dataset_type: str,
    files: Sequence[str | os.PathLike[str]],
    *,
    transfer: TransferMode,
    data_id: Mapping[str, Any] | None,
    storage_options: Mapping[str, Any],
    dry_run: bool = False,
) -> IngestReport:
    """Register ``files`` as datasets of ``run`` (all or none); see
    :meth:`Butler.ingest <repo_butler.Butler.ingest>`.

    Raises
    ------
    DataIdError
        If a file's data ID cannot be derived, sources contradict each other, or two files of
        the batch have the same data ID and different content (nothing is registered).
    DatasetExistsError
        If a dataset with a file's data ID but other content is already in ``run``.
    StorageError
        If a file cannot be read.
    """
    import fsspec.core

    if transfer not in TRANSFERS:
        raise ConfigError(f"transfer must be one of {TRANSFERS}, got {transfer!r}")
    dt = lookup.dataset_type(dataset_type)
    deriver = DataIdDeriver(lookup, dt, data_id)
    read: list[_Read] = []
    for item in files:  # pass 1: read and identify every file (nothing kept but metadata)
        source = os.fspath(item)
        fs, src_path = fsspec.core.url_to_fs(source, **storage_options)
        try:
            data = fs.cat_file(src_path)
        except OSError as err:
            raise StorageError(f"cannot read {source}: {err}; nothing was ingested") from err
        derived = deriver.derive(source, src_path, data)
        checksum = checksum_bytes(data, lookup.store.checksum_algorithm)
        read.append(_Read(source, src_path, fs, derived, checksum, len(data)))
    registry = lookup.registry
    by_sum = {
        r.checksum: r for r in registry.find_checksums(dt.name, run, [f.checksum for f in read])
    }
    outcomes: list[IngestedFile | _Planned] = []
    planned_id: dict[str, _Planned] = {}
    planned_sum: dict[str, _Planned] = {}
    for f in read:  # pass 2: compare with the registry and the rest of the batch
        did, checksum, source = f.derived.data_id, f.checksum, f.source
        found = registry.find(dt.name, did, (run,))
        if found is not None and found.checksum != checksum:
            raise DatasetExistsError(
                f"{source}: {dt.name} {did} already exists in run {display_run(run)} with other "
                f"content ({lookup.store.uri(found.path)}); remove it first (rb remove) or check "
                "the file's data ID; nothing was ingested"
            )
        found = found or by_sum.get(checksum)
        if found is not None:
            where = f"in run {display_run(run)}"
            reason = (
                f"already ingested {where}"
                if found.data_id == did
                else f"same content already registered as {dt.name} {found.data_id} {where}"
            )
            outcomes.append(IngestedFile(source, "skipped", lookup.ref(found), f.derived, reason))
            continue
        twin = planned_id.get(did.key)
        if twin is not None and twin.record.checksum != checksum:
            raise DataIdError(
                f"{source} and {twin.source} both have the {dt.name} data ID {did} but different "
                "content; ingest one of them (nothing was ingested)"
            )
        twin = twin or planned_sum.get(checksum)
        if twin is not None:
            reason = f"same content as {twin.source} (this batch, {dt.name} {twin.record.data_id})"
            outcomes.append(IngestedFile(source, "skipped", lookup.ref(twin.record), f.derived,
                                         reason))  # fmt: skip
            continue
        path = run_prefix(run) + dt.path_template.format(did)
        if transfer == "direct":
            path = f.fs.unstrip_protocol(f.src_path)
        record = DatasetRecord(dt.name, did, run, path, f.size, checksum, now_iso(), None)
        plan = _Planned(source, f.src_path, f.fs, record, f.derived)
        planned_id[did.key] = planned_sum[checksum] = plan
        outcomes.append(plan)
    if not dry_run:
        store = lookup.store
        items = [
            Placement(p.record, _source_to_place(p, store, transfer), p.fs, p.src_path)
            for p in outcomes
            if isinstance(p, _Planned)
        ]
        place_and_register(lookup.registry, store, items, transfer, storage_options)
    status: Literal["planned", "ingested"] = "planned" if dry_run else "ingested"
    return IngestReport(
        tuple(
            o
            if isinstance(o, IngestedFile)
            else IngestedFile(o.source, status, lookup.ref(o.record), o.derived)
            for o in outcomes
        )
    )


def _source_to_place(plan: _Planned, store: Datastore, transfer: TransferMode) -> str | None:
    """What to transfer for a planned file: nothing if registered in place (``direct``) or
    already at its path in the repository."""
    if transfer == "direct" or store.uri(plan.record.path) == plan.fs.unstrip_protocol(
        plan.src_path
    ):
        return None
    return plan.source


@dataclass(frozen=True)
class Placement:
    """A file to place at its record's path and the row to register for it.

    ``source`` is ``None`` for a file registered where it is (``transfer="direct"``, or already at
    the path); ``fs`` and ``src_path`` locate the source, to put a moved file back on failure.
    """

    record: DatasetRecord
    source: str | None
    fs: Any = None
    src_path: str = ""


def place_and_register(
    registry: Registry,
    store: Datastore,
    items: Sequence[Placement],
    transfer: TransferMode,
    storage_options: Mapping[str, Any],
    *,
    what: str = "ingest",
) -> None:
    """Place each file (``store.transfer_in``) and insert its row, all in one registry batch; on
    any failure undo what was done (files placed, rows inserted) and re-raise.

    Steps that cannot be undone are logged in one error naming each, ``what`` (``ingest``,
    ``import``) saying what failed.
    """
    undo: list[_Undo] = []
    with registry.batch():  # one registry upload for the lot on object stores
        try:
            for item in items:
                record = item.record
                if item.source is not None:
                    store.transfer_in(
                        item.source,
                        record.path,
                        mode=transfer,
                        storage_options=dict(storage_options),
                    )
                    undo.append(_undo_transfer(store, item, transfer))
                registry.insert(record)
                undo.append(_undo_insert(registry, record))
        except BaseException:
            logger.warning(
                "%s failed; undoing %d step(s) so nothing is registered", what, len(undo)
            )
            left = []
            for step in reversed(undo):
                try:
                    step()
                except Exception as err:  # keep undoing the rest; say what could not be undone
                    left.append(f"{step.what} ({err})")
            if left:
                logger.error(
                    "%s could not undo %d step(s); undo by hand: %s",
                    what,
                    len(left),
                    "; ".join(left),
                )
            raise


@dataclass(frozen=True)
class _Undo:
    """One step taking back part of a failed ingest, and what it takes back (for messages)."""

    what: str
    step: Callable[[], object]

    def __call__(self) -> None:
        self.step()


def _undo_insert(registry: Registry, record: DatasetRecord) -> _Undo:
    """The step that removes one inserted registry row."""
    return _Undo(
        f"registry row {record.dataset_type} {dict(record.data_id)} in run {record.run!r}",
        lambda: registry.remove(record.dataset_type, record.data_id, record.run),
    )


def _undo_transfer(store: Datastore, item: Placement, transfer: TransferMode) -> _Undo:
    """The step that takes back one placed file (a moved file goes back to its source)."""
    path = item.record.path

    def undo() -> None:
        if transfer == "move":
            item.fs.pipe_file(item.src_path, store.get_bytes(path))
        store.remove(path)

    moved = f" (moved from {item.source}; put it back there)" if transfer == "move" else ""
    return _Undo(f"stored file {store.uri(path)}{moved}", undo)
