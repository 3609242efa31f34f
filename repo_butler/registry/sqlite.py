"""SQLite registry: one file inside the repository, WAL mode, safe with several writer processes.

Concurrency: every write is one ``BEGIN IMMEDIATE`` transaction (the write lock is taken up front,
so two writers never deadlock upgrading a read lock) and the connection's busy timeout makes a
writer wait for the lock instead of failing with "database is locked". WAL lets readers proceed
while a writer commits. :meth:`SqliteRegistry.batch` makes many writes one transaction (a
savepoint each): one commit, all or nothing. ``synchronous=NORMAL`` keeps commits cheap: in WAL
mode a power loss can drop the last transactions but never corrupts the database, and
``rb reindex`` can rebuild it.

For remote roots this class runs on a local cache copy (``journal_mode=DELETE``): S3 repositories
wrap it in :class:`~repo_butler.registry.s3.ObjectStoreRegistry` (compare-and-swap
uploads, safe with several writers); other fsspec roots use
:class:`~repo_butler.registry.cached.CachedSqliteRegistry`, which drives this class's
``refresh``/``after_write`` hooks (last upload wins).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from repo_butler.dimensions import DataId, DimensionUniverse
from repo_butler.errors import RegistryError
from repo_butler.formats import check_version
from repo_butler.refs import data_id_key
from repo_butler.registry.base import DatasetRecord
from repo_butler.registry.sql import (
    COLUMNS,
    DELETE_DATASET,
    SqlRegistry,
    dimension_column,
    exists_error,
    insert_row,
)

__all__ = ["SCHEMA_VERSION", "SqliteRegistry"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

#: Planner statistics are refreshed when the datasets table has grown to twice the rows they
#: describe (or has this many rows and none), checked at open and every ``_CHECK_EVERY`` inserts.
_ANALYZE_MIN_ROWS = 1000
_CHECK_EVERY = 1024


def _quiet_wal_database(path: str) -> bool:
    """Whether ``path`` is a WAL-mode SQLite database that no connection has open (no ``-wal``
    file beside it): header bytes 18-19 are 2 in WAL mode."""
    import os

    try:
        with open(path, "rb") as fh:
            header = fh.read(20)
    except OSError:
        return False
    return header[18:20] == b"\x02\x02" and not os.path.exists(path + "-wal")


class SqliteRegistry(SqlRegistry):
    """A :class:`Registry` in one SQLite file.

    Parameters
    ----------
    path : str
        Local database file (created if missing).
    universe : DimensionUniverse
        Dimensions; one indexed column per dimension is kept for queries.
    busy_timeout : float
        Seconds to wait for another writer's lock.
    journal_mode : {"WAL", "DELETE"}
        WAL for a database that stays on local disk; DELETE for a cache copy that is uploaded.
    after_write : callable, optional
        Called after every committed write transaction (used to upload a cache copy).
    refresh : callable, optional
        Called before every access; returns the bytes of a newer copy of the database (which
        replaces the local file before the connection is reopened) or ``None`` if unchanged.
    read_only : bool
        Open the file read-only (SQLite ``mode=ro``): nothing in it changes, not even the
        journal mode, and no schema is created, so a repository on read-only storage opens and
        a read-only Butler leaves the file byte-identical.
    leave_no_files : bool
        With ``read_only``: create nothing beside the file either (a parent repository's
        registry). A WAL database with no ``-wal`` file (no writer has it open) is read as
        immutable, since SQLite would otherwise create ``-wal`` and ``-shm`` files for the
        reader; with a writer active those files exist already and the reader uses them.
    """

    def __init__(
        self,
        path: str,
        universe: DimensionUniverse,
        *,
        busy_timeout: float = 60.0,
        journal_mode: str = "WAL",
        after_write: Callable[[], None] | None = None,
        refresh: Callable[[], bytes | None] | None = None,
        read_only: bool = False,
        leave_no_files: bool = False,
    ) -> None:
        self.path = path
        self._read_only = read_only
        self._leave_no_files = leave_no_files
        self.universe = universe
        self._after_write = after_write
        self._refresh = refresh
        self._busy_timeout = busy_timeout
        self._journal_mode = journal_mode
        self._lock = threading.RLock()
        self._inserted = 0
        self._conn = self._connect()
        self._guard(self._check_schema if read_only else self._create_schema)
        if not read_only:
            self._guard(self._maybe_analyze)

    def _guard(self, func: Callable[[], None]) -> None:
        try:
            func()
        except sqlite3.DatabaseError as err:
            raise RegistryError(
                f"cannot open the registry {self.path!r}: {err}; if it is corrupt or lost, "
                "rebuild it from storage with `rb reindex REPO`"
            ) from err

    def _connect(self) -> sqlite3.Connection:
        timeout = self._busy_timeout
        try:
            if self._read_only:
                return self._connect_read_only()
            conn = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.upper() != self._journal_mode:
                conn.execute(f"PRAGMA journal_mode = {self._journal_mode}")
            # A cache copy is made durable by its upload, not by fsync.
            sync = "NORMAL" if self._journal_mode == "WAL" else "OFF"
            conn.execute(f"PRAGMA synchronous = {sync}")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as err:
            raise RegistryError(
                f"cannot open the registry {self.path!r}: {err}; if it is corrupt or lost, "
                "rebuild it from storage with `rb reindex REPO`"
            ) from err
        return conn

    def _connect_read_only(self) -> sqlite3.Connection:
        import os
        from urllib.parse import quote

        if not os.path.exists(self.path) or os.path.getsize(self.path) == 0:
            raise RegistryError(
                f"no registry at {self.path!r}; open the repository writeable once to create it, "
                "or rebuild it from storage with `rb reindex REPO`"
            )
        uri = f"file:{quote(os.path.abspath(self.path))}?mode=ro"
        attempts: tuple[str, ...] = ("", "&immutable=1")
        if self._leave_no_files and _quiet_wal_database(self.path):
            attempts = ("&immutable=1",)
        for flags in attempts:
            conn = sqlite3.connect(
                uri + flags,
                uri=True,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.OperationalError as err:
                # a WAL database on read-only storage: SQLite cannot create its -shm index;
                # immutable=1 reads the file as it is (nobody can write it there either)
                conn.close()
                if flags or ("readonly" not in str(err) and "unable to open" not in str(err)):
                    raise
                logger.info("%s is on read-only storage; reading it as immutable", self.path)
        raise AssertionError("unreachable")

    def _check_schema(self) -> None:
        """Read-only open: check the schema version and the dimension columns, change nothing."""
        found = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if found is None:
            raise sqlite3.DatabaseError("no schema_version in table meta")
        self.schema_version = check_version(
            found[0], SCHEMA_VERSION, what="registry schema", source=self.path, oldest=1
        )
        have = {row[1] for row in self._conn.execute("PRAGMA table_info(datasets)")}
        missing = [d for d in self.universe.names if f"d_{d}" not in have]
        if missing:
            raise RegistryError(
                f"the registry {self.path!r} has no column for dimension(s) {missing} (declared "
                "after it was made); open the repository writeable once to add them"
            )

    def _sync(self) -> None:
        """Swap in a newer copy of the database if the ``refresh`` hook provides one (never
        inside a :meth:`batch`, whose transaction is on the current copy)."""
        if self._refresh is None or self._in_batch:
            return
        newer = self._refresh()
        if newer is None:
            return
        self._conn.close()
        with open(self.path, "wb") as fh:
            fh.write(newer)
        self._conn = self._connect()

    # -- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; inside :meth:`batch` a savepoint of the batch's transaction
        (a failed write is undone alone, the batch goes on unless its error propagates)."""
        with self._lock:
            conn = self._conn
            if self._in_batch:
                conn.execute("SAVEPOINT rb_write")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK TO rb_write")
                    conn.execute("RELEASE rb_write")
                    raise
                conn.execute("RELEASE rb_write")
                return
            self._sync()
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            if self._after_write is not None:
                self._after_write()

    _in_batch: bool = False

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Make every write inside the block one transaction: committed (and, for a cache
        copy, uploaded) once at the end, rolled back whole if the block raises.

        Writes inside it run as savepoints (no ``BEGIN``/``COMMIT`` each), so a put of a small
        dataset costs one ``INSERT`` instead of a transaction. The write lock is taken at the
        start (``BEGIN IMMEDIATE``) and held until the end: other writer processes wait for it
        (up to the busy timeout), other threads of this process wait for the connection, so
        keep slow work (writing files) outside the block where possible. Nested batches join
        the outer one.
        """
        with self._lock:
            if self._in_batch:
                yield
                return
            with self._write():
                self._in_batch = True
                try:
                    yield
                finally:
                    self._in_batch = False

    def _create_schema(self) -> None:
        dims = self.universe.names
        with self._write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            found = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            self.schema_version = check_version(
                found[0], SCHEMA_VERSION, what="registry schema", source=self.path, oldest=1
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS runs (name TEXT PRIMARY KEY, parents TEXT NOT NULL, "
                "created TEXT NOT NULL)"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS datasets ("
                "id INTEGER PRIMARY KEY, dataset_type TEXT NOT NULL, run TEXT NOT NULL, "
                "data_id TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, "
                "checksum TEXT NOT NULL, created TEXT NOT NULL, provenance TEXT, "
                "UNIQUE (dataset_type, data_id, run))"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS provenance (dataset_id INTEGER PRIMARY KEY "
                "REFERENCES datasets(id) ON DELETE CASCADE, record TEXT NOT NULL)"
            )
            have = {row[1] for row in conn.execute("PRAGMA table_info(datasets)")}
            for dim in dims:
                if f"d_{dim}" not in have:
                    column = dimension_column(dim)
                    kind = "INTEGER" if self.universe[dim].type == "int" else "TEXT"
                    conn.execute(f"ALTER TABLE datasets ADD COLUMN {column} {kind}")
                    conn.execute(
                        f'CREATE INDEX IF NOT EXISTS "datasets_d_{dim}" '
                        f"ON datasets (dataset_type, {column}) WHERE {column} IS NOT NULL"
                    )

    def clear(self) -> None:
        """Delete every dataset, provenance record and run (one transaction)."""
        with self._write() as conn:
            conn.execute("DELETE FROM provenance")
            conn.execute("DELETE FROM datasets")
            conn.execute("DELETE FROM runs")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            self._sync()
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as err:
                raise RegistryError(f"registry query failed: {err}") from err

    # -- runs -------------------------------------------------------------------------------
    def define_run(self, name: str, parents: Sequence[str]) -> None:
        """Record a run and its direct parents."""
        created = datetime.now(UTC).isoformat()
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO runs VALUES (?, ?, ?)",
                (name, json.dumps(list(parents)), created),
            )

    # -- datasets ---------------------------------------------------------------------------
    def insert(
        self,
        record: DatasetRecord,
        *,
        provenance: str | None = None,
        replace: bool = False,
        check: Callable[[], None] | None = None,
    ) -> None:
        """Insert one dataset row (and provenance) in one transaction (``check`` runs inside
        it, under SQLite's write lock)."""
        sql, values = insert_row(record)
        try:
            if not replace and provenance is None and check is None:
                self._write_one(sql, values)  # one statement: its own transaction
            else:
                self._insert_many(record, sql, values, provenance, replace, check)
        except sqlite3.IntegrityError as err:
            raise exists_error(record) from err
        except sqlite3.OperationalError as err:
            raise RegistryError(
                f"cannot record {record.dataset_type} {record.data_id}: {err}"
            ) from err
        self._inserted += 1
        if self._inserted % _CHECK_EVERY == 0:
            self._maybe_analyze()

    def _write_one(self, sql: str, values: Sequence[Any]) -> None:
        """Run one write statement in autocommit mode: an implicit single-statement transaction
        that asks for the write lock up front (so it cannot deadlock) and waits when busy."""
        with self._lock:
            self._sync()
            self._conn.execute(sql, values)
            if self._after_write is not None and not self._in_batch:
                self._after_write()

    def _insert_many(
        self,
        record: DatasetRecord,
        sql: str,
        values: Sequence[Any],
        provenance: str | None,
        replace: bool,
        check: Callable[[], None] | None,
    ) -> None:
        with self._lock:  # held by a batch for its whole block
            if self._in_batch and not replace and provenance is None:
                # one statement: a failing INSERT undoes only itself (SQLite's statement
                # atomicity), so inside a batch it needs no savepoint of its own
                if check is not None:
                    check()
                self._conn.execute(sql, values)
                return
        with self._write() as conn:
            if check is not None:
                check()
            if replace:
                conn.execute(DELETE_DATASET, (record.dataset_type, values[2], record.run))
            cur = conn.execute(sql, values)
            if provenance is not None:
                conn.execute("INSERT INTO provenance VALUES (?, ?)", (cur.lastrowid, provenance))

    def stats_rows(self) -> int | None:
        """Rows of the datasets table that the planner statistics describe (None: no stats)."""
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT stat FROM sqlite_stat1 WHERE tbl = 'datasets' "
                    "AND idx = 'sqlite_autoindex_datasets_1'"
                ).fetchone()
            except sqlite3.OperationalError:  # no sqlite_stat1 yet: never analysed
                return None
        return int(row[0].split()[0]) if row else None

    def _maybe_analyze(self) -> None:
        """:meth:`analyze` when the table has outgrown its statistics (two cheap lookups)."""
        with self._lock:
            top = self._conn.execute("SELECT max(id) FROM datasets").fetchone()[0] or 0
        if top < _ANALYZE_MIN_ROWS:
            return
        described = self.stats_rows()
        if described is None or top >= 2 * described:
            self.analyze()

    def analyze(self) -> None:
        """Refresh the query planner's statistics (a full ``ANALYZE``: about 0.2 s per 10^5
        datasets, run each time the table doubles, so its cost per insert stays constant).

        Without statistics SQLite picks a dimension index that matches a range
        (``ccd IN (5..14)``) over a far more selective equality (``visit = 903988``); sampled
        statistics (``analysis_limit``) misjudge the rows per dataset type and do the same.
        """
        with self._lock:
            try:
                self._conn.execute("ANALYZE")
            except sqlite3.OperationalError as err:  # e.g. locked by a writer: try later
                logger.debug("ANALYZE skipped: %s", err)

    def remove(self, dataset_type: str, data_id: DataId, run: str) -> DatasetRecord | None:
        """Delete one dataset row and return it."""
        key = data_id_key(data_id)
        with self._write() as conn:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM datasets "
                "WHERE dataset_type = ? AND data_id = ? AND run = ?",
                (dataset_type, key, run),
            ).fetchone()
            if row is None:
                return None
            conn.execute(DELETE_DATASET, (dataset_type, key, run))
        return self._record(row)
