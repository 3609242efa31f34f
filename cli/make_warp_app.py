"""Presentation for ``rb make-warp``: progress bar over visits and the final summary table.

Argument grouping, config parsing and the task itself live in :mod:`warping.task`; this module
only wires them to the terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["demo_command", "format_config", "make_warp_command", "print_summary"]


def format_config(config: Any, prefix: str = "config") -> list[str]:
    """The effective config as ``config.a.b = value`` lines (re-usable as ``--configfile``)."""
    import dataclasses
    from collections.abc import Mapping

    lines: list[str] = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        path = f"{prefix}.{f.name}"
        if dataclasses.is_dataclass(value):
            lines.extend(format_config(value, path))
        elif isinstance(value, Mapping):
            for key, sub in value.items():
                lines.extend(format_config(sub, f"{path}[{key!r}]"))
        else:
            literal = list(value) if isinstance(value, tuple) else value
            lines.append(f"{path} = {literal!r}")
    return lines


def _load_config(argv: Sequence[str]) -> tuple[Any, Any]:
    from pathlib import Path

    from repo_butler.errors import ConfigError
    from warping.task.cli_args import parse_task_args
    from warping.task.config import MakeWarpConfig, apply_overrides

    args = parse_task_args(argv)
    files = []
    for name in args.config_files:
        try:
            files.append((name, Path(name).read_text()))
        except OSError as err:
            raise ConfigError(f"Cannot read config file {name!r}: {err.strerror}") from None
    return args, apply_overrides(MakeWarpConfig(), args.config, files=files)


def print_summary(summary: Any, *, console: Any) -> None:
    """Render one patch's :class:`warping.task.runner.RunSummary` as a table on ``console``."""
    from rich.table import Table

    pid = summary.patch_id
    table = Table(
        title=f"make-warp tract={pid['tract']} patch={pid['patch']} filter={pid['filter']}",
        show_lines=False,
    )
    for col in ("visit", "status", "CCDs used", "CCDs skipped (why)", "good pixels", "output"):
        table.add_column(col, overflow="fold")
    for v in summary.visits:
        skipped = "; ".join(f"{c}: {why}" for c, why in sorted(v.ccds_skipped.items()))
        good = ", ".join(f"{t}={n}" for t, n in v.goodpix.items())
        outputs = "\n".join(v.outputs.values()) or (v.error or "-")
        table.add_row(str(v.visit), v.status, ",".join(map(str, v.ccds_used)) or "-",
                      skipped or "-", good or "-", outputs)  # fmt: skip
    console.print(table)
    if summary.not_selected:
        n = len(summary.not_selected)
        console.print(f"{n} calexp(s) not selected (not overlapping or not found); "
                      "use --log-level DEBUG to list them.")  # fmt: skip


def make_warp_command(
    repo: str,
    argv: Sequence[str],
    *,
    rerun: str | None,
    reuse: bool,
    jobs: int,
    show_config: bool,
    storage_options: list[str] | None,
    json_summary: bool = False,
) -> int:
    """Run ``rb make-warp``; return the process exit code (1 when nothing could be made)."""
    import logging

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from repo_butler import Butler
    from repo_butler.cli_support import parse_storage_options
    from repo_butler.errors import DataIdError
    from warping.task.runner import run_make_warp

    args, config = _load_config(argv)
    if show_config:
        print("\n".join(format_config(config)))
        return 0
    if not args.ids:
        raise DataIdError("Give the patch with --id tract=… patch=x,y filter=…")
    err_console = Console(stderr=True)
    butler = Butler(repo, rerun=rerun, storage_options=parse_storage_options(storage_options))
    summaries = []
    made = 0
    for patch_id in args.ids:
        with Progress(
            TextColumn("[bold]patch {task.fields[patch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("visits"), console=err_console, transient=False,
            disable=not err_console.is_terminal,
        ) as progress:  # fmt: skip
            task = progress.add_task("warp", total=None, patch=patch_id.get("patch", "?"))
            summary = run_make_warp(
                butler, patch_id, args.select_ids or None, config=config, reuse=reuse, jobs=jobs,
                progress=lambda _vs, t=task: progress.advance(t),
                on_plan=lambda n, t=task: progress.update(t, total=n),
            )  # fmt: skip
        for ds_id, why in summary.not_selected.items():
            logging.getLogger("rb.make-warp").debug("not selected: %s (%s)", ds_id, why)
        summaries.append(summary)
        made += sum(1 for v in summary.visits if v.status in ("written", "reused"))
        if not summary.visits:
            err_console.print(
                f"No calexp of filter {patch_id.get('filter')} overlaps tract "
                f"{patch_id.get('tract')} patch {patch_id.get('patch')}: nothing written."
            )
        else:
            print_summary(summary, console=err_console)
    if json_summary:
        json.dump([s.to_dict() for s in summaries], sys.stdout, indent=2)
        sys.stdout.write("\n")
    failed = sum(s.n_failed for s in summaries)
    if failed:
        err_console.print(f"[red]{failed} visit(s) failed[/red]")
    return 0 if made and not failed else 1


def demo_command(directory: str, *, jobs: int = 1) -> int:
    """Run the demo and print where the warps and PNGs are; 0 when warps were written."""
    from rich.console import Console

    from warping.demo import run_demo

    console = Console(stderr=True)
    result = run_demo(directory, jobs=jobs, echo=lambda line: console.print(line, highlight=False))
    print_summary(result.summary, console=console)
    print(f"repository:      {result.repo}")
    print("warps:")
    for uri in result.warps:
        print(f"  {uri}")
    print("quicklook PNGs:")
    for png in result.pngs:
        print(f"  {png}")
    print(f"coverage map:    {result.coverage_png}")
    return 0 if result.warps else 1
