"""``rb reindex`` under faults never loses a row of the old registry (issue 17 point 2).

Faults: stray and unparsable files, malformed run markers and provenance sidecars, an insert that
raises at a chosen step of the rebuild, a failing swap, a reindex process killed with SIGKILL at
random moments, a deleted / zero-length / garbage registry. After each, the registry's rows (read
with plain ``sqlite3``, independent of repo_butler) must equal those before, and a complete
reindex afterwards must reproduce them. The long variants are marked ``slow``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from repo_configs import META_FILTER_VISIT_CCD as CONFIG

from repo_butler import Butler, Provenance
from repo_butler.errors import ConfigError, RegistryError
from repo_butler.registry.sqlite import SqliteRegistry
from repo_butler.reindex import BUILD_INFIX, reindex

REPO_ROOT = Path(__file__).parents[1]


def _make_repo(root: Path, n_visits: int = 3, n_ccds: int = 8) -> Path:
    with Butler.create(str(root), config=CONFIG) as butler:
        for visit in range(1, n_visits + 1):
            for ccd in range(n_ccds):
                butler.put({"v": visit, "c": ccd}, "meta", filter="g", visit=visit, ccd=ccd)
        prov = Provenance.build("task", {"x": 1})
        butler.put({"p": 1}, "meta", filter="r", visit=9, ccd=0, provenance=prov)
    with Butler(str(root), rerun="re") as rerun:
        rerun.put({"rerun": True}, "meta", filter="g", visit=1, ccd=0)
    with Butler(str(root), rerun="re:re2") as rerun:
        rerun.put({"rerun2": True}, "meta", filter="g", visit=1, ccd=1, provenance=prov)
    return root


def _rows(root: Path) -> dict[str, Any]:
    """The registry's content, read with plain sqlite3 (creation times left out)."""
    path = root / "registry.sqlite3"
    assert path.exists() and path.stat().st_size > 0, "registry lost"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        datasets = sorted(
            conn.execute(
                "SELECT d.dataset_type, d.run, d.data_id, d.path, d.size, d.checksum, "
                "d.provenance, p.record FROM datasets d LEFT JOIN provenance p "
                "ON p.dataset_id = d.id"
            ).fetchall()
        )
        runs = sorted(conn.execute("SELECT name, parents FROM runs").fetchall())
    finally:
        conn.close()
    return {"datasets": datasets, "runs": runs}


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if BUILD_INFIX in p.name)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return _make_repo(tmp_path / "repo")


def test_stray_huge_id_file_is_reported_not_fatal(repo: Path) -> None:
    before = _rows(repo)
    assert len(before["datasets"]) == 27
    stray = repo / "meta" / "g" / "99999999999999999999" / "m-000.json"
    stray.parent.mkdir(parents=True)
    stray.write_text("{}")
    arabic = repo / "meta" / "g" / "\u0660\u0660\u0660\u0660\u0660\u0660\u0663" / "m-000.json"
    arabic.parent.mkdir(parents=True)
    arabic.write_text("{}")
    report = reindex(str(repo))
    assert sorted(report.unrecognised) == sorted(str(p.relative_to(repo)) for p in (stray, arabic))
    assert report.total == 27 and report.runs == ["", "re", "re2"]
    assert _rows(repo) == before
    assert _leftovers(repo) == []


@pytest.mark.parametrize(
    ("relpath", "content", "reason"),
    [
        ("rerun/re/_run.json", b"{not json", "malformed run marker"),
        ("rerun/re/_run.json", b"[1, 2]", "malformed run marker"),
        ("rerun/re/_run.json", b'{"run": "other", "parents": []}', "names the run 'other'"),
        ("rerun/re/_run.json", b'{"format_version": 99, "run": "re"}', "malformed run marker"),
        ("meta/g/0000001/m-003.json.provenance.json", b"{broken", "invalid provenance"),
        ("meta/g/0000001/m-003.json.provenance.json", b'{"task": 5}', "invalid provenance"),
        ("meta/g/0000001/m-003.json.provenance.json", b"\xff\xfe", "cannot be read"),
        ("meta/r/0000009/m-000.json.provenance.json", b"[]", "invalid provenance"),
        (
            "meta/r/0000009/m-000.json.provenance.json",
            json.dumps({"schema_version": 99}).encode(),
            "invalid provenance",
        ),
    ],
)
def test_malformed_files_stop_reindex_before_any_change(
    repo: Path, relpath: str, content: bytes, reason: str
) -> None:
    before = _rows(repo)
    (repo / relpath).write_bytes(content)
    with pytest.raises(RegistryError) as info:
        reindex(str(repo))
    message = str(info.value)
    assert relpath in message and reason in message and "rb reindex" in message
    assert "\n" not in message
    assert _rows(repo) == before
    assert _leftovers(repo) == []
    with Butler(str(repo), rerun="re2") as butler:  # the repository still works
        assert butler.get("meta", filter="g", visit=1, ccd=1) == {"rerun2": True}


