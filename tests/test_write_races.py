"""Several processes put the same data IDs at once (local and real S3): exactly one put of each
wins, the registry checksum always matches the stored file and ``get`` returns the winner's data.

The short variants run in ``make test``; the ``slow`` ones race 200+ data IDs per backend.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from repo_configs import META_VISIT_CCD as CONFIG
from servers.fixtures import S3Root

from repo_butler import Butler
from repo_butler.checksums import checksum_matches
from repo_butler.errors import ConcurrentWriteError, DatasetExistsError
from repo_butler.maintenance import verify
from repo_butler.provenance import Provenance
from repo_butler.run_writer import RunWriter


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
            if not checksum_matches(stored, ref.checksum):
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


# -- overwrite=True: last writer wins, and the registry always describes the file ------------


def _overwrite_writer(
    url: str, options: dict[str, Any], writer: int, n: int, pad: int, start_at: float
) -> int:
    """Put ccd 0..n-1 of visit 1 with overwrite (and provenance); return how many puts ran."""
    with Butler(url, storage_options=options) as butler:
        time.sleep(max(0.0, start_at - time.time()))
        for ccd in range(n):
            prov = Provenance(task=f"writer{writer}", config={"ccd": ccd})
            butler.put(
                _payload(writer, ccd, pad), "meta", visit=1, ccd=ccd, overwrite=True,
                provenance=prov,
            )  # fmt: skip
    return n


def _overwrite_race(
    url: str,
    options: dict[str, Any],
    writers: int,
    n: int,
    pad: int,
    config: dict[str, Any] = CONFIG,
    repair: bool = False,
) -> dict[str, int]:
    """Several writers overwrite the same data IDs; count rows whose checksum, data or
    provenance does not describe the stored file (all must be zero)."""
    Butler.create(url, config=config, storage_options=options).close()
    ctx = mp.get_context("spawn")
    start_at = time.time() + 4.0
    with ctx.Pool(writers) as pool:
        pool.starmap(
            _overwrite_writer, [(url, options, w, n, pad, start_at) for w in range(writers)]
        )
    bad = _overwrite_mismatches(url, options, n)
    bad["verify_problems"] = len(_verify(url, options).problems)
    if repair:  # verify --repair-sidecars, then count again
        _verify(url, options, repair=True)
        bad["after_repair"] = sum(_overwrite_mismatches(url, options, n).values())
    return bad


def _verify(url: str, options: dict[str, Any], *, repair: bool = False) -> Any:
    with Butler(url, storage_options=options, writeable=repair) as butler:
        return verify(butler, repair_sidecars=repair)


def _overwrite_mismatches(url: str, options: dict[str, Any], n: int) -> dict[str, int]:
    bad = {"checksum_mismatch": 0, "provenance_mismatch": 0, "sidecar_mismatch": 0}
    with Butler(url, storage_options=options, writeable=False) as butler:
        for ccd in range(n):
            ref = butler.get_ref("meta", visit=1, ccd=ccd)
            stored = butler.datastore.get_bytes(ref.path)
            if not checksum_matches(stored, ref.checksum):
                bad["checksum_mismatch"] += 1
            writer = json.loads(stored)["writer"]
            prov = butler.get_provenance("meta", visit=1, ccd=ccd)
            if prov is None or prov.task != f"writer{writer}":
                bad["provenance_mismatch"] += 1
            sidecar = json.loads(butler.datastore.get_bytes(ref.path + ".provenance.json"))
            if sidecar["output"]["checksum"] != ref.checksum:
                bad["sidecar_mismatch"] += 1
    return bad


CLEAN_OVERWRITE = {
    "checksum_mismatch": 0,
    "provenance_mismatch": 0,
    "sidecar_mismatch": 0,
    "verify_problems": 0,
}


def test_overwrite_race_local(tmp_path: Path) -> None:
    result = _overwrite_race(str(tmp_path / "repo"), {}, writers=2, n=60, pad=256 * 1024)
    assert result == CLEAN_OVERWRITE


def test_overwrite_race_postgres(tmp_path: Path, postgres_dsn: str) -> None:
    config = {**CONFIG, "registry": postgres_dsn}
    result = _overwrite_race(str(tmp_path / "repo"), {}, 2, n=60, pad=64 * 1024, config=config)
    assert result == CLEAN_OVERWRITE


def _assert_s3_overwrite_race(result: dict[str, int]) -> None:
    """On S3 a sidecar PUT that timed out and was retried by the client can still land after
    the final writer's registration made the sidecar its own (seen under load average 5-6:
    0-4 of 200 data IDs). Registry and files must agree always; such a sidecar must be
    reported by verify and mended by --repair-sidecars."""
    assert result["checksum_mismatch"] == result["provenance_mismatch"] == 0, result
    assert result["verify_problems"] == result["sidecar_mismatch"], result
    assert result["after_repair"] == 0, result


@pytest.mark.s3
def test_overwrite_race_s3(s3_root: S3Root) -> None:
    options = s3_root.storage_options
    _assert_s3_overwrite_race(_overwrite_race(s3_root.url, options, 2, 20, 64 * 1024, repair=True))


@pytest.mark.stress
@pytest.mark.parametrize("writers", [2, 4])
def test_overwrite_race_local_long(tmp_path: Path, writers: int) -> None:
    result = _overwrite_race(str(tmp_path / "repo"), {}, writers, n=250, pad=1024 * 1024)
    assert result == CLEAN_OVERWRITE


@pytest.mark.s3
@pytest.mark.stress
def test_overwrite_race_s3_long(s3_root: S3Root) -> None:
    options = s3_root.storage_options
    _assert_s3_overwrite_race(
        _overwrite_race(s3_root.url, options, 3, 200, 256 * 1024, repair=True)
    )


@pytest.fixture(params=["local", "postgres", pytest.param("s3", marks=pytest.mark.s3)])
def repo_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """A new repository (local; local files with a PostgreSQL registry; S3): URL, options."""
    url, options, config = str(tmp_path / "repo"), {}, CONFIG
    if request.param == "postgres":
        config = {**CONFIG, "registry": request.getfixturevalue("postgres_dsn")}
    elif request.param == "s3":
        s3: S3Root = request.getfixturevalue("s3_root")
        url, options = s3.url, s3.storage_options
    Butler.create(url, config=config, storage_options=options).close()
    return url, options


@pytest.mark.parametrize("order", ["a_registers_first", "b_registers_first"])
def test_overwrite_registration_follows_the_file(
    repo_url: tuple[str, dict[str, Any]], order: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A writes, B replaces the file, then both register in either order: the row is B's,
    A's registration is left out with a warning, and A never sees an error."""
    url, options = repo_url
    with Butler(url, storage_options=options) as a, Butler(url, storage_options=options) as b:
        did = {"visit": 1, "ccd": 3}
        wa = a.worker_io().write(a.plan_put("meta", did), {"by": "a"})
        wb = b.worker_io().write(b.plan_put("meta", did), {"by": "b"})
        first, second = [(a, wa), (b, wb)] if order == "a_registers_first" else [(b, wb), (a, wa)]
        with caplog.at_level(logging.WARNING, logger="repo_butler.run_writer"):
            first[0].register([first[1]])
            second[0].register([second[1]])
        assert "was replaced by another writer" in caplog.text
        b.registry.refresh()
        assert b.get("meta", did) == {"by": "b"}
        assert b.get_ref("meta", did).checksum == wb.checksum
        assert verify(b).ok


