"""The S3 registry's compare-and-swap, step by step, with two writers in one process."""

from __future__ import annotations

from typing import Any

import pytest
from servers.fixtures import S3Root
from servers.requests import RequestCounter

from repo_butler import DataId
from repo_butler.config import RepoConfig, default_config
from repo_butler.errors import DatasetExistsError, RegistryError
from repo_butler.registry import DatasetRecord, ObjectStoreRegistry

pytestmark = pytest.mark.s3

UNIVERSE = RepoConfig.from_mapping(default_config()).universe


def _rec(visit: int, ccd: int, size: int = 1) -> DatasetRecord:
    did = DataId(visit=visit, ccd=ccd)
    return DatasetRecord("calexp", did, "", f"c/{visit}/{ccd}", size, "sha256:00", "t", None)


def _open(root: S3Root, **kwargs: Any) -> ObjectStoreRegistry:
    fs = root.server.filesystem()
    return ObjectStoreRegistry(fs, f"{root.path}/registry.sqlite3", UNIVERSE, **kwargs)


def test_stale_writer_replays_instead_of_overwriting(s3_root: S3Root) -> None:
    a, b = _open(s3_root), _open(s3_root)
    a.insert(_rec(1, 1))  # first upload: If-None-Match: *
    b.insert(_rec(2, 2))  # b's copy predates a's upload: 412, re-download, replay
    assert b.conflicts == 1
    a.insert(_rec(3, 3))  # now a is the stale one
    assert a.conflicts == 1
    reader = _open(s3_root, writeable=False)
    assert sorted(r.data_id["visit"] for r in reader.all_records()) == [1, 2, 3]
    # the same data ID from a stale writer: the replay finds it and refuses
    with pytest.raises(DatasetExistsError):
        b.insert(_rec(3, 3, size=99))
    assert [r.size for r in reader.all_records() if r.data_id["visit"] == 3] == [1]
    for reg in (a, b, reader):
        reg.close()


def test_batch_uploads_once_and_replays_whole_batch_on_conflict(s3_root: S3Root) -> None:
    a, b = _open(s3_root), _open(s3_root)
    a.insert(_rec(0, 0))
    b.refresh()
    counter = RequestCounter().attach(b._fs)
    with b.batch():
        for ccd in range(10):
            b.insert(_rec(5, ccd))
        a.insert(_rec(6, 0))  # another writer commits while b's batch is open
    assert b.conflicts == 1
    assert counter.counts["PutObject"] == 2  # the conflicting upload and the replayed one
    reader = _open(s3_root, writeable=False)
    assert len(list(reader.all_records())) == 12
    for reg in (a, b, reader):
        reg.close()


def test_reads_check_freshness_with_one_head_unless_max_staleness(s3_root: S3Root) -> None:
    writer = _open(s3_root)
    writer.insert(_rec(1, 1))
    eager, lazy = _open(s3_root, writeable=False), _open(s3_root, writeable=False, max_staleness=60)
    counter = RequestCounter().attach(eager._fs).attach(lazy._fs)
    writer.insert(_rec(2, 2))
    counter.reset()
    assert len(eager.query("calexp", [""], dimensions=["visit", "ccd"])) == 2
    assert counter.snapshot() == {"HeadObject": 1, "GetObject": 1}  # changed: re-downloaded
    counter.reset()
    assert len(lazy.query("calexp", [""], dimensions=["visit", "ccd"])) == 1  # trusted copy
    assert counter.total == 0
    lazy.refresh()
    assert len(lazy.query("calexp", [""], dimensions=["visit", "ccd"])) == 2
    with pytest.raises(RegistryError, match="read-only"):
        lazy.insert(_rec(9, 9))
    for reg in (writer, eager, lazy):
        reg.close()