def test_cli_reports_malformed_marker_in_one_line(repo: Path) -> None:
    before = _rows(repo)
    (repo / "rerun" / "re" / "_run.json").write_text("{")
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("rb")), "reindex", str(repo)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "rerun/re/_run.json" in proc.stderr and proc.stderr.count("\n") == 1
    assert _rows(repo) == before


def _failing_insert(monkeypatch: pytest.MonkeyPatch, at: int) -> None:
    original = SqliteRegistry.insert
    calls = {"n": 0}

    def insert(self: SqliteRegistry, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == at:
            raise OSError(28, "No space left on device (injected)")
        original(self, *args, **kwargs)

    monkeypatch.setattr(SqliteRegistry, "insert", insert)


def _raising_inserts(repo: Path, steps: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    before = _rows(repo)
    for step in steps:
        with monkeypatch.context() as patch:
            _failing_insert(patch, step)
            with pytest.raises(OSError, match="injected"):
                reindex(str(repo))
        assert _rows(repo) == before, f"rows lost after a failure at insert {step}"
        assert _leftovers(repo) == []
    assert reindex(str(repo)).total == len(before["datasets"])
    assert _rows(repo) == before


def test_insert_failing_at_some_steps_keeps_old_registry(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _raising_inserts(repo, [1, 2, 14, 27], monkeypatch)


@pytest.mark.stress
def test_insert_failing_at_every_step_keeps_old_registry(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _raising_inserts(repo, list(range(1, 28)), monkeypatch)


def test_failing_swap_keeps_old_registry(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _rows(repo)
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if BUILD_INFIX in str(src):
            raise OSError(5, "I/O error (injected)")
        real_replace(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", replace)
        with pytest.raises(OSError, match="injected"):
            reindex(str(repo))
    assert _rows(repo) == before and _leftovers(repo) == []


def test_wal_of_a_killed_writer_is_folded_in_not_applied_to_the_new_file(repo: Path) -> None:
    # a writer killed after committing to the WAL (never checkpointed): its row must survive,
    # and its WAL must not be replayed over the new file
    child = (
        "import os, signal, sys; from repo_butler import Butler; "
        "b = Butler(sys.argv[1]); b.put({'late': 1}, 'meta', filter='i', visit=5, ccd=5); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    proc = subprocess.run([sys.executable, "-c", child, str(repo)], cwd=REPO_ROOT)
    assert proc.returncode == -signal.SIGKILL
    assert (repo / "registry.sqlite3-wal").stat().st_size > 0
    before = _rows(repo)
    assert len(before["datasets"]) == 28
    assert reindex(str(repo)).total == 28
    assert not (repo / "registry.sqlite3-wal").exists()
    assert _rows(repo) == before
    with Butler(str(repo)) as butler:
        assert butler.get("meta", filter="i", visit=5, ccd=5) == {"late": 1}


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_lost_registry_is_reported_not_read_as_empty(repo: Path, damage: str) -> None:
    before = _rows(repo)
    registry = repo / "registry.sqlite3"
    for suffix in ("-wal", "-shm"):
        Path(f"{registry}{suffix}").unlink(missing_ok=True)
    if damage == "delete":
        registry.unlink()
    else:
        registry.write_bytes(b"")
    for writeable in (True, False):
        with pytest.raises(RegistryError, match="rb reindex"):
            Butler(str(repo), writeable=writeable)
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("rb")), "query-datasets", str(repo), "meta"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert "rb reindex" in proc.stderr and "Traceback" not in proc.stderr
    assert (registry.exists() and registry.stat().st_size == 0) == (damage == "truncate")
    assert reindex(str(repo)).total == 27
    assert _rows(repo) == before


def test_garbage_registry_is_kept_aside(repo: Path) -> None:
    before = _rows(repo)
    registry = repo / "registry.sqlite3"
    for suffix in ("-wal", "-shm"):
        Path(f"{registry}{suffix}").unlink(missing_ok=True)
    registry.write_bytes(b"not a database" * 200)
    report = reindex(str(repo))
    assert report.kept_unreadable is not None
    assert Path(report.kept_unreadable).read_bytes() == b"not a database" * 200
    assert _rows(repo) == before


# -- killed reindex processes ---------------------------------------------------------------

_CHILD = "import sys; from repo_butler.reindex import reindex; reindex(sys.argv[1])"


def _killed_reindexes(root: Path, kills: int, seed: int) -> dict[str, int]:
    before = _rows(root)
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", _CHILD, str(root)], check=True, cwd=REPO_ROOT)
    duration = time.monotonic() - start
    assert _rows(root) == before
    rng = random.Random(seed)
    outcome = {"killed": 0, "finished": 0}
    for _ in range(kills):
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(root)], cwd=REPO_ROOT)
        time.sleep(rng.uniform(0.2, 1.1) * duration)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            outcome["killed"] += 1
        else:
            outcome["finished"] += 1
        proc.wait()
        assert _rows(root) == before, "a killed reindex lost registry rows"
        with Butler(str(root), writeable=False) as butler:
            in_root = [d for d in before["datasets"] if d[1] == ""]
            assert len(butler.query_datasets("meta", where="visit > 0")) == len(in_root)
    assert reindex(str(root)).total == len(before["datasets"])
    assert _rows(root) == before and _leftovers(root) == []
    return outcome


def test_killed_reindex_keeps_old_registry(tmp_path: Path) -> None:
    root = _make_repo(tmp_path / "repo", n_visits=10, n_ccds=20)
    outcome = _killed_reindexes(root, kills=4, seed=17)
    assert outcome["killed"] >= 1


@pytest.mark.stress
def test_killed_reindex_keeps_old_registry_many_times(tmp_path: Path) -> None:
    root = _make_repo(tmp_path / "repo", n_visits=20, n_ccds=40)
    outcome = _killed_reindexes(root, kills=40, seed=1717)
    assert outcome["killed"] >= 20


@pytest.mark.stress
def test_random_fault_mix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Random sequences of the faults above on one repository; the rows never change."""
    root = _make_repo(tmp_path / "repo")
    before = _rows(root)
    rng = random.Random(2026)
    faults: list[Callable[[], None]] = []

    def bad_marker() -> None:
        marker = root / "rerun" / "re2" / "_run.json"
        good = marker.read_bytes()
        marker.write_bytes(good[: rng.randrange(len(good))])
        with pytest.raises(RegistryError):
            reindex(str(root))
        marker.write_bytes(good)

    def bad_sidecar() -> None:
        sidecar = root / "meta" / "r" / "0000009" / "m-000.json.provenance.json"
        good = sidecar.read_bytes()
        sidecar.write_bytes(good[: rng.randrange(len(good))])
        with pytest.raises(RegistryError):
            reindex(str(root))
        sidecar.write_bytes(good)

    def stray() -> None:
        path = root / "meta" / "g" / str(rng.randrange(10**19, 10**25)) / "m-001.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
        assert str(path.relative_to(root)) in reindex(str(root)).unrecognised

    def failing_insert() -> None:
        with monkeypatch.context() as patch:
            _failing_insert(patch, rng.randrange(1, 28))
            with pytest.raises(OSError):
                reindex(str(root))

    faults += [bad_marker, bad_sidecar, stray, failing_insert]
    for _ in range(60):
        rng.choice(faults)()
        assert _rows(root) == before
        assert _leftovers(root) == []


def test_malformed_stored_provenance_is_an_error_not_a_traceback(repo: Path) -> None:
    # a record stored unvalidated by an older reindex: reading it says what to do
    conn = sqlite3.connect(repo / "registry.sqlite3")
    with conn:
        conn.execute("UPDATE provenance SET record = '{broken'")
    conn.close()
    with (
        Butler(str(repo), writeable=False) as butler,
        pytest.raises(ConfigError, match=r"malformed.*rb reindex"),
    ):
        butler.get_provenance("meta", filter="r", visit=9, ccd=0)
    data_id = ["--data-id", "filter=r", "--data-id", "visit=9", "--data-id", "ccd=0"]
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("rb")), "provenance", str(repo), "meta", *data_id],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "malformed" in proc.stderr and proc.stderr.count("\n") == 1
    reindex(str(repo))  # the sidecar is intact: reindex restores the record
    with Butler(str(repo), writeable=False) as butler:
        assert butler.get_provenance("meta", filter="r", visit=9, ccd=0) is not None


@pytest.mark.postgres
def test_postgres_reindex_is_one_transaction(
    postgres_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from repo_butler.registry.postgres import PostgresRegistry

    registry = {"type": "postgresql", "url": postgres_dsn, "schema": "reindex_faults"}
    root = tmp_path / "pg"
    with Butler.create(str(root), config={**CONFIG, "registry": registry}) as butler:
        for ccd in range(6):
            butler.put({"c": ccd}, "meta", filter="g", visit=1, ccd=ccd)

    def rows() -> list[tuple[Any, ...]]:
        with Butler(str(root), writeable=False) as b:
            return sorted((r.path, r.checksum) for r in b.registry.all_records())

    before = rows()
    assert len(before) == 6
    original = PostgresRegistry.insert
    calls = {"n": 0}

    def insert(self: PostgresRegistry, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(5, "injected")
        original(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(PostgresRegistry, "insert", insert)
        with pytest.raises(OSError, match="injected"):
            reindex(str(root))
    assert rows() == before  # the DELETEs and first inserts were rolled back
    assert reindex(str(root)).total == 6
    assert rows() == before


def test_registry_in_use_is_not_replaced(repo: Path) -> None:
    before = _rows(repo)
    reader = sqlite3.connect(repo / "registry.sqlite3")
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM datasets").fetchone()  # holds a read snapshot
        with pytest.raises(RegistryError, match="another process has it open"):
            reindex(str(repo))
        assert _leftovers(repo) == []
    finally:
        reader.close()
    assert _rows(repo) == before
    assert reindex(str(repo)).total == len(before["datasets"])
