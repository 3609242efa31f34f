"""The Delta Lake bucket registry on a real S3 server (SeaweedFS): what is specific to it.

The registry contract suite (``test_registry_contract.py``) already runs on it; here: commit size
independent of the repository's size, incremental reads, compaction, conflicts, reindex, read-only
access and bad tables.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from repo_configs import META_VISIT_CCD
from servers.fixtures import S3Root

from repo_butler import Butler, DataId
from repo_butler.config import RepoConfig, default_config
from repo_butler.errors import ConfigError, DatasetExistsError, RegistryError
from repo_butler.formats import FormatVersionError
from repo_butler.registry import DatasetRecord
from repo_butler.registry.delta import DeltaRegistry
from repo_butler.reindex import reindex

pytestmark = pytest.mark.s3
pytest.importorskip("deltalake")

UNIVERSE = RepoConfig.from_mapping(default_config()).universe
CONFIG: dict[str, Any] = {**META_VISIT_CCD, "registry": {"type": "delta"}}


def _rec(visit: int, ccd: int, run: str = "") -> DatasetRecord:
    did = DataId(visit=visit, ccd=ccd)
    path = f"meta/{visit:07d}/{ccd:03d}.json"
    return DatasetRecord("calexp", did, run, path, 30, "blake3:" + "ab" * 32, "t", None)


def _open(root: S3Root, **kwargs: Any) -> DeltaRegistry:
    return DeltaRegistry(root.server.admin_fs, f"{root.path}/registry.delta", UNIVERSE, **kwargs)


def _objects(root: S3Root) -> dict[str, int]:
    fs = root.server.admin_fs
    fs.invalidate_cache()
    return {p: info["size"] for p, info in fs.find(root.path, detail=True).items()}


def _fill(reg: DeltaRegistry, visits: range, ccds: int = 100) -> None:
    for visit in visits:
        with reg.batch():
            for ccd in range(ccds):
                reg.insert(_rec(visit, ccd))


def test_commit_uploads_do_not_grow_with_the_repository(s3_root: S3Root) -> None:
    reg = _open(s3_root, compact_every=0)
    uploaded = []
    for size in (1, 30):  # 100 then 3,000 datasets already stored
        _fill(reg, range(100 * size, 100 * size + (1 if size == 1 else 29)))
        before = _objects(s3_root)
        _fill(reg, range(9000 + size, 9001 + size))  # one batch of 100 datasets
        after = _objects(s3_root)
        new = {p: n for p, n in after.items() if before.get(p) != n}
        assert len(new) == 2, new  # one Parquet file of events, one commit file
        uploaded.append(sum(new.values()))
    assert max(uploaded) < 64 * 1024  # far below the 1 MiB per 100-dataset batch
    assert uploaded[1] < 1.2 * uploaded[0], uploaded  # 30x the rows, the same commit
    reg.close()


def test_readers_fetch_only_new_events_and_survive_compaction(s3_root: S3Root) -> None:
    writer = _open(s3_root, compact_every=4)
    reader = _open(s3_root)
    _fill(writer, range(3))
    reader.refresh()
    assert reader.events_read == 300
    _fill(writer, range(3, 9))  # versions 4 and 8 compact the table
    writer.remove("calexp", DataId(visit=0, ccd=5), "")
    reader.refresh()
    assert reader.events_read == 300 + 600 + 1  # nothing read twice, compaction changes nothing
    cold = _open(s3_root)  # a new reader of the compacted table
    want = sorted((r.data_id["visit"], r.data_id["ccd"]) for r in writer.all_records())
    assert len(want) == 899
    for reg in (reader, cold):
        assert sorted((r.data_id["visit"], r.data_id["ccd"]) for r in reg.all_records()) == want
    from deltalake import DeltaTable

    table = DeltaTable(f"s3://{s3_root.path}/registry.delta", storage_options=writer._options)
    assert (
        len(table.file_uris()) <= 2
    )  # 10 commits of events merged (the old files wait for vacuum)
    for reg in (writer, reader, cold):
        reg.close()


def test_stale_writer_replays_and_refuses_what_another_stored(s3_root: S3Root) -> None:
    first, second = _open(s3_root), _open(s3_root)
    first.insert(_rec(1, 1))
    with second.batch():  # prepared against version 1, committed after first's next commit
        second.insert(_rec(2, 1))
        second.insert(_rec(2, 2))
        first.insert(_rec(3, 1))
    assert second.conflicts == 1
    assert {r.data_id["visit"] for r in first.all_records()} == {1, 2, 3}
    with pytest.raises(DatasetExistsError, match="already exists"), second.batch():
        first.insert(_rec(4, 1))
        second.insert(_rec(5, 1))
        second.insert(_rec(4, 1))  # refused at once: second's copy is current
    third = _open(s3_root)
    with pytest.raises(DatasetExistsError), third.batch():
        third.insert(_rec(6, 1))
        first.insert(_rec(6, 1))  # another writer takes it before third commits
    got = sorted((r.data_id["visit"], r.data_id["ccd"]) for r in _open(s3_root).all_records())
    assert got == [(1, 1), (2, 1), (2, 2), (3, 1), (4, 1), (6, 1)]  # a raising batch: nothing
    for reg in (first, second, third):
        reg.close()


def test_butler_round_trip_reindex_and_read_only(s3_root: S3Root) -> None:
    opts = s3_root.storage_options
    with Butler.create(s3_root.url, config=CONFIG, storage_options=opts) as b:
        assert type(b.registry).__name__ == "DeltaRegistry"
        assert b.config["registry"] == {"type": "delta", "path": "registry.delta"}
        with b.registry.batch():
            for ccd in range(5):
                b.put({"ccd": ccd}, "meta", visit=7, ccd=ccd)
        b.put({"ccd": 9}, "meta", visit=8, ccd=9)
        assert b.get("meta", visit=7, ccd=3) == {"ccd": 3}
        assert len(b.query_datasets("meta", "visit = 7 AND ccd IN (1..3)")) == 3
    before = _objects(s3_root)
    with Butler(s3_root.url, storage_options=opts, writeable=False) as ro:
        assert len(ro.query_datasets("meta")) == 6
    assert _objects(s3_root) == before  # a reader writes nothing
    report = reindex(s3_root.url, storage_options=opts)
    assert report.total == 6
    with Butler(s3_root.url, storage_options=opts) as b:
        assert sorted(r.data_id["ccd"] for r in b.query_datasets("meta")) == [0, 1, 2, 3, 4, 9]
        assert b.get("meta", visit=8, ccd=9) == {"ccd": 9}


def test_lost_table_and_foreign_tables_are_refused(s3_root: S3Root) -> None:
    opts = s3_root.storage_options
    with Butler.create(s3_root.url, config=CONFIG, storage_options=opts) as b:
        b.put({"a": 1}, "meta", visit=1, ccd=1)
    fs = s3_root.server.admin_fs
    fs.invalidate_cache()
    fs.rm(f"{s3_root.path}/registry.delta", recursive=True)
    with pytest.raises(RegistryError, match="rb reindex"):
        Butler(s3_root.url, storage_options=opts)
    reindex(s3_root.url, storage_options=opts)
    with Butler(s3_root.url, storage_options=opts) as b:
        assert b.get("meta", visit=1, ccd=1) == {"a": 1}


def test_newer_format_and_foreign_delta_tables(s3_root: S3Root, tmp_path: Path) -> None:
    from deltalake import DeltaTable, write_deltalake

    reg = _open(s3_root)
    reg.insert(_rec(1, 1))
    reg.close()
    options = reg._options
    url = f"s3://{s3_root.path}/registry.delta"
    meta = DeltaTable(url, storage_options=options).metadata()
    assert json.loads(meta.description) == {"repo_butler_registry_format": 1}
    import pyarrow as pa

    other = f"s3://{s3_root.path}/other.delta"
    write_deltalake(other, pa.table({"x": [1]}), storage_options=options)
    with pytest.raises(RegistryError, match="not a repo-butler registry"):
        DeltaRegistry(s3_root.server.admin_fs, f"{s3_root.path}/other.delta", UNIVERSE)
    newer = f"s3://{s3_root.path}/newer.delta"
    DeltaTable.create(newer, schema=pa.schema([("version", pa.int64())]), storage_options=options,
                      description=json.dumps({"repo_butler_registry_format": 99}))  # fmt: skip
    with pytest.raises(FormatVersionError, match="99"):
        DeltaRegistry(s3_root.server.admin_fs, f"{s3_root.path}/newer.delta", UNIVERSE)


def test_delta_registry_needs_a_bucket(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a repository in an S3 bucket"):
        Butler.create(str(tmp_path / "repo"), config=CONFIG)
    assert not (tmp_path / "repo" / "butler.yaml").exists()
    (tmp_path / "old").mkdir()  # a butler.yaml edited by hand: refused when opened
    (tmp_path / "old" / "butler.yaml").write_text(
        yaml.safe_dump({**default_config(), "registry": {"type": "delta"}})
    )
    with pytest.raises(RegistryError, match="needs a repository in an S3 bucket"):
        Butler(str(tmp_path / "old"))


def test_cli_create_with_the_delta_registry(s3_root: S3Root, tmp_path: Path) -> None:
    from cli_support import one_error_line, run_rb

    server = s3_root.server
    opts = ["-S", f"key={server.access_key}", "-S", f"secret={server.secret_key}",
            "-S", f"endpoint_url={server.endpoint_url}"]  # fmt: skip
    out = run_rb("create", s3_root.url, "--preset", "minimal", "--registry", "delta", *opts)
    assert out.returncode == 0, out.stderr
    with Butler(s3_root.url, storage_options=s3_root.storage_options) as b:
        assert b.config["registry"]["type"] == "delta"
        assert type(b.registry).__name__ == "DeltaRegistry"
    missing = run_rb("create", s3_root.url + "-2", "--registry", "delta", *opts,
                     missing=["deltalake"])  # fmt: skip
    assert "pip install 'repo-butler[delta]'" in one_error_line(missing)
    assert not s3_root.server.admin_fs.exists(s3_root.path + "-2/butler.yaml")  # nothing written
    bad = run_rb("create", str(tmp_path / "r"), "--registry", "oracle")
    assert "--registry must be sqlite or delta" in one_error_line(bad)
    local = run_rb("create", str(tmp_path / "r2"), "--registry", "delta")
    assert "needs a repository in an S3 bucket" in one_error_line(local)
    assert not (tmp_path / "r2").exists() or not any((tmp_path / "r2").iterdir())  # nothing written


def test_dead_endpoint_fails_fast_naming_it(seaweed_factory: Any) -> None:
    import time

    from repo_butler.errors import StorageError

    server = seaweed_factory(bucket="dead")
    reg = DeltaRegistry(server.filesystem(), "dead/repo/registry.delta", UNIVERSE)
    reg.insert(_rec(1, 1))
    server.kill()
    for action in (lambda: reg.insert(_rec(2, 1)), reg.refresh):
        t0 = time.monotonic()
        with pytest.raises(StorageError, match=server.endpoint_url) as info:
            action()
        assert time.monotonic() - t0 < 15, "a dead endpoint must fail within seconds"
        assert server.secret_key not in str(info.value)
        assert "\n" not in str(info.value) and "\x1b" not in str(info.value)  # one plain line
    reg.max_staleness = 3600.0  # reads that may use the local copy still work, unchanged
    assert [r.data_id for r in reg.all_records()] == [DataId(visit=1, ccd=1)]
    reg.close()


def test_new_processes_start_from_the_user_cache(
    s3_root: S3Root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import repo_butler.registry.delta as delta

    monkeypatch.setenv("REPO_BUTLER_REGISTRY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(delta, "SAVE_AFTER_EVENTS", 250)
    writer = _open(s3_root)
    _fill(writer, range(3))
    first = _open(s3_root)
    assert first.events_read == 300
    first.close()  # replayed >= 250 events: leaves its copy
    assert len(list((tmp_path / "cache").glob("*.sqlite3"))) == 1
    _fill(writer, range(3, 4))
    second = _open(s3_root)
    assert second.events_read == 100  # only what was committed after the cached copy
    want = sorted((r.data_id["visit"], r.data_id["ccd"]) for r in writer.all_records())
    assert sorted((r.data_id["visit"], r.data_id["ccd"]) for r in second.all_records()) == want
    second.close()
    fs = s3_root.server.admin_fs  # the table is deleted and made anew: the cache is not used
    fs.invalidate_cache()
    fs.rm(f"{s3_root.path}/registry.delta", recursive=True)
    fresh = DeltaRegistry(fs, f"{s3_root.path}/registry.delta", UNIVERSE, rebuilding=True)
    fresh.insert(_rec(42, 1))
    third = _open(s3_root)
    assert [r.data_id for r in third.all_records()] == [DataId(visit=42, ccd=1)]
    for reg in (writer, fresh, third):
        reg.close()


def _state(reg: DeltaRegistry) -> tuple[Any, ...]:
    records = sorted(reg.all_records(), key=lambda r: (r.run, r.path))
    prov = [reg.get_provenance(r.dataset_type, r.data_id, r.run) for r in records]
    return records, prov, reg.runs()


def test_replayed_histories_equal_the_writers_view(s3_root: S3Root) -> None:
    """Random histories of inserts, replacements, removals, runs and clears (in batches and
    alone): a reader following along and a reader starting cold replay them to the writer's
    registry, row for row, provenance included."""
    import random

    rng = random.Random(20261207)
    writer, follower = _open(s3_root, compact_every=7), _open(s3_root)
    live: set[tuple[int, int, str]] = set()
    for step in range(60):
        kind = rng.random()
        if step == 40:  # everything before it is gone for a cold reader too
            writer.clear()
            live.clear()
        with writer.batch() if rng.random() < 0.5 else contextlib.nullcontext():
            for _ in range(rng.randint(1, 6)):
                visit, ccd, run = rng.randrange(4), rng.randrange(4), rng.choice(["", "r1"])
                if kind < 0.1:
                    writer.define_run(f"run{step}", [""])
                elif kind < 0.3 and live:
                    v, c, r = rng.choice(sorted(live))
                    writer.remove("calexp", DataId(visit=v, ccd=c), r)
                    live.discard((v, c, r))
                else:
                    rec = _rec(visit, ccd, run)._replace(size=step, created=f"t{step}")
                    prov = json.dumps({"step": step}) if rng.random() < 0.5 else None
                    writer.insert(rec, provenance=prov, replace=True)
                    live.add((visit, ccd, run))
        if step % 5 == 0:
            follower.refresh()
    follower.refresh()
    cold = _open(s3_root)
    want = _state(writer)
    assert len(want[0]) == len(live) > 0
    assert _state(follower) == want
    assert _state(cold) == want
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    table = DeltaTable(f"s3://{s3_root.path}/registry.delta", storage_options=writer._options)
    for version in range(1, table.version() + 1):  # every row names the commit that added it
        table.load_as_version(version)
        rows = table.to_pyarrow_table(columns=["version"])
        assert rows.num_rows == 0 or pc.max(rows["version"]).as_py() <= version
    for reg in (writer, follower, cold):
        reg.close()
