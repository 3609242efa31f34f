"""``rb`` commands for repositories: create, ingest, query, remove, reindex, verify, cleanup,
provenance.

Each command is a thin adapter over :mod:`repo_butler`; library imports happen inside the
functions so ``rb --help`` stays fast. Data go to stdout, diagnostics to stderr.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer

from .options import (
    DataIdOpt,
    DatasetTypeArg,
    FormatOpt,
    JsonAliasOpt,
    OutputFormat,
    ParentOpt,
    RepoArg,
    RerunOpt,
    StorageOpt,
    WhereOpt,
    output_format,
)

__all__ = [
    "DataIdOpt",
    "FormatOpt",
    "OutputFormat",
    "RepoArg",
    "RerunOpt",
    "StorageOpt",
    "TypeArg",
    "WhereOpt",
    "register",
]


class Transfer(StrEnum):
    """How ``ingest`` brings files into the repository."""

    copy = "copy"
    move = "move"
    symlink = "symlink"
    direct = "direct"


TypeArg = DatasetTypeArg  # the name other command modules import


def create(
    repo: RepoArg,
    config_file: Annotated[
        str | None,
        typer.Option(
            "--config-file",
            metavar="FILE",
            help="YAML file merged over the preset's butler.yaml (dimensions, dataset types).",
        ),
    ] = None,
    config_alias: Annotated[
        str | None,
        typer.Option("--config", hidden=True, help="Deprecated spelling of --config-file."),
    ] = None,
    storage_option: StorageOpt = None,
    parent_option: ParentOpt = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            metavar="NAME",
            help=(
                "Repository preset giving the dimensions and dataset types (default: warping's "
                "HSC/LSST layout; 'minimal' for a bare general butler)."
            ),
        ),
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            metavar="sqlite|delta",
            help=(
                "Registry kind: sqlite (default) or, for s3:// repositories, delta (a Delta Lake "
                "table whose commits cost the same at any size); PostgreSQL via --config-file."
            ),
        ),
    ] = None,
    parent: Annotated[
        list[str] | None,
        typer.Option(
            "--parent",
            metavar="URL",
            help=(
                "A read-only parent repository searched after REPO's own runs (repeatable, in "
                "order); nothing is ever written to it."
            ),
        ),
    ] = None,
    parent_rerun: Annotated[
        list[str] | None,
        typer.Option(
            "--parent-rerun",
            metavar="URL=RERUN",
            help="Search this rerun of the parent at URL (then its parents and root).",
        ),
    ] = None,
) -> None:
    """Create a repository (writes REPO/butler.yaml and an empty registry)."""
    from repo_butler import Butler
    from repo_butler.errors import ConfigError
    from repo_butler.presets import default_preset

    from .support import (
        load_config_file,
        parent_entries,
        parse_parent_options,
        parse_storage_options,
    )

    if config_file is not None and config_alias is not None:
        raise ConfigError("give the YAML file once, with --config-file")
    opts = parse_storage_options(storage_option)
    preset = preset or default_preset()
    overlay = load_config_file(config_file if config_file is not None else config_alias)
    if registry is not None:
        if registry not in ("sqlite", "delta"):
            raise ConfigError(f"--registry must be sqlite or delta, not {registry!r}")
        if overlay and "registry" in overlay:
            raise ConfigError("give the registry once: with --registry or in --config-file")
        overlay = {**(overlay or {}), "registry": {"type": registry}}
    if parent:
        if overlay and "parents" in overlay:
            raise ConfigError("give the parents once: with --parent or in --config-file")
        overlay = {**(overlay or {}), "parents": parent_entries(parent, parent_rerun)}
    elif parent_rerun:
        raise ConfigError("--parent-rerun needs the parent itself: add --parent URL")
    Butler.create(
        repo,
        config=overlay,
        storage_options=opts,
        preset=preset,
        parent_options=parse_parent_options(parent_option),
    ).close()
    typer.echo(f"created repository {repo} (preset {preset})", err=True)


def ingest(
    repo: RepoArg,
    dataset_type: TypeArg,
    files: Annotated[
        list[str], typer.Argument(metavar="FILE...", help="Files (paths or URLs) to ingest.")
    ],
    transfer: Annotated[
        Transfer,
        typer.Option(
            "--transfer",
            "-t",
            metavar="copy|move|symlink|direct",
            help="How files enter the repository.",
        ),
    ] = Transfer.copy,
    data_id: Annotated[
        list[str] | None,
        typer.Option(
            "--data-id",
            "-d",
            metavar="KEY=VALUE",
            help=(
                "Data ID key=value for every file (repeatable; Gen3 names such as detector= "
                "accepted). Keys the files' headers or paths hold need not be given; a value "
                "contradicting them is an error."
            ),
        ),
    ] = None,
    rerun: RerunOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Derive and check every data ID; register nothing.")
    ] = False,
    fmt: FormatOpt = OutputFormat.table,
    storage_option: StorageOpt = None,
    parent_option: ParentOpt = None,
) -> None:
    """Register files as datasets (all or none). Each data ID comes from the file's header
    (calexps: the instrument rule table), its path (when it follows the template), -d, and the
    registry; one line per file says which, and files already ingested are skipped."""
    import json

    from .support import open_butler, parse_key_values

    note = ""
    if dry_run:  # read-only: a dry run records nothing, not even a new rerun
        with open_butler(
            repo, storage_option=storage_option, parent_option=parent_option, writeable=False
        ) as root:
            known = root.registry.runs()
        out = (rerun or "").split(":")[-1].strip()
        if out and out not in known:  # checked against what it would start from
            note = f" (rerun {out!r} does not exist yet: a real ingest creates it)"
            rerun = (rerun or "").split(":")[0].strip() if ":" in (rerun or "") else None
    with open_butler(
        repo,
        rerun=rerun,
        storage_option=storage_option,
        parent_option=parent_option,
        writeable=not dry_run,
    ) as butler:
        report = butler.ingest(
            dataset_type,
            files,
            transfer=transfer.value,
            data_id=parse_key_values(data_id) or None,
            dry_run=dry_run,
        )
    if fmt is OutputFormat.json:
        typer.echo(json.dumps([f.to_dict() for f in report.files], indent=2))
    else:
        for item in report.files:
            typer.echo(item.line())
    typer.echo(report.summary(dataset_type) + note, err=True)


def query_datasets(
    ctx: typer.Context,
    repo: RepoArg,
    dataset_type: TypeArg,
    where: WhereOpt = None,
    data_id: DataIdOpt = None,
    rerun: RerunOpt = None,
    all_reruns: Annotated[
        bool, typer.Option("--all-reruns", help="Search the root run and every rerun.")
    ] = False,
    fmt: FormatOpt = OutputFormat.table,
    storage_option: StorageOpt = None,
    parent_option: ParentOpt = None,
) -> None:
    """List datasets of one type (JSON: [{dataset_type, data_id, run, uri, size, checksum}];
    datasets of a parent repository also have "repository").

    The runs searched are the rerun's chain (--rerun) or the root run alone; stderr says which,
    and which other reruns exist (--all-reruns lists every run's datasets).
    """
    from repo_butler.errors import ConfigError

    from .support import format_refs, open_butler, parse_key_values, refuse_positional_where

    refuse_positional_where(ctx.args)
    if all_reruns and rerun is not None:
        raise ConfigError("give either --rerun or --all-reruns, not both")
    ids = parse_key_values(data_id) or None
    with open_butler(
        repo,
        rerun=rerun,
        storage_option=storage_option,
        parent_option=parent_option,
        writeable=False,
    ) as butler:
        searched = butler.search_runs
        refs = butler.query_datasets(dataset_type, where, data_id=ids)
        others = sorted(set(butler.registry.runs()) - set(searched))
        if all_reruns:  # every run's own datasets, not only those its chain does not shadow
            for run in others:
                refs += butler.query_datasets(dataset_type, where, data_id=ids, runs=(run,))
            searched, others = (*searched, *others), []
    typer.echo(format_refs(refs, fmt.value))
    names = ", ".join(r or "(root)" for r in searched)
    hint = f"; not searched: {', '.join(others)} (--rerun NAME or --all-reruns)" if others else ""
    typer.echo(f"searched run(s): {names}{hint}", err=True)


def query_data_ids(
    repo: RepoArg,
    dimensions: Annotated[
        list[str],
        typer.Argument(metavar="DIMENSION...", help="Dimensions to list, e.g. visit ccd."),
    ],
    where: WhereOpt = None,
    dataset_type: Annotated[
        str | None,
        typer.Option(
            "--dataset-type", metavar="DATASET_TYPE", help="Only data IDs of this dataset type."
        ),
    ] = None,
    data_id: DataIdOpt = None,
    rerun: RerunOpt = None,
    fmt: FormatOpt = OutputFormat.table,
    storage_option: StorageOpt = None,
    parent_option: ParentOpt = None,
) -> None:
    """List distinct data IDs (JSON: array of objects), e.g. all CCDs of one visit."""
    from .support import format_data_ids, open_butler, parse_key_values

    with open_butler(
        repo,
        rerun=rerun,
        storage_option=storage_option,
        parent_option=parent_option,
        writeable=False,
    ) as butler:
        ids = butler.query_data_ids(
            dimensions, where, dataset_type=dataset_type, data_id=parse_key_values(data_id) or None
        )
        order = butler.dimensions.order(butler.dimensions.canonical(d) for d in dimensions)
    typer.echo(format_data_ids(ids, order, fmt.value))


def remove(
    repo: RepoArg,
    dataset_type: TypeArg,
    data_id: DataIdOpt = None,
    where: WhereOpt = None,
    rerun: RerunOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, remove nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Allow removing from the repository root run (the input datasets)."
        ),
    ] = False,
    storage_option: StorageOpt = None,
    parent_option: ParentOpt = None,
) -> None:
    """Remove datasets of the output run (registry row, file, provenance sidecar).

    Select them with a complete data ID (-d for every dimension of the dataset type) or with
    --where; what will be removed is listed first and confirmed (--yes skips the question,
    --dry-run only lists). The root run holds the inputs: removing there needs --force.
    """
    from repo_butler.errors import DataIdError, DatasetNotFoundError

    from .support import open_butler, parse_key_values

    given = parse_key_values(data_id)
    if not given and where is None:
        raise DataIdError(
            "rb remove needs a complete data ID (-d KEY=VALUE for each dimension) or --where"
        )
    with open_butler(
        repo, rerun=rerun, storage_option=storage_option, parent_option=parent_option
    ) as butler:
        if not butler.run and not force:
            raise DataIdError(
                f"{dataset_type} would be removed from the root run of {butler.root}, which "
                "holds the input datasets; pass --force to do that, or --rerun NAME"
            )
        dims = butler.dataset_type(dataset_type).dimensions
        named = {butler.dimensions.canonical(k) for k in given}
        missing = [d for d in dims if d not in named]
        if missing and where is None:
            raise DataIdError(
                f"the data ID {given} does not name {', '.join(missing)} of {dataset_type}; "
                "give every dimension with -d, or select with --where (you will be asked)"
            )
        refs = butler.query_datasets(dataset_type, where, data_id=given, runs=(butler.run,))
        if not refs:
            raise DatasetNotFoundError(
                f"no {dataset_type} matches in run {butler.run or '(root)'} of {butler.root}"
            )
        for ref in refs:
            typer.echo(f"{'would remove' if dry_run else 'remove'}\t{ref.data_id}\t{ref.uri}")
        if dry_run:
            return
        if not yes:
            if not sys.stdin.isatty():
                raise DataIdError(
                    f"refusing to remove {len(refs)} dataset(s) without confirmation: stdin is "
                    "not a terminal; pass --yes"
                )
            if not typer.confirm(f"Remove these {len(refs)} dataset(s)?", default=False):
                raise typer.Exit(code=1)
        for ref in refs:
            butler.remove(dataset_type, ref.data_id)
    typer.echo(f"removed {len(refs)} dataset(s)", err=True)


def reindex(
    repo: RepoArg, fmt: FormatOpt = OutputFormat.table, storage_option: StorageOpt = None
) -> None:
    """Rebuild the registry from the files in storage (templates + provenance sidecars)."""
    import json

    from repo_butler.reindex import reindex as run_reindex

    from .support import format_reindex, parse_storage_options

    report = run_reindex(repo, storage_options=parse_storage_options(storage_option))
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(format_reindex(report.to_dict()))


def verify(
    repo: RepoArg,
    fmt: FormatOpt = OutputFormat.table,
    storage_option: StorageOpt = None,
    parent_option: ParentOpt = None,
    repair_sidecars: Annotated[
        bool,
        typer.Option(
            "--repair-sidecars",
            help="Rewrite provenance sidecars that are missing or describe other bytes from "
            "the registry's copy of each record (opens the repository for writing).",
        ),
    ] = False,
) -> None:
    """Recompute checksums; report mismatches and files missing on either side (exit 1 if any)."""
    import json

    from repo_butler.maintenance import verify as run_verify

    from .support import open_butler

    with open_butler(
        repo, storage_option=storage_option, parent_option=parent_option, writeable=repair_sidecars
    ) as butler:
        report = run_verify(butler, repair_sidecars=repair_sidecars)
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for p in report.problems:
            typer.echo(f"{p.kind}\t{p.path}\t{p.detail}")
        typer.echo(f"checked {report.checked} datasets, {len(report.problems)} problem(s)")
    if not report.ok:
        raise typer.Exit(code=1)


def cleanup(
    repo: RepoArg,
    older_than: Annotated[
        float,
        typer.Option(
            "--older-than",
            metavar="SECONDS",
            help="Remove temporary files and incomplete uploads at least this many seconds old "
            "(younger ones may belong to a writer that is still running).",
        ),
    ] = 3600.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, remove nothing.")] = False,
    fmt: FormatOpt = OutputFormat.table,
    storage_option: StorageOpt = None,
) -> None:
    """Remove what crashed writers left: temporary files, incomplete uploads, stale caches."""
    import json

    from repo_butler.config import CONFIG_FILENAME
    from repo_butler.errors import RepositoryNotFoundError
    from repo_butler.leftovers import cleanup as run_cleanup
    from repo_butler.storage import open_datastore

    from .support import parse_storage_options

    store = open_datastore(repo, parse_storage_options(storage_option))
    if not store.exists(CONFIG_FILENAME):
        raise RepositoryNotFoundError(f"no repository at {store.root} ({CONFIG_FILENAME} missing)")
    report = run_cleanup(store, min_age=older_than, dry_run=dry_run)
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    for item in report.removed:
        typer.echo(f"{verb}\t{item.kind}\t{item.path}\t{item.age:.0f} s old")
    for item in report.kept:
        typer.echo(f"kept\t{item.kind}\t{item.path}\t{item.age:.0f} s old (< {older_than:g} s)")
    for path in report.registry_caches:
        typer.echo(f"{verb}\tregistry_cache\t{path}\tits process has exited")
    typer.echo(
        f"{verb} {len(report.removed)} leftover(s) and {len(report.registry_caches)} stale "
        f"registry cache(s); kept {len(report.kept)} younger than {older_than:g} s"
    )


def provenance(
    repo: RepoArg,
    dataset_type: TypeArg,
    data_id: DataIdOpt = None,
    rerun: RerunOpt = None,
    fmt: FormatOpt = OutputFormat.table,
    json_alias: JsonAliasOpt = False,
    storage_option: StorageOpt = None,
    parent_option: ParentOpt = None,
) -> None:
    """Print the provenance record stored with one dataset: task, inputs with their runs and
    checksums, software versions, host, times and the full config (JSON: the stored record)."""
    import json

    from repo_butler.errors import DatasetNotFoundError

    from .support import format_provenance, open_butler, parse_key_values

    with open_butler(
        repo,
        rerun=rerun,
        storage_option=storage_option,
        parent_option=parent_option,
        writeable=False,
    ) as butler:
        doc = butler.get_provenance_dict(dataset_type, parse_key_values(data_id))
        if doc is None:
            raise DatasetNotFoundError(f"{dataset_type} {data_id} was stored without provenance")
    if output_format(fmt, json_alias) is OutputFormat.json:
        typer.echo(json.dumps(doc, indent=2, sort_keys=True))
    else:
        typer.echo(format_provenance(doc))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    for func in (create, ingest, query_data_ids, remove, reindex, verify, cleanup):
        app.command()(func)
    app.command(context_settings={"allow_extra_args": True})(query_datasets)
    app.command()(provenance)
