"""Butler on a real S3 server (SeaweedFS): round trips, read-only access, secrets, PostgreSQL.

The generic Butler/datastore contract suites already run on ``s3`` through ``repo_location``;
this file checks what is specific to object stores and shared registries.
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing as mp
from pathlib import Path
from typing import Any

import pytest
import yaml
from repo_configs import META_VISIT_CCD as CONFIG
from servers.fixtures import S3Root
from servers.requests import RequestCounter
from servers.seaweed import SeaweedServer
from typer.testing import CliRunner

from repo_butler import Butler, Provenance
from repo_butler.errors import (
    ConfigError,
    DatasetExistsError,
    DatasetNotFoundError,
    RegistryError,
    StorageError,
)
from repo_butler.maintenance import verify
from repo_butler.reindex import reindex
from repo_butler.run_writer import RunWriter

pytestmark = pytest.mark.s3


def _fill(butler: Butler, visits: range, ccds: range) -> None:
    with butler.registry.batch():
        for visit in visits:
            for ccd in ccds:
                butler.put({"visit": visit, "ccd": ccd}, "meta", visit=visit, ccd=ccd)


def test_get_exists_query_request_bounds(s3_root: S3Root) -> None:
    with Butler.create(s3_root.url, config=CONFIG, storage_options=s3_root.storage_options) as b:
        _fill(b, range(3), range(4))
        counter = RequestCounter().attach(b.datastore.fs)
        b.put({"late": 1}, "meta", visit=9, ccd=9)
        assert counter.snapshot() == {"PutObject": 2}  # data (If-None-Match: *), registry
        counter.reset()
        b.put({"late": 2}, "meta", visit=9, ccd=9, overwrite=True)
        # find; data; the registration's check that the object is still ours; registry
        assert counter.snapshot() == {"HeadObject": 2, "PutObject": 2}
    with Butler(s3_root.url, storage_options=s3_root.storage_options) as other:  # "machine 2"
        counter = RequestCounter().attach(other.datastore.fs)
        assert other.get("meta", visit=1, ccd=2) == {"visit": 1, "ccd": 2}
        assert counter.counts["GetObject"] == 1 and counter.total <= 2, counter.snapshot()
        counter.reset()
        assert other.exists("meta", visit=2, ccd=3)
        assert counter.total == 1, counter.snapshot()
        counter.reset()
        assert len(other.query_datasets("meta", "visit = 1 AND ccd IN (0..2)")) == 3
        assert counter.snapshot() == {"HeadObject": 1}


def test_read_only_credentials_can_read_everything(s3_root: S3Root) -> None:
    with Butler.create(s3_root.url, config=CONFIG, storage_options=s3_root.storage_options) as b:
        _fill(b, range(2), range(3))
    reader_opts = s3_root.server.storage_options(read_only=True)
    with Butler(s3_root.url, storage_options=reader_opts, writeable=False) as reader:
        counter = RequestCounter().attach(reader.datastore.fs)
        assert len(reader.query_datasets("meta")) == 6
        assert reader.get("meta", visit=1, ccd=2) == {"visit": 1, "ccd": 2}
        assert verify(reader).ok
        with pytest.raises(ConfigError, match="read-only"):
            reader.put({}, "meta", visit=5, ccd=5)
        writes = {"PutObject", "DeleteObject", "CreateMultipartUpload", "DeleteObjects"}
        assert not writes & set(counter.counts), counter.snapshot()
    # the same credentials opening for writing are refused by the server, with a clear error
    with Butler(s3_root.url, storage_options=reader_opts) as writer, pytest.raises(StorageError):
        writer.put({}, "meta", visit=5, ccd=5)


def test_put_without_head_still_refuses_what_another_machine_stored(s3_root: S3Root) -> None:
    """A put trusts its local registry copy, but the data upload is conditional: a dataset
    stored meanwhile by another writer is neither replaced nor registered twice."""
    opts = s3_root.storage_options
    with (
        Butler.create(s3_root.url, config=CONFIG, storage_options=opts) as one,
        Butler(s3_root.url, storage_options=opts) as two,
    ):
        one.put({"by": "one"}, "meta", visit=1, ccd=1)  # two's registry copy does not know it
        counter = RequestCounter().attach(two.datastore.fs)
        with pytest.raises(DatasetExistsError, match="already exists"):
            two.put({"by": "two"}, "meta", visit=1, ccd=1)
        assert counter.counts["PutObject"] == 1, counter.snapshot()  # the refused data PUT
        assert two.get("meta", visit=1, ccd=1) == {"by": "one"}
        assert [r.checksum for r in two.query_datasets("meta")] == [
            one.get_ref("meta", visit=1, ccd=1).checksum
        ]
        # removed by one while two's copy still lists it: two checks the bucket and stores it
        two.put({"by": "two"}, "meta", visit=2, ccd=2)
        one.remove("meta", visit=2, ccd=2)
        two.put({"by": "two again"}, "meta", visit=2, ccd=2)
        assert one.get("meta", visit=2, ccd=2) == {"by": "two again"}
        assert verify(one).ok


def test_put_replaces_a_stray_file_of_a_crashed_writer(
    s3_root: S3Root, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file without a registry row (its writer died before registering it) is replaced once
    it is ``stray_age`` old (younger, it may belong to a writer still registering it)."""
    monkeypatch.setattr(RunWriter, "stray_age", 1.0)
    opts = s3_root.storage_options
    with Butler.create(s3_root.url, config=CONFIG, storage_options=opts) as butler:
        path = "meta/0000003/m-004.json"
        butler.datastore.put_bytes(path, b'{"half": "written by a dead writer"}')
        assert [p.kind for p in verify(butler).problems] == ["unregistered_file"]
        counter = RequestCounter().attach(butler.datastore.fs)
        ref = butler.put({"ok": True}, "meta", visit=3, ccd=4)
        # refused conditional PUT, registry check, unconditional PUT, registry PUT
        assert counter.counts["PutObject"] == 3, counter.snapshot()
        assert ref.path == path
        assert butler.get("meta", visit=3, ccd=4) == {"ok": True}
        assert verify(butler).ok


