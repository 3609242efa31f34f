"""Parent repositories (issue 25) on local disk: a repository reads datasets from read-only
parents after its own runs, writes only to itself, and says where each dataset lives.

The parents here are closed before they are chained, as a repository someone else made would
be; every test that reads through a chain checks the parent's directory is unchanged to the
byte and the nanosecond (no registry rows, no SQLite ``-wal``/``-shm``, no temporary files).
"""

from __future__ import annotations

import gc
import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_support import one_error_line, run_rb
from repo_configs import META_VISIT_CCD

from repo_butler import Butler
from repo_butler.errors import ConfigError, DatasetNotFoundError, ParentRepositoryError
from repo_butler.provenance import Provenance


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file and directory under ``root``: size, mtime (ns) and content digest."""
    out = {}
    for path in sorted([root, *root.rglob("*")]):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns, digest)
    return out


def _make_parent(root: Path, src: str, visits: tuple[int, ...] = (1, 2), **config: Any) -> Path:
    with Butler.create(str(root), config={**META_VISIT_CCD, **config}) as butler:
        for v in visits:
            for c in range(3):
                prov = Provenance.build("maker", {"src": src}) if c == 0 else None
                butler.put({"v": v, "c": c, "src": src}, "meta", visit=v, ccd=c, provenance=prov)
    gc.collect()  # the registry connection closes: its -wal/-shm files go
    return root


def _chain(root: Path, *parents: Path | dict[str, Any]) -> Butler:
    entries = [p if isinstance(p, dict) else {"url": str(p)} for p in parents]
    return Butler.create(str(root), config={**META_VISIT_CCD, "parents": entries})


@pytest.fixture
def parent(tmp_path: Path) -> Path:
    return _make_parent(tmp_path / "P", "P")


def test_reads_fall_through_to_the_parent_and_writes_stay_here(
    parent: Path, tmp_path: Path
) -> None:
    before = snapshot(parent)
    with _chain(tmp_path / "O", parent) as out:
        assert out.get("meta", visit=2, ccd=1) == {"v": 2, "c": 1, "src": "P"}
        out.put({"v": 1, "c": 1, "src": "O"}, "meta", visit=1, ccd=1)  # shadows the parent's
        assert out.get("meta", visit=1, ccd=1)["src"] == "O"
        refs = {(r.data_id["visit"], r.data_id["ccd"]): r for r in out.query_datasets("meta")}
        assert len(refs) == 6
        assert refs[(1, 1)].repository is None and refs[(1, 1)].path.startswith("meta/")
        assert refs[(2, 1)].repository == str(parent)
        assert refs[(2, 1)].uri == (parent / "meta/0000002/m-001.json").as_uri()
        assert out.exists("meta", visit=2, ccd=1)
        assert not out.exists("meta", visit=2, ccd=1, output_run_only=True)
        assert [d["visit"] for d in out.query_data_ids(["visit"])] == [1, 2]
        # a parent's provenance comes from the parent's registry
        prov = out.get_provenance("meta", visit=2, ccd=0)
        assert prov is not None and prov.config == {"src": "P"}
        # a worker reads the parent's files from the pickled IO, with the recorded checksum
        io = pickle.loads(pickle.dumps(out.worker_io()))
        assert io.read(refs[(2, 2)], verify=True) == {"v": 2, "c": 2, "src": "P"}
        with out.open_file(refs[(2, 2)]) as fh:
            assert json.loads(fh.read())["src"] == "P"
        with pytest.raises(DatasetNotFoundError, match=rf"then {parent}"):
            out.get("meta", visit=9, ccd=0)
        with pytest.raises(DatasetNotFoundError):  # remove never reaches into a parent
            out.remove("meta", visit=2, ccd=1)
        with pytest.raises(ConfigError, match=r"read-only .*a parent of .*never written"):
            out.parents[0].put({}, "meta", visit=7, ccd=7)
    assert snapshot(parent) == before


def test_a_chain_of_three_and_a_parent_rerun(tmp_path: Path) -> None:
    grand = _make_parent(tmp_path / "G", "G", visits=(1, 2, 3))
    with Butler(str(grand), rerun="r") as g:
        g.put({"src": "G/r"}, "meta", visit=3, ccd=0)
    gc.collect()
    mid = tmp_path / "M"
    _chain(mid, {"url": str(grand), "rerun": "r"}).close()
    with Butler(str(mid)) as m:
        m.put({"src": "M"}, "meta", visit=2, ccd=0)
    gc.collect()
    before = snapshot(grand), snapshot(mid)
    with _chain(tmp_path / "C", mid) as child:
        got = {(r.data_id["visit"], r.data_id["ccd"]): r for r in child.query_datasets("meta")}
        assert got[(2, 0)].repository == str(mid)
        assert got[(3, 0)].repository == str(grand) and got[(3, 0)].run == "r"
        assert child.get("meta", visit=3, ccd=0) == {"src": "G/r"}  # the rerun first
        assert child.get("meta", visit=1, ccd=2)["src"] == "G"
        io = pickle.loads(pickle.dumps(child.worker_io()))
        assert io.read(got[(3, 0)], verify=True) == {"src": "G/r"}
    assert (snapshot(grand), snapshot(mid)) == before


def test_bad_parents_are_refused_before_anything_is_written(parent: Path, tmp_path: Path) -> None:
    out = tmp_path / "O"
    with pytest.raises(ParentRepositoryError, match=r"is not a repository"):
        _chain(out, tmp_path / "nowhere")
    assert not out.exists()
    with pytest.raises(ConfigError, match=r"secret look like credentials"):
        _chain(out, {"url": str(parent), "storage_options": {"secret": "x"}})
    with pytest.raises(ConfigError, match=r"listed twice"):
        _chain(out, parent, {"url": f"file://{parent}/"})
    with pytest.raises(ParentRepositoryError, match=r"no rerun|rerun"):
        _chain(out, {"url": str(parent), "rerun": "missing"})
    assert not out.exists()


def test_a_cycle_of_parents_is_named(tmp_path: Path) -> None:
    a = _make_parent(tmp_path / "A", "A")
    b = tmp_path / "B"
    _chain(b, a).close()
    doc = yaml.safe_load((a / "butler.yaml").read_text())  # then A is made a child of B
    doc["version"] = 3
    doc["parents"] = [{"url": str(b)}]
    (a / "butler.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ParentRepositoryError, match=r"a cycle of parent repositories: .*A -> .*B"):
        Butler(str(b))


def test_parents_need_config_version_3(parent: Path, tmp_path: Path) -> None:
    out = tmp_path / "O"
    _chain(out, parent).close()
    doc = yaml.safe_load((out / "butler.yaml").read_text())
    assert doc["version"] == 3 and doc["parents"] == [{"url": str(parent)}]
    doc["version"] = 2
    (out / "butler.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"parents needs version: 3"):
        Butler(str(out))


def test_cli_create_with_parent_and_query_shows_the_repository(
    parent: Path, tmp_path: Path
) -> None:
    out = tmp_path / "O"
    cfg = tmp_path / "meta.yaml"
    cfg.write_text(yaml.safe_dump(META_VISIT_CCD))
    before = snapshot(parent)
    made = run_rb("create", str(out), "--config-file", str(cfg),
                  "--parent", str(parent))  # fmt: skip
    assert made.returncode == 0, made.stderr
    listed = run_rb("query-datasets", str(out), "meta", "-w", "visit = 2")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:2] == ["repository", "dataset_type"] and len(lines) == 4
    assert all(line.startswith(str(parent)) for line in lines[1:])
    as_json = json.loads(run_rb("query-datasets", str(out), "meta", "-f", "json").stdout)
    assert {d["repository"] for d in as_json} == {str(parent)}
    assert snapshot(parent) == before

    bad = run_rb("create", str(tmp_path / "X"), "--parent", str(tmp_path / "none"))
    assert "is not a repository" in one_error_line(bad) and not (tmp_path / "X").exists()
    bad = run_rb("create", str(tmp_path / "X"), "--parent-rerun", f"{parent}=r")
    assert "--parent-rerun needs the parent" in one_error_line(bad)
    bad = run_rb("query-datasets", str(out), "meta", "--parent-option", "anon=true")
    assert "expected URL=KEY=VALUE" in one_error_line(bad)
