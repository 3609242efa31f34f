"""Presentation for ``rb make-warp``: progress bar over visits and the final summary table.

Argument grouping lives in :mod:`cli.task_args`, config parsing and the task itself in
:mod:`warping.task`; this module only wires them to the terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from warping.task.config import MakeWarpConfig
    from warping.task.runner import BatchSummary, ProgressState, RunSummary

    from .task_args import TaskArgs

__all__ = [
    "EXIT_ALL_WRITTEN",
    "EXIT_NOTHING_MADE",
    "EXIT_PARTIAL",
    "demo_command",
    "format_config",
    "make_warp_command",
    "print_summary",
]

#: Exit status: every warp asked for was made, from every CCD.
EXIT_ALL_WRITTEN = 0
#: Exit status: no warp was made (also any error stopping the run before work started).
EXIT_NOTHING_MADE = 1
#: Exit status: some warps were made, but units failed or warps lack CCDs that could not be used
#: (2 is left to usage errors of the command line parser).
EXIT_PARTIAL = 3


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
        elif (
            isinstance(value, Mapping)
            and value
            and all(map(dataclasses.is_dataclass, value.values()))
        ):
            for key, sub in value.items():
                lines.extend(format_config(sub, f"{path}[{key!r}]"))
        elif isinstance(value, Mapping):  # values by name (select.minNPsfStarPerBand)
            lines.append(f"{path} = {dict(value)!r}")
        else:
            literal = list(value) if isinstance(value, tuple) else value
            lines.append(f"{path} = {literal!r}")
    return lines


def _instrument(args: TaskArgs, option: str | None) -> str | None:
    """The instrument whose preset applies: ``--instrument`` or ``instrument=`` in the ``--id``
    data IDs (taken out of them: warps are identified by tract, patch, filter and visit)."""
    from repo_butler.errors import ConfigError

    named = {str(i.pop("instrument")) for i in args.ids if "instrument" in i}
    if option is not None:
        named.add(option)
    if len({n.lower() for n in named}) > 1:
        raise ConfigError(
            f"Several instruments given ({', '.join(sorted(named))}); one run uses one "
            "instrument preset"
        )
    return next(iter(named)) if named else None


def _load_config(
    argv: Sequence[str], instrument: str | None = None, warp_format: str | None = None
) -> tuple[TaskArgs, MakeWarpConfig]:
    from pathlib import Path

    from repo_butler.errors import ConfigError
    from warping.task.config import MakeWarpConfig, apply_overrides

    from .task_args import parse_task_args

    args = parse_task_args(argv)
    files = []
    for name in args.config_files:
        try:
            files.append((name, Path(name).read_text()))
        except OSError as err:
            raise ConfigError(f"Cannot read config file {name!r}: {err.strerror}") from None
    preset = _instrument(args, instrument)
    overrides = list(args.config)
    if warp_format is not None:  # --warp-format: after --config, as the more specific option
        overrides.append(f"warpFormat={warp_format!r}")
    return args, apply_overrides(MakeWarpConfig(), overrides, files=files, instrument=preset)


def _relative(uri: str, root: str | None) -> str:
    """``uri`` relative to the repository root ``root`` (unchanged when outside it)."""
    if root:
        prefix = root.rstrip("/") + "/"
        if uri.startswith(prefix):
            return uri[len(prefix) :]
    return uri


def _cuts_not_evaluated(summary: RunSummary) -> list[str]:
    """One line per visit, ``select`` cut and reason, listing the CCDs it was not evaluated on."""
    lines = []
    for v in summary.visits:
        for cut, ccds in v.cuts_not_evaluated.items():
            by_why: dict[str, list[int]] = {}
            for ccd, why in ccds.items():
                by_why.setdefault(why, []).append(ccd)
            for why, cs in by_why.items():
                shown = ", ".join(map(str, sorted(cs)))
                lines.append(f"  visit {v.visit} select.{cut}, ccd {shown}: {why}")
    return lines


def print_summary(summary: RunSummary, *, console: Console, root: str | None = None) -> None:
    """Render one patch's :class:`warping.task.runner.RunSummary` as a table on ``console``.

    The table (one row per visit) fits 80 columns; the output files follow it, one line each,
    relative to the repository ``root``, and never broken inside a path.
    """
    from rich.table import Table

    pid = summary.patch_id
    table = Table(
        title=f"make-warp tract={pid['tract']} patch={pid['patch']} filter={pid['filter']}",
        show_lines=False,
    )
    table.add_column("visit", no_wrap=True)
    table.add_column("status")
    table.add_column("CCDs used")
    table.add_column("CCDs skipped")
    table.add_column("good pixels", no_wrap=True)
    reasons: list[str] = []
    files: list[str] = []
    for v in summary.visits:
        skipped = ", ".join(str(c) for c in sorted(v.ccds_skipped))
        reasons += [f"  visit {v.visit} ccd {c}: {w}" for c, w in sorted(v.ccds_skipped.items())]
        reasons += [f"  visit {v.visit}: no {t} warp: {w}" for t, w in v.outputs_missing.items()]
        files += [f"  {v.visit} {t:<10} {_relative(u, root)}" for t, u in v.outputs.items()]
        if v.error and not v.outputs:
            files.append(f"  {v.visit} failed: {v.error}")
        good = "\n".join(f"{t}={n}" for t, n in v.goodpix.items())
        status = f"{v.status}, incomplete" if v.incomplete else v.status
        table.add_row(str(v.visit), status, ", ".join(map(str, v.ccds_used)) or "-",
                      skipped or "-", good or "-")  # fmt: skip
    console.print(table)
    if files:
        where = f" (in {root.rstrip('/')})" if root else ""
        console.print(f"Output files{where}:", highlight=False, markup=False, soft_wrap=True)
        for line in files:
            console.print(line, highlight=False, markup=False, soft_wrap=True)
    if reasons:  # below the table, so long reasons wrap at words, not inside a narrow column
        console.print("CCDs skipped and warps not made, and why:", highlight=False)
        for line in reasons:
            console.print(line, highlight=False, markup=False)
    unevaluated = _cuts_not_evaluated(summary)
    if unevaluated:
        console.print("select cuts not evaluated (their statistic is absent):",
                      highlight=False, markup=False)  # fmt: skip
        for line in unevaluated:
            console.print(line, highlight=False, markup=False)
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
    scheduler: str | None = None,
    instrument: str | None = None,
    clobber_config: bool = False,
    output: str | None = None,
    parent_options: list[str] | None = None,
    warp_format: str | None = None,
) -> int:
    """Run ``rb make-warp``; return the exit code (``output``: write there, reading ``repo`` as
    its parent).

    :data:`EXIT_ALL_WRITTEN` (0): every warp asked for was made, with every CCD;
    :data:`EXIT_NOTHING_MADE` (1): no warp was made (nothing overlaps, every unit failed, or an
    error stopped the run before any work); :data:`EXIT_PARTIAL` (3): some warps were made, but
    units failed, warps lack CCDs that could not be used (incomplete), or calexps could not be
    read; 130 after Ctrl-C.
    """
    import logging
    import time

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from repo_butler.errors import DataIdError
    from warping.task.runner import run_make_warps

    from .support import open_butler, parse_parent_options, parse_storage_options

    args, config = _load_config(argv, instrument, warp_format)
    if show_config:
        print("\n".join(format_config(config)))
        return 0
    if not args.ids:
        raise DataIdError("Give the patch with --id tract=… patch=x,y filter=… (or a whole tract)")
    err_console = Console(stderr=True)
    if output is None:
        butler = open_butler(
            repo, rerun=rerun, storage_option=storage_options, parent_option=parent_options
        )
    else:
        from repo_butler.outputs import open_output_repository

        butler = open_output_repository(
            output,
            repo,
            rerun=rerun,
            storage_options=parse_storage_options(storage_options),
            parent_options=parse_parent_options(parent_options),
        )
    columns = (
        TextColumn("[bold]make-warp"),
        BarColumn(),
        TextColumn("{task.completed}/{task.fields[units]} units finished:"),
        TextColumn(
            "{task.fields[done]} ok, {task.fields[failed]} failed, {task.fields[running]} running"
        ),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    terminal = err_console.is_terminal
    t_start = time.monotonic()
    logged = [-1]  # finished count last written to a batch log

    with Progress(*columns, console=err_console, disable=not terminal) as bar:
        task = bar.add_task("units", total=None, done=0, failed=0, running=0, units="?")

        def progress(s: ProgressState) -> None:
            finished = s.done + s.failed + s.cancelled
            bar.update(
                task,
                total=s.total or None,
                completed=finished,
                done=s.done,
                failed=s.failed,
                running=s.running,
                units=s.total or "?",
            )
            if not terminal and s.total and finished != logged[0]:  # batch logs: a line a unit
                logged[0] = finished
                print(
                    f"make-warp: {finished}/{s.total} units finished ({s.done} ok, "
                    f"{s.failed} failed) after {time.monotonic() - t_start:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )

        def on_start(b: BatchSummary) -> None:
            if b.dashboard_link:
                err_console.print(f"Dask dashboard: {b.dashboard_link}", highlight=False)

        batch = run_make_warps(
            butler,
            args.ids,
            args.select_ids or None,
            config=config,
            reuse=reuse,
            clobber_config=clobber_config,
            jobs=jobs,
            scheduler=scheduler,
            progress=progress,
            on_start=on_start,
        )
    for summary in batch.patches:
        for ds_id, why in summary.not_selected.items():
            logging.getLogger("rb.make-warp").debug("not selected: %s (%s)", ds_id, why)
        pid = summary.patch_id
        if not summary.visits:
            err_console.print(
                f"No calexp of filter {pid.get('filter')} overlaps tract "
                f"{pid.get('tract')} patch {pid.get('patch')}: nothing written."
            )
        else:
            print_summary(summary, console=err_console, root=butler.root)
    if not batch.patches:
        err_console.print("No calexp overlaps any patch of the given tract(s): nothing written.")
    if json_summary:
        json.dump(batch.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    for f in batch.failures:
        err_console.print(
            f"[red]FAILED[/red] tract={f.data_id['tract']} patch={f.data_id['patch']} "
            f"filter={f.data_id['filter']} visit={f.visit} on {f.worker or '?'}: {f.error}",
            highlight=False,
        )
        if f.traceback:
            err_console.print(f.traceback, highlight=False, markup=False)
    if batch.unplaced:
        err_console.print(
            f"{len(batch.unplaced)} calexp(s) could not be read and are in no warp:",
            highlight=False,
        )
        for ds_id, why in batch.unplaced.items():
            err_console.print(f"  {ds_id}: {why}", highlight=False, markup=False)
    made = sum(1 for p in batch.patches for v in p.visits if v.status in ("written", "reused"))
    if batch.interrupted:
        err_console.print(
            f"[yellow]Interrupted[/yellow]: {batch.n_cancelled} unit(s) cancelled; "
            "finished ones are registered. Rerun with --reuse to complete."
        )
        return 130
    partial = False
    if batch.failures:
        err_console.print(
            f"[red]{batch.n_failed} of {batch.n_units} unit(s) failed[/red]; rerun "
            "with --reuse to redo only the missing warps."
        )
        partial = True
    if batch.n_incomplete:
        err_console.print(
            f"[yellow]Output incomplete[/yellow]: {batch.n_incomplete} visit warp(s) lack CCDs "
            "whose data or PSF could not be used or that select.* rejected, or warp types asked "
            "for (see 'CCDs skipped'); "
            "fix them and rerun with --reuse."
        )
        partial = True
    if not made:
        return EXIT_NOTHING_MADE
    return EXIT_PARTIAL if partial or batch.unplaced else EXIT_ALL_WRITTEN


def demo_command(
    directory: str, *, jobs: int = 1, storage_options: dict[str, Any] | None = None
) -> int:
    """Run the demo and print where the warps and PNGs are; 0 when warps were written."""
    from rich.console import Console

    from warping.task.demo import run_demo

    console = Console(stderr=True)
    result = run_demo(
        directory,
        jobs=jobs,
        echo=lambda line: console.print(line, highlight=False, markup=False),
        storage_options=storage_options,
    )
    print_summary(result.summary, console=console, root=result.repo)
    print(f"repository:      {result.repo}")
    print("warps:")
    for uri in result.warps:
        print(f"  {uri}")
    print("quicklook PNGs:")
    for png in result.pngs:
        print(f"  {png}")
    print(f"coverage map:    {result.coverage_png}")
    if result.coadd is not None:
        print(f"coadd:           {result.coadd.uri}")
        print(f"coadd PNG:       {result.coadd_png}")
    return 0 if result.warps else 1
