"""One registry test suite, run unchanged against SQLite, PostgreSQL, the S3 (object) registry,
the Delta Lake bucket registry and the cached SQLite registry of other fsspec stores (memory://).

Every query is checked against a Python predicate over the inserted rows (independent truth) and
against a plain local SQLite registry holding the same rows (same queries, same results).
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from repo_butler import DataId
from repo_butler.config import RepoConfig, default_config
from repo_butler.errors import DatasetExistsError, QuerySyntaxError
from repo_butler.registry import DatasetRecord, Registry, SqliteRegistry

UNIVERSE = RepoConfig.from_mapping(default_config()).universe
BACKENDS = ["sqlite", "postgres", "s3", "cached", "delta"]


def _open(kind: str, request: pytest.FixtureRequest, tmp_path: Path, **kwargs: Any) -> Registry:
    if kind == "sqlite":
        return SqliteRegistry(str(tmp_path / "registry.sqlite3"), UNIVERSE)
    if kind == "postgres":
        from repo_butler.registry.postgres import PostgresRegistry

        dsn = request.getfixturevalue("postgres_dsn")
        return PostgresRegistry(dsn, UNIVERSE)
    if kind == "cached":
        from repo_butler.registry.cached import CachedSqliteRegistry
        from repo_butler.storage import open_datastore

        store = open_datastore(f"memory://rb-registry-{tmp_path.name}/repo")
        return CachedSqliteRegistry(store, "registry.sqlite3", UNIVERSE)
    root = request.getfixturevalue("s3_root")
    fs = root.server.admin_fs  # one shared client: creating one costs ~0.5 s
    if kind == "delta":
        from repo_butler.registry.delta import DeltaRegistry

        return DeltaRegistry(fs, f"{root.path}/registry.delta", UNIVERSE, **kwargs)
    from repo_butler.registry.s3 import ObjectStoreRegistry

    return ObjectStoreRegistry(fs, f"{root.path}/registry.sqlite3", UNIVERSE, **kwargs)


@pytest.fixture(params=BACKENDS)
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """An empty registry of each kind."""
    if request.param not in ("sqlite", "cached"):
        request.applymarker(pytest.mark.postgres if request.param == "postgres" else pytest.mark.s3)
    reg = _open(request.param, request, tmp_path)
    yield reg
    reg.close()


def _rec(
    dataset_type: str, run: str = "", size: int = 1, prov: str | None = None, **did: Any
) -> DatasetRecord:
    data_id = DataId(did)
    path = f"{run}/{dataset_type}/" + "-".join(f"{k}{v}" for k, v in data_id.items())
    return DatasetRecord(dataset_type, data_id, run, path, size, "sha256:00", "t0", prov)


GRID = [
    {"visit": v, "ccd": c, "filter": f, "pointing": 1178}
    for v, c, f in itertools.product((903986, 903988, 903990), range(10), ("HSC-I", "HSC-R", "g"))
]
WHERES: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
    (
        "visit = 903988 AND ccd IN (3..9:2)",
        lambda r: r["visit"] == 903988 and r["ccd"] in {3, 5, 7, 9},
    ),
    ("filter < 'HSC-R'", lambda r: r["filter"] < "HSC-R"),
    ("filter >= 'HSC-I' OR NOT ccd IN (0, 1, 2)", lambda r: r["filter"] >= "HSC-I" or r["ccd"] > 2),
    ("ccd IN (0..100:4) AND filter != 'g'", lambda r: r["ccd"] % 4 == 0 and r["filter"] != "g"),
    ("visit IN :v AND ccd > 6", lambda r: r["visit"] == 903986 and r["ccd"] > 6),
    ("filter IN :none", lambda r: False),
    ("NOT (visit <> 903990) AND ccd <= 1", lambda r: r["visit"] == 903990 and r["ccd"] <= 1),
]
BIND = {"v": [903986], "none": []}
DIMS = ["pointing", "filter", "visit", "ccd"]


@pytest.fixture
def filled(registry: Registry, tmp_path: Path) -> tuple[Registry, SqliteRegistry]:
    """The registry under test and a local SQLite reference, both holding GRID."""
    reference = SqliteRegistry(str(tmp_path / "reference.sqlite3"), UNIVERSE)
    with registry.batch():
        for row in GRID:
            rec = _rec("calexp", **row)
            registry.insert(rec)
            reference.insert(rec)
    return registry, reference


def _key(rec: DatasetRecord) -> tuple[Any, ...]:
    return (rec.dataset_type, rec.run, tuple(sorted(rec.data_id.items())))


@pytest.mark.parametrize(("where", "truth"), WHERES, ids=[w for w, _ in WHERES])
def test_query_matches_python_truth_and_sqlite(
    filled: tuple[Registry, SqliteRegistry], where: str, truth: Callable[[dict[str, Any]], bool]
) -> None:
    registry, reference = filled
    got = registry.query("calexp", [""], where=where, bind=BIND, dimensions=DIMS)
    expected = {DataId(r) for r in GRID if truth(r)}
    assert {rec.data_id for rec in got} == expected
    assert len(got) == len(expected)
    ref = reference.query("calexp", [""], where=where, bind=BIND, dimensions=DIMS)
    assert sorted(map(_key, got)) == sorted(map(_key, ref))


def test_query_data_ids_distinct_sorted_and_filtered(
    filled: tuple[Registry, SqliteRegistry],
) -> None:
    registry, reference = filled
    registry.insert(_rec("other", visit=1, ccd=2, filter="HSC-I", pointing=1))
    reference.insert(_rec("other", visit=1, ccd=2, filter="HSC-I", pointing=1))
    for kwargs in (
        {},
        {"dataset_types": ["calexp"]},
        {"dataset_types": ["other"]},
        {"dataset_types": []},
        {"where": "visit > 903986", "data_id": DataId(filter="g")},
    ):
        got = registry.query_data_ids(["visit", "filter"], [""], **kwargs)
        assert got == reference.query_data_ids(["visit", "filter"], [""], **kwargs)
        assert got == sorted(set(got), key=DataId.sort_key)
    assert len(registry.query_data_ids(["visit"], [""])) == 4
    assert registry.query_data_ids(["visit"], [""], dataset_types=["other"]) == [DataId(visit=1)]


def test_find_follows_run_order(registry: Registry) -> None:
    registry.define_run("r1", [""])
    root = _rec("calexp", run="", size=1, visit=7, ccd=1)
    rerun = _rec("calexp", run="r1", size=2, visit=7, ccd=1)
    registry.insert(root)
    registry.insert(rerun)
    did = DataId(visit=7, ccd=1)
    assert registry.find("calexp", did, ("r1", "")) == rerun
    assert registry.find("calexp", did, ("", "r1")) == root
    assert registry.find("calexp", did, ("r2",)) is None
    assert registry.find("calexp", DataId(visit=7, ccd=2), ("r1", "")) is None
    assert registry.runs() == {"": (), "r1": ("",)}
    registry.define_run("r1", [""])  # idempotent
    assert registry.runs() == {"": (), "r1": ("",)}
    both = registry.query("calexp", ("r1", ""), dimensions=["visit", "ccd"])
    assert sorted(r.size for r in both) == [1, 2]


def test_find_checksums_matches_the_default_and_python_truth(registry: Registry) -> None:
    registry.define_run("r1", [""])
    records = [
        _rec("calexp", run=run, visit=v, ccd=1)._replace(checksum=f"sha256:{v % 3}")
        for run in ("", "r1")
        for v in range(12)
    ]
    for rec in records:
        registry.insert(rec)
    registry.insert(_rec("other", visit=1, ccd=1)._replace(checksum="sha256:1"))
    wanted = ["sha256:1", "sha256:2", "sha256:9"] + [f"sha256:x{i}" for i in range(600)]
    found = registry.find_checksums("calexp", "r1", wanted)
    truth = [r for r in records if r.run == "r1" and r.checksum in wanted]
    assert sorted(found, key=str) == sorted(truth, key=str) and len(found) == 8
    assert sorted(Registry.find_checksums(registry, "calexp", "r1", wanted), key=str) == sorted(
        truth, key=str
    )  # the generic implementation agrees
    assert registry.find_checksums("calexp", "", []) == []


def test_duplicates_replace_and_provenance(registry: Registry) -> None:
    first = _rec("calexp", prov="calexp/a.provenance.json", visit=1, ccd=1)
    registry.insert(first, provenance='{"task": "a"}')
    with pytest.raises(DatasetExistsError, match="already exists"):
        registry.insert(first)
    did = DataId(visit=1, ccd=1)
    assert registry.get_provenance("calexp", did, "") == '{"task": "a"}'
    second = first._replace(size=99, provenance=None)
    registry.insert(second, replace=True)
    assert registry.find("calexp", did, ("",)) == second
    assert registry.get_provenance("calexp", did, "") is None
    assert registry.remove("calexp", did, "") == second
    assert registry.remove("calexp", did, "") is None
    assert registry.find("calexp", did, ("",)) is None
    assert list(registry.all_records()) == []


def test_all_records_in_byte_order_of_run_and_path(registry: Registry) -> None:
    recs = [
        _rec("calexp", run="", visit=2, ccd=1)._replace(path="b/x"),
        _rec("calexp", run="", visit=1, ccd=1)._replace(path="B/x"),
        _rec("calexp", run="", visit=3, ccd=1)._replace(path="a/x"),
        _rec("calexp", run="R", visit=1, ccd=1)._replace(path="rerun/R/a"),
    ]
    for rec in recs:
        registry.insert(rec)
    assert [r.path for r in registry.all_records()] == ["B/x", "a/x", "b/x", "rerun/R/a"]


def test_query_errors_are_the_same(registry: Registry) -> None:
    registry.insert(_rec("calexp", visit=1, ccd=1))
    with pytest.raises(QuerySyntaxError, match="unknown dimension 'nope'"):
        registry.query("calexp", [""], where="nope = 1", dimensions=["visit", "ccd"])
    with pytest.raises(QuerySyntaxError, match="not a dimension here"):
        registry.query("calexp", [""], where="filter = 'g'", dimensions=["visit", "ccd"])


def test_a_raising_batch_keeps_nothing_a_caught_refusal_keeps_the_rest(
    registry: Registry,
) -> None:
    registry.insert(_rec("calexp", visit=1, ccd=1))
    with pytest.raises(RuntimeError, match="boom"), registry.batch():
        registry.insert(_rec("calexp", visit=2, ccd=1))
        registry.define_run("r", [""])
        raise RuntimeError("boom")
    assert [r.data_id for r in registry.all_records()] == [DataId(visit=1, ccd=1)]
    assert "r" not in registry.runs()
    with registry.batch():
        registry.insert(_rec("calexp", visit=3, ccd=1))
        with pytest.raises(DatasetExistsError):
            registry.insert(_rec("calexp", visit=1, ccd=1, size=9))
        registry.insert(_rec("calexp", visit=4, ccd=1))
    records = sorted(registry.all_records(), key=lambda r: r.data_id["visit"])
    assert [(r.data_id["visit"], r.size) for r in records] == [(1, 1), (3, 1), (4, 1)]


def _writer(kind: str, target: str, options: dict[str, Any], worker: int, n: int) -> int:
    from repo_butler.registry.postgres import PostgresRegistry
    from repo_butler.registry.s3 import ObjectStoreRegistry

    if kind == "postgres":
        import os

        os.environ["PGPASSWORD"] = options["password"]
        reg: Registry = PostgresRegistry(target, UNIVERSE)
    else:
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
        if kind == "delta":
            from repo_butler.registry.delta import DeltaRegistry

            reg = DeltaRegistry(fs, target, UNIVERSE)
        else:
            reg = ObjectStoreRegistry(fs, target, UNIVERSE)
    stored = 0
    for i in range(n):
        try:
            reg.insert(_rec("calexp", visit=10000 + worker * 1000 + i, ccd=i % 3))
            stored += 1
        except DatasetExistsError:
            pass
        try:  # every writer also tries the same shared data IDs: exactly one must win each
            reg.insert(_rec("calexp", run="", size=worker, visit=5, ccd=i))
            stored += 1
        except DatasetExistsError:
            pass
    reg.close()
    return stored


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["postgres", "s3", "delta"])
def test_concurrent_writer_processes_lose_nothing(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    n, workers = 12, 3
    if kind == "postgres":
        server = request.getfixturevalue("postgres")
        target = request.getfixturevalue("postgres_dsn")
        options = {"password": server.password}
    else:
        root = request.getfixturevalue("s3_root")
        target = f"{root.path}/registry.{'delta' if kind == 'delta' else 'sqlite3'}"
        options = root.storage_options
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers) as pool:
        stored = pool.starmap(_writer, [(kind, target, options, w, n) for w in range(workers)])
    reg = _open(kind, request, tmp_path)
    try:
        records = list(reg.all_records())
    finally:
        reg.close()
    assert sum(stored) == len(records) == workers * n + n
    shared = [r for r in records if r.data_id["visit"] == 5]
    assert sorted(r.data_id["ccd"] for r in shared) == list(range(n))


def test_cached_registry_uploads_each_write_and_sees_other_writers(tmp_path: Path) -> None:
    from repo_butler.registry.cached import CachedSqliteRegistry
    from repo_butler.storage import open_datastore

    store = open_datastore(f"memory://rb-cached-{tmp_path.name}/repo")
    first = CachedSqliteRegistry(store, "registry.sqlite3", UNIVERSE)
    empty = store.get_bytes("registry.sqlite3")  # the new schema is uploaded at once
    first.insert(_rec("calexp", visit=1, ccd=1))
    assert store.get_bytes("registry.sqlite3") != empty
    second = CachedSqliteRegistry(store, "registry.sqlite3", UNIVERSE)
    assert [r.data_id for r in second.all_records()] == [DataId(visit=1, ccd=1)]
    second.insert(_rec("calexp", visit=2, ccd=1))
    assert {r.data_id["visit"] for r in first.all_records()} == {1, 2}  # refreshed on change
    reader = CachedSqliteRegistry(store, "registry.sqlite3", UNIVERSE, writeable=False)
    before = store.get_bytes("registry.sqlite3")
    reader.define_run("r", [""])  # applied to the cache copy only: a read-only registry
    assert store.get_bytes("registry.sqlite3") == before  # never uploads
    cache = Path(first.path).parent
    for reg in (first, second, reader):
        reg.close()
    assert not cache.exists()  # the cache copy goes with the registry
