"""The driver side of writes into one output run: plan, put, register, remove.

:class:`RunWriter` holds what :meth:`Butler.put <repo_butler.Butler.put>`,
:meth:`~repo_butler.Butler.plan_put`, :meth:`~repo_butler.Butler.register` and
:meth:`~repo_butler.Butler.remove` share: the output run, the registry (through the
:class:`~repo_butler.lookup.DatasetLookup`) and the :class:`~repo_butler.writes.WorkerIO` that
writes the bytes. ``put`` is plan + :meth:`WorkerIO.write <repo_butler.writes.WorkerIO.write>` +
register, the same path a scaled-out job takes across processes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import Any

from repo_butler.config import DatasetType
from repo_butler.dimensions import DataId
from repo_butler.errors import (
    OVERWRITE_REMEDY,
    ConcurrentWriteError,
    DatasetExistsError,
    RegistryError,
)
from repo_butler.lookup import DatasetLookup
from repo_butler.provenance import Provenance, now_iso
from repo_butler.refs import DatasetRef
from repo_butler.registry import DatasetRecord
from repo_butler.runs import PendingRun, display_run, run_prefix
from repo_butler.writes import PlannedPut, WorkerIO, WrittenDataset

__all__ = ["RunWriter"]

logger = logging.getLogger(__name__)


class RunWriter:
    """Writes of one Butler into its output run.

    Parameters
    ----------
    lookup : DatasetLookup
        The repository's look-up (registry, store, dataset types).
    run : str
        The output run (``""`` for the repository root).
    io : WorkerIO
        Reads and writes the dataset files.
    """

    def __init__(
        self,
        lookup: DatasetLookup,
        run: str,
        io: WorkerIO,
        *,
        pending: PendingRun | None = None,
    ) -> None:
        self.lookup = lookup
        self.run = run
        self.io = io
        self._pending = pending

    def ensure_run(self) -> None:
        """Record a new output rerun before the first write into it (once)."""
        if self._pending is not None:
            self._pending.create()
            self._pending = None

    @property
    def rerun_spec(self) -> str | None:
        """The ``rerun`` argument that reopens the output run (with its parent while it is
        not recorded yet); ``None`` for the root run."""
        if self._pending is not None:
            return self._pending.spec
        return self.run or None

    def plan(self, dt: DatasetType, did: DataId, *, overwrite: bool = True) -> PlannedPut:
        """Where a dataset of type ``dt`` with the complete data ID ``did`` goes; with
        ``overwrite=False`` an existing dataset of the run is refused now and the write is
        exclusive."""
        if not overwrite and self._find_in_run(dt.name, did, trust_local=False) is not None:
            raise self._exists_error(dt.name, did)
        self.ensure_run()
        path = run_prefix(self.run) + dt.path_template.format(did)
        return PlannedPut(dt.name, did, self.run, path, exclusive=not overwrite)

    def put(
        self,
        obj: Any,
        dt: DatasetType,
        did: DataId,
        *,
        provenance: Provenance | None,
        overwrite: bool,
    ) -> DatasetRef:
        """Write and register ``obj``; see :meth:`Butler.put <repo_butler.Butler.put>`.

        In a bucket with the object-store registry a new dataset costs two requests: the data
        PUT with ``If-None-Match: *`` (the existence check uses the local registry copy) and,
        once it has completed, the registry's ``If-Match`` upload. ``overwrite=True`` adds two
        HEADs: the look-up of the old dataset, and the check at registration that the object
        is still this write's (see :meth:`_still_ours`). If the exclusive write finds a file,
        see :meth:`_write_over_stray`: another writer's file is never replaced; a stray file
        of a crashed writer is, once it is :attr:`stray_age` old.
        """
        registry, store = self.lookup.registry, self.lookup.store
        # In a bucket with an object-store registry a new dataset is written without asking
        # the bucket first: the existence check uses the local registry copy. Every write with
        # overwrite=False is exclusive (os.link locally, If-None-Match: * on S3), so of two
        # writers of one data ID the second never touches the first one's bytes.
        cheap = not overwrite and registry.speculative_reads and store.conditional_writes
        existing = self._find_in_run(dt.name, did, trust_local=cheap)
        if existing is not None and not overwrite:
            raise self._exists_error(dt.name, did)
        planned = self.plan(dt, did)
        try:
            written = self.io.write(planned, obj, provenance, exclusive=not overwrite)
        except FileExistsError:
            written = self._write_over_stray(planned, obj, provenance)
        return self.register([written], replace=overwrite, existing=[existing])[0]

    stray_age: float = 10.0
    """Seconds after which an unregistered file at a new dataset's path counts as left by a
    crashed writer and may be replaced; a younger one belongs to a writer still registering
    it, which :meth:`put` waits for."""

    def _write_over_stray(
        self, planned: PlannedPut, obj: Any, provenance: Provenance | None
    ) -> WrittenDataset:
        """Our exclusive write found a file: wait until its writer registers it (then the
        dataset exists) or it is :attr:`stray_age` old and still unregistered (then it is
        replaced, conditionally on being the same file, by exactly one writer)."""
        registry, store = self.lookup.registry, self.lookup.store
        name, did = planned.dataset_type, planned.data_id
        delay = 0.02
        while True:
            registry.refresh()  # never trust a cached registry copy here
            if registry.find(name, did, (self.run,)) is not None:
                raise self._exists_error(name, did)
            state = store.stray_state(planned.path)
            try:
                if state is None:  # removed meanwhile: try a new exclusive write
                    return self.io.write(planned, obj, provenance, exclusive=True)
                token, age = state
                if age >= self.stray_age:
                    logger.info("replacing %s, an unregistered file", store.uri(planned.path))
                    return self.io.write(planned, obj, provenance, replacing=token)
            except FileExistsError:
                pass  # another writer got there first: look again
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def register(
        self,
        written: Iterable[WrittenDataset],
        *,
        replace: bool,
        existing: list[DatasetRecord | None] | None = None,
        all_or_nothing: bool = False,
    ) -> list[DatasetRef]:
        """Register written datasets (one batch); see :meth:`Butler.register
        <repo_butler.Butler.register>`. ``existing`` gives, per dataset, its record in the run
        when the caller has just looked it up (else each is looked up here). With
        ``all_or_nothing`` (and not ``replace``) a dataset whose file another writer replaced
        fails the whole batch inside the registry batch, so a transactional registry rolls it
        back, instead of the others being registered first."""
        items = list(written)
        for item in items:
            if item.planned.run != self.run:
                raise RegistryError(
                    f"{item.planned.dataset_type} {item.planned.data_id} was written for run "
                    f"{display_run(item.planned.run)} but this Butler registers into run "
                    f"{display_run(self.run)}; reopen the Butler with "
                    f"rerun={item.planned.run or None!r}"
                )
        lookup, registry = self.lookup, self.lookup.registry
        self.ensure_run()
        records = []
        stale_sidecars = []
        for k, item in enumerate(items):
            planned = item.planned
            dt = lookup.dataset_type(planned.dataset_type)
            did = lookup.complete(dt, planned.data_id, {})
            old = existing[k] if existing is not None else registry.find(dt.name, did, (self.run,))
            if old is not None and not replace:  # before anything is registered
                raise self._exists_error(dt.name, did)
            if old is not None and old.provenance not in (None, item.provenance_path):
                stale_sidecars.append(old.provenance)
            records.append(
                DatasetRecord(
                    dt.name,
                    did,
                    planned.run,
                    planned.path,
                    item.size,
                    item.checksum,
                    now_iso(),
                    item.provenance_path,
                )
            )
        # one registry upload for the lot on object stores
        lost: list[ConcurrentWriteError] = []
        with registry.batch() if len(items) > 1 else nullcontext():
            for item, record in zip(items, records, strict=True):
                try:
                    registry.insert(
                        record,
                        provenance=item.provenance_json,
                        replace=replace,
                        check=self._still_ours(item, replace=replace),
                    )
                except ConcurrentWriteError as err:
                    if all_or_nothing and not replace:
                        raise
                    lost.append(err)
        for path in stale_sidecars:
            self._remove_file(path)
        if lost and not replace:
            if len(lost) == 1:
                raise lost[0]
            raise ConcurrentWriteError(
                f"{len(lost)} datasets were not registered: " + "; ".join(map(str, lost))
            )
        for superseded in lost:  # overwrite: the later writer's file and row win
            logger.warning("%s", superseded)
        return [lookup.ref(record) for record in records]

    def _still_ours(self, item: WrittenDataset, *, replace: bool) -> Callable[[], None] | None:
        """The check :meth:`Registry.insert <repo_butler.registry.Registry.insert>` runs before
        recording ``item``: its file must still be the one the write published (same token),
        so a row never records one writer's checksum beside another writer's bytes.

        Locally it is one ``stat``. In a bucket (one HEAD) a new dataset registered within half
        of :attr:`stray_age` of its write is not checked: no other writer may replace an
        unregistered file that young.
        """
        if item.token is None:
            return None
        store = self.lookup.store
        young = 0.0 < time.time() - item.written_at < self.stray_age / 2
        if not replace and young and store.local_path(item.planned.path) is None:
            return None
        planned, token = item.planned, item.token

        def check() -> None:
            state = store.stray_state(planned.path)
            if state is not None and state[0] == token:
                if item.provenance_path is not None and item.provenance_json is not None:
                    self._own_sidecar(item.provenance_path, item.provenance_json.encode())
                return
            what = "was removed" if state is None else "was replaced by another writer"
            outcome = (
                "the other writer's dataset stands"
                if replace
                else "this put is not registered (the other writer's dataset stands)"
            )
            raise ConcurrentWriteError(
                f"{planned.dataset_type} {planned.data_id} in run {display_run(planned.run)}: "
                f"{store.uri(planned.path)} {what} before this write was registered; {outcome}"
            )

        return check

    def _own_sidecar(self, path: str, text: bytes) -> None:
        """Make the sidecar at ``path`` this registration's (another overwriting writer may
        have written its own after ours; it wrote it before its data, so it is done now)."""
        store = self.lookup.store
        try:
            if store.get_bytes(path) == text:
                return
        except FileNotFoundError:
            pass
        logger.debug("rewriting %s, written by another writer", store.uri(path))
        store.put_bytes(path, text)

    def remove(self, record: DatasetRecord) -> DatasetRef:
        """Delete a dataset of the run: registry row, file (unless ingested in place), sidecar."""
        self.lookup.registry.remove(record.dataset_type, record.data_id, record.run)
        if "://" not in record.path:
            self._remove_file(record.path)
        if record.provenance:
            self._remove_file(record.provenance)
        return self.lookup.ref(record)

    def _remove_file(self, path: str) -> None:
        store = self.lookup.store
        try:
            store.remove(path)
        except FileNotFoundError:
            logger.warning("file %s was already gone", store.uri(path))

    def _find_in_run(
        self, dataset_type: str, did: DataId, *, trust_local: bool
    ) -> DatasetRecord | None:
        """The run's dataset, looked up in the local registry copy if ``trust_local`` (a hit is
        confirmed against the shared registry, since the dataset may have been removed)."""
        registry = self.lookup.registry
        if trust_local:
            with registry.trusting_local_copy():
                found = registry.find(dataset_type, did, (self.run,))
            if found is None:
                return None
        return registry.find(dataset_type, did, (self.run,))

    def _exists_error(self, dataset_type: str, did: DataId) -> DatasetExistsError:
        return DatasetExistsError(
            f"{dataset_type} {did} already exists in run {display_run(self.run)} of "
            f"{self.lookup.root}",
            remedy=OVERWRITE_REMEDY,
        )
