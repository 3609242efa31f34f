"""``Butler.put_many`` (concurrent writes, one directory fsync each, one registry transaction) on
every storage backend (file://, memory://, s3://), and ``Registry.batch`` as one transaction.

Truth is independent of the code under test: the bytes read back straight from storage with
fsspec (checksums recomputed with hashlib), the files listed by fsspec, and what a fresh Butler
finds in the registry.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from conftest import RepoLocation, independent_checksum
from repo_configs import META_VISIT_CCD as CONFIG

from repo_butler import Butler, DataId, Provenance
from repo_butler.config import RepoConfig, default_config
from repo_butler.errors import (
    ConcurrentWriteError,
    DataIdError,
    DatasetExistsError,
    DatasetTypeError,
    FormatterError,
)
from repo_butler.maintenance import verify
from repo_butler.provenance import SIDECAR_SUFFIX
from repo_butler.put_many import PutItem
from repo_butler.registry import DatasetRecord, SqliteRegistry

PATH = "meta/{visit:07d}/m-{ccd:03d}.json"


@pytest.fixture
def butler(repo_location: RepoLocation) -> Iterator[Butler]:
    with Butler.create(
        repo_location.url, config=CONFIG, storage_options=repo_location.storage_options
    ) as b:
        yield b


def _items(visits: range, ccds: range, tag: str = "a") -> list[tuple[Any, str, dict[str, int]]]:
    return [
        ({"tag": tag, "visit": v, "ccd": c}, "meta", {"visit": v, "ccd": c})
        for v in visits
        for c in ccds
    ]


def _stored_files(butler: Butler) -> set[str]:
    """Every file under the repository root except its configuration and registry, listed by
    fsspec (temporary files included)."""
    fs, root = fsspec.core.url_to_fs(butler.root, **butler.storage_options)
    fs.invalidate_cache()
    found = fs.find(root) if fs.exists(root) else []
    rel = {fs._strip_protocol(p)[len(fs._strip_protocol(root).rstrip("/")) + 1 :] for p in found}
    return {p for p in rel if not p.startswith(("butler.yaml", "registry.sqlite3"))}


def _registered(butler: Butler) -> set[DataId]:
    """Data IDs a fresh Butler on the repository finds (not this one's cached state)."""
    with Butler(butler.root, storage_options=butler.storage_options, writeable=False) as fresh:
        return {ref.data_id for ref in fresh.query_datasets("meta")}


def _raw(butler: Butler, path: str) -> bytes:
    fs, root = fsspec.core.url_to_fs(butler.root, **butler.storage_options)
    data: bytes = fs.cat_file(root.rstrip("/") + "/" + path)
    return data


# -- round trips -----------------------------------------------------------------------------


def test_round_trip_in_order_with_tuples_and_put_items(butler: Butler) -> None:
    plain = _items(range(3), range(7))
    items: list[Any] = list(plain)
    items[4] = PutItem(*items[4])  # both forms in one batch
    refs = butler.put_many(items)
    assert [(r.dataset_type, dict(r.data_id)) for r in refs] == [(t, d) for _, t, d in plain]
    for ref, (obj, _, did) in zip(refs, plain, strict=True):
        assert ref.path == PATH.format(**did)
        raw = _raw(butler, ref.path)
        assert json.loads(raw) == obj
        assert ref.checksum == independent_checksum(raw, ref.checksum)
        assert ref.size == len(raw)
        assert butler.get("meta", did) == obj
    assert _registered(butler) == {DataId(d) for _, _, d in plain}
    assert _stored_files(butler) == {PATH.format(**d) for _, _, d in plain}
    assert verify(butler).ok


@pytest.mark.parametrize("threads", [1, 3])
def test_thread_counts_store_the_same(butler: Butler, threads: int) -> None:
    refs = butler.put_many(_items(range(2), range(5)), threads=threads)
    assert [butler.get(r) for r in refs] == [obj for obj, _, _ in _items(range(2), range(5))]
    assert verify(butler).ok


def test_empty_batch_does_nothing(butler: Butler) -> None:
    assert butler.put_many([]) == []
    assert _stored_files(butler) == set()


def test_provenance_sidecars_are_written_and_registered(butler: Butler) -> None:
    items = [
        PutItem({"ccd": c}, "meta", {"visit": 5, "ccd": c}, Provenance(task="t", config={"c": c}))
        for c in range(4)
    ]
    refs = butler.put_many([*items, ({"ccd": 9}, "meta", {"visit": 5, "ccd": 9})])
    for c, ref in zip(range(4), refs, strict=False):
        sidecar = json.loads(_raw(butler, ref.path + SIDECAR_SUFFIX))
        assert sidecar["task"] == "t" and sidecar["config"] == {"c": c}
        assert sidecar["output"]["checksum"] == ref.checksum
        assert butler.get_provenance_dict("meta", visit=5, ccd=c) == sidecar
    assert butler.get_provenance("meta", visit=5, ccd=9) is None
    assert PATH.format(visit=5, ccd=9) + SIDECAR_SUFFIX not in _stored_files(butler)
    assert verify(butler).ok


# -- existing datasets and overwrite ------------------------------------------------------------


def test_an_existing_dataset_refuses_the_batch_before_anything_is_written(butler: Butler) -> None:
    butler.put({"old": True}, "meta", visit=1, ccd=3)
    before = _stored_files(butler)
    items = _items(range(1, 2), range(6), tag="new")
    with pytest.raises(DatasetExistsError, match=r"meta \{visit: 1, ccd: 3\} already exists"):
        butler.put_many(items)
    assert _stored_files(butler) == before
    assert _registered(butler) == {DataId(visit=1, ccd=3)}
    assert butler.get("meta", visit=1, ccd=3) == {"old": True}


def test_overwrite_replaces_data_and_drops_stale_sidecars(butler: Butler) -> None:
    prov = Provenance(task="first", config={})
    butler.put_many([PutItem({"n": 1}, "meta", {"visit": 1, "ccd": c}, prov) for c in range(3)])
    refs = butler.put_many(_items(range(1, 2), range(5), tag="second"), overwrite=True)
    for ref, (obj, _, _) in zip(refs, _items(range(1, 2), range(5), tag="second"), strict=True):
        assert butler.get(ref) == obj
        assert ref.checksum == independent_checksum(_raw(butler, ref.path), ref.checksum)
    assert not any(p.endswith(SIDECAR_SUFFIX) for p in _stored_files(butler))
    assert butler.get_provenance("meta", visit=1, ccd=0) is None
    assert len(_registered(butler)) == 5
    assert verify(butler).ok


# -- bad input: nothing written ------------------------------------------------------------------


def test_duplicate_in_the_batch_is_refused_first(butler: Butler) -> None:
    items = [*_items(range(1), range(3)), ({"again": 1}, "meta", {"ccd": 1, "visit": 0})]
    with pytest.raises(DataIdError, match=r"meta \{visit: 0, ccd: 1\} appears twice.*1 and 3"):
        butler.put_many(items)
    assert _stored_files(butler) == set()


def test_bad_data_id_or_type_names_the_item(butler: Butler) -> None:
    with pytest.raises(DataIdError, match=r"put_many item 1 \(meta \{'visit': 2\}\).*lacks"):
        butler.put_many([({}, "meta", {"visit": 1, "ccd": 1}), ({}, "meta", {"visit": 2})])
    with pytest.raises(DatasetTypeError, match=r"put_many item 0 \(nope"):
        butler.put_many([({}, "nope", {"visit": 1, "ccd": 1})])
    with pytest.raises(TypeError, match="put_many item 0: expected a PutItem"):
        butler.put_many([{"visit": 1}])  # type: ignore[list-item]
    assert _stored_files(butler) == set()


# -- failures after the first write: no rows, no files of ours -----------------------------------


def test_a_failing_item_midway_leaves_nothing_registered_and_no_files(butler: Butler) -> None:
    butler.put({"kept": True}, "meta", visit=9, ccd=9)
    items: list[Any] = _items(range(4), range(10))
    items[25] = ({"bad": object()}, "meta", {"visit": 2, "ccd": 5})  # JSON cannot encode it
    with pytest.raises(FormatterError, match=r"meta \{visit: 2, ccd: 5\}"):
        butler.put_many(items)
    assert _registered(butler) == {DataId(visit=9, ccd=9)}
    assert _stored_files(butler) == {PATH.format(visit=9, ccd=9)}  # no temporary files either
    report = verify(butler)
    assert report.ok, report.problems
    assert butler.datastore.temp_files() == []


@pytest.mark.parametrize("repo_location", ["file", "s3"], indirect=True)
def test_a_file_another_writer_is_registering_fails_the_batch_cleanly(
    butler: Butler, repo_location: RepoLocation
) -> None:
    """Another writer wrote a file of the batch and has not registered it yet: the batch does
    not wait (it could hold files that writer waits for), registers nothing and removes its
    own files; the other writer's file is untouched and registers afterwards."""
    with Butler(repo_location.url, storage_options=repo_location.storage_options) as other:
        planned = other.plan_put("meta", {"visit": 3, "ccd": 4}, overwrite=False)
        theirs = other.worker_io().write(planned, {"by": "other"})
        with pytest.raises(ConcurrentWriteError, match=r"meta \{visit: 3, ccd: 4\}.*another"):
            butler.put_many(_items(range(3, 4), range(8)))
        assert _stored_files(butler) == {planned.path}
        assert _registered(butler) == set()
        other.register([theirs], replace=False)
    assert butler.get("meta", visit=3, ccd=4) == {"by": "other"}
    assert verify(butler).ok


# -- concurrency -------------------------------------------------------------------------------


def _writer(url: str, options: dict[str, Any], visits: list[int], start_at: float) -> int:
    with Butler(url, storage_options=options) as butler:
        time.sleep(max(0.0, start_at - time.time()))
        for v in visits:
            butler.put_many(_items(range(v, v + 1), range(25), tag=f"v{v}"))
    return len(visits)


@pytest.mark.parametrize("repo_location", ["file", "s3"], indirect=True)
def test_two_processes_put_many_into_one_run_lose_no_rows(
    butler: Butler, repo_location: RepoLocation
) -> None:
    ctx = mp.get_context("spawn")
    start_at = time.time() + 4.0  # once both processes have imported and opened the Butler
    args = [
        (repo_location.url, repo_location.storage_options, list(range(w, 12, 2)), start_at)
        for w in range(2)
    ]
    with ctx.Pool(2) as pool:
        assert pool.starmap(_writer, args) == [6, 6]
    expected = {DataId(visit=v, ccd=c) for v in range(12) for c in range(25)}
    assert _registered(butler) == expected
    for v, c in [(0, 0), (5, 24), (11, 13)]:
        assert butler.get("meta", visit=v, ccd=c) == {"tag": f"v{v}", "visit": v, "ccd": c}
    report = verify(butler)
    assert report.ok, report.problems


# -- Registry.batch: one transaction -----------------------------------------------------------


def _record(visit: int, ccd: int) -> DatasetRecord:
    did = DataId(visit=visit, ccd=ccd)
    return DatasetRecord("meta", did, "", PATH.format(**did), 1, "sha256:00", "t", None)


def _sqlite(tmp_path: Path) -> SqliteRegistry:
    universe = RepoConfig.from_mapping(default_config()).universe
    return SqliteRegistry(str(tmp_path / "registry.sqlite3"), universe)


def test_sqlite_batch_is_one_transaction_rolled_back_whole(tmp_path: Path) -> None:
    registry = _sqlite(tmp_path)
    other = _sqlite(tmp_path)  # a second connection, as another process would have
    with registry.batch():
        registry.insert(_record(1, 1))
        registry.insert(_record(1, 2), provenance="{}")
        assert registry.find("meta", DataId(visit=1, ccd=2), [""]) is not None  # own writes
        assert other.find("meta", DataId(visit=1, ccd=1), [""]) is None  # not committed yet
    assert other.find("meta", DataId(visit=1, ccd=2), [""]) is not None
    with pytest.raises(DatasetExistsError), registry.batch():
        registry.insert(_record(2, 1))
        registry.insert(_record(2, 2))
        registry.insert(_record(1, 1))  # exists: the whole batch is rolled back
    assert {r.data_id for r in other.all_records()} == {DataId(visit=1, ccd=c) for c in (1, 2)}


def test_sqlite_batch_keeps_writes_whose_error_was_handled(tmp_path: Path) -> None:
    """A failed write inside a batch is undone alone (a savepoint): the batch goes on."""
    registry = _sqlite(tmp_path)
    registry.insert(_record(1, 1))
    with registry.batch():
        registry.insert(_record(3, 1))
        with pytest.raises(DatasetExistsError):
            registry.insert(_record(1, 1), provenance="{}")
        registry.insert(_record(3, 2))
    assert len(list(registry.all_records())) == 3


def test_put_inside_a_failed_registry_batch_registers_nothing(tmp_path: Path) -> None:
    with Butler.create(str(tmp_path / "repo"), config=CONFIG) as butler:
        with pytest.raises(RuntimeError, match="stop"), butler.registry.batch():
            butler.put({"a": 1}, "meta", visit=1, ccd=1)
            butler.put({"a": 2}, "meta", visit=1, ccd=2)
            raise RuntimeError("stop")
        assert _registered(butler) == set()
        butler.put_many(_items(range(1, 2), range(3)), overwrite=True)
        assert len(_registered(butler)) == 3
        assert verify(butler).ok


@pytest.mark.postgres
def test_postgres_batch_is_one_transaction_rolled_back_whole(postgres_dsn: str) -> None:
    from repo_butler.registry.postgres import PostgresRegistry

    universe = RepoConfig.from_mapping(default_config()).universe
    registry = PostgresRegistry(postgres_dsn, universe)
    other = PostgresRegistry(postgres_dsn, universe)
    try:
        with registry.batch():
            registry.insert(_record(1, 1))
            registry.insert(_record(1, 2), provenance="{}")
            assert other.find("meta", DataId(visit=1, ccd=1), [""]) is None
        with pytest.raises(DatasetExistsError), registry.batch():
            registry.insert(_record(2, 1))
            registry.insert(_record(1, 1))
        assert {r.data_id for r in other.all_records()} == {DataId(visit=1, ccd=c) for c in (1, 2)}
    finally:
        registry.close()
        other.close()


@pytest.mark.postgres
def test_put_many_with_a_postgres_registry(postgres_dsn: str, tmp_path: Path) -> None:
    root = str(tmp_path / "repo")
    with Butler.create(root, config={**CONFIG, "registry": postgres_dsn}) as butler:
        refs = butler.put_many(_items(range(2), range(5)))
        assert [butler.get(r) for r in refs] == [o for o, _, _ in _items(range(2), range(5))]
        items: list[Any] = _items(range(2, 4), range(5))
        items[7] = ({"bad": object()}, "meta", {"visit": 3, "ccd": 2})
        with pytest.raises(FormatterError, match=r"meta \{visit: 3, ccd: 2\}"):
            butler.put_many(items)
        assert _registered(butler) == {DataId(visit=v, ccd=c) for v in range(2) for c in range(5)}
        assert _stored_files(butler) == {PATH.format(**d) for _, _, d in _items(range(2), range(5))}
        assert verify(butler).ok


def test_local_batch_syncs_its_bytes_before_any_name_and_its_names_before_any_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two syncs of a local batch, observed on the real filesystem and registry: at the
    first, every file of the batch is still a temporary file (no final name exists); at the
    second, every name exists and no row is registered; then every row is."""
    from repo_butler import local_writes

    root = tmp_path / "repo"
    items = _items(range(3), range(20), tag="p")
    provenance = Provenance(task="t", config={})
    seen: list[tuple[bool, int, int, int]] = []
    real_sync = local_writes.BatchSync.sync

    def observing(self: Any, paths: Any, *, directories: bool = False) -> None:
        paths = list(paths)
        names = sum((root / PATH.format(**d)).exists() for _, _, d in items)
        with Butler(str(root), writeable=False) as reader:
            rows = len(reader.query_datasets("meta"))
        seen.append((directories, len(paths), names, rows))
        if not directories:
            assert all(Path(p).name.startswith(".rb-tmp-") and Path(p).exists() for p in paths)
        real_sync(self, paths, directories=directories)

    monkeypatch.setattr(local_writes.BatchSync, "sync", observing)
    with Butler.create(str(root), config=CONFIG) as butler:
        butler.put_many([(*item, provenance) for item in items])
        assert len(butler.query_datasets("meta")) == 60
        assert verify(butler).ok
    # 60 files + 60 sidecars synced before any name; 3 directories after all 60 names
    assert seen == [(False, 120, 0, 0), (True, 3, 60, 0)]
    assert not list(root.rglob(".rb-tmp-*"))


@pytest.mark.parametrize("have_syncfs", [True, False])
def test_local_batch_durability_costs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, have_syncfs: bool
) -> None:
    """With ``syncfs`` a batch costs two of them and no fsync (``put`` costs an fdatasync and a
    directory fsync per file); without it (not Linux) one fsync per file and per directory.
    Counted by wrapping the real calls."""
    import os

    from repo_butler import local_writes

    if have_syncfs and local_writes._syncfs() is None:
        pytest.skip("no syncfs on this platform")
    calls: dict[str, int] = {"fsync": 0, "fdatasync": 0, "syncfs": 0}
    real = {name: getattr(os, name) for name in ("fsync", "fdatasync")}
    real_syncfs = local_writes._syncfs()

    def counting(name: str) -> Any:
        def call(fd: int) -> Any:
            calls[name] += 1
            return real[name](fd) if name in real else real_syncfs(fd)  # type: ignore[misc]

        return call

    with Butler.create(str(tmp_path / "repo"), config=CONFIG) as butler:
        for name in real:
            monkeypatch.setattr(os, name, counting(name))
        monkeypatch.setattr(
            local_writes, "_syncfs", lambda: counting("syncfs") if have_syncfs else None
        )
        butler.put_many(_items(range(3), range(20)))
        expected = (
            {"fsync": 0, "fdatasync": 0, "syncfs": 2}
            if have_syncfs
            else {"fsync": 63, "fdatasync": 0, "syncfs": 0}
        )
        assert calls == expected
        for name in calls:
            calls[name] = 0
        for c in range(20, 25):
            butler.put({}, "meta", visit=0, ccd=c)
        assert calls == {"fsync": 5, "fdatasync": 5, "syncfs": 0}
    with Butler(str(tmp_path / "repo"), writeable=False) as reader:
        assert verify(reader).ok
        assert len(reader.query_datasets("meta")) == 65


@pytest.mark.parametrize("repo_location", ["s3"], indirect=True)
def test_bucket_registry_is_uploaded_once_per_batch(butler: Butler) -> None:
    registry: Any = butler.registry
    butler.put({}, "meta", visit=0, ccd=0)  # the root run is recorded by the first write
    before = registry.uploads
    butler.put_many(_items(range(1, 3), range(15)))
    assert registry.uploads - before == 1
    assert len(_registered(butler)) == 31
