"""Many datasets in one call: :meth:`Butler.put_many <repo_butler.Butler.put_many>`.

The same three steps as :meth:`Butler.put <repo_butler.Butler.put>` (plan, write, register), each
done for the whole batch:

1. **plan**: every item's dataset type and data ID are validated, duplicates within the batch are
   refused and, with ``overwrite=False``, every dataset is looked up in the output run (one
   snapshot of the registry); any problem raises before a byte is written;
2. **write**: locally every file (and provenance sidecar) is first written as a temporary file
   beside its path, without an fsync; one :class:`~repo_butler.local_writes.BatchSync` (a
   ``syncfs`` on Linux) makes them all durable; they are then published by link/rename and a
   second ``syncfs`` makes the new names durable. A name therefore never points at bytes a
   power loss could take back, as with ``put``, but the batch pays two filesystem syncs instead
   of one ``fdatasync`` per file and one directory fsync per file. Other stores: a bounded
   pool of threads writes with :meth:`WorkerIO.write <repo_butler.writes.WorkerIO.write>`
   (uploads are latency-bound);
3. **register**: one :meth:`Registry.batch <repo_butler.registry.Registry.batch>` (one SQLite or
   PostgreSQL transaction, one registry upload in a bucket) records every row, after the
   second sync: no row is visible before its bytes and name are durable.

If anything fails after the first write, no row of the batch stays registered (the transaction is
rolled back) and the new files this batch wrote are removed again; see :func:`put_many` for the one
exception (an overwrite cannot restore the file it replaced).
"""

from __future__ import annotations

import logging
import posixpath
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from repo_butler.config import DatasetType
from repo_butler.dimensions import DataId
from repo_butler.errors import ConcurrentWriteError, DataIdError, RepoButlerError, StorageError
from repo_butler.local_writes import BatchSync
from repo_butler.provenance import Provenance
from repo_butler.registry import DatasetRecord
from repo_butler.runs import display_run
from repo_butler.writes import PlannedPut, StagedDataset, WrittenDataset

if TYPE_CHECKING:
    from repo_butler.refs import DatasetRef
    from repo_butler.run_writer import RunWriter

__all__ = ["DEFAULT_THREADS", "PutItem", "PutMany", "put_many"]

logger = logging.getLogger(__name__)

DEFAULT_THREADS = 8
"""Writer threads for a bucket or other remote store when ``threads`` is not given (uploads are
latency-bound). Local batches are written by the calling thread unless ``threads`` is given:
without a sync per file, writing small files is CPU-bound and threads only add overhead."""


@dataclass(frozen=True)
class PutItem:
    """One dataset for :meth:`Butler.put_many <repo_butler.Butler.put_many>`.

    A plain tuple ``(obj, dataset_type, data_id)`` or ``(obj, dataset_type, data_id,
    provenance)`` is accepted in its place.

    Attributes
    ----------
    obj : object
        What to store; the dataset type's formatter serialises it.
    dataset_type : str
        Dataset type name.
    data_id : Mapping
        Complete data ID of the dataset type.
    provenance : Provenance, optional
        Stored in the registry and as a ``<file>.provenance.json`` sidecar.
    """

    obj: Any
    dataset_type: str
    data_id: Mapping[str, Any]
    provenance: Provenance | None = None


def _as_item(value: PutItem | Sequence[Any], k: int) -> PutItem:
    if isinstance(value, PutItem):
        return value
    if isinstance(value, tuple | list) and len(value) in (3, 4):
        return PutItem(*value)
    raise TypeError(
        f"put_many item {k}: expected a PutItem or a tuple (obj, dataset_type, data_id"
        f"[, provenance]), got {type(value).__name__}"
    )


def _named(err: RepoButlerError, what: str) -> RepoButlerError:
    """``err`` with ``what`` (dataset type and data ID) in front, unless it names it already."""
    if what in err.message:
        return err
    try:
        return type(err)(f"{what}: {err.message}", remedy=err.remedy)
    except TypeError:  # a subclass with another constructor: keep it as it is
        return err


