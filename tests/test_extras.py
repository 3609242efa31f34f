"""Optional dependencies (extras): a command that needs a missing one says which extra to
install, in one line, before it changes anything (issue 21, point 3).

"Missing" is made real for the child process by ``sys.modules[name] = None``, which makes every
``import name`` raise ``ImportError`` exactly as an absent package does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import one_error_line, run_rb, write_small_cli_repo

from repo_butler.errors import RepoButlerError
from repo_butler.extras import MissingExtraError, require


def _rb_without(missing: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return run_rb(*argv, missing=[missing])


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_cli_repo(tmp_path_factory.mktemp("extras") / "repo")


def test_require_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'repo-butler\[plots\]'") as info:
        require("matplotlib", "plots", "drawing")
    assert isinstance(info.value, ImportError) and isinstance(info.value, RepoButlerError)
    assert "drawing needs matplotlib" in str(info.value)
    assert require("json", "none", "x").dumps([1]) == "[1]"


def test_demo_without_plots_fails_before_writing(tmp_path: Path) -> None:
    line = one_error_line(_rb_without("matplotlib", "demo", str(tmp_path / "demo")))
    assert "repo-butler[plots]" in line
    assert not (tmp_path / "demo").exists()


def test_dask_run_without_dask_fails_before_writing(repo: Path) -> None:
    argv = ["make-warp", str(repo), "--rerun", "nodask", "-j", "2", "--id", "tract=0",
            "filter=HSC-I"]  # fmt: skip
    line = one_error_line(_rb_without("distributed", *argv))
    assert "repo-butler[dask]" in line and "--jobs" in line
    assert not (repo / "rerun" / "nodask").exists()
    # the same run in one process needs no Dask
    out = _rb_without("distributed", *[a if a != "2" else "1" for a in argv])
    assert out.returncode == 0, out.stderr


def test_postgres_registry_without_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    from repo_butler.dimensions import DimensionUniverse
    from repo_butler.registry.postgres import PostgresRegistry

    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingExtraError, match=r"repo-butler\[postgres\]"):
        universe = DimensionUniverse.from_config({"visit": {"type": "int"}})
        PostgresRegistry("postgresql://nobody@127.0.0.1:1/none", universe)
