"""What CLI tests share: running the real ``rb`` in a child process, and the small simulated
repository with a skymap they run it on."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from typer.testing import CliRunner

from repo_butler import Butler
from repo_butler_cli.main import app
from warping.simulate import SimulationConfig, write_simulation


def run_rb(
    *argv: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    missing: Sequence[str] = (),
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``rb ARGV`` as a user runs it (``main()``: user errors become one line, exit status).

    ``missing`` names modules the child cannot import (``sys.modules[name] = None`` makes every
    ``import name`` raise ``ImportError``, as for an absent package).
    """
    hide = "".join(f"sys.modules[{name!r}] = None; " for name in missing)
    code = f"import sys; {hide}from repo_butler_cli.main import main; sys.argv[0] = 'rb'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True, text=True, timeout=timeout, cwd=cwd,
        env=dict(env) if env is not None else None,
    )  # fmt: skip


def write_small_cli_repo(root: Path) -> Path:
    """The small simulation (:meth:`SimulationConfig.small`) at ``root`` with a skymap of
    200x200-pixel patches at 0.2 arcsec/pixel (``rb make-skymap``); returns ``root``."""
    write_simulation(Butler.create(str(root)), SimulationConfig.small())
    argv = ["make-skymap", str(root), "--pixel-scale", "0.2", "--patch-inner-dimensions",
            "200", "200", "--patch-border", "20"]  # fmt: skip
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    return root


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line of a failed ``rb`` run (exit status 1, no traceback)."""
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out.stderr
    return lines[0]
