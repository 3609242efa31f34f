"""Several processes put the same data IDs at once (local and real S3): exactly one put of each
wins, the registry checksum always matches the stored file and ``get`` returns the winner's data.

The short variants run in ``make test``; the ``slow`` ones race 200+ data IDs per backend.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from servers.fixtures import S3Root

from repo_butler import Butler
from repo_butler.datastore import checksum_bytes
from repo_butler.errors import DatasetExistsError
from repo_butler.maintenance import verify
from repo_butler.run_writer import RunWriter

CONFIG = {
    "dataset_types": {
        "meta": {
            "dimensions": ["visit", "ccd"],
            "formatter": "json",
            "template": "meta/{visit:07d}/m-{ccd:03d}.json",
        }
    }
}


def _payload(writer: int, ccd: int, pad: int) -> dict[str, Any]:
    return {"writer": writer, "ccd": ccd, "pad": chr(ord("a") + writer) * pad}


def _race_writer(
    url: str, options: dict[str, Any], writer: int, n: int, pad: int, start_at: float
) -> list[int]:
    """Put ccd 0..n-1 of visit 1 without overwrite; return the ccds this writer stored."""
    won = []
    with Butler(url, storage_options=options) as butler:
        time.sleep(max(0.0, start_at - time.time()))
        for ccd in range(n):
            try:
                butler.put(_payload(writer, ccd, pad), "meta", visit=1, ccd=ccd)
            except DatasetExistsError:
                continue
            won.append(ccd)
    return won


def _race(url: str, options: dict[str, Any], writers: int, n: int, pad: int) -> dict[str, int]:
    """Run the race; return counts of what went wrong (all must be zero)."""
    Butler.create(url, config=CONFIG, storage_options=options).close()
    ctx = mp.get_context("spawn")
    start_at = time.time() + 4.0  # after every process has imported and opened the Butler
    with ctx.Pool(writers) as pool:
        won = pool.starmap(
            _race_writer, [(url, options, w, n, pad, start_at) for w in range(writers)]
        )
    winners: dict[int, list[int]] = {}
    for writer, ccds in enumerate(won):
        for ccd in ccds:
            winners.setdefault(ccd, []).append(writer)
    bad = {"no_winner": 0, "two_winners": 0, "checksum_mismatch": 0, "loser_served": 0}
    with Butler(url, storage_options=options, writeable=False) as butler:
        for ccd in range(n):
            who = winners.get(ccd, [])
            if not who:
                bad["no_winner"] += 1
                continue
            if len(who) > 1:
                bad["two_winners"] += 1
            ref = butler.get_ref("meta", visit=1, ccd=ccd)
            stored = butler.datastore.get_bytes(ref.path)
            if checksum_bytes(stored) != ref.checksum:
                bad["checksum_mismatch"] += 1
            if butler.get(ref) != _payload(who[0], ccd, pad):
                bad["loser_served"] += 1
        report = verify(butler)
        bad["verify_problems"] = len(report.problems)
    return bad


CLEAN = {
    "no_winner": 0,
    "two_winners": 0,
    "checksum_mismatch": 0,
    "loser_served": 0,
    "verify_problems": 0,
}


def test_same_data_id_race_local(tmp_path: Path) -> None:
    assert _race(str(tmp_path / "repo"), {}, writers=2, n=40, pad=64 * 1024) == CLEAN


@pytest.mark.s3
def test_same_data_id_race_s3(s3_root: S3Root) -> None:
    assert _race(s3_root.url, s3_root.storage_options, writers=2, n=20, pad=64 * 1024) == CLEAN


@pytest.mark.stress
@pytest.mark.parametrize("writers", [2, 4])
def test_same_data_id_race_local_long(tmp_path: Path, writers: int) -> None:
    assert _race(str(tmp_path / "repo"), {}, writers=writers, n=250, pad=1024 * 1024) == CLEAN


@pytest.mark.s3
@pytest.mark.stress
@pytest.mark.parametrize("writers", [2, 4])
def test_same_data_id_race_s3_long(s3_root: S3Root, writers: int) -> None:
    options = s3_root.storage_options
    assert _race(s3_root.url, options, writers=writers, n=200, pad=256 * 1024) == CLEAN


def test_put_waits_for_a_writer_still_registering(tmp_path: Path) -> None:
    """The file of a writer that has not registered yet is never replaced: the second put
    waits, sees the registration and fails, leaving the first writer's bytes."""
    repo = str(tmp_path / "repo")
    Butler.create(repo, config=CONFIG).close()
    with Butler(repo) as first, Butler(repo) as second:
        planned = first.plan_put("meta", {"visit": 1, "ccd": 1}, overwrite=False)
        written = first.worker_io().write(planned, {"by": "first"})  # not registered yet
        timer = threading.Timer(0.5, first.register, args=([written],), kwargs={"replace": False})
        timer.start()
        t0 = time.perf_counter()
        try:
            with pytest.raises(DatasetExistsError, match="already exists"):
                second.put({"by": "second"}, "meta", visit=1, ccd=1)
        finally:
            timer.join()
        assert 0.4 < time.perf_counter() - t0 < RunWriter.stray_age
        assert second.get("meta", visit=1, ccd=1) == {"by": "first"}
        assert verify(second).ok


def test_put_replaces_a_local_stray_once_old_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RunWriter, "stray_age", 0.5)
    repo = str(tmp_path / "repo")
    with Butler.create(repo, config=CONFIG) as butler:
        butler.datastore.put_bytes("meta/0000001/m-002.json", b'{"by": "a dead writer"}')
        t0 = time.perf_counter()
        butler.put({"by": "me"}, "meta", visit=1, ccd=2)
        assert time.perf_counter() - t0 >= 0.45
        assert butler.get("meta", visit=1, ccd=2) == {"by": "me"}
        assert verify(butler).ok
