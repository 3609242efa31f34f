"""``rb assemble-coadd``: combine a patch's warps into a ``deepCoadd`` (thin adapter over
:func:`warping.coadd.task.assemble_coadd`)."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from .options import RepoArg, StorageOpt, WhereOpt
from .task_cmds import LsstSyntaxCommand

__all__ = ["EXIT_ALL", "EXIT_PARTIAL", "dask_client", "register"]

#: Exit status: every warp combined / some warps left out (listed with their reasons).
EXIT_ALL = 0
EXIT_PARTIAL = 3

ASSEMBLE_HELP = """Combine the warps of a patch into a coadd (LSST assembleCoadd).

\b
  --id tract=0 patch=5,4 filter=HSC-I     the patch (required; repeatable)
  --statistic MEANCLIP                    MEAN, MEANCLIP (LSST's default) or MEDIAN
  --weighting scalar                      scalar: 1/mean variance per warp (LSST);
                                          pixel: 1/variance per pixel
  --warp-type directWarp                  or psfMatchedWarp (writes deepCoadd_psfMatched)

The coadd is computed in tiles of about --tile^2 pixels (bands of whole rows; memory: tile^2
x warps), here or on a local Dask cluster with --jobs N or on a running one with
--dask-scheduler. It is written as deepCoadd with its CoaddPsf, inputs table and a provenance
record listing every warp and its weight. The exit status is 0 when every warp was combined,
3 when warps had to be left out (listed with their reasons), 1 on an error.
"""

_ID_HELP = "The patch: tract=T patch=X,Y filter=F (all the KEY=VALUE tokens that follow)."


def _patches(argv: list[str]) -> list[dict[str, Any]]:
    from repo_butler.errors import DataIdError

    from .task_args import parse_task_args

    ids = parse_task_args(argv).ids
    if not ids:
        raise DataIdError("give the patch with --id tract=T patch=X,Y filter=F")
    for data_id in ids:
        missing = [k for k in ("tract", "patch", "filter") if k not in data_id]
        if missing:
            given = " ".join(f"{k}={v}" for k, v in data_id.items())
            raise DataIdError(
                f"--id {given}: missing {', '.join(missing)}; a coadd is made for one tract, "
                "patch and filter (e.g. --id tract=0 patch=5,4 filter=HSC-I)"
            )
    return ids


def assemble_coadd_cmd(
    ctx: typer.Context,
    repo: RepoArg,
    id_: Annotated[
        list[str] | None, typer.Option("--id", metavar="KEY=VALUE...", help=_ID_HELP)
    ] = None,
    statistic: Annotated[
        str,
        typer.Option("--statistic", metavar="MEAN|MEANCLIP|MEDIAN", help="Stacking statistic."),
    ] = "MEANCLIP",
    weighting: Annotated[
        str,
        typer.Option(
            "--weighting", metavar="scalar|pixel", help="One weight per warp, or per pixel."
        ),
    ] = "scalar",
    warp_type: Annotated[
        str,
        typer.Option(
            "--warp-type", metavar="directWarp|psfMatchedWarp", help="Which warps to combine."
        ),
    ] = "directWarp",
    where: WhereOpt = None,
    sigma_clip: Annotated[
        float, typer.Option("--sigma-clip", metavar="SIGMA", help="MEANCLIP threshold.")
    ] = 3.0,
    clip_iter: Annotated[
        int, typer.Option("--clip-iter", metavar="N", help="MEANCLIP clipping passes.")
    ] = 2,
    tile: Annotated[
        int,
        typer.Option(
            "--tile", metavar="PIXELS", help="Tiles of about PIXELS^2 pixels are computed at once."
        ),
    ] = 512,
    rerun: Annotated[
        str | None,
        typer.Option("--rerun", metavar="RERUN", help="Rerun NAME or IN:OUT holding the warps."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a coadd already in the output run.")
    ] = False,
    jobs: Annotated[
        int,
        typer.Option("--jobs", "-j", metavar="N", help="Local Dask worker processes (1: here)."),
    ] = 1,
    dask_scheduler: Annotated[
        str | None,
        typer.Option("--dask-scheduler", metavar="ADDRESS", help="Dask cluster tcp://HOST:PORT."),
    ] = None,
    storage_option: StorageOpt = None,
) -> None:
    """Combine the warps of a patch into a coadd (see the full help text)."""
    from warping.coadd import CoaddConfig

    from .support import open_butler

    patches = _patches(list(ctx.meta.get("lsst_argv", [])))
    try:
        config = CoaddConfig(statistic, weighting, sigma_clip, clip_iter, tile)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    dataset_type = f"deepCoadd_{warp_type}"
    butler = open_butler(repo, rerun=rerun, storage_option=storage_option)
    use_dask = jobs > 1 or dask_scheduler is not None
    partial = False
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(dask_client(jobs, dask_scheduler)) if use_dask else None
        for data_id in patches:
            summary = _run_one(butler, data_id, config, dataset_type, where, client, overwrite)
            partial |= summary.incomplete
    raise typer.Exit(EXIT_PARTIAL if partial else EXIT_ALL)


def _run_one(
    butler: Any,
    data_id: dict[str, Any],
    config: Any,
    dataset_type: str,
    where: str | None,
    client: Any,
    overwrite: bool,
) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from warping.coadd.task import assemble_coadd

    console = Console(stderr=True)
    label = f"tract={data_id['tract']} patch={data_id['patch']} filter={data_id['filter']}"
    columns = (
        TextColumn("[bold]assemble-coadd"),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        tasks: dict[str, Any] = {}

        def progress(done: int, total: int, stage: str) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        summary = assemble_coadd(
            butler, tract=data_id["tract"], patch=data_id["patch"], filter=data_id["filter"],
            config=config, dataset_type=dataset_type, where=where, client=client,
            progress=progress, overwrite=overwrite,
        )  # fmt: skip
    print_summary(summary, label)
    return summary


def print_summary(summary: Any, label: str) -> None:
    """What was combined: one line per warp (weight) and per warp left out (reason)."""
    from .support import text_table

    h, w = summary.shape
    out = sys.stdout
    print(
        f"{summary.dataset_type} {label}: {len(summary.weights)} warp(s), {summary.n_ccds} "
        f"CCD(s), {summary.statistic} with {summary.weighting} weights, {w}x{h} px "
        f"({summary.n_no_data} without data, {summary.n_clipped} input pixels clipped) "
        f"in {summary.seconds:.1f} s",
        file=out,
    )
    rows = [[str(v), f"{wt:.6g}", "combined"] for v, wt in summary.weights.items()]
    rows += [[str(v), "-", f"left out: {why}"] for v, why in summary.skipped.items()]
    print(text_table(["visit", "weight", "status"], rows), file=out)
    print(f"written: {summary.uri}", file=out)


@contextlib.contextmanager
def dask_client(jobs: int = 2, address: str | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` on a new ``LocalCluster`` of ``jobs`` workers, or on the
    scheduler at ``address`` (``tcp://HOST:PORT``); closed on exit."""
    from distributed import Client, LocalCluster

    from warping.task.dask_plugin import WORKER_ENV, SingleThreadKernels

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:  # not with --verbose
        # distributed sets its own loggers' levels (INFO) when imported: the scheduler of a
        # local cluster would log its start and stop here
        for name in list(logging.root.manager.loggerDict):
            if name == "distributed" or name.startswith("distributed."):
                logging.getLogger(name).setLevel(logging.WARNING)

    cluster = None
    if address:
        client = Client(address, timeout="20s")
    else:
        cluster = LocalCluster(
            n_workers=max(1, int(jobs)),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env=dict(WORKER_ENV),
            silence_logs=logging.WARNING,
            host="127.0.0.1",
        )
        client = Client(cluster)
    try:
        client.register_plugin(SingleThreadKernels())
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("assemble-coadd", help=ASSEMBLE_HELP, cls=LsstSyntaxCommand)(assemble_coadd_cmd)