def _butler_writer(url: str, options: dict[str, Any], worker: int, n: int) -> int:
    with Butler(url, storage_options=options) as butler:
        for i in range(n):
            butler.put({"w": worker, "i": i}, "meta", visit=100 + worker, ccd=i)
    return n


@pytest.mark.slow
def test_two_writer_processes_lose_nothing(s3_root: S3Root) -> None:
    Butler.create(s3_root.url, config=CONFIG, storage_options=s3_root.storage_options).close()
    ctx = mp.get_context("spawn")
    n = 10
    with ctx.Pool(2) as pool:
        done = pool.starmap(
            _butler_writer, [(s3_root.url, s3_root.storage_options, w, n) for w in range(2)]
        )
    assert done == [n, n]
    with Butler(s3_root.url, storage_options=s3_root.storage_options) as butler:
        refs = butler.query_datasets("meta")
        assert sorted((r.data_id["visit"], r.data_id["ccd"]) for r in refs) == [
            (100 + w, i) for w in range(2) for i in range(n)
        ]
        for ref in refs:
            assert butler.get(ref) == {"w": ref.data_id["visit"] - 100, "i": ref.data_id["ccd"]}
        assert verify(butler).ok


def test_secret_never_leaks(
    seaweed: SeaweedServer, s3_root: S3Root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a full run (CLI + API, success and failure), the secret is in no file, object,
    log record, provenance record, CLI output or error message."""
    from repo_butler_cli.main import app

    secret = seaweed.secret_key
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.setLevel(logging.DEBUG)
    root_logger = logging.getLogger()
    # setLevel, not a plain attribute patch: it also clears the loggers' isEnabledFor caches, which
    # earlier tests filled while the root level was WARNING (botocore's then stay silent here)
    old_level = root_logger.level
    root_logger.setLevel(logging.DEBUG)
    root_logger.addHandler(handler)
    outputs: list[str] = []
    try:
        opts = ["-S", f"key={seaweed.access_key}", "-S", f"secret={secret}"]
        opts += ["-S", f"endpoint_url={seaweed.endpoint_url}"]
        runner = CliRunner()

        def rb(*args: str, code: int = 0) -> str:
            result = runner.invoke(app, [*args, *opts])
            outputs.append(result.output)
            assert result.exit_code == code, result.output
            return result.output

        cfg = tmp_path / "extra.yaml"
        cfg.write_text(yaml.safe_dump(CONFIG))
        rb("create", s3_root.url, "--config", str(cfg))
        src = tmp_path / "in" / "meta" / "0000007" / "m-001.json"
        src.parent.mkdir(parents=True)
        src.write_text('{"ingested": true}')
        rb("ingest", s3_root.url, "meta", str(src))
        options = dict(s3_root.storage_options)
        with Butler(s3_root.url, storage_options=options) as butler:
            prov = Provenance(task="leakTest", config={"storage_options": options, "x": secret})
            butler.put({"v": 1}, "meta", visit=1, ccd=1, provenance=prov)
            outputs.append(json.dumps(butler.get_provenance_dict("meta", visit=1, ccd=1)))
        outputs.append(rb("query-datasets", s3_root.url, "meta", "--format", "json"))
        rb("reindex", s3_root.url)
        rb("verify", s3_root.url)
        # failures: a dead endpoint and a wrong secret, through the CLI and the API
        bad = ["-S", f"key={seaweed.access_key}", "-S", f"secret={secret}"]
        dead = runner.invoke(app, ["query-datasets", s3_root.url, "meta", *bad, "-S",
                                   "endpoint_url=http://127.0.0.1:9"])  # fmt: skip
        message = dead.output + str(dead.exception)  # cli.main prints str(exception) on exit 1
        outputs.append(message)
        assert dead.exit_code == 1 and "http://127.0.0.1:9" in message
        wrong = dict(options, secret=secret + "-wrong")
        with pytest.raises(StorageError) as info:
            Butler(s3_root.url, storage_options=wrong)
        outputs.append(str(info.value))
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(old_level)
    assert log.getvalue(), "nothing was logged at DEBUG: the leak check would be vacuous"
    fs = seaweed.filesystem()
    objects = fs.find(s3_root.path)
    assert f"{s3_root.path}/butler.yaml" in objects
    assert f"{s3_root.path}/registry.sqlite3" in objects
    assert any(p.endswith(".provenance.json") for p in objects)
    for path in objects:
        assert secret.encode() not in fs.cat_file(path), path
    for text in [*outputs, log.getvalue()]:
        assert secret not in text


def test_postgres_registry_for_an_s3_repository(s3_root: S3Root, postgres_dsn: str) -> None:
    config = {**CONFIG, "registry": postgres_dsn}
    opts = s3_root.storage_options
    with Butler.create(s3_root.url, config=config, storage_options=opts) as butler:
        _fill(butler, range(2), range(3))
        assert type(butler.registry).__name__ == "PostgresRegistry"
    fs = s3_root.server.filesystem()
    text = fs.cat_file(f"{s3_root.path}/butler.yaml").decode()
    assert yaml.safe_load(text)["registry"] in (
        postgres_dsn,
        {"type": "postgresql", "url": postgres_dsn},
    )
    assert not fs.exists(f"{s3_root.path}/registry.sqlite3")
    with Butler(s3_root.url, storage_options=opts) as other:
        assert len(other.query_datasets("meta", "ccd > 0")) == 4
        assert other.get("meta", visit=1, ccd=2) == {"visit": 1, "ccd": 2}
    report = reindex(s3_root.url, storage_options=opts)
    assert report.total == 6
    with Butler(s3_root.url, storage_options=opts) as again:
        assert verify(again).ok


def test_registry_url_with_password_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PGPASSWORD"):
        Butler.create(tmp_path / "r", config={"registry": "postgresql://rb:hunter2@db/x"})
    with pytest.raises(ConfigError, match="postgresql://"):
        Butler.create(tmp_path / "r2", config={"registry": {"type": "postgresql"}})


def test_unreachable_postgres_names_server_not_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("psycopg")
    monkeypatch.setenv("PGPASSWORD", "pg-secret-value-123")
    with pytest.raises(RegistryError) as info:
        Butler.create(tmp_path / "r", config={"registry": "postgresql://rb@127.0.0.1:9/none"})
    assert "127.0.0.1:9" in str(info.value) and "pg-secret-value-123" not in str(info.value)


def test_connection_settings_from_environment_or_profile(
    seaweed: SeaweedServer, s3_root: S3Root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Butler.create(s3_root.url, config=CONFIG, storage_options=s3_root.storage_options) as b:
        b.put({"env": True}, "meta", visit=1, ccd=1)
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    # 1. the standard AWS_* variables and the endpoint variable botocore reads
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweed.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweed.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", seaweed.endpoint_url)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with Butler(s3_root.url, writeable=False) as from_env:
        assert from_env.get("meta", visit=1, ccd=1) == {"env": True}
    # 2. a named profile (credentials file + config file with endpoint_url)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var)
    creds, conf = tmp_path / "credentials", tmp_path / "config"
    creds.write_text(
        f"[rbtest]\naws_access_key_id = {seaweed.access_key}\n"
        f"aws_secret_access_key = {seaweed.secret_key}\n"
    )
    conf.write_text(
        f"[profile rbtest]\nendpoint_url = {seaweed.endpoint_url}\nregion = us-east-1\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(conf))
    with Butler(s3_root.url, storage_options={"profile": "rbtest"}, writeable=False) as named:
        assert named.get("meta", visit=1, ccd=1) == {"env": True}


def test_get_overlaps_registry_check_and_sees_replacements(s3_root: S3Root) -> None:
    """A get starts the data GET before the registry HEAD returns; when another writer has
    replaced the dataset meanwhile, the early read is discarded and the new bytes returned."""
    opts = s3_root.storage_options
    with Butler.create(s3_root.url, config=CONFIG, storage_options=opts) as writer:
        writer.put({"version": 1}, "meta", visit=1, ccd=1)
        with Butler(s3_root.url, storage_options=opts, writeable=False) as reader:
            counter = RequestCounter().attach(reader.datastore.fs)
            assert reader.get("meta", visit=1, ccd=1) == {"version": 1}
            assert counter.snapshot() == {"GetObject": 1, "HeadObject": 1}
            writer.put({"version": 2, "pad": "x" * 50}, "meta", visit=1, ccd=1, overwrite=True)
            assert reader.get("meta", visit=1, ccd=1) == {"version": 2, "pad": "x" * 50}
            writer.remove("meta", visit=1, ccd=1)
            with pytest.raises(DatasetNotFoundError):
                reader.get("meta", visit=1, ccd=1)


def test_lost_registry_object_is_an_error_not_an_empty_repository(s3_root: S3Root) -> None:
    """Deleted, emptied, or deleted while in use: each is an error pointing to rb reindex,
    never an empty repository; a new repository's registry exists from its creation."""
    url, opts = s3_root.url, s3_root.storage_options
    with Butler.create(url, config=CONFIG, storage_options=opts) as butler:
        fs = butler.datastore.filesystem
        key = butler.datastore.full_path("registry.sqlite3")
        assert fs.exists(key)  # published before any data: no window without it
        _fill(butler, range(2), range(3))
    with Butler(url, storage_options=opts, writeable=False) as reader:
        saved = fs.cat_file(key)
        fs.rm_file(key)
        with pytest.raises(RegistryError, match="deleted while this process used it"):
            reader.registry.refresh()
    for writeable in (True, False):
        with pytest.raises(RegistryError, match=r"is missing but .*holds files.*rb reindex"):
            Butler(url, storage_options=opts, writeable=writeable)
    assert not fs.exists(key)  # nothing was written
    fs.pipe_file(key, b"")
    with pytest.raises(RegistryError, match=r"empty \(0 bytes\).*rb reindex"):
        Butler(url, storage_options=opts)
    fs.pipe_file(key, saved)
    fs.rm_file(key)
    assert reindex(url, storage_options=opts).total == 6
    with Butler(url, storage_options=opts) as butler:
        assert butler.get("meta", visit=1, ccd=2) == {"visit": 1, "ccd": 2}


def test_cli_on_s3_prints_no_third_party_info_lines(
    seaweed: SeaweedServer, s3_root: S3Root, tmp_path: Path
) -> None:
    """Issue 20, point 8: botocore logged two INFO lines per S3 command (credentials found)."""
    import os
    import subprocess
    import sys

    with Butler.create(s3_root.url, config=CONFIG, storage_options=s3_root.storage_options) as b:
        b.put({"x": 1}, "meta", visit=1, ccd=1)
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": seaweed.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
        "AWS_ENDPOINT_URL_S3": seaweed.endpoint_url,
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    env.pop("AWS_PROFILE", None)
    code = "import sys; from repo_butler_cli.main import main; sys.argv[0] = 'rb'; main()"
    argv = [sys.executable, "-c", code, "query-datasets", s3_root.url, "meta"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "botocore" not in out.stderr and "INFO" not in out.stderr, out.stderr
    assert "meta" in out.stdout
    verbose = subprocess.run([*argv[:3], "-v", *argv[3:]], env=env, capture_output=True, text=True)
    assert verbose.returncode == 0 and "DEBUG" in verbose.stderr  # -v still shows everything
