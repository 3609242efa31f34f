"""What crashed writers leave behind is reported by ``rb verify`` and removed by ``rb cleanup``.

Real crashes: a writer process is SIGKILLed while its temporary file is being written; a real
multipart upload is started on SeaweedFS and never completed; a process writing to an S3
repository exits through ``os._exit`` (as Dask and multiprocessing workers do).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from repo_configs import META_VISIT_CCD as CONFIG
from servers.fixtures import S3Root
from typer.testing import CliRunner

from repo_butler import Butler
from repo_butler.datastore import TEMP_MARKER
from repo_butler.errors import RepositoryNotFoundError
from repo_butler.leftovers import cleanup, find_leftovers, stale_registry_caches
from repo_butler.maintenance import verify
from repo_butler_cli.main import app

_SLOW_WRITER = """
import sys
from repo_butler.storage import open_datastore
store = open_datastore(sys.argv[1])
store.put_bytes("meta/0000001/m-001.json", bytes(600 * 2**20))
"""


def _kill_mid_write(repo: Path) -> Path:
    """Start a process writing 600 MiB and SIGKILL it once its temporary file exists."""
    target = repo / "meta" / "0000001"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(repo)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            temps = list(target.glob(f"{TEMP_MARKER}*")) if target.is_dir() else []
            if temps and temps[0].stat().st_size > 0:
                proc.send_signal(signal.SIGKILL)
                break
            if proc.poll() is not None:
                pytest.fail("the writer finished before it could be killed")
            time.sleep(0.002)
        else:
            pytest.fail("the writer never created its temporary file")
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    (temp,) = target.glob(f"{TEMP_MARKER}*")
    assert not (target / "m-001.json").exists()  # never a partial file at the final path
    return temp


def test_killed_local_writer_leftover_is_reported_and_cleaned(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    Butler.create(repo, config=CONFIG).close()
    temp = _kill_mid_write(repo)
    rel = temp.relative_to(repo).as_posix()
    with Butler(repo, writeable=False) as butler:
        report = verify(butler)
        assert [(p.kind, p.path) for p in report.problems] == [("temp_file", rel)]
        assert "a writer may still be running" in report.problems[0].detail
        # a young temporary file may be a live writer's: the default bound keeps it
        kept = cleanup(butler.datastore)
        assert [x.path for x in kept.kept] == [rel] and kept.removed == []
        assert temp.exists()
        time.sleep(0.3)
        dry = cleanup(butler.datastore, min_age=0.2, dry_run=True)
        assert [x.path for x in dry.removed] == [rel] and temp.exists()
        done = cleanup(butler.datastore, min_age=0.2)
        assert [x.path for x in done.removed] == [rel]
        assert not temp.exists()
        assert verify(butler).ok


def test_cli_verify_reports_and_cleanup_removes(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    Butler.create(repo, config=CONFIG).close()
    temp = _kill_mid_write(repo)
    old = time.time() - 7200
    os.utime(temp, (old, old))  # as if the crash was two hours ago
    runner = CliRunner()
    result = runner.invoke(app, ["verify", str(repo)])
    assert result.exit_code == 1, result.output
    assert "temp_file" in result.output and "`rb cleanup` removes it" in result.output
    result = runner.invoke(app, ["cleanup", str(repo), "--format", "json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert [x["kind"] for x in out["removed"]] == ["temp_file"]
    assert out["removed"][0]["age_s"] >= 7200
    assert not temp.exists()
    result = runner.invoke(app, ["verify", str(repo)])
    assert result.exit_code == 0, result.output
    missing = runner.invoke(app, ["cleanup", str(tmp_path / "nothing")])
    assert isinstance(missing.exception, RepositoryNotFoundError)
    assert "no repository" in str(missing.exception)


@pytest.mark.s3
def test_incomplete_multipart_upload_is_reported_and_aborted(s3_root: S3Root) -> None:
    opts = s3_root.storage_options
    with Butler.create(s3_root.url, config=CONFIG, storage_options=opts) as butler:
        store = butler.datastore
        key = store._key("meta/0000002/m-003.json")  # type: ignore[attr-defined]
        objects = store.objects  # type: ignore[attr-defined]
        started = objects._call("create_multipart_upload", Key=key)
        objects._call(
            "upload_part",
            Key=key,
            UploadId=started["UploadId"],
            PartNumber=1,
            Body=bytes(5 * 2**20),
        )
        report = verify(butler)
        assert [(p.kind, p.path) for p in report.problems] == [
            ("incomplete_upload", "meta/0000002/m-003.json")
        ]
        assert cleanup(store).removed == []  # too young: may be a live writer's
        time.sleep(1.1)
        done = cleanup(store, min_age=1.0)
        assert [x.kind for x in done.removed] == ["incomplete_upload"]
        assert find_leftovers(store) == []
        assert verify(butler).ok
    bucket = s3_root.path.split("/")[0]
    pending = s3_root.server.client().list_multipart_uploads(Bucket=bucket, Prefix=key)
    assert not [u for u in pending.get("Uploads", []) if u["Key"] == key]


def _exit_hard(url: str, options: dict[str, object], tmpdir: str, ccd: int) -> None:
    tempfile.tempdir = tmpdir
    butler = Butler(url, storage_options=options)
    butler.put({"x": ccd}, "meta", visit=1, ccd=ccd)
    os._exit(0)  # like a Dask/multiprocessing worker: no finalizers, no atexit


@pytest.mark.s3
def test_registry_caches_of_hard_exited_writers_are_swept(
    s3_root: S3Root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = tmp_path / "tmp"
    cache_dir.mkdir()
    Butler.create(s3_root.url, config=CONFIG, storage_options=s3_root.storage_options).close()
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(
            target=_exit_hard, args=(s3_root.url, s3_root.storage_options, str(cache_dir), ccd)
        )
        for ccd in range(3)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    # os._exit skipped each one's clean-up: its cache stays until a registry opened later on
    # this machine sweeps it (a child that started after another exited already swept that one)
    left = sorted(p.name for p in cache_dir.iterdir())
    assert left, "os._exit should leave the last writers' registry caches"
    assert {name.split("-")[2] for name in left} <= {str(p.pid) for p in procs}
    assert sorted(Path(p).name for p in stale_registry_caches(str(cache_dir))) == left
    # the next Butler on this machine sweeps them and keeps only its own
    monkeypatch.setattr(tempfile, "tempdir", str(cache_dir))
    with Butler(s3_root.url, storage_options=s3_root.storage_options) as butler:
        assert [butler.get("meta", visit=1, ccd=c) for c in range(3)] == [
            {"x": c} for c in range(3)
        ]
        mine = [p.name for p in cache_dir.iterdir()]
        assert len(mine) == 1 and mine[0].startswith(f"rb-registry-{os.getpid()}-")
        assert stale_registry_caches(str(cache_dir)) == []
