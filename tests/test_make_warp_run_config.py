"""A rerun records its make-warp config; another config is refused unless --clobber-config, and
--reuse never keeps a warp made with another config (issue 20, point 2). Runs the real ``rb``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cli_support import one_error_line, run_rb, write_small_cli_repo
from repo_copy import copy_repo

from repo_butler import Butler
from repo_butler.errors import RepoButlerError
from warping.errors import RunConfigMismatchError
from warping.task.config import MakeWarpConfig, apply_overrides
from warping.task.runner import run_make_warp

FIXTURE_V1 = Path(__file__).parent / "fixtures" / "repo-v1"
KERNEL = "warpAndPsfMatch.warp.warpingKernelName"
PATCH = ["--id", "tract=0", "patch=3,3", "filter=HSC-I"]
RECORD = "_config/makeWarp.json"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_cli_repo(tmp_path_factory.mktemp("runconfig") / "repo")


_rb = run_rb


def _make_warp(repo: Path, rerun: str, *argv: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    """Run ``rb make-warp REPO --rerun RERUN ... --json``; the JSON summary (None if failed)."""
    out = _rb("make-warp", str(repo), "--rerun", rerun, *argv, "--json")
    summary = json.loads(out.stdout) if out.returncode == 0 else None
    return out, summary


def _statuses(summary: Any) -> dict[tuple[str, int], str]:
    return {
        (p["patch_id"]["patch"], v["visit"]): v["status"]
        for p in summary["patches"]
        for v in p["visits"]
    }


def _record(repo: Path, rerun: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((repo / "rerun" / rerun / RECORD).read_text())
    return doc


def _snapshot(repo: Path) -> tuple[dict[str, tuple[int, int]], list[Any]]:
    """Every file (size, mtime) and every registry row (opening an older release's registry
    touches its file: its rows are compared instead)."""
    files = {
        p.relative_to(repo).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in repo.rglob("*")
        if p.is_file() and not p.name.startswith("registry.sqlite3")
    }
    with Butler(str(repo), writeable=False) as butler:
        rows = sorted(map(repr, butler.registry.all_records()))
    return files, rows


def _warp_kernel(repo: Path, rerun: str, patch: str, visit: int) -> str:
    with Butler(str(repo), rerun=rerun, writeable=False) as butler:
        prov = butler.get_provenance(
            "deepCoadd_directWarp", tract=0, patch=patch, filter="HSC-I", visit=visit
        )
    assert prov is not None
    return str(prov.config["warpAndPsfMatch"]["warp"]["warpingKernelName"])


def test_another_config_is_refused_naming_the_fields_and_nothing_is_written(repo: Path) -> None:
    first, summary = _make_warp(repo, "a", *PATCH)
    assert first.returncode == 0, first.stderr
    assert set(_statuses(summary).values()) == {"written"}
    record = _record(repo, "a")
    assert record["config"]["warpAndPsfMatch"]["warp"]["warpingKernelName"] == "lanczos3"
    assert record["task"] == "makeWarp" and record["run"] == "a"
    before = _snapshot(repo)
    for extra in ([], ["--reuse"]):
        out, _ = _make_warp(
            repo, "a", *PATCH, *extra, "--config", f"{KERNEL}=lanczos4", "doWriteEmptyWarps=True"
        )
        line = one_error_line(out)
        assert "run 'a' of" in line and "was made with another makeWarp config" in line
        assert f"{KERNEL}: recorded 'lanczos3', now 'lanczos4'" in line
        assert "doWriteEmptyWarps: recorded False, now True" in line
        assert "--rerun" in line and "--clobber-config" in line
        assert "Nothing was run" in line
        assert _snapshot(repo) == before  # no file, record or registry row changed


def test_the_same_config_is_accepted_spelled_out_or_recorded_by_an_older_release(
    repo: Path,
) -> None:
    first, _ = _make_warp(repo, "b", *PATCH)
    assert first.returncode == 0, first.stderr
    written = _record(repo, "b")["written"]
    # the default given explicitly is the same config
    out, summary = _make_warp(repo, "b", *PATCH, "--reuse", "--config", f"{KERNEL}=lanczos3")
    assert out.returncode == 0, out.stderr
    assert set(_statuses(summary).values()) == {"reused"}
    assert _record(repo, "b")["written"] == written  # not rewritten
    # a record written before fields existed (they are absent) matches their defaults
    path = repo / "rerun" / "b" / RECORD
    doc = json.loads(path.read_text())
    for name in ("outputCompression", "useVisitSummaryPsf", "doApplyNewBackground"):
        del doc["config"][name]
    del doc["config"]["warpAndPsfMatch"]["psfMatch"]["varianceMode"]
    path.write_text(json.dumps(doc))
    out, summary = _make_warp(repo, "b", *PATCH, "--reuse")
    assert out.returncode == 0, out.stderr
    assert set(_statuses(summary).values()) == {"reused"}
    # but one of those fields away from its default is a difference
    out, _ = _make_warp(repo, "b", *PATCH, "--config", "outputCompression.recipe=lossless")
    assert "outputCompression.recipe: recorded 'none', now 'lossless'" in one_error_line(out)


def test_clobber_config_replaces_the_record_and_reuse_redoes_old_warps(repo: Path) -> None:
    first, _ = _make_warp(repo, "c", *PATCH)
    assert first.returncode == 0, first.stderr
    out, summary = _make_warp(
        repo, "c", *PATCH, "--reuse", "--clobber-config", "--config", f"{KERNEL}=lanczos4"
    )
    assert out.returncode == 0, out.stderr
    assert "replaced the recorded makeWarp config of run 'c'" in out.stderr
    assert f"{KERNEL}: recorded 'lanczos3', now 'lanczos4'" in out.stderr
    statuses = _statuses(summary)
    assert set(statuses.values()) == {"written"}  # made with the old config: not reused
    record = _record(repo, "c")
    assert record["config"]["warpAndPsfMatch"]["warp"]["warpingKernelName"] == "lanczos4"
    assert record["replaces"]["config"]["warpAndPsfMatch"]["warp"]["warpingKernelName"] == (
        "lanczos3"
    )
    for _patch, visit in statuses:
        assert _warp_kernel(repo, "c", "3,3", visit) == "lanczos4"
    # the new config is now the run's: accepted, and its warps are reused
    out, summary = _make_warp(repo, "c", *PATCH, "--reuse", "--config", f"{KERNEL}=lanczos4")
    assert out.returncode == 0, out.stderr
    assert set(_statuses(summary).values()) == {"reused"}


def test_reuse_never_keeps_a_warp_whose_provenance_records_another_config(repo: Path) -> None:
    """The issue's case: warps of one patch made with one config, the rerun's record replaced
    by another; --reuse over both patches redoes the old ones and keeps the new ones."""
    first, _ = _make_warp(repo, "d", *PATCH)
    assert first.returncode == 0, first.stderr
    other = ["--id", "tract=0", "patch=2,2", "filter=HSC-I"]
    out, _ = _make_warp(repo, "d", *other, "--clobber-config", "--config", f"{KERNEL}=lanczos4")
    assert out.returncode == 0, out.stderr
    both = ["--id", "tract=0", "patch=3,3^2,2", "filter=HSC-I"]
    out, summary = _make_warp(repo, "d", *both, "--reuse", "--config", f"{KERNEL}=lanczos4")
    assert out.returncode == 0, out.stderr
    statuses = _statuses(summary)
    assert {s for (p, _v), s in statuses.items() if p == "2,2"} == {"reused"}
    assert {s for (p, _v), s in statuses.items() if p == "3,3"} == {"written"}
    for patch, visit in statuses:
        assert _warp_kernel(repo, "d", patch, visit) == "lanczos4"


def test_a_rerun_of_the_previous_release_is_checked_against_its_warps(tmp_path: Path) -> None:
    """repo-v1's rerun ci_hsc (release 4b1deb4, no recorded config; its warps' provenance lacks
    later fields and has that release's PSF-matching defaults, unused by direct warps)."""
    fixture_patch = ["--id", "tract=0", "patch=5,4", "filter=HSC-I"]
    root = copy_repo(FIXTURE_V1, tmp_path / "v1")
    before = _snapshot(root)
    out, _ = _make_warp(root, "ci_hsc", *fixture_patch, "--reuse", "--config", f"{KERNEL}=lanczos4")
    line = one_error_line(out)
    assert (
        "run 'ci_hsc' of" in line and "has no recorded config, but its deepCoadd_directWarp" in line
    )
    assert f"{KERNEL}: recorded 'lanczos3', now 'lanczos4'" in line
    assert _snapshot(root) == before
    # today's defaults are what it was made with: its warps are reused, the config recorded
    out, summary = _make_warp(root, "ci_hsc", *fixture_patch, "--reuse")
    assert out.returncode == 0, out.stderr
    assert set(_statuses(summary).values()) == {"reused"}
    assert _record(root, "ci_hsc")["config"] == json.loads(
        json.dumps(_config_dict(MakeWarpConfig()))
    )
    files_after = _snapshot(root)[0]
    assert set(files_after) - set(before[0]) == {f"rerun/ci_hsc/{RECORD}"}


