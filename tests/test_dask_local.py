"""make-warp on a local Dask cluster: same bytes as in-process, reads per unit, CLI, Ctrl-C."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from repo_copy import copy_repo
from scale_support import write_small_repo

from repo_butler import Butler
from repo_butler.maintenance import verify
from warping.task.planning import plan_units
from warping.task.runner import run_make_warps

pytestmark = pytest.mark.slow

IDS = [{"tract": 0, "patch": "5,4", "filter": "HSC-I"}, {"tract": 0, "patch": "5,5"}]
RB = str(Path(sys.executable).with_name("rb"))


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A two-worker local cluster (processes, one thread each) for the whole module."""
    from distributed import LocalCluster

    from warping.task.dask_plugin import WORKER_ENV

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        env=dict(WORKER_ENV), silence_logs=logging.WARNING, host="127.0.0.1",
    ) as c:  # fmt: skip
        yield c.scheduler_address


@pytest.fixture(scope="module")
def small_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dask") / "repo"
    write_small_repo(str(root)).close()
    return root


def _copy(root: Path, dest: Path) -> Path:
    return copy_repo(root, dest)


def comparable_provenance(prov: dict[str, Any], *, checksums: bool = True) -> dict[str, Any]:
    """A provenance record without what legitimately differs between runs (times, host), and
    without checksums if ``checksums`` is False (stores of different checksum algorithms)."""
    out = {k: v for k, v in prov.items() if k not in ("start", "end", "host")}
    if not checksums:
        out["inputs"] = [{k: v for k, v in i.items() if k != "checksum"} for i in out["inputs"]]
        out["output"] = {k: v for k, v in out["output"].items() if k != "checksum"}
    return out


def assert_same_warps(a: Butler, b: Butler, units: list[Any], *, checksums: bool = True) -> None:
    """Pixels byte-identical, provenance equal apart from times and hosts (and checksums, if
    ``checksums`` is False)."""
    assert units
    for unit in units:
        wa = a.get("deepCoadd_directWarp", unit.data_id)
        wb = b.get("deepCoadd_directWarp", unit.data_id)
        for plane in ("image", "variance", "mask"):
            x, y = getattr(wa, plane), getattr(wb, plane)
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), (unit.key, plane)
        pa = a.get_provenance_dict("deepCoadd_directWarp", unit.data_id)
        pb = b.get_provenance_dict("deepCoadd_directWarp", unit.data_id)
        assert comparable_provenance(pa, checksums=checksums) == comparable_provenance(
            pb, checksums=checksums
        ), unit.key


def test_dask_run_equals_in_process_run(small_repo: Path, tmp_path: Path, cluster: str) -> None:
    serial_root = _copy(small_repo, tmp_path / "serial")
    dask_root = _copy(small_repo, tmp_path / "dask")
    serial = run_make_warps(Butler(str(serial_root), rerun="w"), IDS)
    assert serial.executor == "SerialExecutor" and serial.n_failed == 0
    out = Butler(str(dask_root), rerun="w")
    batch = run_make_warps(out, IDS, scheduler=cluster)
    assert batch.executor == "DaskExecutor" and batch.n_failed == 0
    assert batch.n_units == serial.n_units >= 4
    assert len(batch.worker_peak_rss_mb) == 2  # both workers took units
    plan = plan_units(out, IDS)
    assert_same_warps(Butler(str(serial_root), rerun="w"), out, plan.units)
    # each calexp was read once by each unit that uses it, wherever the unit ran
    expected: Counter[str] = Counter(c.calexp.path for u in plan.units for c in u.ccds)
    reads = {p: n for p, n in batch.reads.items() if "/corr/CORR-" in p}
    assert reads == dict(expected)
    assert verify(out).problems == []


def test_cli_jobs_two_prints_dashboard_and_reuses(small_repo: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from repo_butler_cli.main import app

    root = _copy(small_repo, tmp_path / "cli")
    argv = ["make-warp", str(root), "--rerun", "c", "--id", "tract=0", "patch=5,4^5,5",
            "filter=HSC-I", "--jobs", "2", "--json"]  # fmt: skip
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert "Dask dashboard: http://127.0.0.1:" in result.output
    doc = json.loads(result.stdout[result.stdout.index("{") :])
    assert doc["executor"] == "DaskExecutor" and doc["units"] >= 4 and doc["failed"] == []
    again = CliRunner().invoke(app, [*argv, "--reuse"])
    assert again.exit_code == 0, again.output
    doc2 = json.loads(again.stdout[again.stdout.index("{") :])
    assert doc2["units"] == 0 and doc2["reused"] == doc["units"]


def _registered_warps(butler: Butler) -> int:
    return sum(1 for r in butler.query_datasets("deepCoadd_directWarp") if r.run == butler.run)


def test_ctrl_c_cancels_cleanly_and_reuse_completes(small_repo: Path, tmp_path: Path) -> None:
    root = _copy(small_repo, tmp_path / "sigint")
    total = len(plan_units(Butler(str(root)), [{"tract": 0}]).units)
    cmd = [RB, "make-warp", str(root), "--rerun", "i", "--id", "tract=0", "--jobs", "2"]
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, env=env)  # fmt: skip
    try:
        warp_dir = root / "rerun" / "i" / "deepCoadd"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if warp_dir.exists() and any(warp_dir.rglob("warp-*.fits")):
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = err.decode()
    assert proc.returncode == 130, text
    assert "Interrupted" in text
    butler = Butler(str(root), rerun="i")
    report = verify(butler)  # registered files intact, no file outside the registry
    assert report.problems == [], report.to_dict()
    done = _registered_warps(butler)
    assert 1 <= done < total
    rerun = [*cmd[:-2], "--jobs", "1", "--reuse", "--json"]  # in-process: no second cluster
    again = subprocess.run(rerun, capture_output=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr.decode()
    doc = json.loads(again.stdout)
    assert doc["reused"] == done and doc["units"] == total - done
    butler = Butler(str(root), rerun="i")
    assert _registered_warps(butler) == total
    assert verify(butler).problems == []


def test_storage_options_hidden_from_task_reprs() -> None:
    from repo_butler import WorkerIO

    io = WorkerIO("s3://b/r", {"key": "AKIDEXAMPLE", "secret": "s3cr3t-value"}, {}, "")
    text = repr(io)
    assert "s3cr3t-value" not in text and "AKIDEXAMPLE" not in text and "secret" in text


def test_in_process_for_a_single_unit(small_repo: Path, tmp_path: Path) -> None:
    root = _copy(small_repo, tmp_path / "one")
    batch = run_make_warps(Butler(str(root), rerun="o"), IDS[:1],
                           select_ids=[{"visit": 903988}], jobs=2)  # fmt: skip
    assert batch.n_units == 1 and batch.executor == "SerialExecutor"
    assert batch.patches[0].visits[0].status == "written"
    assert np.isfinite(batch.driver_ms_per_unit)
