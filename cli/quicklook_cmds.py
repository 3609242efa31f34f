"""``rb quicklook``: a PNG of one warp or calexp (thin adapter over
:func:`warping.quicklook_dataset.quicklook_dataset`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from .options import RepoArg, StorageOpt

__all__ = ["register"]


class StretchName(StrEnum):
    """Display stretches over the zscale limits."""

    asinh = "asinh"
    linear = "linear"


def quicklook(
    repo: RepoArg,
    dataset_type: Annotated[
        str,
        typer.Argument(
            metavar="DATASET_TYPE",
            help="An image dataset type: calexp, deepCoadd_directWarp, deepCoadd_psfMatchedWarp.",
        ),
    ],
    data_id: Annotated[
        list[str] | None,
        typer.Option(
            "--data-id",
            "-d",
            metavar="KEY=VALUE",
            help="Data ID key=value (repeatable), e.g. -d visit=903988 -d ccd=16; a partial one "
            "is completed when exactly one dataset matches.",
        ),
    ] = None,
    rerun: Annotated[
        str | None,
        typer.Option("--rerun", metavar="RERUN", help="Rerun to read from (warps live in one)."),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="PNG",
            help="PNG to write (default: DATASET_TYPE-<data ID values>.png here).",
        ),
    ] = None,
    stretch: Annotated[
        StretchName,
        typer.Option("--stretch", metavar="asinh|linear", help="Stretch over the zscale limits."),
    ] = StretchName.asinh,
    coverage: Annotated[
        bool,
        typer.Option(
            "--coverage",
            help="Draw the patch's coverage map instead (DATASET_TYPE a warp type; -d tract, "
            "patch, filter): every calexp of the filter, the warps' inputs coloured by visit.",
        ),
    ] = False,
    storage_option: StorageOpt = None,
) -> None:
    """Draw a warp or calexp as a PNG: zscale stretch with a colour bar in the pixel unit (nJy for
    warps, counts for calexps), NO_DATA in dark blue, pixel axes and a N/E compass; or, with
    --coverage, a patch's coverage map."""
    from warping.quicklook_dataset import patch_coverage, quicklook_dataset

    from .support import open_butler, parse_key_values

    ids = parse_key_values(data_id)
    with open_butler(repo, rerun=rerun, storage_option=storage_option, writeable=False) as butler:
        if coverage:
            result = patch_coverage(butler, dataset_type, ids, output)
        else:
            result = quicklook_dataset(butler, dataset_type, ids, output, stretch=stretch.value)
    id_text = " ".join(f"{k}={v}" for k, v in result.data_id.items())
    what = f"coverage of {dataset_type}" if coverage else dataset_type
    typer.echo(f"{result.path}: {what} {id_text} ({result.run})")


def register(app: typer.Typer) -> None:
    """Add ``quicklook`` to ``app``."""
    app.command("quicklook")(quicklook)
