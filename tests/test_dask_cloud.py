"""make-warp at scale against a bucket and against a separately started Dask cluster.

* A repository simulated into the SeaweedFS bucket is warped over two patches by a two-worker
  local Dask cluster reading and writing ``s3://``; its warps are byte-identical in pixels (and
  equal in provenance apart from times and hosts) to the same run on a local repository.
* ``dask scheduler`` and ``dask worker`` run as separate processes on 127.0.0.1 and
  ``--dask-scheduler`` points at them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from repo_copy import copy_repo
from scale_support import write_small_repo
from servers._ports import free_port
from test_dask_local import assert_same_warps
from typer.testing import CliRunner

from repo_butler import Butler
from repo_butler.checksums import checksum_matches
from repo_butler.maintenance import verify
from warping.task.planning import plan_units

pytestmark = pytest.mark.slow

ID_ARGS = ["--id", "tract=0", "patch=5,4^5,5", "filter=HSC-I"]
IDS = [{"tract": 0, "patch": "5,4", "filter": "HSC-I"}, {"tract": 0, "patch": "5,5",
                                                          "filter": "HSC-I"}]  # fmt: skip
DASK = str(Path(sys.executable).with_name("dask"))


def _s3_args(opts: dict[str, Any]) -> list[str]:
    endpoint = opts["client_kwargs"]["endpoint_url"]
    region = opts["client_kwargs"]["region_name"]
    return ["-S", f"key={opts['key']}", "-S", f"secret={opts['secret']}",
            "-S", f"client_kwargs.endpoint_url={endpoint}",
            "-S", f"client_kwargs.region_name={region}"]  # fmt: skip


@pytest.mark.s3
def test_s3_repo_on_two_workers_matches_local_repo(s3_root: Any, tmp_path: Path) -> None:
    from repo_butler_cli.main import app

    opts = s3_root.storage_options
    write_small_repo(s3_root.url, storage_options=opts).close()
    local = tmp_path / "local"
    write_small_repo(str(local)).close()
    # same simulated inputs in both places (the simulation is seeded)
    s3_in = Butler(s3_root.url, storage_options=opts, writeable=False)
    local_in = Butler(str(local))
    s3_sums = {r.path: r.checksum for r in s3_in.query_datasets("calexp")}
    assert s3_sums.keys() == {r.path for r in local_in.query_datasets("calexp")}
    for path, checksum in s3_sums.items():  # S3 records SHA-256, local stores BLAKE3
        assert checksum.startswith("sha256:")
        assert checksum_matches((local / path).read_bytes(), checksum)
    runner = CliRunner()
    common = ["--rerun", "w", *ID_ARGS, "--jobs", "2", "--json"]
    res_s3 = runner.invoke(app, ["make-warp", s3_root.url, *common, *_s3_args(opts)])
    assert res_s3.exit_code == 0, res_s3.output
    res_local = runner.invoke(app, ["make-warp", str(local), *common])
    assert res_local.exit_code == 0, res_local.output
    doc = json.loads(res_s3.stdout[res_s3.stdout.index("{") :])
    assert doc["executor"] == "DaskExecutor" and len(doc["worker_peak_rss_mb"]) == 2
    assert opts["secret"] not in res_s3.output  # not in progress, summary or JSON

    s3_out = Butler(s3_root.url, rerun="w", storage_options=opts, writeable=False)
    local_out = Butler(str(local), rerun="w")
    units = plan_units(local_out, IDS).units
    assert len(units) >= 4 and doc["units"] == len(units)
    assert_same_warps(local_out, s3_out, units, checksums=False)  # SHA-256 vs BLAKE3
    for unit in units:  # the files themselves are identical too
        a = s3_out.get_ref("deepCoadd_directWarp", unit.data_id)
        b = local_out.get_ref("deepCoadd_directWarp", unit.data_id)
        assert a.uri.startswith("s3://") and a.size == b.size
        assert checksum_matches((local / b.path).read_bytes(), a.checksum)
    assert verify(s3_out).problems == []
    # nothing in the bucket carries the secret (sidecars, registry)
    fs = s3_root.server.filesystem()
    for key in fs.find(s3_root.path):
        if key.endswith((".json", ".yaml")):
            assert opts["secret"].encode() not in fs.cat_file(key), key


@pytest.fixture
def dask_cluster_processes() -> Iterator[str]:
    """``dask scheduler`` + one ``dask worker`` (two single-threaded processes), by PID."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env,
        ),
    ]  # fmt: skip
    try:
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                Client(address, timeout="2s").close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        procs.append(subprocess.Popen(
            [DASK, "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard",
             "--host", "127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env,
        ))  # fmt: skip
        with Client(address, timeout="10s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_external_scheduler_and_worker_processes(
    dask_cluster_processes: str, tmp_path: Path
) -> None:
    from repo_butler_cli.main import app

    a = tmp_path / "a"
    write_small_repo(str(a)).close()
    b = tmp_path / "b"
    copy_repo(a, b)
    argv = ["make-warp", str(a), "--rerun", "w", *ID_ARGS, "--json"]
    result = CliRunner().invoke(app, [*argv, "--dask-scheduler", dask_cluster_processes])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout[result.stdout.index("{") :])
    assert doc["executor"] == "DaskExecutor"
    # the units ran in the worker processes, not in this one
    workers = set(doc["worker_peak_rss_mb"])
    assert len(workers) == 2 and all(not w.endswith(f":{os.getpid()}") for w in workers)
    serial = CliRunner().invoke(app, ["make-warp", str(b), "--rerun", "w", *ID_ARGS])
    assert serial.exit_code == 0, serial.output
    out = Butler(str(a), rerun="w")
    assert_same_warps(Butler(str(b), rerun="w"), out, plan_units(out, IDS).units)
    assert verify(out).problems == []
