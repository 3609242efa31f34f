"""``rb migrate``: upgrade a repository's files written by older releases (thin adapter)."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import FormatOpt, OutputFormat, RepoArg, StorageOpt

__all__ = ["register"]


def migrate(
    repo: RepoArg,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be upgraded; change nothing.")
    ] = False,
    fmt: FormatOpt = OutputFormat.table,
    storage_option: StorageOpt = None,
) -> None:
    """Upgrade, in place, every file of REPO whose format is older than this release writes.

    Each file is rewritten whole and swapped in atomically; running it again is a no-op. A file
    newer than this release reads stops it before anything changes (upgrade repo-butler).
    """
    from repo_butler.migrate import migrate as run_migrate

    from .support import parse_storage_options

    report = run_migrate(
        repo, storage_options=parse_storage_options(storage_option), dry_run=dry_run
    )
    if fmt is OutputFormat.json:
        import json

        done = report.upgrades if dry_run else report.applied
        doc = {
            "root": report.root,
            "dry_run": report.dry_run,
            "up_to_date": report.up_to_date,
            "upgrades": [u.describe() for u in done],
            "formats": dict(report.formats),
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    for line in report.lines():
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add ``migrate`` to ``app``."""
    app.command()(migrate)
