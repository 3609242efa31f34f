"""Queries shared by the SQL registries (SQLite, PostgreSQL).

Both keep the same ``runs`` table, ``datasets`` table (one row per dataset, the data ID as
canonical JSON plus one indexed column per dimension) and ``provenance`` table, and write SQL with
``?`` placeholders (the PostgreSQL registry translates them). Subclasses provide the connection
handling: :meth:`_read` runs a query and returns all rows, and they implement the writes.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from typing import Any

from repo_butler.dimensions import DataId, DimensionUniverse
from repo_butler.errors import OVERWRITE_REMEDY, DatasetExistsError
from repo_butler.refs import data_id_key
from repo_butler.registry.base import DatasetRecord, Registry

__all__ = [
    "COLUMNS",
    "DELETE_DATASET",
    "SqlRegistry",
    "dimension_column",
    "exists_error",
    "insert_row",
]

#: Columns of a :class:`DatasetRecord`, in order.
COLUMNS = "dataset_type, run, data_id, path, size, checksum, created, provenance"


def dimension_column(dim: str) -> str:
    """Quoted name of the indexed column holding dimension ``dim``."""
    return f'"d_{dim}"'


def _marks(n: int) -> str:
    return ", ".join("?" * n)


DELETE_DATASET = "DELETE FROM datasets WHERE dataset_type = ? AND data_id = ? AND run = ?"
"""Delete one dataset row: parameters ``(dataset_type, data_id key, run)``."""


@cache
def _insert_sql(dims: tuple[str, ...]) -> str:
    columns = COLUMNS + "".join(f", {dimension_column(d)}" for d in dims)
    return f"INSERT INTO datasets ({columns}) VALUES ({_marks(8 + len(dims))})"


def insert_row(record: DatasetRecord) -> tuple[str, tuple[Any, ...]]:
    """The ``INSERT`` statement (``?`` placeholders) and values of one dataset row: the
    :data:`COLUMNS` then one column per dimension of its data ID."""
    values = (
        record.dataset_type,
        record.run,
        data_id_key(record.data_id),
        record.path,
        record.size,
        record.checksum,
        record.created,
        record.provenance,
        *record.data_id.values(),
    )
    return _insert_sql(tuple(record.data_id)), values


def exists_error(record: DatasetRecord) -> DatasetExistsError:
    """The error for a dataset row that already exists."""
    return DatasetExistsError(
        f"{record.dataset_type} {record.data_id} already exists in run {record.run or '(root)'!r}",
        remedy=OVERWRITE_REMEDY,
    )


class SqlRegistry(Registry):
    """Read side of a :class:`Registry` over the shared SQL schema."""

    universe: DimensionUniverse

    @abstractmethod
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one query (``?`` placeholders) and return all rows."""

    def _record(self, row: Sequence[Any]) -> DatasetRecord:
        raw = json.loads(row[2])
        data_id = DataId._trusted({k: raw[k] for k in self.universe.order(raw)}, row[2])
        return DatasetRecord(row[0], data_id, row[1], row[3], int(row[4]), row[5], row[6], row[7])

    def runs(self) -> dict[str, tuple[str, ...]]:
        """All runs and their direct parents."""
        rows = self._read("SELECT name, parents FROM runs")
        out = {name: tuple(json.loads(parents)) for name, parents in rows}
        out.setdefault("", ())
        return out

    def find(self, dataset_type: str, data_id: DataId, runs: Sequence[str]) -> DatasetRecord | None:
        """The dataset with exactly this data ID in the first of ``runs`` having it."""
        key = data_id_key(data_id)
        if len(runs) == 1:  # the common case: an equality the planner uses directly
            rows = self._read(
                f"SELECT {COLUMNS} FROM datasets WHERE dataset_type = ? AND data_id = ? "
                "AND run = ?",
                (dataset_type, key, runs[0]),
            )
        else:
            rows = self._read(
                f"SELECT {COLUMNS} FROM datasets WHERE dataset_type = ? AND data_id = ? "
                f"AND run IN ({_marks(len(runs))})",
                (dataset_type, key, *runs),
            )
        if not rows:
            return None
        row = rows[0] if len(rows) == 1 else min(rows, key=lambda r: runs.index(r[1]))
        if list(data_id) != self.universe.order(data_id):
            return self._record(row)
        # the row's data ID is this one (same key): no need to decode it
        return DatasetRecord(row[0], data_id, row[1], row[3], int(row[4]), row[5], row[6], row[7])

    def _constraints(
        self,
        runs: Sequence[str],
        data_id: DataId | None,
        where: str | None,
        bind: Mapping[str, Any] | None,
        allowed: Sequence[str] | None,
    ) -> tuple[list[str], list[Any], set[str]]:
        clauses = [f"run IN ({_marks(len(runs))})"]
        params: list[Any] = list(runs)
        used: set[str] = set()
        for dim, value in (data_id or {}).items():
            clauses.append(f"{dimension_column(dim)} = ?")
            params.append(value)
            used.add(dim)
        if where:
            from repo_butler.query import compile_where

            sql, where_params, dims = compile_where(
                where, self.universe, dimension_column, allowed=allowed, bind=bind
            )
            clauses.append(sql)
            params.extend(where_params)
            used |= dims
        return clauses, params, used

    def query(
        self,
        dataset_type: str,
        runs: Sequence[str],
        *,
        data_id: DataId | None = None,
        where: str | None = None,
        bind: Mapping[str, Any] | None = None,
        dimensions: Sequence[str] = (),
    ) -> list[DatasetRecord]:
        """Datasets of one type in ``runs`` matching ``data_id`` and ``where``."""
        clauses, params, _ = self._constraints(runs, data_id, where, bind, dimensions)
        sql = f"SELECT {COLUMNS} FROM datasets WHERE dataset_type = ? AND " + " AND ".join(clauses)
        return [self._record(row) for row in self._read(sql, [dataset_type, *params])]

    def find_checksums(
        self, dataset_type: str, run: str, checksums: Sequence[str]
    ) -> list[DatasetRecord]:
        """Datasets of one type in ``run`` with one of ``checksums`` (500 per query)."""
        unique = sorted(set(checksums))
        out: list[DatasetRecord] = []
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            sql = (
                f"SELECT {COLUMNS} FROM datasets WHERE dataset_type = ? AND run = ? "
                f"AND checksum IN ({_marks(len(part))})"
            )
            out += [self._record(row) for row in self._read(sql, [dataset_type, run, *part])]
        return out

    def query_data_ids(
        self,
        dimensions: Sequence[str],
        runs: Sequence[str],
        *,
        dataset_types: Sequence[str] | None = None,
        data_id: DataId | None = None,
        where: str | None = None,
        bind: Mapping[str, Any] | None = None,
    ) -> list[DataId]:
        """Distinct combinations of ``dimensions`` among datasets in ``runs``."""
        clauses, params, used = self._constraints(runs, data_id, where, bind, None)
        for dim in {*dimensions, *used}:
            clauses.append(f"{dimension_column(dim)} IS NOT NULL")
        if dataset_types is not None:
            if not dataset_types:
                return []
            clauses.append(f"dataset_type IN ({_marks(len(dataset_types))})")
            params.extend(dataset_types)
        cols = ", ".join(dimension_column(d) for d in dimensions)
        rows = self._read(
            f"SELECT DISTINCT {cols} FROM datasets WHERE " + " AND ".join(clauses), params
        )
        out = [DataId._trusted(dict(zip(dimensions, row, strict=True))) for row in rows]
        out.sort(key=DataId.sort_key)
        return out

    def get_provenance(self, dataset_type: str, data_id: DataId, run: str) -> str | None:
        """Provenance JSON text of one dataset."""
        rows = self._read(
            "SELECT p.record FROM provenance p JOIN datasets d ON p.dataset_id = d.id "
            "WHERE d.dataset_type = ? AND d.data_id = ? AND d.run = ?",
            (dataset_type, data_id_key(data_id), run),
        )
        return rows[0][0] if rows else None

    def all_records(self) -> Iterator[DatasetRecord]:
        """Every dataset row, ordered by run and path."""
        for row in self._read(f"SELECT {COLUMNS} FROM datasets ORDER BY run, path"):
            yield self._record(row)