def test_slow_registration_after_stray_replacement_fails_cleanly(
    repo_url: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A put whose file was taken for a crashed writer's stray (registration slower than
    stray_age) is refused at registration; the replacer's dataset stands, consistent."""
    monkeypatch.setattr(RunWriter, "stray_age", 0.3)
    url, options = repo_url
    with Butler(url, storage_options=options) as slow, Butler(url, storage_options=options) as fast:
        did = {"visit": 1, "ccd": 4}
        planned = slow.plan_put("meta", did, overwrite=False)
        written = slow.worker_io().write(planned, {"by": "slow"})
        time.sleep(1.2)  # older than stray_age (S3 dates have 1 s steps), not registered
        # the other writer takes the file for a stray and replaces it (as put would) ...
        state = fast.datastore.stray_state(planned.path)
        assert state is not None and state[1] >= 0.3
        fast_plan = fast.plan_put("meta", did, overwrite=False)
        replaced = fast.worker_io().write(fast_plan, {"by": "fast"}, replacing=state[0])
        # ... so the slow writer's registration, whenever it comes, is refused
        with pytest.raises(ConcurrentWriteError, match="not registered"):
            slow.register([written], replace=False)
        fast.register([replaced], replace=False)
        slow.registry.refresh()
        assert slow.get("meta", did) == {"by": "fast"}
        assert verify(slow).ok
