"""PostgreSQL registry: a shared database for teams with many concurrent writers.

``registry: postgresql://user@host:port/dbname`` in ``butler.yaml`` (or the mapping form
``{type: postgresql, url: ..., schema: NAME}``) selects it. The password never goes into
``butler.yaml``: libpq reads it from ``PGPASSWORD`` or ``~/.pgpass`` (a URL containing one is
rejected by the configuration check).

Same tables, same rows and the same ``where`` compiler as :class:`SqliteRegistry`, so queries
return the same results: text columns use the ``"C"`` collation (byte order, as SQLite) and
parameters are passed separately (never interpolated). Each write is one transaction (a savepoint
inside :meth:`~PostgresRegistry.batch`, which is one transaction); the unique
constraint on ``(dataset_type, data_id, run)`` decides races between writers, the loser gets
:class:`~repo_butler.errors.DatasetExistsError`. Schema creation is serialised with a
transaction-level advisory lock so several processes can open a new database at once.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from repo_butler.dimensions import DataId, DimensionUniverse
from repo_butler.errors import ConfigError, RegistryError
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

__all__ = ["PostgresRegistry", "check_postgres_url"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_TEXT = 'TEXT COLLATE "C"'
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_LOCK_ID = 0x7262_7265_6769  # advisory lock id for schema changes ("rbregi")


def _pg(sql: str) -> str:
    """SQLite-style ``?`` placeholders to psycopg's ``%s`` (a literal ``%`` is doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def check_postgres_url(url: str, *, source: str = "butler.yaml") -> str:
    """Validate a registry URL: ``postgresql://`` scheme and no password in it.

    Raises
    ------
    ConfigError
        If the scheme is wrong or the URL holds a password.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            f"{source}: the registry URL must start with postgresql:// (got {parts.scheme!r})"
        )
    if parts.password is not None or "password=" in parts.query:
        raise ConfigError(
            f"{source}: the registry URL contains a password; remove it and provide it through "
            "PGPASSWORD or ~/.pgpass instead (butler.yaml is shared and must hold no secrets)"
        )
    return url


def _redacted(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{parts.username + '@' if parts.username else ''}{host}{port}{parts.path}"


class PostgresRegistry(SqlRegistry):
    """A :class:`Registry` in a PostgreSQL database (psycopg 3).

    Parameters
    ----------
    url : str
        ``postgresql://user@host:port/dbname`` (no password).
    universe : DimensionUniverse
        Dimensions; one indexed column per dimension.
    schema : str, optional
        PostgreSQL schema holding the tables (several repositories may share a database).
    connect_timeout : float
        Seconds to wait for the server.
    """

    def __init__(
        self,
        url: str,
        universe: DimensionUniverse,
        *,
        schema: str | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        from repo_butler.extras import require

        psycopg = require("psycopg", "postgres", "the PostgreSQL registry")
        self._psycopg = psycopg
        self.url = check_postgres_url(url)
        self.universe = universe
        self.schema = schema
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigError(f"registry schema {schema!r}: use lower-case letters, digits, '_'")
        self._lock = threading.RLock()
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=int(connect_timeout))
        except psycopg.OperationalError as err:
            raise RegistryError(
                f"cannot connect to the registry database {_redacted(url)}: "
                f"{str(err).strip().splitlines()[0]}; check the server and PGPASSWORD/~/.pgpass"
            ) from None
        self._create_schema()
        rows = self._read("SELECT value FROM meta WHERE key = 'schema_version'")
        self.schema_version = check_version(
            rows[0][0] if rows else None,
            SCHEMA_VERSION,
            what="registry schema",
            source=_redacted(url),
            oldest=1,
        )

    # -- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock:
            try:
                with self._conn.transaction():
                    yield self._conn
            except self._psycopg.errors.UniqueViolation:
                raise
            except self._psycopg.Error as err:
                raise RegistryError(
                    f"registry database {_redacted(self.url)}: {str(err).strip()}"
                ) from err

    def _exec(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        return conn.execute(_pg(sql), list(params))

    def _schema_complete(self) -> bool:
        """Whether every table and dimension column exists (then no DDL, no write privilege)."""
        rows = self._read(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name IN "
            "('meta', 'runs', 'datasets', 'provenance')"
        )
        tables = {table for table, _ in rows}
        columns = {column for table, column in rows if table == "datasets"}
        wanted = {f"d_{dim}" for dim in self.universe.names}
        return len(tables) == 4 and wanted <= columns

    def _create_schema(self) -> None:
        dims = self.universe.names
        if self.schema is not None:
            self._conn.execute(f'SET search_path TO "{self.schema}"')
        if self._schema_complete():
            return
        with self._tx() as conn:
            self._exec(conn, f"SELECT pg_advisory_xact_lock({_LOCK_ID})")
            if self.schema is not None:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        if self.schema is not None:
            self._conn.execute(f'SET search_path TO "{self.schema}"')
        with self._tx() as conn:
            self._exec(conn, f"SELECT pg_advisory_xact_lock({_LOCK_ID})")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            self._exec(
                conn,
                "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                (str(SCHEMA_VERSION),),
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS runs (name {_TEXT} PRIMARY KEY, "
                "parents TEXT NOT NULL, created TEXT NOT NULL)"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS datasets ("
                f"id BIGSERIAL PRIMARY KEY, dataset_type {_TEXT} NOT NULL, run {_TEXT} NOT NULL, "
                f"data_id {_TEXT} NOT NULL, path {_TEXT} NOT NULL, size BIGINT NOT NULL, "
                "checksum TEXT NOT NULL, created TEXT NOT NULL, provenance TEXT, "
                "UNIQUE (dataset_type, data_id, run))"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS provenance (dataset_id BIGINT PRIMARY KEY "
                "REFERENCES datasets(id) ON DELETE CASCADE, record TEXT NOT NULL)"
            )
            have = {
                row[0]
                for row in self._exec(
                    conn,
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'datasets' AND table_schema = current_schema()",
                )
            }
            for dim in dims:
                if f"d_{dim}" not in have:
                    column = dimension_column(dim)
                    kind = "BIGINT" if self.universe[dim].type == "int" else _TEXT
                    conn.execute(f"ALTER TABLE datasets ADD COLUMN {column} {kind}")
                    conn.execute(
                        f'CREATE INDEX IF NOT EXISTS "datasets_d_{dim}" '
                        f"ON datasets (dataset_type, {column}) WHERE {column} IS NOT NULL"
                    )

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Make every write inside the block one transaction (``rb reindex``: all or nothing);
        the writes' own transactions become savepoints."""
        with self._tx():
            yield

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for every write inside the block (their own become savepoints):
        one commit, rolled back whole if the block raises. The connection is held for the
        block: other threads of this process wait for it."""
        with self._tx():
            yield

    def clear(self) -> None:
        """Delete every dataset, provenance record and run (one transaction)."""
        with self._tx() as conn:
            conn.execute("DELETE FROM provenance")
            conn.execute("DELETE FROM datasets")
            conn.execute("DELETE FROM runs")

    def analyze(self) -> None:
        """Refresh the planner statistics of the datasets table."""
        with self._lock:
            self._conn.execute("ANALYZE datasets")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                rows: list[Any] = self._exec(self._conn, sql, params).fetchall()
            except self._psycopg.Error as err:
                raise RegistryError(f"registry query failed: {str(err).strip()}") from err
            return rows

    # -- runs -------------------------------------------------------------------------------
    def define_run(self, name: str, parents: Sequence[str]) -> None:
        """Record a run and its direct parents."""
        created = datetime.now(UTC).isoformat()
        with self._tx() as conn:
            self._exec(
                conn,
                "INSERT INTO runs VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
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
        """Insert one dataset row (and provenance) in one transaction. With ``check``, the
        transaction first takes an advisory lock on the dataset's key, so checks and inserts
        of one dataset by concurrent writers run one after the other."""
        sql, values = insert_row(record)
        try:
            with self._tx() as conn:
                if check is not None:
                    key = f"{record.dataset_type}\x1f{values[2]}\x1f{record.run}"
                    self._exec(conn, "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (key,))
                    check()
                if replace:
                    self._exec(conn, DELETE_DATASET, (record.dataset_type, values[2], record.run))
                new_id = self._exec(conn, sql + " RETURNING id", values).fetchone()[0]
                if provenance is not None:
                    self._exec(conn, "INSERT INTO provenance VALUES (?, ?)", (new_id, provenance))
        except self._psycopg.errors.UniqueViolation as err:
            raise exists_error(record) from err

    def remove(self, dataset_type: str, data_id: DataId, run: str) -> DatasetRecord | None:
        """Delete one dataset row and return it."""
        with self._tx() as conn:
            row = self._exec(
                conn,
                f"{DELETE_DATASET} RETURNING {COLUMNS}",
                (dataset_type, data_id_key(data_id), run),
            ).fetchone()
        return None if row is None else self._record(row)
