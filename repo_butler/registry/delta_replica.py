"""The local SQLite copy a Delta Lake registry is replayed into, and its cache between processes.

Each process queries a private copy (a transaction stays open on it while a commit is prepared,
so it cannot be shared). A new process starts from the per-user cache when there is one
(``$XDG_CACHE_HOME/repo-butler/registries/<hash of the table URL>.sqlite3``, or the directory in
``REPO_BUTLER_REGISTRY_CACHE``; ``off`` disables it) and replays only the events committed
since; a process that replayed many events leaves its copy there when it closes (atomic
replace, so concurrent processes never see a partial file). The copy records the table's
identity and version, so a copy of another or a recreated table is never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from repo_butler.registry.sql import COLUMNS, DELETE_DATASET, dimension_column
from repo_butler.registry.sqlite import SqliteRegistry

__all__ = ["SAVE_AFTER_EVENTS", "Replica", "cache_file", "save_to_cache", "seed_from_cache"]

logger = logging.getLogger(__name__)

#: A process leaves its copy in the cache when it has replayed at least this many events.
SAVE_AFTER_EVENTS = 10_000


class Replica(SqliteRegistry):
    """The private SQLite copy: its writes join the transaction the Delta registry holds open
    while a commit is prepared (each as a savepoint, so a refused insert undoes only itself)."""

    def _connect(self) -> sqlite3.Connection:
        conn = super()._connect()
        conn.execute("PRAGMA cache_size = -262144")  # 256 MiB: bulk replays of 10^6 rows
        return conn

    def begin(self) -> None:
        """Open the transaction a commit is prepared in (writes join it as savepoints, as in
        :meth:`SqliteRegistry.batch`)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._in_batch = True

    def finish(self, version: int | None) -> None:
        """Commit the open transaction recording ``version``, or roll it back (``None``)."""
        with self._lock:
            self._in_batch = False
            if not self._conn.in_transaction:
                return
            if version is None:
                self._conn.execute("ROLLBACK")
                return
            self._set_meta("delta_version", str(version))
            self._conn.execute("COMMIT")

    def apply_insert_columns(self, cols: dict[str, list[Any]]) -> None:
        """Apply committed inserts given as columns of the event table (``dataset_type``,
        ``run``, ``data_id``, ``path``, ``size``, ``checksum``, ``created``,
        ``provenance_path``, ``provenance``), in bulk, inside the open transaction. A row
        replaces one with the same type, data ID and run (the last one wins). SQLite fills the
        dimension columns from the data ID JSON (``json_extract``)."""
        keys = list(zip(cols["dataset_type"], cols["data_id"], cols["run"], strict=True))
        last = {key: i for i, key in enumerate(keys)}  # the last insert of a key wins
        order = sorted(last.values()) if len(last) < len(keys) else range(len(keys))
        names = ("dataset_type", "run", "data_id", "path", "size", "checksum", "created",
                 "provenance_path")  # fmt: skip
        if len(last) == len(keys):
            rows = list(zip(*(cols[name] for name in names), strict=True))
        else:
            rows = [tuple(cols[name][i] for name in names) for i in order]
        prov = [(cols["provenance"][i], *keys[i]) for i in order if cols["provenance"][i]]
        dims = "".join(f", {dimension_column(d)}" for d in self.universe.names)
        extract = "".join(f", json_extract(?3, '$.{d}')" for d in self.universe.names)
        with self._lock:
            conn = self._conn
            conn.executemany(DELETE_DATASET, [keys[i] for i in order])
            conn.executemany(
                f"INSERT INTO datasets ({COLUMNS}{dims}) "
                f"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8{extract})",
                rows,
            )
            conn.executemany(
                "INSERT INTO provenance SELECT id, ? FROM datasets "
                "WHERE dataset_type = ? AND data_id = ? AND run = ?",
                prov,
            )

    def maybe_analyze(self) -> None:
        """Refresh planner statistics if the table has outgrown them (after a large replay)."""
        self._maybe_analyze()

    def _set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def set_table(self, table_id: str) -> None:
        """Record which table the copy replays."""
        with self._lock:
            self._set_meta("delta_table_id", table_id)

    def replayed(self) -> tuple[str | None, int]:
        """The table identity and version this copy has replayed (``None``, -1: none)."""
        with self._lock:
            rows = dict(
                self._conn.execute(
                    "SELECT key, value FROM meta WHERE key IN ('delta_table_id', 'delta_version')"
                ).fetchall()
            )
        return rows.get("delta_table_id"), int(rows.get("delta_version", -1))


def cache_file(url: str) -> Path | None:
    """Where the copy of the table at ``url`` is cached (``None``: caching is off)."""
    setting = os.environ.get("REPO_BUTLER_REGISTRY_CACHE", "")
    if setting.lower() == "off":
        return None
    if setting:
        base = Path(setting)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = Path(xdg) / "repo-butler" / "registries"
    return base / f"{hashlib.sha256(url.encode()).hexdigest()[:24]}.sqlite3"


def seed_from_cache(cache: Path | None, local: str) -> bool:
    """Copy the cached copy to ``local`` (a private file); whether there was a usable one."""
    if cache is None:
        return False
    try:
        shutil.copyfile(cache, local)
        con = sqlite3.connect(f"file:{local}?mode=ro", uri=True)
        try:
            con.execute("SELECT value FROM meta WHERE key = 'delta_version'").fetchone()
        finally:
            con.close()
    except (OSError, sqlite3.DatabaseError) as err:
        if not isinstance(err, FileNotFoundError):
            logger.info("registry cache %s not used: %s", cache, err)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(local)
        return False
    return True


def save_to_cache(local: str, cache: Path | None) -> None:
    """Leave the (closed, consistent) copy ``local`` in the cache; failures are only logged."""
    if cache is None:
        return
    tmp = cache.with_name(f".{cache.name}.{uuid.uuid4().hex[:8]}")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, tmp)
        os.replace(tmp, cache)
    except OSError as err:
        logger.info("registry cache %s not written: %s", cache, err)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
