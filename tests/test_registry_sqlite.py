"""SQLite registry: several writer processes at once, schema upgrade, run bookkeeping."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from repo_configs import META_VISIT_CCD as CONFIG

from repo_butler import Butler, DataId
from repo_butler.config import RepoConfig, default_config
from repo_butler.errors import DatasetExistsError
from repo_butler.registry import DatasetRecord, SqliteRegistry

N_WORKERS = 4
PER_WORKER = 60


def _writer(root: str, worker: int, barrier: Any, shared_ids: bool) -> tuple[int, int, list[str]]:
    """Put PER_WORKER datasets; return (stored, already-existing, other errors)."""
    stored = exists = 0
    errors: list[str] = []
    with Butler(root) as butler:
        barrier.wait()
        for i in range(PER_WORKER):
            visit = i if shared_ids else worker * 1000 + i
            try:
                butler.put({"w": worker, "i": i}, "meta", visit=visit, ccd=i % 7)
                stored += 1
            except DatasetExistsError:
                exists += 1
            except Exception as err:  # anything else ("database is locked") is a failure
                errors.append(f"{type(err).__name__}: {err}")
    return stored, exists, errors


def _run_writers(root: str, shared_ids: bool) -> list[tuple[int, int, list[str]]]:
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(N_WORKERS)
        with ctx.Pool(N_WORKERS) as pool:
            args = [(root, w, barrier, shared_ids) for w in range(N_WORKERS)]
            return pool.starmap(_writer, args)


@pytest.mark.slow
def test_four_writer_processes_lose_nothing(tmp_path: Path) -> None:
    root = str(tmp_path / "repo")
    Butler.create(root, config=CONFIG).close()
    results = _run_writers(root, shared_ids=False)
    assert [r[2] for r in results] == [[]] * N_WORKERS
    assert [r[0] for r in results] == [PER_WORKER] * N_WORKERS
    with Butler(root) as butler:
        refs = butler.query_datasets("meta")
        assert len(refs) == N_WORKERS * PER_WORKER
        for ref in refs[::37]:
            got = butler.get("meta", ref.data_id)
            assert got["w"] * 1000 + got["i"] == ref.data_id["visit"]
    conn = sqlite3.connect(str(tmp_path / "repo" / "registry.sqlite3"))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT count(*) FROM datasets").fetchone()[0] == N_WORKERS * PER_WORKER


@pytest.mark.slow
def test_racing_writers_on_same_data_ids_store_each_once(tmp_path: Path) -> None:
    root = str(tmp_path / "repo")
    Butler.create(root, config=CONFIG).close()
    results = _run_writers(root, shared_ids=True)
    assert [r[2] for r in results] == [[]] * N_WORKERS
    assert sum(r[0] for r in results) == PER_WORKER
    assert sum(r[1] for r in results) == PER_WORKER * (N_WORKERS - 1)
    with Butler(root) as butler:
        assert len(butler.query_datasets("meta")) == PER_WORKER


def test_registry_adds_columns_for_new_dimensions(tmp_path: Path) -> None:
    config = RepoConfig.from_mapping(default_config())
    db = str(tmp_path / "r.sqlite3")
    SqliteRegistry(db, config.universe).close()
    raw = default_config()
    raw["dimensions"]["detector_group"] = {"type": "str"}
    bigger = RepoConfig.from_mapping(raw).universe
    registry = SqliteRegistry(db, bigger)
    record = DatasetRecord("x", DataId(detector_group="a"), "", "p", 1, "sha256:0", "t", None)
    registry.insert(record)
    assert registry.query_data_ids(["detector_group"], [""]) == [DataId(detector_group="a")]
    with pytest.raises(DatasetExistsError):
        registry.insert(record)
    registry.define_run("r", ["", "q"])
    assert registry.runs() == {"": (), "r": ("", "q")}
    registry.close()


def test_read_only_butler_leaves_the_registry_file_byte_identical(tmp_path: Path) -> None:
    """A read-only open changes nothing (not even the journal mode), yet reads everything."""
    import hashlib
    import shutil

    from repo_butler.errors import RegistryError

    repo = tmp_path / "repo"
    shutil.copytree(Path(__file__).parent / "fixtures" / "repo-v1", repo)
    db = repo / "registry.sqlite3"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    with Butler(str(repo), writeable=False) as butler:
        refs = butler.query_datasets("calexp")
        assert refs and all(r.dataset_type == "calexp" for r in refs)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in repo.iterdir() if p.name.startswith("registry")) == [
        "registry.sqlite3"
    ]
    # a writeable open may upgrade it (WAL): the read-only path is what keeps it untouched
    db.unlink()
    with pytest.raises(RegistryError, match=r"no registry at .*rb reindex"):
        Butler(str(repo), writeable=False)


def _read_only_child(repo: str, as_nobody: bool, queue: Any) -> None:
    import os

    try:
        if as_nobody:  # root ignores file modes: become an ordinary user
            os.setgid(65534)
            os.setuid(65534)
        with Butler(repo, writeable=False) as butler:
            queue.put(("ok", len(butler.query_datasets("calexp"))))
    except Exception as err:  # reported to the parent, which asserts on it
        queue.put(("error", f"{type(err).__name__}: {err}"))


def test_read_only_butler_opens_a_repository_on_read_only_storage(tmp_path: Path) -> None:
    """A WAL registry in a directory the reader cannot write: SQLite cannot create the WAL index
    (-shm) a read-only connection needs, so the registry is read as an immutable file instead of
    failing with 'attempt to write a readonly database'."""
    import gc
    import os
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(Path(__file__).parent / "fixtures" / "repo-v1", repo)
    with Butler(str(repo)) as writer:  # a writeable open switches the registry to WAL
        n = len(writer.query_datasets("calexp"))
    gc.collect()  # the last connection closes: SQLite removes -wal and -shm
    assert n > 0 and not (repo / "registry.sqlite3-shm").exists()
    modes = []
    if os.geteuid() == 0:  # let the ordinary user reach it through pytest's private dirs
        for parent in tmp_path.parents:
            if parent == Path(parent.anchor) or parent.stat().st_uid != 0:
                break
            modes.append((parent, parent.stat().st_mode))
            parent.chmod(parent.stat().st_mode | 0o005)
        modes.append((tmp_path, tmp_path.stat().st_mode))
        tmp_path.chmod(0o755)
    for path in [repo, *repo.rglob("*")]:
        modes.append((path, path.stat().st_mode))
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        proc = ctx.Process(target=_read_only_child, args=(str(repo), os.geteuid() == 0, queue))
        proc.start()
        proc.join(60)
        assert queue.get(timeout=5) == ("ok", n)
    finally:
        for path, mode in modes:
            path.chmod(mode)
