"""The SQL registries answer the query shapes of the CLI and make-warp planning with index lookups.

The statements are the ones the registry really runs (captured at the registry's one query method
while the public query methods run), explained on a registry of 32,000 datasets, SQLite
(``EXPLAIN QUERY PLAN``) and PostgreSQL (``EXPLAIN``) alike: none scans the datasets table, and a
shape with an equality on a selective dimension uses that dimension's index rather than a range on
a less selective one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from servers.postgres import PostgresServer

from repo_butler import DataId
from repo_butler.config import RepoConfig, default_config
from repo_butler.registry import DatasetRecord, SqliteRegistry
from repo_butler.registry.sql import SqlRegistry, insert_row

N_VISITS, N_CCDS = 300, 100  # 30,000 calexp-like rows
N_PATCHES = 50  # plus 50 x 40 warp-like rows


def _universe():  # type: ignore[no-untyped-def]
    return RepoConfig.from_mapping(default_config()).universe


def _rows() -> list[DatasetRecord]:
    rows = []
    for v in range(N_VISITS):
        for c in range(N_CCDS):
            did = DataId._trusted({"filter": "HSC-I", "visit": 900000 + v, "ccd": c})
            rows.append(DatasetRecord("calexp", did, "", f"c/{v}/{c}", 1, "x", "t", None))
    for p in range(N_PATCHES):
        for v in range(40):
            did = DataId._trusted(
                {"tract": 0, "patch": f"{p % 10},{p // 10}", "filter": "HSC-I", "visit": 900000 + v}
            )
            rows.append(DatasetRecord("deepCoadd_directWarp", did, "rerun/a", f"w/{p}/{v}", 1,
                                      "x", "t", None))  # fmt: skip
    return rows


def _sqlite(path: Path) -> SqliteRegistry:
    """Rows written straight into the file (as many writer processes would leave them): the
    registry opened afterwards finds them without planner statistics."""
    reg = SqliteRegistry(str(path), _universe())
    reg.define_run("", [])
    reg.define_run("rerun/a", [""])
    reg.close()
    conn = sqlite3.connect(path)
    for record in _rows():
        conn.execute(*insert_row(record))
    conn.commit()
    conn.close()
    return SqliteRegistry(str(path), _universe())


def _postgres(url: str) -> SqlRegistry:
    from repo_butler.registry.postgres import PostgresRegistry, _pg

    reg = PostgresRegistry(url, _universe())
    reg.define_run("", [])
    reg.define_run("rerun/a", [""])
    by_sql: dict[str, list[Any]] = {}
    for record in _rows():
        sql, values = insert_row(record)
        by_sql.setdefault(sql, []).append(values)
    with reg._conn.cursor() as cur:
        for sql, values in by_sql.items():
            cur.executemany(_pg(sql), values)
    # what autovacuum's analyze does on a server shortly after a bulk load
    reg.analyze()
    return reg


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def registry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SqlRegistry]:
    if request.param == "sqlite":
        reg: SqlRegistry = _sqlite(tmp_path_factory.mktemp("plans") / "registry.sqlite3")
        yield reg
        reg.close()
        return
    pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg is not installed")
    server: PostgresServer = request.getfixturevalue("postgres")
    name = server.create_database()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PGPASSWORD", server.password)
        reg = _postgres(server.dsn(name))
        yield reg
        reg.close()
    server.drop_database(name)


def _plans(reg: SqlRegistry, call: Callable[[SqlRegistry], object]) -> list[tuple[str, str]]:
    """Run ``call(reg)``; return each statement it ran on the datasets table with its plan."""
    seen: list[tuple[str, list[Any]]] = []
    read = reg._read

    def capture(sql: str, params: Any = ()) -> list[Any]:
        seen.append((sql, list(params)))
        return read(sql, params)

    reg._read = capture  # type: ignore[method-assign]
    try:
        call(reg)
    finally:
        del reg._read
    out = []
    for sql, params in seen:
        if "datasets" not in sql:
            continue
        if isinstance(reg, SqliteRegistry):
            explain = sqlite3.connect(reg.path)
            plan = "\n".join(r[3] for r in explain.execute("EXPLAIN QUERY PLAN " + sql, params))
            explain.close()
        else:
            from repo_butler.registry.postgres import _pg

            rows = reg._conn.execute("EXPLAIN " + _pg(sql), params).fetchall()
            plan = "\n".join(r[0] for r in rows)
        out.append((sql, plan))
    return out


def _scans(plan: str) -> bool:
    return any(
        line.strip().startswith(("SCAN datasets", "Seq Scan on datasets"))
        or "-> Seq Scan on datasets" in line
        for line in plan.splitlines()
    )


DIMENSIONS = {
    "calexp": ("filter", "visit", "ccd"),
    "deepCoadd_directWarp": ("tract", "patch", "filter", "visit"),
}
SHAPES = {
    "one visit": ("calexp", "visit = 900005", None, "datasets_d_visit"),
    "visit and a CCD range": ("calexp", "visit = 900005 AND ccd IN (10..19)", None,
                              "datasets_d_visit"),
    "visit and a CCD list": ("calexp", "visit = 900005 AND ccd IN (10, 12, 14)", None,
                             "datasets_d_visit"),
    "a visit list": ("calexp", "visit IN (900001, 900002, 900003)", None, "datasets_d_visit"),
    "tract, patch, filter": ("deepCoadd_directWarp", "tract = 0 AND patch = '3,2' AND "
                             "filter = 'HSC-I'", None, "datasets_d_patch"),
    "data ID visit + ccd": ("calexp", None, {"visit": 900007, "ccd": 3}, None),
}  # fmt: skip


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("runs", [("",), ("rerun/a", "")], ids=["root", "rerun+parent"])
def test_query_shapes_are_index_lookups(
    registry: SqlRegistry, shape: str, runs: tuple[str, ...]
) -> None:
    dataset_type, where, data_id, index = SHAPES[shape]
    did = DataId._trusted(data_id) if data_id else None
    dims = DIMENSIONS[dataset_type]
    plans = _plans(
        registry, lambda r: r.query(dataset_type, runs, data_id=did, where=where, dimensions=dims)
    )
    assert plans, "no SELECT captured"
    for sql, plan in plans:
        assert not _scans(plan), (sql, plan)
        if index is not None:
            assert index in plan, (sql, plan)


def test_lookups_and_data_id_queries_are_index_lookups(registry: SqlRegistry) -> None:
    did = DataId._trusted({"filter": "HSC-I", "visit": 900010, "ccd": 4})
    calls = [
        lambda r: r.find("calexp", did, ("",)),
        lambda r: r.find("calexp", did, ("rerun/a", "")),
        lambda r: r.query_data_ids(["visit"], ("",), where="visit = 900005 AND ccd IN (1..3)"),
    ]
    for call in calls:
        for sql, plan in _plans(registry, call):
            assert not _scans(plan), (sql, plan)


def test_results_are_those_of_a_scan(registry: SqlRegistry) -> None:
    """The index plan returns exactly the rows a brute-force filter over all rows does."""
    got = registry.query(
        "calexp", ("",), where="visit = 900005 AND ccd IN (10..19)", dimensions=DIMENSIONS["calexp"]
    )
    every = [r for r in registry.all_records() if r.dataset_type == "calexp"]
    want = [r for r in every if r.data_id["visit"] == 900005 and 10 <= r.data_id["ccd"] <= 19]
    assert sorted(r.path for r in got) == sorted(r.path for r in want)
    assert len(got) == 10


def test_statistics_follow_the_table_as_it_grows(tmp_path: Path) -> None:
    """Opening a registry that has outgrown its statistics refreshes them; a small one has
    none (it does not need them) and a registry opened read-only changes nothing."""
    path = tmp_path / "registry.sqlite3"
    reg = SqliteRegistry(str(path), _universe())
    reg.define_run("", [])
    for c in range(900):
        did = DataId._trusted({"visit": 1, "ccd": c})
        reg.insert(DatasetRecord("calexp", did, "", f"p{c}", 1, "x", "t", None))
    reg.close()
    assert SqliteRegistry(str(path), _universe()).stats_rows() is None  # below 1,000 rows
    _more(path, 900, 3000)
    reg = SqliteRegistry(str(path), _universe())
    assert reg.stats_rows() == 3000
    reg.close()
    _more(path, 3000, 5000)  # < 2x: statistics still describe the table well enough
    assert SqliteRegistry(str(path), _universe()).stats_rows() == 3000
    _more(path, 5000, 6500)  # >= 2x
    before = path.read_bytes()
    assert SqliteRegistry(str(path), _universe(), read_only=True).stats_rows() == 3000
    assert path.read_bytes() == before
    assert SqliteRegistry(str(path), _universe()).stats_rows() == 6500


def _more(path: Path, start: int, stop: int) -> None:
    conn = sqlite3.connect(path)
    for c in range(start, stop):
        did = DataId._trusted({"visit": 2, "ccd": c})
        conn.execute(*insert_row(DatasetRecord("calexp", did, "", f"q{c}", 1, "x", "t", None)))
    conn.commit()
    conn.close()
