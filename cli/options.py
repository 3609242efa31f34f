"""The vocabulary every ``rb`` command shares: one spelling, metavar and help text per option.

* ``REPO`` — a repository root, a path or an fsspec URL;
* ``-S/--storage-option KEY=VALUE`` — on every command that opens a repository or URL;
* ``--parent-option URL=KEY=VALUE`` — storage options of one parent repository (``--parent``);
* ``-f/--format table|json`` — on every command that prints data (``--json`` is a hidden,
  deprecated alias where a command had it);
* ``-d/--data-id KEY=VALUE``, ``-w/--where WHERE``, ``--rerun RERUN``;
* ``--preset NAME`` — a named set of defaults; ``--config-file FILE`` — a file of settings;
  ``--config KEY=VALUE ...`` — config overrides (make-warp's LSST syntax).

Metavars name what is expected (``REPO``, ``DATASET_TYPE``, ``KEY=VALUE``, ``N``, ``SECONDS``),
never a Python type (``TEXT``, ``INTEGER``); ``tests/test_cli_vocabulary.py`` checks every help
screen.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

__all__ = [
    "DataIdOpt",
    "DatasetTypeArg",
    "FormatOpt",
    "JsonAliasOpt",
    "OutputFormat",
    "ParentOpt",
    "RepoArg",
    "RerunOpt",
    "StorageOpt",
    "WhereOpt",
    "output_format",
]


class OutputFormat(StrEnum):
    """Output formats of the commands that print data."""

    table = "table"
    json = "json"


RepoArg = Annotated[
    str, typer.Argument(metavar="REPO", help="Repository root: a path or fsspec URL.")
]
DatasetTypeArg = Annotated[
    str, typer.Argument(metavar="DATASET_TYPE", help="Dataset type name, e.g. calexp.")
]
DataIdOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--data-id",
        "-d",
        metavar="KEY=VALUE",
        help="Data ID key=value (repeatable), e.g. -d visit=903988.",
    ),
]
RerunOpt = Annotated[
    str | None,
    typer.Option("--rerun", metavar="RERUN", help="Rerun NAME or IN:OUT (Gen2 style)."),
]
WhereOpt = Annotated[
    str | None,
    typer.Option(
        "--where",
        "-w",
        metavar="WHERE",
        help='Expression, e.g. "visit = 903988 AND ccd IN (16..24)".',
    ),
]
FormatOpt = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        "-f",
        metavar="table|json",
        help="Output format: a table for people, JSON for programs.",
    ),
]
JsonAliasOpt = Annotated[
    bool, typer.Option("--json", hidden=True, help="Deprecated: use --format json.")
]
StorageOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--storage-option",
        "-S",
        metavar="KEY=VALUE",
        help=(
            "fsspec/s3fs storage option KEY=VALUE (repeatable; dotted keys nest, e.g. "
            "endpoint_url=http://host:9000, profile=NAME, config_kwargs.connect_timeout=5). "
            "Credentials may also come from AWS_* variables or a profile; never from butler.yaml."
        ),
    ),
]


def output_format(fmt: OutputFormat, json_alias: bool) -> OutputFormat:
    """``--format``, or JSON when the deprecated ``--json`` was given."""
    return OutputFormat.json if json_alias else fmt


ParentOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--parent-option",
        metavar="URL=KEY=VALUE",
        help=(
            "Storage option of the parent repository at URL (repeatable; KEY=VALUE as for -S, "
            "e.g. s3://survey/hsc=anon=true or s3://survey/hsc=profile=reader)."
        ),
    ),
]
