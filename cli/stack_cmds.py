"""``rb stack-info``: what the warp stack of one patch holds (thin adapter over
:func:`warping.stack.open_warp_stack` and :func:`warping.stack.summary.describe_stack`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from .options import (
    FormatOpt,
    JsonAliasOpt,
    OutputFormat,
    RepoArg,
    RerunOpt,
    StorageOpt,
    WhereOpt,
    output_format,
)
from .task_cmds import LsstSyntaxCommand

__all__ = ["format_stack_info", "register"]

_ID_HELP = "The patch: tract=T patch=X,Y filter=F, all the KEY=VALUE tokens that follow (required)."


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


def _float(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_stack_info(info: dict[str, Any]) -> str:
    """The text form of :func:`~warping.stack.summary.describe_stack`'s result (fits 80
    columns)."""
    shape = info["shape"]
    x0, y0, width, height = info["bbox"]
    run = info["run"] or "(root)"
    lines = [
        f"{info['dataset_type']} tract={info['tract']} patch={info['patch']} "
        f"filter={info['filter']} (run {run})",
        f"  {shape['visit']} warps of {width}x{height} px at tract pixel ({x0}, {y0}); "
        f"dims (visit, y, x)",
    ]
    for name, var in info["variables"].items():
        unit = f" [{var['units']}]" if var["units"] else ""
        chunks = "x".join(str(c) for c in var["chunks"])
        lines.append(
            f"  {name:<8} {var['dtype']:<7}{unit:<8} chunks {chunks} ({var['n_chunks']}), "
            f"reads {_human(var['bytes_to_read'])}"
        )
    import textwrap

    planes = " ".join(sorted(info["mask_planes"], key=info["mask_planes"].get))
    lines += textwrap.wrap(
        f"mask planes: {planes}", width=78, initial_indent="  ", subsequent_indent="    "
    )
    lines.append(
        f"  reading everything: {_human(info['bytes_to_read'])} from the files, "
        f"{_human(info['bytes_in_memory'])} in memory"
    )
    from .support import text_table

    rows = [
        [
            str(v["visit"]),
            _float(v["mjd"], ".5f"),
            v["filter"],
            _float(v["psf_sigma"], ".3f"),
            str(v["n_good_pixels"]),
            str(v["n_ccds"]),
            ",".join(map(str, v["ccds"])),
        ]
        for v in info["visits"]
    ]
    header = ["visit", "mjd", "filter", "psf_sigma", "good_pixels", "n_ccds", "ccds"]
    return "\n".join([*lines, "", text_table(header, rows)])


def _patch_id(lsst_argv: list[str]) -> dict[str, Any]:
    from repo_butler.errors import DataIdError

    from .task_args import parse_task_args

    args = parse_task_args(lsst_argv)
    if args.select_ids or args.config or args.config_files:
        raise DataIdError("rb stack-info takes --id only (no --selectId or --config)")
    if len(args.ids) != 1:
        raise DataIdError(
            "give one patch with --id tract=T patch=X,Y filter=F (no lists or ranges; "
            f"got {len(args.ids)} data IDs)"
        )
    data_id = args.ids[0]
    missing = [k for k in ("tract", "patch", "filter") if k not in data_id]
    unknown = sorted(set(data_id) - {"tract", "patch", "filter"})
    if missing or unknown:
        what = f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(unknown)}"
        raise DataIdError(
            f"--id needs exactly tract=, patch= and filter= ({what}); select visits with --where"
        )
    return data_id


def stack_info(
    ctx: typer.Context,
    repo: RepoArg,
    id_: Annotated[
        list[str] | None, typer.Option("--id", metavar="KEY=VALUE...", help=_ID_HELP)
    ] = None,
    dataset_type: Annotated[
        str,
        typer.Option(
            "--dataset-type",
            metavar="DATASET_TYPE",
            help="Warp dataset type: deepCoadd_directWarp or deepCoadd_psfMatchedWarp.",
        ),
    ] = "deepCoadd_directWarp",
    where: WhereOpt = None,
    rerun: RerunOpt = None,
    tile: Annotated[
        int | None,
        typer.Option("--tile", metavar="PIXELS", help="Chunk in tiles of PIXELS x PIXELS."),
    ] = None,
    fmt: FormatOpt = OutputFormat.table,
    json_alias: JsonAliasOpt = False,
    storage_option: StorageOpt = None,
) -> None:
    """Show what the warp stack of one patch holds: shape, chunks, types, the bytes reading it
    costs, and each visit's MJD, filter, PSF width, good pixels and CCDs (reads the warps'
    headers and tables, no pixels)."""
    from warping.stack import open_warp_stack
    from warping.stack.summary import describe_stack

    from .support import open_butler

    data_id = _patch_id(list(ctx.meta.get("lsst_argv", [])))
    if tile is not None and tile < 1:
        raise typer.BadParameter(f"--tile must be at least 1, got {tile}", param_hint="--tile")
    with open_butler(repo, rerun=rerun, storage_option=storage_option, writeable=False) as butler:
        stack = open_warp_stack(
            butler, tract=data_id["tract"], patch=str(data_id["patch"]),
            filter=str(data_id["filter"]), dataset_type=dataset_type, where=where, tile=tile,
        )  # fmt: skip
        info = describe_stack(stack)
    if output_format(fmt, json_alias) is OutputFormat.json:
        typer.echo(json.dumps(info, indent=2))
    else:
        typer.echo(format_stack_info(info))


def register(app: typer.Typer) -> None:
    """Add ``stack-info`` to ``app``."""
    app.command("stack-info", cls=LsstSyntaxCommand)(stack_info)
