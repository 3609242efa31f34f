"""``rb make-warp`` and ``rb demo``: the MakeWarp task over a repository.

``make-warp`` accepts LSST's command-line syntax verbatim after the repository: several
``key=value`` tokens after one ``--id`` / ``--selectId`` / ``--config``, ``--configfile``,
``ccd=16^17`` lists and ``ccd=16..24`` ranges.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from .options import JsonAliasOpt, OutputFormat, ParentOpt, RepoArg, StorageOpt, output_format

__all__ = ["register"]

MAKE_WARP_HELP = """Warp calexps onto a skymap patch, one warp per visit (LSST makeCoaddTempExp).

Data IDs and config overrides use LSST's syntax; each option takes all the key=value tokens
that follow it.

\b
  --id tract=0 patch=5,4 filter=HSC-I     the patch (required; repeatable)
  --id tract=0 patch=5,4^5,5              several patches
  --id tract=0                            every patch (and filter) with overlapping inputs
  --selectId visit=903988 ccd=16^17       calexps to consider (repeatable; lists with ^,
                                          ranges with ..); default: every calexp of the
                                          filter that overlaps the patch
  --config makePsfMatched=True ...        config overrides (repeatable)
  --configfile FILE                       'config.<field> = <literal>' lines, never executed
  --instrument HSC                        that instrument's preset first (production values)

Work is split into (patch, visit) units: --jobs N runs them on a local Dask cluster of N
single-threaded worker processes, --dask-scheduler tcp://HOST:PORT on an existing cluster.
The exit status is 0 when every warp was made from every CCD, 1 when nothing was made, 3 when
some warps were made but units failed or warps lack CCDs that could not be read or used (listed
with their reasons); 130 after Ctrl-C (finished units are registered; rerun with --reuse).
"""


class LsstSyntaxCommand(TyperCommand):
    """A command whose LSST multi-token options (``--id k=v k=v``, ...) are taken out of the
    arguments before the ordinary parser sees the rest; they are kept in ``ctx.meta["lsst_argv"]``.

    The command still declares those options, so ``--help`` lists them with their metavars.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's click Context
        from .task_args import split_task_args

        lsst, rest = split_task_args(args)
        ctx.meta["lsst_argv"] = lsst
        return super().parse_args(ctx, rest)


_ID_HELP = (
    "The patch to warp: tract=T patch=X,Y filter=F; all the KEY=VALUE tokens that follow "
    "(repeatable; lists a^b, ranges a..b; required)."
)


def make_warp(
    ctx: typer.Context,
    repo: RepoArg,
    id_: Annotated[
        list[str] | None, typer.Option("--id", metavar="KEY=VALUE...", help=_ID_HELP)
    ] = None,
    select_id: Annotated[
        list[str] | None,
        typer.Option(
            "--selectId",
            "--select-id",
            metavar="KEY=VALUE...",
            help="Calexps to consider, e.g. visit=903988 ccd=16^17 (repeatable; default: every "
            "calexp of the filter overlapping the patch).",
        ),
    ] = None,
    config: Annotated[
        list[str] | None,
        typer.Option(
            "--config",
            "-c",
            metavar="FIELD=VALUE...",
            help="Config overrides, e.g. makePsfMatched=True (repeatable).",
        ),
    ] = None,
    config_file: Annotated[
        list[str] | None,
        typer.Option(
            "--configfile",
            "--config-file",
            "-C",
            metavar="FILE...",
            help="Files of 'config.<field> = <literal>' lines (never executed).",
        ),
    ] = None,
    rerun: Annotated[
        str | None,
        typer.Option("--rerun", metavar="RERUN", help="Output rerun NAME or IN:OUT."),
    ] = None,
    reuse: Annotated[
        bool, typer.Option("--reuse", help="Skip visits whose warps already exist.")
    ] = False,
    clobber_config: Annotated[
        bool,
        typer.Option(
            "--clobber-config",
            help="Replace the config the rerun records if this one differs (else refused).",
        ),
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", "-j", metavar="N", help="Local Dask worker processes (1: in-process)."
        ),
    ] = 1,
    dask_scheduler: Annotated[
        str | None,
        typer.Option(
            "--dask-scheduler",
            metavar="ADDRESS",
            help="Run on a Dask cluster: tcp://HOST:PORT.",
        ),
    ] = None,
    show_config: Annotated[
        bool, typer.Option("--show-config", help="Print the effective config and exit.")
    ] = False,
    fmt: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            "-f",
            metavar="table|json",
            help="table: the summary table (on stderr); json: also the run summary as JSON on "
            "stdout.",
        ),
    ] = OutputFormat.table,
    json_alias: JsonAliasOpt = False,
    storage_option: StorageOpt = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            metavar="OUT",
            help="Write to repository OUT (created with REPO as its read-only parent if new); "
            "REPO is only read. -S then applies to OUT, --parent-option to REPO.",
        ),
    ] = None,
    parent_option: ParentOpt = None,
    instrument: Annotated[
        str | None,
        typer.Option(
            "--instrument",
            metavar="NAME",
            help="Apply this instrument's config preset (e.g. HSC) before --configfile and "
            "--config; also taken from instrument=… in --id.",
        ),
    ] = None,
    warp_format: Annotated[
        str | None,
        typer.Option(
            "--warp-format",
            metavar="native|afw",
            help="Layout of the written warps: native (default) or afw (LSST tools read it); "
            "the same as --config warpFormat=….",
        ),
    ] = None,
) -> None:
    """Warp calexps onto a skymap patch (see the full help text)."""
    from .make_warp_app import make_warp_command

    json_summary = output_format(fmt, json_alias) is OutputFormat.json
    code = make_warp_command(
        repo, list(ctx.meta.get("lsst_argv", [])), rerun=rerun, reuse=reuse, jobs=jobs,
        show_config=show_config, storage_options=storage_option, json_summary=json_summary,
        scheduler=dask_scheduler, instrument=instrument, clobber_config=clobber_config,
        output=output, parent_options=parent_option, warp_format=warp_format,
    )  # fmt: skip
    raise typer.Exit(code)


def demo(
    directory: Annotated[
        str,
        typer.Argument(metavar="DIR", help="Where to build the demo repo: a path or fsspec URL."),
    ] = "demo-repo",
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", metavar="N", help="Parallel worker processes.")
    ] = 1,
    storage_option: StorageOpt = None,
) -> None:
    """Simulate an HSC-like repo, make a skymap, run make-warp on tract 0 patch 5,4, draw PNGs
    (into DIR/quicklook, or ./quicklook when DIR is a URL)."""
    from .make_warp_app import demo_command
    from .support import parse_storage_options

    options = parse_storage_options(storage_option)
    raise typer.Exit(demo_command(directory, jobs=jobs, storage_options=options))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("make-warp", help=MAKE_WARP_HELP, cls=LsstSyntaxCommand)(make_warp)
    app.command("demo")(demo)
