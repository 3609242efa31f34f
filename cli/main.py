"""The ``rb`` command line: a thin adapter over library functions.

Command modules import heavy libraries (numpy, astropy, scipy) inside their functions so that
``rb --help`` stays fast.
"""

from __future__ import annotations

import logging
import sys

import typer

from . import (
    butler_cmds,
    coadd_cmds,  # issue 24: coadds (rb assemble-coadd)
    import_cmds,  # issue 26: rb import-gen3
    migrate_cmds,
    quicklook_cmds,
    sim_cmds,
    skymap_cmds,
    stack_cmds,  # issue 24: warp stacks (rb stack-info)
    task_cmds,
    warp_cmds,
)

app = typer.Typer(
    name="rb",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="repo-butler: a mini data butler and LSST-style MakeWarp over local or S3 repos.",
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"rb (repo-butler) {version('repo-butler')}")
        except PackageNotFoundError:  # running from a source tree that was never installed
            typer.echo("rb (repo-butler), not installed: version unknown")
        raise typer.Exit()


#: The subcommand being run, for rendering an error's remedy with that command's options.
_INVOKED: list[str] = []


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level."),
    log_level: str = typer.Option(
        "INFO", "--log-level", metavar="LEVEL", help="Log level (DEBUG, INFO, ...)."
    ),
    show_version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        callback=_print_version,
        is_eager=True,
    ),
) -> None:
    if ctx.invoked_subcommand:
        _INVOKED.append(ctx.invoked_subcommand)
    level = logging.DEBUG if verbose else getattr(logging, log_level.upper(), logging.INFO)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if not verbose:  # e.g. botocore's "Found credentials in environment variables" per command
        for name in ("botocore", "aiobotocore", "s3fs", "fsspec", "distributed", "asyncio"):
            logging.getLogger(name).setLevel(max(level, logging.WARNING))


for _module in (
    butler_cmds,
    warp_cmds,
    skymap_cmds,
    sim_cmds,
    task_cmds,
    migrate_cmds,
    quicklook_cmds,
):
    _module.register(app)

# -- issue 24: warp stacks and coadds, each its own module (one registration line each) ------
stack_cmds.register(app)  # rb stack-info
coadd_cmds.register(app)  # rb assemble-coadd
import_cmds.register(app)  # issue 26: rb import-gen3


def main() -> None:
    """Console-script entry point: run the app, turning our user errors into one-line messages."""
    from repo_butler.errors import RepoButlerError

    from .errors import cli_message

    try:
        app()
    except RepoButlerError as err:
        command = typer.main.get_command(app)
        sub = getattr(command, "commands", {}).get(_INVOKED[-1]) if _INVOKED else None
        typer.secho(f"error: {cli_message(err, sub)}", err=True, fg=typer.colors.RED)
        raise SystemExit(1) from None
