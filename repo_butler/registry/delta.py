"""Registry of a bucket repository as a Delta Lake table of events: commits cost the same at any
size.

Where it lives: ``<root>/registry.delta/`` in the bucket, a Delta Lake table (``_delta_log/``
plus Parquet files) written with the ``deltalake`` package. Each write (or each
:meth:`~DeltaRegistry.batch`) appends one Parquet file of event rows
(:mod:`repo_butler.registry.delta_log`) and one commit file, so the bytes uploaded per commit
depend on what is written, not on how big the repository is.

Reading: each process replays the events into a private SQLite copy (all queries are SQLite
queries, as for a local repository; :mod:`~repo_butler.registry.delta_replica`, which also keeps
a per-user cache of it so a new process replays only what is new) and afterwards reads only the
files holding newer events: one LIST of the commit log tells whether anything changed (skipped for
``max_staleness`` seconds after the last check), then the new events' files are fetched. A
``get`` looks its dataset up in the copy and confirms it with one HEAD of the next commit file,
overlapped with the data GET (speculative reads, as the SQLite object registry does).

Writers never overwrite each other's records: a writer that has replayed up to version ``V``
checks its changes against that state (``DatasetExistsError`` as locally) and commits exactly
version ``V + 1`` (the commit file is created with a conditional PUT). When another writer took
``V + 1`` first the commit fails; the writer replays the new events and checks again, with
jittered backoff, until ``write_timeout``. No lock, so a crashed writer leaves nothing to expire
(only an unreferenced Parquet file that compaction's vacuum removes after a week).

Every ``compact_every`` versions the writer that reached it compacts the table (small files
merged, ``deltalake``'s ``optimize.compact``, a commit that changes no data) so a new reader
fetches a few large files; ``deltalake`` writes a checkpoint every 100 versions.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from repo_butler.dimensions import DataId, DimensionUniverse
from repo_butler.errors import (
    ConcurrentWriteError,
    DatasetExistsError,
    RegistryError,
    StorageError,
)
from repo_butler.formats import check_version
from repo_butler.leftovers import registry_cache_dir
from repo_butler.redaction import redact_text
from repo_butler.registry.base import DatasetRecord
from repo_butler.registry.delta_log import (
    EVENT_FORMAT,
    FORMAT_KEY,
    Event,
    create_registry_table,
    delta_storage_options,
    event_batches,
    event_from_row,
    events_to_arrow,
)
from repo_butler.registry.delta_replica import (
    SAVE_AFTER_EVENTS,
    Replica,
    cache_file,
    save_to_cache,
    seed_from_cache,
)
from repo_butler.registry.local_copy import LocalCopyReads
from repo_butler.registry.sqlite import SqliteRegistry
from repo_butler.s3_objects import S3Objects

__all__ = ["DeltaRegistry"]

logger = logging.getLogger(__name__)

_Item = tuple[Event, Callable[[], None] | None]

#: Compaction merges files smaller than this into files of about this size.
COMPACT_TARGET_BYTES = 8 * 2**20


class DeltaRegistry(LocalCopyReads):
    """A :class:`Registry` kept as a Delta Lake table of events in an S3 bucket.

    Parameters
    ----------
    fs : s3fs.S3FileSystem
        Connected filesystem (its credentials are handed to ``deltalake``).
    path : str
        ``bucket/key`` of the table directory.
    universe : DimensionUniverse
        Dimensions of the repository.
    writeable : bool
        Read-only registries never write (read permission suffices).
    max_staleness : float
        Seconds a read may use the local copy without checking the bucket.
    write_timeout : float
        Seconds a write keeps retrying after conflicts with other writers.
    compact_every : int
        Compact the table each time its version is a multiple of this.
    secrets : list of str
        Secret values to remove from error messages.
    rebuilding : bool
        Create a missing table even when the repository holds files (``rb reindex``).
    """

    speculative_reads = True

    def __init__(
        self,
        fs: Any,
        path: str,
        universe: DimensionUniverse,
        *,
        writeable: bool = True,
        max_staleness: float = 0.0,
        write_timeout: float = 120.0,
        compact_every: int = 100,
        secrets: list[str] | None = None,
        rebuilding: bool = False,
    ) -> None:
        self.url = f"s3://{path}"
        self.universe = universe
        self.writeable = writeable
        self.max_staleness = float(max_staleness)
        self.write_timeout = float(write_timeout)
        self.compact_every = int(compact_every)
        self._fs = fs
        self._path = path
        self._secrets = list(secrets or [])
        self._rebuilding = rebuilding
        self._mutex = threading.RLock()
        with self._errors("connecting to"):
            self._options = delta_storage_options(fs)
        self._secrets += [
            v
            for k, v in self._options.items()
            if k in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
        ]
        self._tmp = registry_cache_dir()
        self._cache = cache_file(self.url)
        local = str(Path(self._tmp.name) / "registry.sqlite3")
        seeded = seed_from_cache(self._cache, local)
        self._db = Replica(local, universe, journal_mode="DELETE")
        self._table_id, self._version = self._db.replayed() if seeded else (None, -1)
        self._table: Any = None
        self._checked = float("-inf")
        self._pending: list[_Item] | None = None
        self._objects = S3Objects(fs, path.partition("/")[0])
        self.commits = 0
        self.conflicts = 0
        self.events_read = 0
        with self._mutex:
            self._open_table()
            self._catch_up(force=True)

    # -- the table --------------------------------------------------------------------------
    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn ``deltalake`` and network failures into errors naming the table, no secrets."""
        from deltalake.exceptions import CommitFailedError

        try:
            yield
        except (RegistryError, StorageError, CommitFailedError):
            raise
        except Exception as err:  # deltalake raises OSError, DeltaError, ...
            endpoint = getattr(self, "_options", {}).get("AWS_ENDPOINT_URL", "the S3 endpoint")
            msg = (
                f"cannot use the registry table {self.url} at {endpoint} ({action}): "
                f"{_one_line(err)}; check the endpoint, the credentials and that the repository "
                "exists"
            )
            raise StorageError(redact_text(msg, getattr(self, "_secrets", []))) from None

    def _open_table(self) -> None:
        from deltalake import DeltaTable

        with self._errors("opening"):
            exists = DeltaTable.is_deltatable(self.url, storage_options=self._options)
        if exists:
            with self._errors("opening"):
                self._table = DeltaTable(self.url, storage_options=self._options)
        else:
            if not self._rebuilding:
                self._refuse_lost()
            if not self.writeable:
                return  # a new repository: empty until its first writer
            with suppress(Exception), self._errors("creating"):
                create_registry_table(self.url, self._options)  # or another writer did
            with self._errors("opening"):
                self._table = DeltaTable(self.url, storage_options=self._options)
        meta = self._table.metadata()
        try:
            found = json.loads(meta.description or "{}").get(FORMAT_KEY)
        except (ValueError, AttributeError):
            found = None
        if found is None:
            raise RegistryError(
                f"{self.url} is a Delta table but not a repo-butler registry (its description "
                "names no registry format); point the repository at its own registry table"
            )
        check_version(
            found,
            EVENT_FORMAT,
            what="registry table format",
            source=self.url,
            oldest=1,
        )
        if self._table_id is not None and meta.id != self._table_id:
            logger.info("registry table %s was recreated; re-reading it", self.url)
            self._db.clear()
            self._version = -1
        if meta.id != self._table_id:
            self._db.set_table(meta.id)
        self._table_id = meta.id

    def _refuse_lost(self) -> None:
        """No table: fine for a new repository, an error if the repository holds files."""
        from repo_butler.registry.s3 import refuse_lost_bucket_registry

        refuse_lost_bucket_registry(self._fs, self.url, self._secrets)

    def _catch_up(self, *, force: bool = False) -> None:
        """Replay the events committed since the local copy's version (one LIST if none)."""
        now = time.monotonic()
        if not force and now - self._checked < self.max_staleness:
            return
        if self._table is None:
            self._open_table()
            if self._table is None:
                self._checked = now
                return
        with self._errors("reading"):
            self._table.update_incremental()
            latest = self._table.version()
        self._checked = now
        if latest <= self._version:
            return
        count = 0
        self._db.begin()
        try:
            for batch in self._read_batches(self._version):
                count += batch.num_rows
                self._replay(batch)
        except BaseException:
            self._db.finish(None)
            raise
        self._db.finish(latest)
        self._version = latest
        self.events_read += count
        if count > 1000:
            self._db.maybe_analyze()

    def _read_batches(self, after: int) -> Iterator[Any]:
        """Event rows with ``version > after``, from the files whose statistics say they hold
        some, in commit order (:func:`~repo_butler.registry.delta_log.event_batches`)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        with self._errors("reading"):
            actions = pa.table(self._table.get_add_actions(flatten=True))
        paths = actions["path"].to_pylist()
        if "max.version" in actions.column_names:
            newest = actions["max.version"].to_pylist()
            paths = [p for p, v in zip(paths, newest, strict=True) if v is None or v > after]
        if not paths:
            return
        keys = [f"{self._path}/{unquote(p)}" for p in paths]
        self._fs.invalidate_cache(self._path)  # s3fs sizes files from its listing cache
        with self._errors("reading"):
            blobs = _fetch(self._fs, keys)
        tables = [pq.read_table(pa.BufferReader(blob)) for blob in blobs]
        tables.sort(key=lambda t: t["version"][0].as_py() if t.num_rows else -1)
        yield from event_batches(pa.concat_tables(tables), after)

    def _replay(self, batch: Any) -> None:
        """Apply committed event rows: runs of inserts in bulk, other events one by one."""
        ops = batch.column("op").to_pylist()
        start = 0
        while start < len(ops):
            stop = start
            while stop < len(ops) and ops[stop] == "insert":
                stop += 1
            if stop > start:
                part = batch.slice(start, stop - start)
                self._db.apply_insert_columns(
                    {name: part.column(name).to_pylist() for name in part.schema.names}
                )
                start = stop
                continue
            row = batch.slice(start, 1).to_pylist()[0]
            self._apply(event_from_row(row, self.universe), strict=False)
            start += 1

    def _publish(self, events: list[Event]) -> bool:
        """Commit ``events`` as version ``self._version + 1``; ``False`` if another writer did."""
        from deltalake import CommitProperties, write_deltalake
        from deltalake.exceptions import CommitFailedError

        version = self._version + 1
        try:
            with self._errors("writing"):
                if self._table.version() != self._version:
                    # the rows say which version they are committed as, so the commit must
                    # follow exactly the version the local copy has replayed
                    self._table.load_as_version(self._version)
                write_deltalake(
                    self._table,
                    events_to_arrow(events, version),
                    mode="append",
                    commit_properties=CommitProperties(max_commit_retries=0),
                )
        except CommitFailedError:
            return False
        self._version = version
        self.commits += 1
        return True

    def _maybe_compact(self) -> None:
        """Merge small files every ``compact_every`` versions (a failure is only logged)."""
        from deltalake import DeltaTable

        if self.compact_every <= 0 or self._version % self.compact_every != 0:
            return
        try:
            with self._errors("compacting"):
                # files of 8 MiB and more are left alone, so a compaction rewrites what the
                # last ~100 commits added, not the repository
                self._table.optimize.compact(target_size=COMPACT_TARGET_BYTES)
                self._table.vacuum(dry_run=False)  # files unreferenced for 7 days
                # a long-lived handle slows down as versions pile up: start afresh
                self._table = DeltaTable(self.url, storage_options=self._options)
        except StorageError as err:
            logger.warning("compaction of %s skipped: %s", self.url, err)
        self._catch_up(force=True)  # past the compaction's own version

    # -- applying events ----------------------------------------------------------------------
    def _apply(self, event: Event, *, strict: bool, check: Callable[[], None] | None = None) -> Any:
        """Apply one event to the local copy. ``strict``: as a new write (an existing row
        refuses an insert); else as a committed event (the last one wins)."""
        db = self._db
        if event.op == "insert":
            assert event.record is not None
            replace = event.replace or not strict
            db.insert(event.record, provenance=event.provenance, replace=replace, check=check)
            return None
        if event.op == "remove":
            assert event.record is not None
            rec = event.record
            return db.remove(rec.dataset_type, rec.data_id, rec.run)
        if event.op == "run":
            db.define_run(event.run, event.parents)
            return None
        if event.op == "clear":
            db.clear()
            return None
        raise RegistryError(f"unknown registry event {event.op!r}")

    def _apply_items(self, items: list[_Item]) -> tuple[list[Any], list[Event]]:
        """Apply new writes; an insert whose ``check`` reports another writer of the same file
        is left out (that writer registers it) and its error returned as the result."""
        results: list[Any] = []
        kept: list[Event] = []
        for event, check in items:
            try:
                results.append(self._apply(event, strict=True, check=check))
            except ConcurrentWriteError as err:
                if check is None:
                    raise
                results.append(err)
                continue
            kept.append(event)
        return results, kept

    def _commit(self, items: list[_Item], *, optimistic: bool = False) -> list[Any]:
        """Apply ``items`` to an up-to-date copy and commit them; on conflict catch up, retry.

        ``optimistic``: the first attempt uses the local copy as it is (the commit is
        conditional, so a stale copy only costs a retry; a refusal it causes is re-checked
        on a fresh copy before it is raised), saving the LIST a freshness check costs.
        """
        deadline = time.monotonic() + self.write_timeout
        delay = 0.02
        fresh = not optimistic
        while True:
            if fresh:
                self._catch_up(force=True)
            self._db.begin()
            try:
                results, kept = self._apply_items(items)
                published = not kept or self._publish(kept)
            except DatasetExistsError:
                self._db.finish(None)
                if fresh:
                    raise
                fresh = True  # the copy may be stale: the other row may be gone by now
                continue
            except BaseException:
                self._db.finish(None)
                raise
            fresh = True
            if published:
                self._db.finish(self._version)
                if kept:
                    self._maybe_compact()
                return results
            self._db.finish(None)
            self.conflicts += 1
            if time.monotonic() > deadline:
                raise RegistryError(
                    f"the registry of {self.url} kept changing under this writer for "
                    f"{self.write_timeout:.0f} s ({self.conflicts} conflicts); too many "
                    "concurrent writers: try again, or use a PostgreSQL registry"
                )
            logger.debug("registry %s changed by another writer; replaying", self.url)
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)

    def _check_writeable(self) -> None:
        if not self.writeable:
            raise RegistryError(f"the registry of {self.url} was opened read-only")

    def _write(self, event: Event, check: Callable[[], None] | None = None) -> Any:
        self._check_writeable()
        with self._mutex:
            if self._pending is None:
                result = self._commit([(event, check)], optimistic=True)[0]
                if isinstance(result, ConcurrentWriteError):
                    raise result
                return result
            if not self._pending:  # first write of the batch: up-to-date copy, transaction
                self._catch_up(force=True)
                self._db.begin()
            result = self._apply(event, strict=True, check=check)  # a refusal undoes itself
            self._pending.append((event, check))
            return result

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group writes into one commit (replayed as a whole after another writer's commit);
        if the block raises, nothing of it is committed."""
        self._check_writeable()
        with self._mutex:
            if self._pending is not None:
                yield
                return
            self._pending = []
            try:
                yield
            except BaseException:  # all or nothing: none of the batch's writes is kept
                self._pending = None
                self._db.finish(None)
                raise
            items, self._pending = self._pending, None
            if not items:
                return
            events = [event for event, _ in items]
            try:
                published = self._publish(events)
            except BaseException:
                self._db.finish(None)
                raise
            if published:
                self._db.finish(self._version)
                self._maybe_compact()
                return
            self._db.finish(None)
            self.conflicts += 1
            self._commit(items)

    def _read(self) -> SqliteRegistry:
        with self._mutex:
            if self._pending is None:
                self._catch_up()
            return self._db

    # -- Registry API -------------------------------------------------------------------------
    def close(self) -> None:
        """Drop the local copy (left in the per-user cache first if this process replayed
        many events, so the next process starts from it)."""
        with self._mutex:
            self._db.close()
            if self.events_read >= SAVE_AFTER_EVENTS and self._pending is None:
                save_to_cache(self._db.path, self._cache)
            self._tmp.cleanup()

    def refresh(self) -> None:
        """Re-check the bucket now (ignoring ``max_staleness``)."""
        with self._mutex:
            self._catch_up(force=True)

    def changed_in_bucket(self) -> bool:
        """One HEAD: whether a commit after the local copy's version exists."""
        from repo_butler.s3 import s3_errors

        key = self._path.partition("/")[2]
        following = f"{key}/_delta_log/{self._version + 1:020d}.json"
        with self._mutex, s3_errors(self._fs, "reading the registry", self.url, self._secrets):
            if self._table is not None and self._objects.head(following) is None:
                self._checked = time.monotonic()
                return False
            return True

    @property
    def version(self) -> int:
        """The table version the local copy has replayed (-1: none)."""
        return self._version

    def clear(self) -> None:
        """Delete every dataset, provenance record and run (one ``clear`` event)."""
        self._write(Event("clear"))

    def define_run(self, name: str, parents: Sequence[str]) -> None:
        """Record a run (no commit if it is already recorded identically)."""
        if self._read().runs().get(name) == tuple(parents):
            return
        self._write(Event("run", run=name, parents=tuple(parents)))

    def insert(
        self,
        record: DatasetRecord,
        *,
        provenance: str | None = None,
        replace: bool = False,
        check: Callable[[], None] | None = None,
    ) -> None:
        """Insert one dataset (``check`` runs each time the insert is applied, also on a
        replay after another writer's commit; failing then, the row is left out)."""
        self._write(Event("insert", record, provenance=provenance, replace=replace), check)

    def remove(self, dataset_type: str, data_id: DataId, run: str) -> DatasetRecord | None:
        """Delete one dataset row (no commit if there is none)."""
        found = self._read().find(dataset_type, data_id, [run])
        if found is None:
            return None
        result: DatasetRecord | None = self._write(Event("remove", found))
        return result


def _one_line(err: BaseException) -> str:
    """delta-rs's error chains (several lines, terminal colours) as one plain line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    parts = [p.strip().lstrip("\u21b3").strip() for p in text.splitlines()]
    return " -> ".join(p for p in parts if p)


def _fetch(fs: Any, keys: list[str]) -> list[bytes]:
    """GET every key concurrently."""
    import asyncio

    from fsspec.asyn import sync

    async def fetch_all() -> list[bytes]:
        return list(await asyncio.gather(*(fs._cat_file(key) for key in keys)))

    result: list[bytes] = sync(fs.loop, fetch_all)
    return result
