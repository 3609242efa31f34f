"""Registry of an S3 repository: one SQLite object in the bucket, updated by compare-and-swap.

Where it lives: ``<root>/registry.sqlite3`` in the bucket, beside ``butler.yaml``. Every machine
reads the repository by downloading that object into a private temporary directory and querying
the local copy. Before each read a HEAD compares the object's ETag with the copy's (skipped for
``max_staleness`` seconds after the last check) and the copy is re-downloaded only when another
writer changed it. Reading never writes, so read-only credentials are enough.

Writers never overwrite each other's records: a write is applied to the local copy and uploaded
with ``If-Match: <ETag of the copy>`` (``If-None-Match: *`` for the first upload). When another
writer uploaded in between, the server answers 412; the writer then downloads the new registry,
re-applies its change (which may now raise ``DatasetExistsError`` if the other writer stored the
same dataset) and tries again, with jittered backoff, until ``write_timeout``. A
:meth:`~ObjectStoreRegistry.batch` applies many writes and uploads once (replayed as a whole on
conflict). There is no lock to go stale: a writer that crashes simply never uploads.

A crash can leave dataset files written before their registry upload; ``rb reindex`` rebuilds the
registry from the bucket (templates + provenance sidecars). It can never leave a partial registry,
because an object becomes visible only when its upload is complete.

Cost per operation with no contention: a read is one HEAD (plus one GET when the registry
changed); a write is one PUT of the whole registry file, so very large or very busy repositories
should use the PostgreSQL registry instead.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from repo_butler.config import CONFIG_FILENAME
from repo_butler.dimensions import DataId, DimensionUniverse
from repo_butler.errors import ConcurrentWriteError, RegistryError
from repo_butler.leftovers import registry_cache_dir
from repo_butler.registry.base import DatasetRecord
from repo_butler.registry.local_copy import LocalCopyReads
from repo_butler.registry.sqlite import SqliteRegistry
from repo_butler.s3 import ConditionFailed, S3Objects, s3_errors

__all__ = ["ObjectStoreRegistry", "refuse_lost_bucket_registry"]

logger = logging.getLogger(__name__)

Op = Callable[[SqliteRegistry], Any]


class ObjectStoreRegistry(LocalCopyReads):
    """A :class:`Registry` kept as one SQLite object in an S3 bucket.

    Parameters
    ----------
    fs : s3fs.S3FileSystem
        Connected filesystem.
    path : str
        ``bucket/key`` of the registry object.
    universe : DimensionUniverse
        Dimensions of the repository.
    writeable : bool
        Read-only registries never upload (read permission suffices).
    max_staleness : float
        Seconds a read may trust the local copy without a HEAD (0: check before every read).
    write_timeout : float
        Seconds a write keeps retrying after conflicts with other writers.
    secrets : list of str
        Secret values to remove from error messages.
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
        secrets: list[str] | None = None,
    ) -> None:
        bucket, _, key = path.partition("/")
        self.url = f"s3://{path}"
        self.universe = universe
        self.writeable = writeable
        self.max_staleness = float(max_staleness)
        self.write_timeout = float(write_timeout)
        self._fs = fs
        self._key = key
        self._secrets = list(secrets or [])
        self._objects = S3Objects(fs, bucket)
        self._mutex = threading.RLock()
        self._tmp = registry_cache_dir()  # named after the pid: stale ones are swept
        self._local = str(Path(self._tmp.name) / "registry.sqlite3")
        self._db: SqliteRegistry | None = None
        self._etag: str | None = None
        self._checked = float("-inf")
        self._stale = True
        self._batch: list[Op] | None = None
        self.downloads = 0
        self.uploads = 0
        self.conflicts = 0
        with self._mutex:
            self._sync()
            if self._etag is None:
                self._refuse_lost()
                if writeable:
                    self._publish_empty()

    def _refuse_lost(self) -> None:
        """No registry object: fine for a new repository (only ``butler.yaml``), an error if
        the repository holds anything else (see :func:`refuse_lost_bucket_registry`). The first
        writer of a new repository publishes the empty registry at once
        (:meth:`_publish_empty`), so no data is ever written before it."""
        refuse_lost_bucket_registry(self._fs, self.url, self._secrets)

    def _publish_empty(self) -> None:
        """Upload the empty registry of a new repository (unless another writer did)."""
        try:
            self._upload()
        except ConditionFailed:
            self._stale = True  # another writer published it first

    # -- synchronisation ---------------------------------------------------------------------
    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        with s3_errors(self._fs, action, self.url, self._secrets):
            yield

    def _sync(self, *, force: bool = False) -> SqliteRegistry:
        """Make the local copy match the bucket (HEAD; GET only when the ETag changed)."""
        now = time.monotonic()
        db = self._db
        fresh = db is not None and not self._stale
        if fresh and not force and now - self._checked < self.max_staleness:
            assert db is not None
            return db
        with self._errors("reading the registry"):
            if fresh and self._etag is not None:
                head = self._objects.head(self._key)
                if head is not None and head["ETag"] == self._etag:
                    self._checked = now
                    assert db is not None
                    return db
            elif fresh and self._etag is None and self._objects.head(self._key) is None:
                self._checked = now  # still no registry in the bucket
                assert db is not None
                return db
            body, etag = self._objects.get(self._key)
        if self._db is not None:
            self._db.close()
            self._db = None
        if body is None and self._etag is not None:
            raise RegistryError(
                f"the registry {self.url} was deleted while this process used it; rebuild it "
                "from the repository's files with `rb reindex` (nothing was changed)"
            )
        if body is None:
            with suppress(FileNotFoundError):
                os.unlink(self._local)
        elif not body:  # we never upload an empty file: it was truncated or replaced
            raise RegistryError(
                f"the registry {self.url} is empty (0 bytes); rebuild it from the repository's "
                "files with `rb reindex` (nothing was changed)"
            )
        else:
            Path(self._local).write_bytes(body)
            self.downloads += 1
        self._etag = etag
        self._stale = False
        self._checked = now
        self._db = SqliteRegistry(self._local, self.universe, journal_mode="DELETE")
        return self._db

    def _upload(self) -> None:
        """Upload the local copy if nobody else uploaded since it was downloaded.

        Raises
        ------
        ConditionFailed
            If another writer's upload came first (the local copy is then marked stale).
        """
        data = Path(self._local).read_bytes()
        try:
            with self._errors("uploading the registry"):
                if self._etag is None:
                    etag = self._objects.put(self._key, data, if_none_match="*")
                else:
                    etag = self._objects.put(self._key, data, if_match=self._etag)
        except BaseException:
            self._stale = True
            raise
        self._etag = etag
        self._checked = time.monotonic()
        self.uploads += 1

    def _commit(self, ops: list[Op]) -> list[Any]:
        """Apply ``ops`` to an up-to-date copy and upload it; on conflict re-read and replay."""
        deadline = time.monotonic() + self.write_timeout
        delay = 0.02
        while True:
            db = self._sync() if self._stale else self._db
            if db is None:
                db = self._sync()
            try:
                results = [op(db) for op in ops]
            except BaseException:
                self._stale = True  # earlier ops of the list are applied locally only
                raise
            try:
                self._upload()
                return results
            except ConditionFailed:
                self.conflicts += 1
                if time.monotonic() > deadline:
                    raise RegistryError(
                        f"the registry of {self.url} kept changing under this writer for "
                        f"{self.write_timeout:.0f} s ({self.conflicts} conflicts); too many "
                        "concurrent writers for an object-store registry: use a PostgreSQL "
                        "registry (registry: postgresql://...)"
                    ) from None
                logger.debug("registry %s changed by another writer; replaying", self.url)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group writes: they are applied locally at once and uploaded together at the end;
        if the block raises, nothing of it is uploaded."""
        self._check_writeable()
        with self._mutex:
            if self._batch is not None:
                yield
                return
            self._batch = []
            try:
                yield
            except BaseException:  # all or nothing: the local copy holds the batch's writes
                self._batch = None
                self._stale = True  # so it is read again from the bucket, which never saw them
                raise
            ops, self._batch = self._batch, None
            if ops:
                self._finish(ops)

    def _finish(self, ops: list[Op]) -> None:
        """Upload a batch applied to the local copy; replay it on a fresh copy after a conflict."""
        try:
            self._upload()
            return
        except ConditionFailed:
            self.conflicts += 1
        self._commit(ops)

    def _check_writeable(self) -> None:
        if not self.writeable:
            raise RegistryError(f"the registry of {self.url} was opened read-only")

    def _write(self, op: Op) -> Any:
        self._check_writeable()
        with self._mutex:
            if self._batch is not None:
                db = self._db if self._db is not None and not self._stale else self._sync()
                result = op(db)
                self._batch.append(op)
                return result
            return self._commit([op])[0]

    def _read(self) -> SqliteRegistry:
        with self._mutex:
            if self._batch is not None and self._db is not None:
                return self._db
            return self._sync()

    # -- Registry API ----------------------------------------------------------------------
    def close(self) -> None:
        """Drop the local copy."""
        with self._mutex:
            if self._db is not None:
                self._db.close()
                self._db = None
            self._tmp.cleanup()

    def refresh(self) -> None:
        """Re-check the bucket now (ignoring ``max_staleness``)."""
        with self._mutex:
            self._sync(force=True)

    def changed_in_bucket(self) -> bool:
        """One HEAD: whether the registry object differs from the local copy."""
        with self._mutex, self._errors("reading the registry"):
            head = self._objects.head(self._key)
            current = None if head is None else head["ETag"]
            if current == self._etag and not self._stale:
                self._checked = time.monotonic()
                return False
            return True

    def clear(self) -> None:
        """Delete every dataset, provenance record and run."""
        self._write(lambda db: db.clear())

    def define_run(self, name: str, parents: Sequence[str]) -> None:
        """Record a run (no upload if it is already recorded identically)."""
        if self._read().runs().get(name) == tuple(parents):
            return
        self._write(lambda db: db.define_run(name, parents))

    def insert(
        self,
        record: DatasetRecord,
        *,
        provenance: str | None = None,
        replace: bool = False,
        check: Callable[[], None] | None = None,
    ) -> None:
        """Insert one dataset. ``check`` runs each time the insert is applied to a copy of the
        registry, also when a batch is replayed after another writer's upload; if it fails
        on a replay the row is left out (the file's other writer registers its own)."""
        if check is None:
            self._write(lambda db: db.insert(record, provenance=provenance, replace=replace))
            return

        def op(db: SqliteRegistry) -> ConcurrentWriteError | None:
            try:
                db.insert(record, provenance=provenance, replace=replace, check=check)
            except ConcurrentWriteError as err:
                return err
            return None

        failed = self._write(op)
        if failed is not None:
            raise failed

    def remove(self, dataset_type: str, data_id: DataId, run: str) -> DatasetRecord | None:
        """Delete one dataset row."""
        result: DatasetRecord | None = self._write(lambda db: db.remove(dataset_type, data_id, run))
        return result


def refuse_lost_bucket_registry(fs: Any, url: str, secrets: list[str]) -> None:
    """Refuse to start an empty registry at ``url`` (``s3://bucket/prefix/name``) when the
    repository beside it holds anything but ``butler.yaml``: the registry was deleted, and an
    empty one would make the repository look empty.

    Raises
    ------
    RegistryError
        Pointing to ``rb reindex``, which rebuilds the registry from the files.
    """
    bucket, _, key = url.removeprefix("s3://").partition("/")
    prefix, _, base = key.rstrip("/").rpartition("/")
    directory = f"{bucket}/{prefix}" if prefix else bucket
    with s3_errors(fs, "listing the repository", url, secrets):
        try:
            names = [n.rsplit("/", 1)[-1] for n in fs.ls(directory, refresh=True)]
        except FileNotFoundError:  # nothing under the prefix yet
            names = []
    others = sorted(n for n in names if not n.startswith((CONFIG_FILENAME, base, ".")))
    if others:
        root = f"s3://{directory}"
        raise RegistryError(
            f"the registry {url} is missing but the repository holds files "
            f"({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}); rebuild it "
            f"from them with `rb reindex {root}` (nothing was changed)"
        )
