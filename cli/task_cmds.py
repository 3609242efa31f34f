"""``rb make-warp`` and ``rb demo``: the MakeWarp task over a repository.

``make-warp`` accepts LSST's command-line syntax verbatim after the repository: several
``key=value`` tokens after one ``--id`` / ``--selectId`` / ``--config``, ``--configfile``,
``ccd=16^17`` lists and ``ccd=16..24`` ranges.
"""

from __future__ import annotations

from typing import Annotated

import typer

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


def make_warp(
    ctx: typer.Context,
    repo: Annotated[str, typer.Argument(help="Repository root: a path or fsspec URL.")],
    rerun: Annotated[
        str | None, typer.Option("--rerun", help="Output rerun NAME or IN:OUT.")
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
        int, typer.Option("--jobs", "-j", help="Local Dask worker processes (1: in-process).")
    ] = 1,
    dask_scheduler: Annotated[
        str | None,
        typer.Option("--dask-scheduler", help="Run on a Dask cluster: tcp://HOST:PORT."),
    ] = None,
    show_config: Annotated[
        bool, typer.Option("--show-config", help="Print the effective config and exit.")
    ] = False,
    storage_option: Annotated[
        list[str] | None,
        typer.Option("--storage-option", "-S", help="fsspec storage option KEY=VALUE."),
    ] = None,
    json_summary: Annotated[
        bool, typer.Option("--json", help="Print the run summary as JSON on stdout.")
    ] = False,
    instrument: Annotated[
        str | None,
        typer.Option(
            "--instrument",
            help="Apply this instrument's config preset (e.g. HSC) before --configfile and "
            "--config; also taken from instrument=… in --id.",
        ),
    ] = None,
) -> None:
    """Warp calexps onto a skymap patch (see the full help text)."""
    from cli.make_warp_app import make_warp_command

    code = make_warp_command(
        repo, list(ctx.args), rerun=rerun, reuse=reuse, jobs=jobs, show_config=show_config,
        storage_options=storage_option, json_summary=json_summary, scheduler=dask_scheduler,
        instrument=instrument, clobber_config=clobber_config,
    )  # fmt: skip
    raise typer.Exit(code)


def demo(
    directory: Annotated[str, typer.Argument(help="Where to build the demo repo.")] = "demo-repo",
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Parallel worker processes.")] = 1,
) -> None:
    """Simulate an HSC-like repo, make a skymap, run make-warp on tract 0 patch 5,4, draw PNGs."""
    from cli.make_warp_app import demo_command

    raise typer.Exit(demo_command(directory, jobs=jobs))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command(
        "make-warp",
        help=MAKE_WARP_HELP,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(make_warp)
    app.command("demo")(demo)
