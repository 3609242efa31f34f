"""Butler contract suite, run for every storage backend (file://, memory://; s3:// later)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pytest
import yaml
from conftest import RepoLocation, independent_checksum

from repo_butler import Butler, DataId, DatasetRef, Provenance, ProvenanceInput, create_repo
from repo_butler.config import CONFIG_VERSION
from repo_butler.errors import (
    ConfigError,
    DataIdError,
    DatasetExistsError,
    DatasetNotFoundError,
    DatasetTypeError,
    FormatterError,
    RepositoryExistsError,
    RepositoryNotFoundError,
)
from repo_butler.provenance import REDACTED
from repo_butler.writes import ChecksumMismatchError

CORR = "{pointing:05d}/{filter}/corr"
TEST_CONFIG: dict[str, Any] = {
    "dataset_types": {
        "calexp_meta": {
            "dimensions": ["pointing", "filter", "visit", "ccd"],
            "formatter": "json",
            "template": CORR + "/META-{visit:07d}-{ccd:03d}.json",
        },
        "visit_summary": {
            "dimensions": ["visit"],
            "formatter": "yaml",
            "template": "summary/{visit:07d}.yaml",
        },
        "ccd_image": {
            "dimensions": ["visit", "ccd"],
            "formatter": "fits_array",
            "template": "images/{visit:07d}/img-{ccd:03d}.fits",
        },
        "broken": {"dimensions": ["visit"], "formatter": "nosuch", "template": "b/{visit}.x"},
    }
}


@pytest.fixture
def butler(repo_location: RepoLocation) -> Iterator[Butler]:
    with Butler.create(
        repo_location.url, config=TEST_CONFIG, storage_options=repo_location.storage_options
    ) as b:
        yield b


def _read_raw(uri: str, options: dict[str, Any] | None = None) -> bytes:
    fs, path = fsspec.core.url_to_fs(uri, **(options or {}))
    data: bytes = fs.cat_file(path)
    return data


def _put_grid(butler: Butler, visits: range, ccds: range, filt: str = "HSC-I") -> None:
    for visit in visits:
        for ccd in ccds:
            butler.put(
                {"visit": visit, "ccd": ccd},
                "calexp_meta",
                pointing=1178,
                filter=filt,
                visit=visit,
                ccd=ccd,
            )


# -- repository creation --------------------------------------------------------------------
def test_create_writes_validated_config(butler: Butler, repo_location: RepoLocation) -> None:
    raw = yaml.safe_load(_read_raw(butler.root + "/butler.yaml", butler.storage_options))
    assert raw["version"] == CONFIG_VERSION
    assert "calexp_meta" in raw["dataset_types"]
    assert "deepCoadd_directWarp" in raw["dataset_types"]  # defaults kept
    assert butler.dataset_types["calexp"].dimensions == ("pointing", "filter", "visit", "ccd")
    assert butler.dataset_types["calexp"].formatter == "exposure"
    assert butler.run == ""
    with pytest.raises(RepositoryExistsError):
        create_repo(repo_location.url, storage_options=repo_location.storage_options)
    again = Butler.create(
        repo_location.url, exist_ok=True, storage_options=repo_location.storage_options
    )
    assert "calexp_meta" in again.dataset_types
    again.close()


def test_schema_error_names_key_path(tmp_path: Path) -> None:
    bad = {"dataset_types": {"x": {"dimensions": ["visit"], "formatter": "json", "template": 3}}}
    with pytest.raises(ConfigError, match=r"dataset_types\.x\.template: 3 is not of type"):
        Butler.create(tmp_path / "r", config=bad)
    bad = {"dimensions": {"visit": {"type": "float"}}}
    with pytest.raises(ConfigError, match=r"dimensions\.visit\.type"):
        Butler.create(tmp_path / "r", config=bad)
    assert not (tmp_path / "r" / "butler.yaml").exists()


def test_open_missing_repo(tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFoundError, match="rb create"):
        Butler(tmp_path / "nothing")


# -- put / get ------------------------------------------------------------------------------
def test_put_get_and_ref_fields(butler: Butler) -> None:
    ref = butler.put(
        {"a": [1, 2]}, "calexp_meta", pointing=1178, filter="HSC-I", visit=903988, ccd=16
    )
    assert isinstance(ref, DatasetRef)
    assert ref.path == "01178/HSC-I/corr/META-0903988-016.json"
    assert ref.uri == butler.root + "/" + ref.path
    assert ref.data_id == DataId(pointing=1178, filter="HSC-I", visit=903988, ccd=16)
    assert list(ref.data_id) == ["pointing", "filter", "visit", "ccd"]
    raw = _read_raw(ref.uri, butler.storage_options)
    assert ref.size == len(raw)
    assert ref.checksum == independent_checksum(raw, ref.checksum)
    assert json.loads(raw) == {"a": [1, 2]}
    assert butler.get("calexp_meta", ref.data_id) == {"a": [1, 2]}
    assert butler.get_ref("calexp_meta", ref.data_id) == ref
    assert butler.exists("calexp_meta", ref.data_id)
    assert butler.uri("calexp_meta", ref.data_id) == ref.uri


def test_get_verify_refuses_bytes_changed_after_registration(butler: Butler) -> None:
    ref = butler.put({"v": 1}, "visit_summary", visit=5)
    assert butler.get("visit_summary", visit=5, verify=True) == {"v": 1}
    butler.datastore.put_bytes(ref.path, b'{"v": 2}')  # same type, other bytes, unregistered
    assert butler.get("visit_summary", visit=5) == {"v": 2}  # unchecked read: what is there
    with pytest.raises(ChecksumMismatchError, match=r"checksum mismatch.*visit_summary") as info:
        butler.get(ref, verify=True)
    assert isinstance(info.value, ValueError) and "rb verify" in str(info.value)


def test_put_existing_raises_unless_overwrite(butler: Butler) -> None:
    did = {"visit": 1}
    butler.put({"v": 1}, "visit_summary", did)
    with pytest.raises(DatasetExistsError, match="overwrite=True") as info:
        butler.put({"v": 2}, "visit_summary", did)
    assert isinstance(info.value, FileExistsError)
    butler.put({"v": 2}, "visit_summary", did, overwrite=True)
    assert butler.get("visit_summary", did) == {"v": 2}
    assert len(butler.query_datasets("visit_summary")) == 1


def test_fits_array_round_trip(butler: Butler) -> None:
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    butler.put(image, "ccd_image", visit=5, ccd=2)
    got = butler.get("ccd_image", visit=5, ccd=2)
    np.testing.assert_array_equal(got, image)
    assert got.dtype == np.float32


def test_incomplete_and_invalid_data_ids(butler: Butler) -> None:
    with pytest.raises(DataIdError, match=r"lacks \['ccd'\]"):
        butler.put({}, "calexp_meta", pointing=1, filter="g", visit=1)
    with pytest.raises(DataIdError, match="unknown data ID key"):
        butler.put({}, "visit_summary", visit=1, vist=2)
    with pytest.raises(DataIdError, match="forbidden"):
        butler.put({}, "calexp_meta", pointing=1, filter="../x", visit=1, ccd=1)
    with pytest.raises(DatasetTypeError, match="calexp_meta"):
        butler.put({}, "calexpMeta", visit=1)
    assert list(butler.datastore.walk()) == [p for p in butler.datastore.walk() if ".." not in p]


def test_missing_formatter_is_a_helpful_error(butler: Butler) -> None:
    with pytest.raises(FormatterError, match=r"nosuch.*available formatters:.*json"):
        butler.put({}, "broken", visit=1)


# -- partial data IDs -----------------------------------------------------------------------
def test_partial_data_id_resolves_when_unique(butler: Butler) -> None:
    _put_grid(butler, range(903988, 903990), range(3))
    assert butler.get("calexp_meta", visit=903988, ccd=2) == {"visit": 903988, "ccd": 2}
    ref = butler.get_ref("calexp_meta", visit=903989, ccd=0)
    assert ref.data_id["filter"] == "HSC-I" and ref.data_id["pointing"] == 1178


def test_partial_data_id_ambiguous_lists_candidates(butler: Butler) -> None:
    _put_grid(butler, range(903988, 903989), range(3))
    with pytest.raises(DataIdError, match=r"ambiguous.*3 datasets match.*ccd: 0.*ccd: 2"):
        butler.get("calexp_meta", visit=903988)
    assert butler.exists("calexp_meta", visit=903988)


def test_not_found_names_type_data_id_and_runs(butler: Butler) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        butler.get("calexp_meta", visit=1, ccd=2)
    assert isinstance(info.value, LookupError)
    message = str(info.value)
    assert "calexp_meta" in message and "visit: 1" in message and "(root)" in message
    assert not butler.exists("calexp_meta", visit=1, ccd=2)


# -- queries --------------------------------------------------------------------------------
def test_query_datasets_where_and_order(butler: Butler) -> None:
    _put_grid(butler, range(100, 103), range(30), "HSC-I")
    _put_grid(butler, range(200, 201), range(5), "HSC-R")
    refs = butler.query_datasets("calexp_meta", "visit = 101 AND ccd IN (16..24)")
    assert [r.data_id["ccd"] for r in refs] == list(range(16, 25))
    refs = butler.query_datasets("calexp_meta", "filter = 'HSC-R' OR (visit = 102 AND ccd < 2)")
    assert [(r.data_id["visit"], r.data_id["ccd"]) for r in refs] == [
        (102, 0), (102, 1), (200, 0), (200, 1), (200, 2), (200, 3), (200, 4),
    ]  # fmt: skip
    refs = butler.query_datasets(
        "calexp_meta", "visit = :v AND ccd IN :c", bind={"v": 100, "c": [3, 1]}
    )
    assert [r.data_id["ccd"] for r in refs] == [1, 3]
    refs = butler.query_datasets("calexp_meta", data_id={"visit": 102})
    assert len(refs) == 30
    assert butler.query_datasets("calexp_meta", "visit = 999") == []


def test_query_data_ids_expands_partial(butler: Butler) -> None:
    _put_grid(butler, range(903988, 903990), range(4))
    ids = butler.query_data_ids(
        ["visit", "ccd"], dataset_type="calexp_meta", data_id={"visit": 903988}
    )
    assert ids == [DataId(visit=903988, ccd=c) for c in range(4)]
    assert butler.query_data_ids(["visit"]) == [DataId(visit=903988), DataId(visit=903989)]
    assert butler.query_data_ids(["filter"], "ccd > 2") == [DataId(filter="HSC-I")]


# -- remove ---------------------------------------------------------------------------------
def test_remove_deletes_file_and_row(butler: Butler) -> None:
    ref = butler.put({"x": 1}, "visit_summary", visit=7)
    removed = butler.remove("visit_summary", visit=7)
    assert removed == ref
    assert not butler.exists("visit_summary", visit=7)
    assert not butler.datastore.exists(ref.path)
    with pytest.raises(DatasetNotFoundError):
        butler.remove("visit_summary", visit=7)


# -- reruns ---------------------------------------------------------------------------------
def test_reruns_search_order_and_shadowing(butler: Butler, repo_location: RepoLocation) -> None:
    butler.put({"from": "root"}, "visit_summary", visit=1)
    butler.put({"from": "root"}, "visit_summary", visit=2)
    opts = repo_location.storage_options
    with Butler(butler.root, rerun="a", storage_options=opts) as a:
        assert a.run == "a" and a.search_runs == ("a", "")
        ref = a.put({"from": "a"}, "visit_summary", visit=1)
        assert ref.path == "rerun/a/summary/0000001.yaml" and ref.run == "a"
        assert a.get("visit_summary", visit=1) == {"from": "a"}
        assert a.get("visit_summary", visit=2) == {"from": "root"}
    with Butler(butler.root, rerun="a:b", storage_options=opts) as b:
        assert b.search_runs == ("b", "a", "")
        b.put({"from": "b"}, "visit_summary", visit=3)
        refs = b.query_datasets("visit_summary")
        assert [(r.data_id["visit"], r.run) for r in refs] == [(1, "a"), (2, ""), (3, "b")]
        with pytest.raises(DatasetNotFoundError):
            b.remove("visit_summary", visit=1)  # lives in parent run "a": untouched
    with Butler(butler.root, rerun="b", storage_options=opts) as again:
        assert again.search_runs == ("b", "a", "")  # parents remembered
    Butler(butler.root, rerun="d", storage_options=opts).close()  # opened, nothing written
    assert "d" not in butler.registry.runs()  # so no rerun is left behind (issue 20, point 4)
    with pytest.raises(ConfigError, match="input rerun 'd' does not exist"):
        Butler(butler.root, rerun="d:e", storage_options=opts)
    with Butler(butler.root, rerun="c", storage_options=opts) as c:
        c.put({"from": "c"}, "visit_summary", visit=4)  # the first write records the rerun
    assert butler.registry.runs()["c"] == ()
    with pytest.raises(ConfigError, match="re-parented"):
        Butler(butler.root, rerun="c:b", storage_options=opts)
    with pytest.raises(ConfigError, match="does not exist"):
        Butler(butler.root, rerun="nosuch:c", storage_options=opts)
    with pytest.raises(ConfigError, match="invalid rerun name"):
        Butler(butler.root, rerun="../x", storage_options=opts)
    # the root butler does not see rerun outputs
    assert not butler.exists("visit_summary", visit=3)


# -- ingest ---------------------------------------------------------------------------------
def test_ingest_parses_data_id_from_path(butler: Butler, tmp_path: Path) -> None:
    src = tmp_path / "ext" / "01178" / "HSC-I" / "corr" / "META-0903988-016.json"
    src.parent.mkdir(parents=True)
    src.write_text('{"ingested": true}')
    (ref,) = butler.ingest("calexp_meta", [str(src)], transfer="copy")
    assert ref.data_id == DataId(pointing=1178, filter="HSC-I", visit=903988, ccd=16)
    assert butler.get("calexp_meta", visit=903988, ccd=16) == {"ingested": True}
    algorithm = butler.datastore.checksum_algorithm  # blake3; sha256 on S3
    assert ref.checksum == independent_checksum(src.read_bytes(), algorithm + ":")
    assert src.exists()


def test_ingest_with_data_id_move_and_direct(butler: Butler, tmp_path: Path) -> None:
    a = tmp_path / "anything.yaml"
    a.write_text("v: 1\n")
    (ref,) = butler.ingest("visit_summary", [a], transfer="move", data_id={"visit": 9})
    assert not a.exists()
    assert butler.get("visit_summary", visit=9) == {"v": 1}
    b = tmp_path / "other.yaml"
    b.write_text("v: 2\n")
    (ref,) = butler.ingest("visit_summary", [b], transfer="direct", data_id={"visit": 10})
    assert ref.uri == b.as_uri()
    assert butler.get("visit_summary", visit=10) == {"v": 2}
    with pytest.raises(DataIdError, match="template"):
        butler.ingest("visit_summary", [b], transfer="copy")
    again = butler.ingest("visit_summary", [b], transfer="copy", data_id={"visit": 10})
    assert [f.status for f in again.files] == ["skipped"] and again[0] == ref  # re-run: harmless
    assert "already ingested" in again.files[0].reason
    c = tmp_path / "third.yaml"
    c.write_text("v: 3\n")
    with pytest.raises(DatasetExistsError, match="other content"):
        butler.ingest("visit_summary", [c], transfer="copy", data_id={"visit": 10})


# -- provenance -----------------------------------------------------------------------------
def test_provenance_sidecar_registry_and_secrets(butler: Butler) -> None:
    inp = butler.put({"in": 1}, "visit_summary", visit=1)
    config = {
        "kernel": "lanczos3",
        "storage": {"aws_secret_access_key": "SuperSecret123", "endpoint": "https://u:pw@host/x"},
        "api_token": "tok-abc",
        "password": "hunter2",
    }
    prov = Provenance.build("makeWarp", config, [inp], packages=("repo-butler", "numpy"))
    ref = butler.put({"out": 1}, "visit_summary", visit=2, provenance=prov)
    sidecar = _read_raw(ref.uri + ".provenance.json", butler.storage_options)
    text = sidecar.decode()
    for secret in ("SuperSecret123", "tok-abc", "hunter2", "u:pw@"):
        assert secret not in text
    doc = json.loads(text)
    assert doc["config"]["storage"]["aws_secret_access_key"] == REDACTED
    assert doc["config"]["kernel"] == "lanczos3"
    assert doc["inputs"] == [
        {
            "dataset_type": "visit_summary",
            "data_id": {"visit": 1},
            "run": "",
            "checksum": inp.checksum,
        }
    ]
    assert doc["output"]["checksum"] == ref.checksum
    assert doc["software"]["numpy"] == np.__version__
    got = butler.get_provenance("visit_summary", visit=2)
    assert got is not None
    assert got.task == "makeWarp"
    assert got.inputs == (ProvenanceInput.from_ref(inp),)
    assert Provenance.from_dict(got.to_dict()) == got
    assert butler.get_provenance("visit_summary", visit=1) is None


def test_reopen_sees_everything(butler: Butler, repo_location: RepoLocation) -> None:
    _put_grid(butler, range(1, 3), range(2))
    with Butler(butler.root, storage_options=repo_location.storage_options, writeable=False) as b2:
        assert len(b2.query_datasets("calexp_meta")) == 4
        with pytest.raises(ConfigError, match="read-only"):
            b2.put({}, "visit_summary", visit=1)


def test_second_butler_sees_later_writes(butler: Butler, repo_location: RepoLocation) -> None:
    with Butler(butler.root, storage_options=repo_location.storage_options) as other:
        assert not other.exists("visit_summary", visit=4)
        butler.put({"late": True}, "visit_summary", visit=4)
        assert other.get("visit_summary", visit=4) == {"late": True}
        other.put({"from": "other"}, "visit_summary", visit=5)
    assert butler.get("visit_summary", visit=5) == {"from": "other"}


def test_get_by_ref_open_file_and_output_run_only(
    butler: Butler, repo_location: RepoLocation
) -> None:
    ref = butler.put({"k": 1}, "visit_summary", visit=11)
    assert butler.get(ref) == {"k": 1}
    with butler.open_file(ref) as fh:
        assert fh.read() == _read_raw(ref.uri, butler.storage_options)
    with butler.open_file("visit_summary", visit=11) as fh:
        fh.seek(2)
        assert fh.read(1) == _read_raw(ref.uri, butler.storage_options)[2:3]
    with Butler(butler.root, rerun="out", storage_options=repo_location.storage_options) as out:
        assert out.exists("visit_summary", visit=11)
        assert not out.exists("visit_summary", visit=11, output_run_only=True)
        out.put({"k": 2}, "visit_summary", visit=11)
        assert out.exists("visit_summary", {"visit": 11}, output_run_only=True)
    with pytest.raises(DatasetNotFoundError), butler.open_file("visit_summary", visit=12):
        pass


def test_reopen_in_worker_with_rerun_spec(butler: Butler, repo_location: RepoLocation) -> None:
    assert butler.rerun_spec is None
    with Butler(butler.root, rerun="p", storage_options=repo_location.storage_options) as parent:
        parent.put({"p": 1}, "visit_summary", visit=1)
    with Butler(butler.root, rerun="p:c", storage_options=repo_location.storage_options) as child:
        assert child.rerun_spec == "p:c"  # not written to yet: its parent is in the spec
        assert child.storage_options == repo_location.storage_options
        for _ in range(2):
            spec = child.rerun_spec
            worker = Butler(child.root, rerun=spec, storage_options=child.storage_options)
            assert worker.search_runs == child.search_runs == ("c", "p", "")
            assert worker.get("visit_summary", visit=1) == {"p": 1}
            worker.close()
            child.put({"c": 1}, "visit_summary", visit=2, overwrite=True)
        assert child.rerun_spec == "c"  # recorded by the first write: parents remembered


def test_invalid_provenance_rejected_before_writing(butler: Butler) -> None:
    bad = Provenance(task="", config={})  # schema: task must be non-empty
    with pytest.raises(ConfigError, match="task"):
        butler.put({"x": 1}, "visit_summary", visit=21, provenance=bad)
    assert not butler.exists("visit_summary", visit=21)
    assert [p for p in butler.datastore.walk() if "summary" in p] == []


def test_ingest_file_already_in_place(butler: Butler) -> None:
    butler.datastore.put_bytes("summary/0000031.yaml", b"v: 31\n")
    (ref,) = butler.ingest("visit_summary", [butler.root + "/summary/0000031.yaml"])
    assert ref.path == "summary/0000031.yaml" and ref.data_id == DataId(visit=31)
    assert butler.get("visit_summary", visit=31) == {"v": 31}
    assert [p for p in butler.datastore.walk() if p.startswith("summary/")] == [ref.path]


def test_bare_provenance_is_completed(butler: Butler) -> None:
    butler.put({"x": 1}, "visit_summary", visit=41, provenance=Provenance(task="t", config={}))
    doc = butler.get_provenance_dict("visit_summary", visit=41)
    assert doc is not None
    assert doc["start"] and doc["end"] and doc["host"]
    assert doc["software"]["repo-butler"]
    assert doc["output"] == {
        "dataset_type": "visit_summary",
        "data_id": {"visit": 41},
        "run": "",
        "checksum": butler.get_ref("visit_summary", visit=41).checksum,
    }