def _run(
    fn: Callable[[int], None], tasks: list[list[int]], pool: ThreadPoolExecutor | None
) -> None:
    """``fn(k)`` for the items of every task (each task's items in order, tasks on the pool);
    once one call has failed the others stop, and its error is raised when all have stopped
    (so nothing is still writing when the caller cleans up)."""
    failed = threading.Event()

    def some(indices: list[int]) -> None:
        for k in indices:
            if failed.is_set():
                return
            try:
                fn(k)
            except BaseException:
                failed.set()
                raise

    if pool is None:
        for indices in tasks:
            some(indices)
        return
    futures = [pool.submit(some, indices) for indices in tasks]
    errors = [f.exception() for f in futures]  # waits for every task
    for err in errors:
        if err is not None:
            raise err


class _Batch:
    """The state of one :func:`put_many` call."""

    def __init__(self, writer: RunWriter, overwrite: bool) -> None:
        self.writer = writer
        self.overwrite = overwrite
        self.lookup = writer.lookup
        self.registry = writer.lookup.registry
        self.store = writer.io.datastore()
        self.written: list[WrittenDataset | None] = []
        self.directories: set[str] = set()

    def resolve(self, items: list[PutItem]) -> list[tuple[DatasetType, DataId]]:
        """Validated dataset type and data ID of every item; duplicates refused."""
        out: list[tuple[DatasetType, DataId]] = []
        seen: dict[tuple[str, DataId], int] = {}
        for k, item in enumerate(items):
            try:
                dt = self.lookup.dataset_type(item.dataset_type)
                did = self.lookup.complete(dt, item.data_id, {})
            except RepoButlerError as err:
                raise _named(err, f"put_many item {k} ({item.dataset_type} {item.data_id})") from (
                    err
                )
            first = seen.setdefault((dt.name, did), k)
            if first != k:
                raise DataIdError(
                    f"{dt.name} {did} appears twice in the batch (items {first} and {k}); "
                    "give each dataset once per put_many call"
                )
            out.append((dt, did))
        return out

    def existing(self, resolved: list[tuple[DatasetType, DataId]]) -> list[DatasetRecord | None]:
        """Each dataset's record in the output run, from one up-to-date snapshot of the
        registry; with ``overwrite=False`` the first existing one is refused."""
        run = self.writer.run
        self.registry.refresh()
        with self.registry.trusting_local_copy():
            found = [self.registry.find(dt.name, did, (run,)) for dt, did in resolved]
        if not self.overwrite:
            for (dt, did), old in zip(resolved, found, strict=True):
                if old is not None:
                    raise self.writer._exists_error(dt.name, did)
        return found

    def tasks(self, plans: list[PlannedPut], local: bool) -> list[list[int]]:
        """The items each pool task writes, in order. Locally one task per directory (files
        of one directory are created under its lock, so threads only scale across
        directories, and a directory's files are written in order); other stores one task
        per item."""
        if not local:
            return [[k] for k in range(len(plans))]
        groups: dict[str, list[int]] = {}
        for k, planned in enumerate(plans):
            groups.setdefault(posixpath.dirname(planned.path), []).append(k)
        return list(groups.values())

    def write(self, planned: PlannedPut, item: PutItem) -> WrittenDataset:
        """Write one dataset to a remote store (in a pool thread)."""
        try:
            return self.writer.io.write(
                planned, item.obj, item.provenance, exclusive=not self.overwrite
            )
        except FileExistsError:
            return self._over_existing_file(planned, item)
        except RepoButlerError as err:
            raise _named(err, f"{planned.dataset_type} {planned.data_id}") from err

    def stage(self, planned: PlannedPut, item: PutItem) -> StagedDataset:
        """Write one dataset's temporary files locally, not synced nor published."""
        try:
            staged = self.writer.io.stage(
                planned, item.obj, item.provenance, exclusive=not self.overwrite, sync=False
            )
        except RepoButlerError as err:
            raise _named(err, f"{planned.dataset_type} {planned.data_id}") from err
        assert staged is not None  # a local store stages
        return staged

    def publish(self, staged: StagedDataset, item: PutItem) -> WrittenDataset:
        """Publish one durable staged dataset (its directory's sync is left to the batch)."""
        try:
            return self.writer.io.publish(staged)
        except FileExistsError:
            return self._over_existing_file(staged.planned, item)
        except RepoButlerError as err:
            planned = staged.planned
            raise _named(err, f"{planned.dataset_type} {planned.data_id}") from err

    def write_local(
        self, plans: list[PlannedPut], items: list[PutItem], pool: ThreadPoolExecutor | None
    ) -> None:
        """Stage every file, sync them all, publish them all, sync the new names."""
        staged: list[StagedDataset | None] = [None] * len(plans)

        def stage(k: int) -> None:
            staged[k] = self.stage(plans[k], items[k])

        root = self.store.local_path("")
        assert root is not None
        durable = bool(getattr(self.store, "durable", True))

        def make_durable(sync: BatchSync, paths: Iterable[str], directories: bool) -> None:
            if not durable:
                return
            try:
                sync.sync(paths, directories=directories)
            except OSError as err:
                what = "the new names" if directories else "the files"
                raise StorageError(
                    f"cannot make {what} of this batch under {root} durable ({err}); nothing "
                    "of the batch was registered: check the disk and retry"
                ) from err

        try:
            with BatchSync(root) as sync:
                _run(stage, self.tasks(plans, local=True), pool)
                make_durable(sync, (f.tmp for s in staged if s for f in s.files), False)
                with self.store.deferring_directory_sync(self.directories):
                    for k, done in enumerate(staged):
                        assert done is not None
                        staged[k] = None
                        self.written[k] = self.publish(done, items[k])
                make_durable(sync, sorted(self.directories), True)
        finally:
            for left in staged:
                if left is not None:
                    self.writer.io.discard(left)

    def write_remote(
        self, plans: list[PlannedPut], items: list[PutItem], pool: ThreadPoolExecutor | None
    ) -> None:
        """Write every dataset with :meth:`WorkerIO.write` on the pool."""

        def write(k: int) -> None:
            self.written[k] = self.write(plans[k], items[k])

        _run(write, self.tasks(plans, local=False), pool)

    def _over_existing_file(self, planned: PlannedPut, item: PutItem) -> WrittenDataset:
        """A file is at a new dataset's path: registered meanwhile (the dataset exists), being
        written by another writer (this batch gives up rather than wait while holding files
        another batch may wait for), or left by a crashed writer (replaced, as by ``put``)."""
        name, did = planned.dataset_type, planned.data_id
        self.registry.refresh()
        if self.registry.find(name, did, (self.writer.run,)) is not None:
            raise self.writer._exists_error(name, did)
        state = self.store.stray_state(planned.path)
        if state is not None and state[1] < self.writer.stray_age:
            raise ConcurrentWriteError(
                f"{name} {did} in run {display_run(self.writer.run)}: "
                f"{self.store.uri(planned.path)} is being written by another writer (not "
                f"registered, {state[1]:.1f} s old); nothing of this batch was registered: retry "
                "it, or put this dataset with Butler.put, which waits for the other writer"
            )
        return self.writer._write_over_stray(planned, item.obj, item.provenance)

    def undo(self, existing: list[DatasetRecord | None]) -> None:
        """After a failure: remove the new files (and sidecars) of this batch that are still
        ours and not registered. A file that replaced a registered dataset's is left (its old
        bytes are gone; ``rb verify`` reports the checksum mismatch)."""
        removed = 0
        for done, old in zip(self.written, existing, strict=False):
            if done is None or old is not None:
                continue
            planned = done.planned
            try:
                row = self.registry.find(planned.dataset_type, planned.data_id, (planned.run,))
                if row is not None and row.checksum == done.checksum:
                    continue  # registered after all: never remove a registered file
                state = self.store.stray_state(planned.path)
                if state is None or (done.token is not None and state[0] != done.token):
                    continue  # not ours any more
                self.store.remove(planned.path)
                if done.provenance_path is not None:
                    self.store.remove(done.provenance_path)
                removed += 1
            except Exception as err:  # keep undoing the rest; say what is left
                logger.warning(
                    "put_many: could not remove %s after the batch failed (%s); `rb verify` "
                    "reports it, `rb reindex` would register it",
                    self.store.uri(planned.path),
                    err,
                )
        if removed:
            logger.info("put_many failed: removed the %d file(s) it had written", removed)


