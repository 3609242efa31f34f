"""``rb import-gen3``: import datasets from an LSST Gen3 repository's export file (thin adapter)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from .options import FormatOpt, OutputFormat, RepoArg, StorageOpt

__all__ = ["EXIT_ALL", "EXIT_PARTIAL", "register"]

EXIT_ALL = 0
#: Something selected was skipped (unknown dataset type or formatter, tagged collection …).
EXIT_PARTIAL = 3


class Gen3TransferMode(StrEnum):
    """How imported files enter the repository."""

    copy = "copy"
    symlink = "symlink"
    direct = "direct"


def import_gen3(
    repo: RepoArg,
    export: Annotated[
        str,
        typer.Argument(
            metavar="EXPORT",
            help="The YAML file `butler export` wrote (a path or fsspec URL).",
        ),
    ],
    transfer: Annotated[
        Gen3TransferMode,
        typer.Option(
            "--transfer",
            "-t",
            metavar="copy|symlink|direct",
            help="Copy or link files to their template paths, or register them where they are.",
        ),
    ] = Gen3TransferMode.copy,
    collection: Annotated[
        list[str] | None,
        typer.Option(
            "--collection",
            metavar="NAME",
            help="Import only this Gen3 collection (repeatable; a chain imports its members).",
        ),
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(
            "--where",
            "-w",
            metavar="WHERE",
            help='Expression on Gen3 dimensions, e.g. "visit = 903334 AND detector IN (16..24)".',
        ),
    ] = None,
    dataset_type: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset-type",
            metavar="TYPE",
            help="Import only this Gen3 dataset type (repeatable), e.g. calexp.",
        ),
    ] = None,
    root: Annotated[
        str | None,
        typer.Option(
            "--root",
            metavar="DIR",
            help="Where the export's relative paths start (default: the export file's folder).",
        ),
    ] = None,
    fmt: FormatOpt = OutputFormat.table,
    storage_option: StorageOpt = None,
) -> None:
    """Import the calexps, backgrounds, visit summaries and warps of a Gen3 export into REPO.

    Gen3 collections become runs ('/' written '.'; chains become runs with parents); data IDs
    keep Gen3's keys through the repository's aliases (detector, physical_filter). All files
    are checked before anything is registered; a second import of the same export changes
    nothing. Exit status 3: something selected was skipped (listed).
    """
    import json

    from repo_butler.gen3 import import_gen3 as run_import
    from warping.gen3_types import GEN3_TYPES

    from .support import open_butler

    with open_butler(repo, storage_option=storage_option) as butler:
        report = run_import(
            butler,
            export,
            GEN3_TYPES,
            transfer=transfer.value,
            collections=collection or None,
            where=where,
            dataset_types=dataset_type or None,
            root=root,
        )
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for line in report.lines():
            typer.echo(line)
    raise typer.Exit(EXIT_ALL if report.complete else EXIT_PARTIAL)


def register(app: typer.Typer) -> None:
    """Add ``import-gen3`` to ``app``."""
    app.command("import-gen3")(import_gen3)
