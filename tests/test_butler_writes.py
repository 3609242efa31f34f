"""Writes without a registry (plan in the driver, write in a worker, register in the driver),
run for every storage backend (file://, memory://, s3://)."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from typing import Any

import fsspec
import pytest
from conftest import RepoLocation, independent_checksum
from repo_configs import META_VISIT_CCD as CONFIG

from repo_butler import Butler, DataId, PlannedPut, Provenance, WorkerIO, WrittenDataset
from repo_butler.errors import (
    ConfigError,
    DataIdError,
    DatasetExistsError,
    DatasetTypeError,
    RegistryError,
)
from repo_butler.maintenance import verify
from repo_butler.provenance import SIDECAR_SUFFIX


@pytest.fixture
def butler(repo_location: RepoLocation) -> Iterator[Butler]:
    with Butler.create(
        repo_location.url, config=CONFIG, storage_options=repo_location.storage_options
    ) as b:
        yield b


def _raw(uri: str, options: dict[str, Any]) -> bytes:
    fs, path = fsspec.core.url_to_fs(uri, **options)
    data: bytes = fs.cat_file(path)
    return data


def test_plan_normalises_the_data_id_and_follows_the_template(butler: Butler) -> None:
    planned = butler.plan_put("meta", {"ccd": "16", "visit": 903988})
    assert planned == PlannedPut(
        "meta", DataId(visit=903988, ccd=16), "", "meta/0903988/m-016.json"
    )
    assert list(planned.data_id) == ["visit", "ccd"]  # the dataset type's dimension order
    assert isinstance(planned.data_id, DataId)
    with pytest.raises(DataIdError, match="lacks"):
        butler.plan_put("meta", {"visit": 1})
    with pytest.raises(DatasetTypeError):
        butler.plan_put("nosuch", {"visit": 1})


def test_plan_in_a_rerun_has_the_run_prefix(butler: Butler, repo_location: RepoLocation) -> None:
    with Butler(butler.root, rerun="r1", storage_options=repo_location.storage_options) as rb:
        planned = rb.plan_put("meta", DataId(visit=1, ccd=2))
        assert planned.run == "r1"
        assert planned.path == "rerun/r1/meta/0000001/m-002.json"


def test_plan_refuses_a_read_only_butler(butler: Butler, repo_location: RepoLocation) -> None:
    with (
        Butler(butler.root, storage_options=repo_location.storage_options, writeable=False) as ro,
        pytest.raises(ConfigError, match="read-only"),
    ):
        ro.plan_put("meta", {"visit": 1, "ccd": 2})


def test_write_then_register_round_trip(butler: Butler, repo_location: RepoLocation) -> None:
    obj = {"answer": 42, "list": [1, 2, 3]}
    planned = butler.plan_put("meta", {"visit": 7, "ccd": 3})
    prov = Provenance(task="test.writes", config={"x": 1})
    written = butler.worker_io().write(planned, obj, prov)
    # the bytes are there before registration, with the checksum reported
    raw = _raw(written.uri, repo_location.storage_options)
    assert written.size == len(raw)
    assert written.checksum == independent_checksum(raw, written.checksum)
    expected = "sha256:" if repo_location.kind == "s3" else "blake3:"  # S3: botocore's hash
    assert written.checksum.startswith(expected)
    assert written.provenance_path == planned.path + SIDECAR_SUFFIX
    assert not butler.exists("meta", visit=7, ccd=3)
    (ref,) = butler.register([written])
    assert ref.uri == written.uri
    assert ref.checksum == written.checksum
    assert ref.data_id == planned.data_id
    assert butler.get("meta", visit=7, ccd=3) == obj
    doc = butler.get_provenance_dict("meta", visit=7, ccd=3)
    assert doc is not None
    assert doc["task"] == "test.writes"
    assert doc["output"]["checksum"] == written.checksum
    sidecar = _raw(butler.datastore.uri(written.provenance_path), repo_location.storage_options)
    assert json.loads(sidecar) == doc


def test_put_and_write_register_store_the_same(butler: Butler) -> None:
    ref_put = butler.put({"a": 1}, "meta", visit=1, ccd=1)
    io = butler.worker_io()
    (ref_reg,) = butler.register(
        [io.write(butler.plan_put("meta", {"visit": 1, "ccd": 2}), {"a": 1})]
    )
    assert ref_put.checksum == ref_reg.checksum
    assert ref_put.size == ref_reg.size
    assert ref_reg.path == ref_put.path.replace("m-001", "m-002")


def test_worker_io_pickles_and_writes_from_the_copy(
    butler: Butler, repo_location: RepoLocation
) -> None:
    io = pickle.loads(pickle.dumps(butler.worker_io()))
    assert io == butler.worker_io()
    planned = pickle.loads(pickle.dumps(butler.plan_put("meta", {"visit": 2, "ccd": 5})))
    written = io.write(planned, [1, 2, 3])
    copy = pickle.loads(pickle.dumps(written))
    assert copy == written
    assert isinstance(copy.planned.data_id, DataId)
    (ref,) = butler.register([copy])
    assert butler.get(ref) == [1, 2, 3]
    assert io.read(ref) == [1, 2, 3]
    raw = _raw(ref.uri, repo_location.storage_options)
    assert io.read_bytes(ref) == io.read_bytes(ref.path) == raw
    with io.open(ref, block_size=64) as fh:
        assert fh.read() == raw


def test_register_many_in_one_batch(butler: Butler) -> None:
    io = butler.worker_io()
    written = [
        io.write(butler.plan_put("meta", {"visit": 3, "ccd": ccd}), {"ccd": ccd})
        for ccd in range(5)
    ]
    uploads = getattr(butler.registry, "uploads", None)
    refs = butler.register(written)
    assert [r.data_id["ccd"] for r in refs] == list(range(5))
    assert [r.data_id for r in butler.query_datasets("meta", "visit = 3")] == [
        DataId(visit=3, ccd=c) for c in range(5)
    ]
    if uploads is not None:  # a registry in a bucket: one upload for the batch
        assert butler.registry.uploads == uploads + 1  # type: ignore[attr-defined]


def test_register_replaces_unless_told_not_to(butler: Butler) -> None:
    io = butler.worker_io()
    planned = butler.plan_put("meta", {"visit": 4, "ccd": 1})
    butler.register([io.write(planned, {"v": 1})])
    butler.register([io.write(planned, {"v": 2})])
    assert butler.get("meta", visit=4, ccd=1) == {"v": 2}
    with pytest.raises(DatasetExistsError):
        butler.register([io.write(planned, {"v": 3})], replace=False)


def test_plan_without_overwrite_refuses_before_anything_is_written(butler: Butler) -> None:
    io = butler.worker_io()
    first = butler.plan_put("meta", {"visit": 4, "ccd": 2}, overwrite=False)
    assert first.exclusive
    butler.register([io.write(first, {"v": 1})], replace=False)
    with pytest.raises(DatasetExistsError, match="already exists"):
        butler.plan_put("meta", {"visit": 4, "ccd": 2}, overwrite=False)
    # a plan made before another writer stored the file: the worker's write is exclusive
    with pytest.raises(FileExistsError):
        io.write(first, {"v": 2})
    assert butler.get("meta", visit=4, ccd=2) == {"v": 1}
    assert verify(butler).ok


def test_register_without_replace_refuses_the_whole_batch_first(butler: Butler) -> None:
    io = butler.worker_io()
    butler.put({"v": 0}, "meta", visit=8, ccd=2)
    written = [io.write(butler.plan_put("meta", {"visit": 8, "ccd": c}), {"v": c}) for c in (1, 2)]
    with pytest.raises(DatasetExistsError):
        butler.register(written, replace=False)
    assert not butler.exists("meta", visit=8, ccd=1)  # nothing of the batch was registered


def test_register_removes_a_sidecar_the_new_write_does_not_have(butler: Butler) -> None:
    io = butler.worker_io()
    planned = butler.plan_put("meta", {"visit": 9, "ccd": 1})
    butler.register([io.write(planned, {"v": 1}, Provenance(task="t", config={}))])
    sidecar = planned.path + SIDECAR_SUFFIX
    assert butler.datastore.exists(sidecar)
    butler.register([io.write(planned, {"v": 2})])
    assert not butler.datastore.exists(sidecar)
    assert verify(butler).ok


def test_worker_io_refuses_a_plan_of_another_run(
    butler: Butler, repo_location: RepoLocation
) -> None:
    with Butler(butler.root, rerun="other", storage_options=repo_location.storage_options) as rb:
        planned = rb.plan_put("meta", {"visit": 5, "ccd": 1})
    with pytest.raises(RegistryError, match="planned for run 'other'"):
        butler.worker_io().write(planned, {})


def test_register_refuses_another_run(butler: Butler, repo_location: RepoLocation) -> None:
    with Butler(butler.root, rerun="other", storage_options=repo_location.storage_options) as rb:
        written = rb.worker_io().write(rb.plan_put("meta", {"visit": 5, "ccd": 1}), {})
    with pytest.raises(RegistryError, match="rerun='other'"):
        butler.register([written])
    assert not butler.exists("meta", visit=5, ccd=1)


def test_invalid_provenance_writes_nothing(butler: Butler) -> None:
    planned = butler.plan_put("meta", {"visit": 6, "ccd": 1})
    bad = Provenance(task="", config={})  # the schema requires a task name
    with pytest.raises(ConfigError, match="provenance"):
        butler.worker_io().write(planned, {"a": 1}, bad)
    assert not butler.datastore.exists(planned.path)
    assert not butler.datastore.exists(planned.path + SIDECAR_SUFFIX)


def test_unknown_dataset_type_in_worker_io_is_a_clear_error(butler: Butler) -> None:
    planned = PlannedPut("nosuch", DataId(visit=1), "", "x/1.json")
    with pytest.raises(DatasetTypeError, match="nosuch"):
        butler.worker_io().write(planned, {})


def test_worker_io_reads_files_ingested_in_place(
    butler: Butler, repo_location: RepoLocation, tmp_path: Any
) -> None:
    source = tmp_path / "m-009.json"
    source.write_text(json.dumps({"direct": True}))
    (ref,) = butler.ingest("meta", [str(source)], transfer="direct", data_id={"visit": 8, "ccd": 9})
    io = pickle.loads(pickle.dumps(butler.worker_io()))
    assert io.read(ref) == {"direct": True}
    with io.open(ref) as fh:
        assert json.loads(fh.read()) == {"direct": True}


def test_repr_hides_storage_option_values() -> None:
    options = {"key": "AKIDEXAMPLE", "secret": "s3cr3t-value", "endpoint_url": "http://x:1"}
    io = WorkerIO("s3://bucket/repo", options, {"meta": "json"}, "")
    for shown in (repr(io), str(io), repr(pickle.loads(pickle.dumps(io)))):
        assert "s3cr3t-value" not in shown
        assert "AKIDEXAMPLE" not in shown
        assert "http://x:1" not in shown
        assert "s3://bucket/repo" in shown
        assert "endpoint_url" in shown  # the keys are shown, the values are not
    planned = PlannedPut("meta", DataId(visit=1, ccd=2), "", "m.json")
    written = WrittenDataset(planned, "s3://bucket/repo/m.json", 2, "sha256:0", None, None)
    assert pickle.loads(pickle.dumps(written)) == written
