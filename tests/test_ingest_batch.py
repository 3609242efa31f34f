"""Ingest semantics of the general butler (no instrument involved): data IDs from the files
themselves (a formatter implementing ReadsDataId), paths, -d, the registry and rule defaults;
re-runs are harmless, duplicates are reported, and a batch registers all or nothing."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import pytest

from repo_butler import Butler, DataId
from repo_butler.errors import DataIdError, DatasetExistsError, StorageError
from repo_butler.formatters import FileDataId, register_formatter
from repo_butler.formatters.builtin import JsonFormatter


class JsonWithIdFormatter(JsonFormatter):
    """JSON documents that carry their own data ID under ``"id"`` (and a rule default)."""

    name: ClassVar[str] = "json_with_id"

    def data_id_from_file(
        self,
        fileobj: BinaryIO,
        *,
        source: str,
        dimensions: Sequence[str],
        known: Mapping[str, Any],
    ) -> FileDataId:
        doc = json.load(fileobj)
        values = dict(doc.get("id", {}))
        visit = values.get("visit", known.get("visit"))
        defaults = {} if visit is None else {"pointing": visit % 1000}
        origins = {k: f"id.{k}" for k in values} | {"pointing": "rule: pointing = visit % 1000"}
        missing = {k: "an 'id' entry" for k in dimensions if k not in values}
        return FileDataId(values, defaults, origins, missing, "json ids")


register_formatter("json_with_id", JsonWithIdFormatter, clobber=True)

TYPES = {
    "dataset_types": {
        "meta": {
            "dimensions": ["pointing", "filter", "visit", "ccd"],
            "formatter": "json",
            "template": "{pointing:05d}/{filter}/META-{visit:07d}-{ccd:03d}.json",
        },
        "extra": {
            "dimensions": ["pointing", "filter", "visit", "ccd"],
            "formatter": "json",
            "template": "{pointing:05d}/{filter}/EXTRA-{visit:07d}-{ccd:03d}.json",
        },
        "tagged": {
            "dimensions": ["pointing", "filter", "visit", "ccd"],
            "formatter": "json_with_id",
            "template": "{pointing:05d}/{filter}/TAG-{visit:07d}-{ccd:03d}.json",
        },
    }
}
FULL = {"pointing": 1, "filter": "HSC-I", "visit": 5, "ccd": 2}


@pytest.fixture
def butler(tmp_path: Path) -> Butler:
    return Butler.create(tmp_path / "repo", config=TYPES, preset="warping")


def _write(path: Path, doc: object) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return str(path)


def _gen2(tmp_path: Path, ccd: int, doc: object = None) -> str:
    name = tmp_path / "in" / "01178" / "HSC-I" / f"META-0903988-{ccd:03d}.json"
    return _write(name, {"ccd": ccd} if doc is None else doc)


def _registered(butler: Butler) -> set[tuple[str, str, str]]:
    return {
        (r.dataset_type, r.data_id.key, r.checksum)
        for name in butler.dataset_types
        for r in butler.query_datasets(name)
    }


def _stored_files(butler: Butler) -> list[str]:
    return [p for p in butler.datastore.walk() if p.endswith(".json")]


def test_rerun_is_harmless_and_reports_what_it_skipped(butler: Butler, tmp_path: Path) -> None:
    files = [_gen2(tmp_path, ccd) for ccd in (16, 17, 30)]
    first = butler.ingest("meta", files)
    assert [f.status for f in first.files] == ["ingested"] * 3
    assert first.summary("meta") == "ingested 3 meta dataset(s)"
    before = _registered(butler)
    again = butler.ingest("meta", files)
    assert [f.status for f in again.files] == ["skipped"] * 3
    assert [f.reason for f in again.files] == ["already ingested in run (root)"] * 3
    assert list(again) == list(first)  # one ref per file, the datasets already registered
    assert again.summary("meta") == "ingested 0 meta dataset(s), skipped 3 already ingested"
    assert _registered(butler) == before


def test_same_content_under_another_data_id_is_reported_not_duplicated(
    butler: Butler, tmp_path: Path
) -> None:
    src = _write(tmp_path / "a.json", [1])
    (ref,) = butler.ingest("meta", [src], data_id=FULL)
    copy = _write(tmp_path / "b.json", [1])
    report = butler.ingest("meta", [copy], data_id={**FULL, "ccd": 3})
    assert report.files[0].status == "skipped" and report[0] == ref
    assert report.files[0].reason.startswith("same content already registered as meta {")
    assert len(butler.query_datasets("meta")) == 1
    # another dataset type may hold the same bytes
    (other,) = butler.ingest("extra", [copy], data_id=FULL)
    assert other.dataset_type == "extra"


def test_duplicates_inside_one_batch(butler: Butler, tmp_path: Path) -> None:
    a = _gen2(tmp_path, 16)
    twin = _write(tmp_path / "copy" / "01178" / "HSC-I" / "META-0903988-016.json", {"ccd": 16})
    report = butler.ingest("meta", [a, twin])
    assert [f.status for f in report.files] == ["ingested", "skipped"]
    assert report.files[1].reason.startswith(f"same content as {a} (this batch")
    other = _write(tmp_path / "x" / "01178" / "HSC-I" / "META-0903988-017.json", {"v": 1})
    clash = _write(tmp_path / "y" / "01178" / "HSC-I" / "META-0903988-017.json", {"v": 2})
    before = _registered(butler)
    with pytest.raises(DataIdError, match=r"both have the meta data ID .* different content"):
        butler.ingest("meta", [other, clash])
    assert _registered(butler) == before


def test_same_data_id_other_content_is_an_error(butler: Butler, tmp_path: Path) -> None:
    butler.ingest("meta", [_gen2(tmp_path, 16)])
    changed = _gen2(tmp_path / "new", 16, {"ccd": 16, "reprocessed": True})
    with pytest.raises(
        DatasetExistsError, match=r"already exists in run \(root\) with other content"
    ):
        butler.ingest("meta", [changed])


@pytest.mark.parametrize("transfer", ["copy", "move", "symlink"])
def test_a_failing_batch_registers_nothing_and_takes_files_back(
    butler: Butler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transfer: Any
) -> None:
    files = [_gen2(tmp_path, ccd) for ccd in (16, 17, 30)]
    contents = {f: Path(f).read_bytes() for f in files}
    store = butler.datastore
    original = store.transfer_in
    calls: list[str] = []

    def fail_on_third(source: str, path: str, **kwargs: Any) -> None:
        calls.append(source)
        if len(calls) == 3:
            raise StorageError(f"disk full while writing {path}")  # a real I/O failure's type
        original(source, path, **kwargs)

    monkeypatch.setattr(store, "transfer_in", fail_on_third)
    with pytest.raises(StorageError, match="disk full"):
        butler.ingest("meta", files, transfer=transfer)
    assert len(calls) == 3
    assert _registered(butler) == set()
    assert _stored_files(butler) == []
    assert {f: Path(f).read_bytes() for f in files} == contents  # moved files are back
    monkeypatch.undo()
    assert len(butler.ingest("meta", files, transfer=transfer)) == 3


def test_missing_keys_name_the_file_and_the_option(butler: Butler, tmp_path: Path) -> None:
    src = _write(tmp_path / "loose.json", {})
    with pytest.raises(DataIdError) as info:
        butler.ingest("meta", [src], data_id={"visit": 5})
    text = str(info.value)
    assert text.startswith(f"{src}: cannot derive a full meta data ID: ")
    assert "['pointing', 'filter', 'ccd'] missing" in text and "template" in text
    assert "-d pointing=VALUE -d filter=VALUE -d ccd=VALUE" in text
    with pytest.raises(StorageError, match=r"cannot read .*nope\.json"):
        butler.ingest("meta", [str(tmp_path / "nope.json")], data_id=FULL)
    assert _registered(butler) == set()


def test_registry_completes_a_companion_data_id(butler: Butler, tmp_path: Path) -> None:
    butler.ingest("meta", [_write(tmp_path / "m.json", [1])], data_id=FULL)
    extra = _write(tmp_path / "e.json", [2])
    (ref,) = report = butler.ingest("extra", [extra], data_id={"exposure": 5, "detector": 2})
    assert ref.data_id == DataId(**FULL)
    assert report.files[0].derived.origins == {
        "pointing": "registry",
        "filter": "registry",
        "visit": "given",
        "ccd": "given",
    }
    butler.put([3], "meta", {**FULL, "filter": "HSC-R"})
    with pytest.raises(DataIdError, match=r"\['pointing', 'filter'\] .* 2 registered data IDs"):
        butler.ingest("extra", [_write(tmp_path / "f.json", [4])], data_id={"visit": 5, "ccd": 2})


def test_dry_run_registers_nothing(butler: Butler, tmp_path: Path) -> None:
    files = [_gen2(tmp_path, ccd) for ccd in (16, 17)]
    report = butler.ingest("meta", files, dry_run=True)
    assert [f.status for f in report.files] == ["planned", "planned"]
    assert report.summary("meta") == "dry run: would ingest 2 meta dataset(s)"
    assert _registered(butler) == set() and _stored_files(butler) == []


# -- a formatter that reads data IDs from its files -------------------------------------------
def test_file_values_merge_with_path_and_given(butler: Butler, tmp_path: Path) -> None:
    doc = {"id": {"visit": 1234, "detector": 7, "physical_filter": "HSC-G", "band": "g"}}
    src = _write(tmp_path / "doc.json", doc)
    (ref,) = report = butler.ingest("tagged", [src])
    assert ref.data_id == DataId(pointing=234, filter="HSC-G", visit=1234, ccd=7)
    assert report.files[0].derived.origins == {
        "pointing": "rule: pointing = visit % 1000",
        "filter": "id.physical_filter",
        "visit": "id.visit",
        "ccd": "id.detector",
    }
    line = report.files[0].line()
    assert line.startswith("ingested tagged pointing=234 (rule: pointing = visit % 1000)")
    assert line.endswith(f"[json ids] <- {src}")
    # a rule default yields to the data ID given; a value read from the file does not
    other = _write(tmp_path / "doc2.json", {"id": {"visit": 99, "ccd": 1, "filter": "g"}})
    (ref,) = butler.ingest("tagged", [other], data_id={"pointing": 5, "band": "g"})
    assert ref.data_id["pointing"] == 5
    bad = _write(tmp_path / "doc3.json", {"id": {"visit": 200001, "ccd": 1, "filter": "g"}})
    with pytest.raises(DataIdError) as info:
        butler.ingest("tagged", [bad], data_id={"exposure": 2000})
    assert str(info.value) == (
        f"{bad}: the file says visit=200001 (id.visit) but the data ID given says visit=2000; "
        "check the file or drop -d visit"
    )
    with pytest.raises(DataIdError, match=r"the file says band='g' .* given says band='r'"):
        butler.ingest("tagged", [src], data_id={"band": "r"})
    named = _write(tmp_path / "00007" / "g" / "TAG-0000099-002.json", {"id": {"ccd": 1}})
    with pytest.raises(DataIdError, match=r"the file says ccd=1 \(id.ccd\) but its path says"):
        butler.ingest("tagged", [named])
    with pytest.raises(DataIdError, match=r"not a valid filter in this repository"):
        butler.ingest("tagged", [_write(tmp_path / "v.json", {"id": {**FULL, "filter": "a/b"}})])


def test_an_undo_that_fails_is_reported_with_what_to_remove(
    butler: Butler,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    files = [_gen2(tmp_path, ccd) for ccd in (16, 17)]
    store = butler.datastore
    original = store.transfer_in
    calls: list[str] = []

    def fail_on_second(source: str, path: str, **kwargs: Any) -> None:
        calls.append(source)
        if len(calls) == 2:
            raise StorageError(f"disk full while writing {path}")
        original(source, path, **kwargs)

    def cannot_remove(path: str) -> None:
        raise StorageError("permission denied")

    monkeypatch.setattr(store, "transfer_in", fail_on_second)
    monkeypatch.setattr(store, "remove", cannot_remove)
    with caplog.at_level("ERROR"), pytest.raises(StorageError, match="disk full"):
        butler.ingest("meta", files, transfer="copy")
    assert _registered(butler) == set()  # the registry row was taken back
    (message,) = [r.getMessage() for r in caplog.records if "could not undo" in r.getMessage()]
    assert "could not undo 1 step(s)" in message and "stored file file://" in message
    assert "permission denied" in message and "META-0903988-016.json" in message
