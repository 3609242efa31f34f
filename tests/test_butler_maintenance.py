"""reindex and verify, on every storage backend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import fsspec
import pytest
from conftest import RepoLocation
from repo_configs import META_FILTER_VISIT_CCD as CONFIG

from repo_butler import Butler, Provenance
from repo_butler.errors import RegistryError, RepositoryNotFoundError
from repo_butler.maintenance import verify
from repo_butler.reindex import reindex


@pytest.fixture
def filled(repo_location: RepoLocation) -> Iterator[RepoLocation]:
    opts = repo_location.storage_options
    with Butler.create(repo_location.url, config=CONFIG, storage_options=opts) as butler:
        for visit in (1, 2):
            for ccd in range(3):
                butler.put({"v": visit, "c": ccd}, "meta", filter="g", visit=visit, ccd=ccd)
        prov = Provenance.build("task", {"x": 1})
        butler.put({"p": 1}, "meta", filter="r", visit=3, ccd=0, provenance=prov)
    with Butler(repo_location.url, rerun="re", storage_options=opts) as rerun:
        rerun.put({"rerun": True}, "meta", filter="g", visit=1, ccd=0)
    with Butler(repo_location.url, rerun="re:re2", storage_options=opts) as rerun:
        rerun.put({"rerun2": True}, "meta", filter="g", visit=1, ccd=1)
    yield repo_location


def _snapshot(butler: Butler) -> list[tuple]:
    return [
        (r.run, r.path, r.size, r.checksum, r.data_id)
        for r in sorted(butler.registry.all_records(), key=lambda r: (r.run, r.path))
    ]


def _fs_path(url: str, options: dict[str, Any]) -> tuple[fsspec.AbstractFileSystem, str]:
    return fsspec.core.url_to_fs(url, **options)


def test_reindex_restores_everything(filled: RepoLocation) -> None:
    opts = filled.storage_options
    with Butler(filled.url, storage_options=opts) as butler:
        before = _snapshot(butler)
        prov_before = butler.get_provenance_dict("meta", visit=3)
        root = butler.root
    fs, path = _fs_path(root + "/registry.sqlite3", opts)
    fs.rm_file(path)
    report = reindex(filled.url, storage_options=opts)
    assert report.total == 9 and report.datasets == {"meta": 9}
    assert report.runs == ["", "re", "re2"]
    assert report.unrecognised == []
    with Butler(filled.url, storage_options=opts) as butler:
        assert _snapshot(butler) == before
        assert butler.get_provenance_dict("meta", visit=3) == prov_before
    with Butler(filled.url, rerun="re2", storage_options=opts) as rerun:
        assert rerun.search_runs == ("re2", "re", "")
        assert rerun.get("meta", filter="g", visit=1, ccd=0) == {"rerun": True}
        assert rerun.get("meta", filter="g", visit=1, ccd=1) == {"rerun2": True}


def test_corrupt_registry_is_reported_then_rebuilt(filled: RepoLocation) -> None:
    opts = filled.storage_options
    with Butler(filled.url, storage_options=opts) as butler:
        root = butler.root
    fs, path = _fs_path(root + "/registry.sqlite3", opts)
    for suffix in ("-wal", "-shm"):
        if fs.exists(path + suffix):
            fs.rm_file(path + suffix)
    fs.pipe_file(path, b"this is not a database" * 100)
    with pytest.raises(RegistryError, match="rb reindex"):
        Butler(filled.url, storage_options=opts)
    assert reindex(filled.url, storage_options=opts).total == 9
    with Butler(filled.url, storage_options=opts) as butler:
        assert butler.get("meta", visit=2, ccd=2) == {"v": 2, "c": 2}


def test_verify_reports_each_kind_of_problem(filled: RepoLocation) -> None:
    opts = filled.storage_options
    with Butler(filled.url, storage_options=opts) as butler:
        clean = verify(butler)
        assert clean.ok and clean.checked == 9
        store = butler.datastore
        tampered = butler.get_ref("meta", visit=1, ccd=2)
        store.put_bytes(tampered.path, b'{"c":9,"v":1}')  # same size, other bytes
        gone = butler.get_ref("meta", visit=2, ccd=0)
        store.remove(gone.path)
        store.put_bytes("meta/g/0000009/m-000.json", b"{}")
        store.put_bytes("stray.txt", b"?")
        report = verify(butler)
    kinds = sorted((p.kind, p.path) for p in report.problems)
    assert kinds == [
        ("checksum", tampered.path),
        ("missing_file", gone.path),
        ("unregistered_file", "meta/g/0000009/m-000.json"),
        ("unregistered_file", "stray.txt"),
    ]
    problem = next(p for p in report.problems if p.kind == "checksum")
    assert problem.data_id == {"filter": "g", "visit": 1, "ccd": 2}
    assert json.loads(json.dumps(report.to_dict()))["ok"] is False


def test_reindex_needs_a_repository(tmp_path: object) -> None:
    with pytest.raises(RepositoryNotFoundError):
        reindex(str(tmp_path))


def test_verify_reports_and_repairs_sidecars(filled: RepoLocation) -> None:
    """A sidecar that describes other bytes (a concurrent overwrite's loser) or is missing is
    reported; --repair-sidecars rewrites it from the registry's copy."""
    opts = filled.storage_options
    with Butler(filled.url, storage_options=opts) as butler:
        ref = butler.get_ref("meta", visit=3)
        sidecar = ref.path + ".provenance.json"
        store = butler.datastore
        good = store.get_bytes(sidecar)
        doc = json.loads(good)
        doc["output"]["checksum"] = "sha256:" + "0" * 64
        store.put_bytes(sidecar, json.dumps(doc).encode())
        report = verify(butler)
        assert [(p.kind, p.path) for p in report.problems] == [("sidecar", sidecar)]
        assert "describes sha256:000" in report.problems[0].detail
        assert "--repair-sidecars" in report.problems[0].detail
        assert verify(butler, repair_sidecars=True).ok
        assert json.loads(store.get_bytes(sidecar)) == json.loads(good)
        store.remove(sidecar)
        assert "missing" in verify(butler).problems[0].detail
        assert verify(butler, repair_sidecars=True).ok and verify(butler).ok


def test_reindex_leaves_out_a_sidecar_of_other_bytes(filled: RepoLocation) -> None:
    """An overwrite killed between its sidecar and its data leaves a sidecar describing bytes
    that were never stored: reindex registers the dataset without it and says so."""
    opts = filled.storage_options
    with Butler(filled.url, storage_options=opts) as butler:
        ref = butler.get_ref("meta", visit=3)
        sidecar = ref.path + ".provenance.json"
        doc = json.loads(butler.datastore.get_bytes(sidecar))
        doc["output"]["checksum"] = "sha256:" + "1" * 64
        butler.datastore.put_bytes(sidecar, json.dumps(doc).encode())
    report = reindex(filled.url, storage_options=opts)
    assert report.total == 9 and report.stale_sidecars == [sidecar]
    with Butler(filled.url, storage_options=opts) as butler:
        assert butler.get_provenance("meta", visit=3) is None
        assert butler.get("meta", visit=3) == {"p": 1}


def test_checksums_are_verified_with_the_algorithm_they_name(filled: RepoLocation) -> None:
    """A registry mixing algorithms (an earlier release's SHA-256 beside this store's own)
    verifies; a checksum of an algorithm this release does not know is reported by verify and
    not checked by reads."""
    import hashlib

    import blake3

    opts = filled.storage_options
    with Butler(filled.url, storage_options=opts) as butler:
        records = {r.path: r for r in butler.registry.all_records()}
        old = records[butler.get_ref("meta", visit=1, ccd=0).path]
        data = butler.datastore.get_bytes(old.path)
        sha = "sha256:" + hashlib.sha256(data).hexdigest()
        blake = "blake3:" + blake3.blake3(data).hexdigest()
        for checksum in (sha, blake):
            butler.registry.insert(old._replace(checksum=checksum), replace=True)
            assert verify(butler).ok, checksum
            assert butler.get("meta", visit=1, ccd=0, verify=True) == {"v": 1, "c": 0}
        newer = records[butler.get_ref("meta", visit=2, ccd=1).path]
        butler.registry.insert(newer._replace(checksum="md17:" + "ab" * 32), replace=True)
        report = verify(butler)
        assert [(p.kind, p.path) for p in report.problems] == [("checksum", newer.path)]
        assert "algorithm unknown to this release" in report.problems[0].detail
        assert butler.get("meta", visit=2, ccd=1, verify=True) == {"v": 2, "c": 1}
