"""Parent repositories (issue 25) in buckets: make-warp reads calexps from a bucket it may only
read and writes to another bucket (or to local disk) with other credentials.

One SeaweedFS server with three identities: an admin that builds the input repository in bucket
A, a reader (read and list only) and a scoped identity that may use bucket B and nothing else.
The reader's options go to the parent with ``--parent-option``, the scoped identity's to the
output with ``-S``, so any write to A is refused by the server itself; the object listing of A
(keys, sizes, ETags) is compared before and after.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cli_support import one_error_line, run_rb
from repo_configs import META_VISIT_CCD
from scale_support import write_small_repo
from servers.seaweed import cli_flags
from test_dask_local import comparable_provenance
from typer.testing import CliRunner

from repo_butler import Butler
from repo_butler.errors import StorageError
from warping.task.planning import plan_units

pytestmark = [pytest.mark.s3, pytest.mark.slow]

ID_ARGS = ["--id", "tract=0", "patch=5,4", "filter=HSC-I"]
IDS = [{"tract": 0, "patch": "5,4", "filter": "HSC-I"}]


def _listing(server: Any, prefix: str) -> dict[str, tuple[int, str]]:
    fs = server.filesystem()
    found = fs.find(prefix, detail=True)
    return {key: (info["size"], info.get("ETag", "")) for key, info in found.items()}


@pytest.fixture(scope="module")
def input_bucket(seaweed: Any) -> Any:
    """The small simulation in bucket A, written by the admin identity."""
    url = seaweed.url(f"in-{uuid.uuid4().hex[:8]}")
    write_small_repo(url, storage_options=seaweed.storage_options()).close()
    return url


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Butler:
    """The same simulation in a writable local repository, warped in place (rerun w)."""
    root = tmp_path_factory.mktemp("writable") / "repo"
    write_small_repo(str(root)).close()
    result = CliRunner().invoke(
        __import__("repo_butler_cli.main", fromlist=["app"]).app,
        ["make-warp", str(root), "--rerun", "w", *ID_ARGS],
    )
    assert result.exit_code == 0, result.output
    return Butler(str(root), rerun="w")


def _assert_same_as_reference(out: Butler, reference: Butler, parent_url: str) -> None:
    units = plan_units(reference, IDS).units
    assert len(units) >= 2
    for unit in units:
        mine = out.get("deepCoadd_directWarp", unit.data_id)
        ref = reference.get("deepCoadd_directWarp", unit.data_id)
        for plane in ("image", "variance", "mask"):
            assert getattr(mine, plane).tobytes() == getattr(ref, plane).tobytes(), plane
        pm = out.get_provenance_dict("deepCoadd_directWarp", unit.data_id)
        pr = reference.get_provenance_dict("deepCoadd_directWarp", unit.data_id)
        assert pm is not None and pr is not None
        assert {i.get("repository") for i in pm["inputs"]} == {parent_url}
        for i in pm["inputs"]:
            i.pop("repository")
        assert comparable_provenance(pm, checksums=False) == comparable_provenance(
            pr, checksums=False
        )


def test_make_warp_reads_a_read_only_bucket_and_writes_to_another(
    seaweed: Any, input_bucket: str, reference: Butler, tmp_path: Path
) -> None:
    from repo_butler_cli.main import app

    before = _listing(seaweed, input_bucket.removeprefix("s3://"))
    reader = seaweed.storage_options(read_only=True)
    scoped = seaweed.storage_options(scoped=True)
    out_url = f"s3://{seaweed.output_bucket}/out-{uuid.uuid4().hex[:8]}"
    argv = ["make-warp", input_bucket, "--output", out_url, "--rerun", "w", *ID_ARGS,
            "--jobs", "2", "--json", *cli_flags(scoped),
            *cli_flags(reader, "--parent-option", input_bucket)]  # fmt: skip
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout[result.stdout.index("{") :])
    assert doc["executor"] == "DaskExecutor"  # workers read A and write B themselves
    for secret in (reader["secret"], scoped["secret"]):
        assert secret not in result.output
    assert _listing(seaweed, input_bucket.removeprefix("s3://")) == before

    with Butler(
        out_url, rerun="w", storage_options=scoped, parent_options={input_bucket: reader}
    ) as out:
        _assert_same_as_reference(out, reference, input_bucket)
        calexps = out.query_datasets("calexp")
        assert calexps and {r.repository for r in calexps} == {input_bucket}
    # again with --reuse: nothing is redone, nothing is written to A
    result = CliRunner().invoke(app, [*argv, "--reuse"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.index("{") :])["reused"] >= 2
    assert _listing(seaweed, input_bucket.removeprefix("s3://")) == before

    # and to local disk: the same warps
    local = tmp_path / "out"
    argv = ["make-warp", input_bucket, "--output", str(local), "--rerun", "w", *ID_ARGS,
            *cli_flags(reader, "--parent-option", input_bucket)]  # fmt: skip
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    with Butler(str(local), rerun="w", parent_options={input_bucket: reader}) as out:
        _assert_same_as_reference(out, reference, input_bucket)
    assert _listing(seaweed, input_bucket.removeprefix("s3://")) == before


def test_credentials_that_cannot_read_the_parent_fail_fast_and_clearly(
    seaweed: Any, input_bucket: str, tmp_path: Path
) -> None:
    reader = seaweed.storage_options(read_only=True)
    out = tmp_path / "out"
    made = run_rb("create", str(out), "--parent", input_bucket,
                  *cli_flags(reader, "--parent-option", input_bucket))  # fmt: skip
    assert made.returncode == 0, made.stderr
    wrong = {**reader, "secret": "not-the-secret"}
    t0 = time.perf_counter()
    bad = run_rb("query-datasets", str(out), "calexp",
                 *cli_flags(wrong, "--parent-option", input_bucket))  # fmt: skip
    seconds = time.perf_counter() - t0
    line = one_error_line(bad)
    assert f"parent repository {input_bucket}" in line and "credentials" in line, line
    assert "not-the-secret" not in bad.stderr
    assert seconds < 5 + 2.5, seconds  # (+ the interpreter's start-up)
    scoped = seaweed.storage_options(scoped=True)  # may not read bucket A at all
    bad = run_rb("query-datasets", str(out), "calexp",
                 *cli_flags(scoped, "--parent-option", input_bucket))  # fmt: skip
    assert f"parent repository {input_bucket}" in one_error_line(bad)


def test_a_parent_that_goes_away_mid_run_fails_cleanly(
    seaweed_factory: Any, tmp_path: Path
) -> None:
    server = seaweed_factory()
    url = server.url("in")
    quick = {"connect_timeout": 1, "read_timeout": 2, "retries": {"max_attempts": 1}}
    opts = server.storage_options(config_kwargs=quick)
    with Butler.create(url, config=META_VISIT_CCD, storage_options=server.storage_options()) as b:
        b.put_many([({"ccd": c}, "meta", {"visit": 1, "ccd": c}) for c in range(3)])
    out = Butler.create(
        str(tmp_path / "out"),
        config={**META_VISIT_CCD, "parents": [{"url": url}]},
        parent_options={url: opts},
    )
    ref = out.get_ref("meta", visit=1, ccd=2)
    assert out.get(ref) == {"ccd": 2}
    server.kill()  # the parent's server dies mid-run
    t0 = time.perf_counter()
    with pytest.raises(StorageError, match=r"s3://|cannot|unreachable|connect") as err:
        out.get(ref)
    assert time.perf_counter() - t0 < 30
    assert opts["secret"] not in str(err.value)
    out.close()