def put_many(
    writer: RunWriter,
    items: Iterable[PutItem | Sequence[Any]],
    *,
    overwrite: bool = False,
    threads: int | None = None,
) -> list[DatasetRef]:
    """Write and register many datasets in the writer's run; see
    :meth:`Butler.put_many <repo_butler.Butler.put_many>`.

    Failure semantics: any error before the first write (bad data ID, dataset type, duplicate in
    the batch, a dataset that exists with ``overwrite=False``) leaves everything untouched. An
    error after it (formatter, storage, a concurrent writer's row or file found at write or
    register time) leaves no row of the batch registered and removes the new files the batch
    wrote; the files of datasets the batch was overwriting keep the new bytes (their rows the
    old checksum) as after a failed ``put(overwrite=True)``.
    """
    batch_items = [_as_item(value, k) for k, value in enumerate(items)]
    if not batch_items:
        return []
    batch = _Batch(writer, overwrite)
    resolved = batch.resolve(batch_items)
    existing = batch.existing(resolved)
    plans = [writer.plan(dt, did) for dt, did in resolved]  # ensures the run exists
    local = batch.store.local_path(plans[0].path) is not None
    default = 1 if local else DEFAULT_THREADS
    n_threads = min(default if threads is None else max(1, threads), len(plans))
    pool = ThreadPoolExecutor(n_threads, thread_name_prefix="rb-put") if n_threads > 1 else None
    batch.written = [None] * len(plans)
    try:
        try:
            if local:
                batch.write_local(plans, batch_items, pool)
            else:
                batch.write_remote(plans, batch_items, pool)
        finally:
            if pool is not None:
                pool.shutdown()
        written = [w for w in batch.written if w is not None]
        return writer.register(written, replace=overwrite, existing=existing, all_or_nothing=True)
    except BaseException:
        batch.undo(existing)
        raise


