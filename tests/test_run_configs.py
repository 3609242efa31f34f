"""Per-run task configuration records (``Butler.run_configs``), on every storage backend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import fsspec
import pytest
from conftest import RepoLocation

from repo_butler import Butler
from repo_butler.errors import ConfigError, RepoButlerError
from repo_butler.formats import FormatVersionError
from repo_butler.maintenance import verify
from repo_butler.provenance import REDACTED
from repo_butler.reindex import reindex
from repo_butler.run_configs import (
    RUN_CONFIG_VERSION,
    RunConfigExistsError,
    decode_run_config,
    is_run_config_path,
    run_config_path,
)
from repo_butler.schemas import validate

CONFIG: dict[str, Any] = {
    "dataset_types": {
        "table": {"dimensions": ["visit"], "formatter": "json", "template": "t/{visit}.json"}
    }
}
FIRST = {"kernel": "lanczos3", "sizes": [1, 2], "nested": {"on": True}}


@pytest.fixture
def root(repo_location: RepoLocation) -> Iterator[RepoLocation]:
    Butler.create(
        repo_location.url, config=CONFIG, storage_options=repo_location.storage_options
    ).close()
    yield repo_location


def _open(loc: RepoLocation, rerun: str | None = None, **kw: Any) -> Butler:
    return Butler(loc.url, rerun=rerun, storage_options=loc.storage_options, **kw)


def _raw(loc: RepoLocation, path: str) -> dict[str, Any]:
    fs, base = fsspec.core.url_to_fs(loc.url, **loc.storage_options)
    doc: dict[str, Any] = json.loads(fs.cat_file(f"{base}/{path}"))
    return doc


def test_first_record_creates_the_rerun_and_reads_back(root: RepoLocation) -> None:
    with _open(root, "mine") as butler:
        assert butler.run_configs.get("makeWarp") is None
        assert "mine" not in butler.registry.runs()  # nothing written yet
        written = butler.run_configs.put("makeWarp", FIRST)
        assert "mine" in butler.registry.runs()  # recorded before its first file
    with _open(root, "mine") as butler:
        got = butler.run_configs.get("makeWarp")
        assert got is not None and got == written
        assert (got.task, got.run, dict(got.config)) == ("makeWarp", "mine", FIRST)
        assert got.replaces is None and got.software["python"] and got.written
        assert butler.run_configs.get("otherTask") is None
    doc = _raw(root, "rerun/mine/_config/makeWarp.json")
    assert doc["format_version"] == RUN_CONFIG_VERSION == 1
    validate(doc, "run-config.schema.json", source="record", error=ConfigError)


def test_second_first_record_is_refused_and_replace_keeps_the_old(root: RepoLocation) -> None:
    with _open(root, "mine") as butler:
        butler.run_configs.put("makeWarp", FIRST)
        with pytest.raises(RunConfigExistsError, match=r"run 'mine' already records a makeWarp"):
            butler.run_configs.put("makeWarp", {"kernel": "lanczos4"})
        assert dict(butler.run_configs.get("makeWarp").config) == FIRST  # type: ignore[union-attr]
        new = butler.run_configs.put("makeWarp", {"kernel": "lanczos4"}, replace=True)
    assert isinstance(RunConfigExistsError("x"), FileExistsError)
    with _open(root, "mine") as butler:
        got = butler.run_configs.get("makeWarp")
    assert got == new and dict(got.config) == {"kernel": "lanczos4"}
    assert got.replaces is not None and got.replaces["config"] == FIRST


def test_root_run_and_runs_are_separate(root: RepoLocation) -> None:
    with _open(root) as butler:
        butler.run_configs.put("makeWarp", {"a": 1})
    with _open(root, "other") as butler:
        assert butler.run_configs.get("makeWarp") is None
    assert _raw(root, "_config/makeWarp.json")["run"] == ""


def test_records_are_bookkeeping_for_verify(root: RepoLocation) -> None:
    with _open(root, "mine") as butler:
        butler.put({"x": 1}, "table", visit=1)
        butler.run_configs.put("makeWarp", FIRST)
        report = verify(butler)
    assert report.ok, report.to_dict()
    with _open(root) as butler:
        butler.run_configs.put("makeWarp", FIRST)  # the root run's too
    rebuilt = reindex(root.url, storage_options=root.storage_options)
    assert rebuilt.unrecognised == [], rebuilt.to_dict()
    with _open(root, "mine") as butler:  # the rerun survives, with its record
        got = butler.run_configs.get("makeWarp")
        assert got is not None and dict(got.config) == FIRST
        assert butler.exists("table", visit=1)
    assert is_run_config_path("rerun/mine/_config/makeWarp.json")
    assert is_run_config_path("_config/makeWarp.json")
    assert not is_run_config_path("rerun/mine/t/_config/makeWarp.json")


def test_secrets_are_redacted(root: RepoLocation) -> None:
    with _open(root, "mine") as butler:
        butler.run_configs.put("makeWarp", {"endpoint": "s3://user:pw@host/b", "token": "abc"})
    doc = _raw(root, "rerun/mine/_config/makeWarp.json")
    assert doc["config"] == {"endpoint": "s3://host/b", "token": REDACTED}


def test_read_only_butler_cannot_record(root: RepoLocation) -> None:
    with _open(root) as butler:
        butler.put({"x": 1}, "table", visit=1)
    with _open(root, writeable=False) as butler, pytest.raises(ConfigError, match="read-only"):
        butler.run_configs.put("makeWarp", FIRST)


def test_bad_task_label_and_bad_records_are_one_line_errors(root: RepoLocation) -> None:
    with pytest.raises(ConfigError, match="invalid task label"):
        run_config_path("mine", "../x")
    good = {"format_version": 1, "task": "t", "run": "", "config": {}, "software": {},
            "written": "2026-01-01T00:00:00+00:00", "host": "h"}  # fmt: skip
    assert decode_run_config(json.dumps(good).encode(), source="f").task == "t"
    with pytest.raises(FormatVersionError, match=r"f: run configuration record format version 2"):
        decode_run_config(json.dumps({**good, "format_version": 2}).encode(), source="f")
    with pytest.raises(ConfigError, match="f is not a run configuration record"):
        decode_run_config(b"[1]", source="f")
    with pytest.raises(ConfigError, match=r"does not match run-config\.schema\.json"):
        decode_run_config(json.dumps({**good, "config": []}).encode(), source="f")
    with _open(root) as butler:
        butler.datastore.put_bytes(
            "_config/makeWarp.json", json.dumps({**good, "task": "x"}).encode()
        )
        with pytest.raises(RepoButlerError, match="records task 'x'"):
            butler.run_configs.get("makeWarp")


def test_racing_first_records_one_wins(root: RepoLocation) -> None:
    """Exclusive first writes: of writers racing to record a run's config, exactly one wins and
    its config is the one stored (the memory store checks, then writes: not raced here)."""
    import threading

    if root.kind == "memory":
        pytest.skip("the memory store's exclusive write is check-then-write")
    with _open(root, "race") as butler:
        butler.put({"x": 1}, "table", visit=1)  # the rerun exists: only the record is raced
    barrier = threading.Barrier(6)
    won: list[int] = []
    lost: list[int] = []

    def writer(k: int) -> None:
        with _open(root, "race") as butler:
            barrier.wait()
            try:
                butler.run_configs.put("makeWarp", {"writer": k})
                won.append(k)
            except RunConfigExistsError:
                lost.append(k)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and sorted(won + lost) == list(range(6))
    with _open(root, "race") as butler:
        got = butler.run_configs.get("makeWarp")
    assert got is not None and dict(got.config) == {"writer": won[0]}