def _config_dict(config: MakeWarpConfig) -> Any:
    from warping.task.config import config_to_dict

    return config_to_dict(config)


def test_python_api_refuses_with_an_error_class_and_takes_clobber_config(repo: Path) -> None:
    patch = {"tract": 0, "patch": "3,3", "filter": "HSC-I"}
    with Butler(str(repo), rerun="e") as butler:
        assert run_make_warp(butler, patch).n_written
    lanczos4 = apply_overrides(MakeWarpConfig(), [f"{KERNEL}=lanczos4"])
    with Butler(str(repo), rerun="e") as butler, pytest.raises(RunConfigMismatchError) as err:
        run_make_warp(butler, patch, config=lanczos4, reuse=True)
    assert isinstance(err.value, ValueError) and isinstance(err.value, RepoButlerError)
    assert f"{KERNEL}: recorded 'lanczos3', now 'lanczos4'" in str(err.value)
    assert "clobber_config=True" in str(err.value)
    with Butler(str(repo), rerun="e") as butler:
        summary = run_make_warp(butler, patch, config=lanczos4, reuse=True, clobber_config=True)
        assert summary.n_written == len(summary.visits) > 0
        record = butler.run_configs.get("makeWarp")
    assert record is not None and record.replaces is not None
    assert record.config["warpAndPsfMatch"]["warp"]["warpingKernelName"] == "lanczos4"