class PutMany:
    """:meth:`put_many` of :class:`~repo_butler.Butler` (kept here: butler.py is at its size
    limit)."""

    _writer: RunWriter

    def _check_writeable(self) -> None:
        raise NotImplementedError

    def put_many(
        self,
        items: Iterable[PutItem | Sequence[Any]],
        *,
        overwrite: bool = False,
        threads: int | None = None,
    ) -> list[DatasetRef]:
        """Write many datasets into the output run, as many :meth:`put` calls would, with
        two filesystem syncs for the whole batch locally (concurrent uploads in a bucket) and
        one registry transaction.

        Parameters
        ----------
        items : iterable of PutItem or tuple
            ``PutItem(obj, dataset_type, data_id, provenance=None)``, or the same as a tuple
            ``(obj, dataset_type, data_id)`` / ``(obj, dataset_type, data_id, provenance)``.
        overwrite : bool
            Replace existing datasets of the output run (as :meth:`put`), for every item.
        threads : int, optional
            Writer threads (1: the calling thread). Default: 1 for a local repository (see
            :mod:`repo_butler.put_many`), :data:`DEFAULT_THREADS` for a bucket.

        Returns
        -------
        list of DatasetRef
            One per item, in order.

        Raises
        ------
        DatasetExistsError
            If a dataset exists in the output run and ``overwrite`` is false: checked for every
            item before anything is written. Found only at write or register time (another
            writer stored it meanwhile): nothing of the batch is registered and the new files
            it wrote are removed (:class:`~repo_butler.errors.ConcurrentWriteError` when the
            other writer had not registered yet).
        DataIdError, DatasetTypeError
            If a data ID is incomplete or invalid, a dataset type unknown, or a dataset given
            twice (before anything is written).
        FormatterError, StorageError
            If an object cannot be serialised or a file written (naming the dataset and data
            ID); nothing of the batch is registered and its new files are removed.

        Notes
        -----
        Guarantees and costs: :mod:`repo_butler.put_many` and ``docs/butler.md``. The batch is
        held in memory; give batches of a few thousand datasets.
        """
        self._check_writeable()
        return put_many(self._writer, items, overwrite=overwrite, threads=threads)
