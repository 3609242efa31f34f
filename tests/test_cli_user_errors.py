"""User mistakes on the command line are one-line errors, never tracebacks (issue 20, point 1)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_support import run_rb, write_small_cli_repo

from repo_butler import Butler


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_cli_repo(tmp_path_factory.mktemp("usererr") / "repo")


_rb = run_rb


@pytest.mark.parametrize(
    ("patch_id", "message"),
    [
        (["tract=0", "patch=99,99", "filter=HSC-I"], r"patch 99,99 is outside the tract's"),
        (["tract=3", "filter=HSC-I"], r"tract 3 does not exist; this skymap has tracts 0\.\.0"),
        (["tract=0", "patch=a,b", "filter=HSC-I"], r"patch='a,b' does not match the required"),
    ],
)
def test_bad_tract_or_patch_is_one_line(repo: Path, patch_id: list[str], message: str) -> None:
    out = _rb("make-warp", str(repo), "--rerun", "e4", "--id", *patch_id)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out.stderr
    assert re.search(message, lines[0]), lines[0]
    # the mistake left nothing behind: no empty rerun (issue 20, point 4)
    assert not (repo / "rerun" / "e4").exists()
    with Butler(str(repo), writeable=False) as butler:
        assert "e4" not in butler.registry.runs()


def test_batch_log_gets_one_progress_line_per_unit(repo: Path) -> None:
    """Issue 20, point 8: without a terminal (a batch log) progress is one plain line per
    finished unit, ending with every unit."""
    out = _rb("make-warp", str(repo), "--rerun", "progress", "--id", "tract=0", "filter=HSC-I")
    assert out.returncode == 0, out.stderr
    lines = re.findall(
        r"make-warp: (\d+)/(\d+) units finished \((\d+) ok, (\d+) failed\)", out.stderr
    )
    assert lines, out.stderr
    total = int(lines[0][1])
    assert [int(done) for done, *_ in lines] == list(range(total + 1))
    assert lines[-1] == (str(total), str(total), str(total), "0")


def test_version() -> None:
    from importlib.metadata import version

    out = _rb("--version")
    assert (
        out.returncode == 0 and out.stdout.strip() == f"rb (repo-butler) {version('repo-butler')}"
    )
