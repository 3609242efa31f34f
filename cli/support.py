"""Helpers behind the ``rb`` commands: argument parsing, opening a Butler, output formatting.

Kept apart from the typer commands so they stay thin and these functions are testable directly.

``--format json`` output is stable: ``query-datasets`` prints a JSON array with one object per
dataset, keys in this order: ``dataset_type`` (str), ``data_id`` (object of dimension → int|str),
``run`` (str, ``""`` for the repository root), ``uri`` (str), ``size`` (int, bytes), ``checksum``
(str, ``"sha256:<hex>"``); ``query-data-ids`` prints a JSON array of data ID objects. Arrays are
sorted by data ID.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from repo_butler.errors import ConfigError, DataIdError

if TYPE_CHECKING:
    from repo_butler import Butler
    from repo_butler.dimensions import DataId
    from repo_butler.refs import DatasetRef

__all__ = [
    "format_data_ids",
    "format_provenance",
    "format_refs",
    "format_reindex",
    "load_config_file",
    "open_butler",
    "open_butler_created",
    "parse_key_values",
    "parse_storage_options",
    "refuse_positional_where",
    "text_table",
]

logger = logging.getLogger(__name__)


def parse_key_values(items: Iterable[str] | None, *, what: str = "--data-id") -> dict[str, str]:
    """Parse ``["visit=903988", "patch=5,4"]`` into a dict of strings.

    Raises
    ------
    DataIdError
        If an item has no ``=``.
    """
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DataIdError(f"{what} {item!r}: expected KEY=VALUE (e.g. visit=903988)")
        out[key.strip()] = value.strip()
    return out


def parse_storage_options(items: Iterable[str] | None) -> dict[str, Any]:
    """Parse ``--storage-option KEY=VALUE`` items; values are JSON-decoded when possible.

    A dotted key sets a nested option: ``config_kwargs.connect_timeout=5`` gives
    ``{"config_kwargs": {"connect_timeout": 5}}`` (botocore settings for S3).
    """
    out: dict[str, Any] = {}
    for key, text in parse_key_values(items, what="--storage-option").items():
        try:
            value: Any = json.loads(text)
        except json.JSONDecodeError:
            value = text
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--storage-option {key}: {part!r} is already set to a value")
            node = child
        node[leaf] = value
    return out


def parse_parent_options(items: Iterable[str] | None) -> dict[str, dict[str, Any]]:
    """Parse ``--parent-option URL=KEY=VALUE`` items into options by parent URL (``KEY=VALUE``
    as for ``--storage-option``)."""
    grouped: dict[str, list[str]] = {}
    for item in items or ():
        url, sep, rest = item.partition("=")
        if not sep or "=" not in rest or not url:
            raise ConfigError(
                f"--parent-option {item!r}: expected URL=KEY=VALUE, e.g. s3://survey/hsc=anon=true"
            )
        grouped.setdefault(url, []).append(rest)
    return {url: parse_storage_options(rest) for url, rest in grouped.items()}


def parent_entries(
    urls: Sequence[str], reruns: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """``butler.yaml`` ``parents`` entries from ``--parent URL`` and ``--parent-rerun URL=RERUN``
    (a rerun must name one of the parents)."""
    from repo_butler.parents import canonical_root

    entries: list[dict[str, Any]] = [{"url": url} for url in urls]
    for url, name in parse_key_values(reruns, what="--parent-rerun").items():
        match = [e for e in entries if canonical_root(e["url"]) == canonical_root(url)]
        if not match:
            raise ConfigError(f"--parent-rerun {url}={name}: {url} is not one of the --parent URLs")
        match[0]["rerun"] = name
    return entries


def open_butler(
    repo: str,
    *,
    rerun: str | None = None,
    storage_option: Iterable[str] | None = None,
    writeable: bool = True,
    parent_option: Iterable[str] | None = None,
) -> Butler:
    """The Butler a command works on, from its REPO, ``--rerun``, ``--storage-option`` and
    ``--parent-option``."""
    from repo_butler import Butler

    return Butler(
        repo,
        rerun=rerun,
        storage_options=parse_storage_options(storage_option),
        writeable=writeable,
        parent_options=parse_parent_options(parent_option),
    )


def open_butler_created(repo: str, storage_option: Iterable[str] | None = None) -> Butler:
    """The Butler of REPO, creating the repository (default preset) when there is none."""
    from repo_butler import Butler

    return Butler.create(repo, exist_ok=True, storage_options=parse_storage_options(storage_option))


def load_config_file(path: str | None) -> dict[str, Any] | None:
    """Read a YAML configuration overlay for ``rb create --config-file``."""
    if path is None:
        return None
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            loaded = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read configuration {path!r}: {err}") from err
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the configuration must be a YAML mapping")
    return loaded


def _data_id_text(data_id: DataId) -> str:
    return " ".join(f"{k}={v}" for k, v in data_id.items())


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, one header line (the format of every table)."""
    return _table(header, rows)


def format_refs(refs: Sequence[DatasetRef], fmt: str) -> str:
    """Render datasets as a text table (paths relative to the repository root, absolute for
    files ingested in place) or as the documented JSON array (full URIs)."""
    if fmt == "json":
        return json.dumps([r.to_json_dict() for r in refs], indent=2)
    rows = [
        [r.dataset_type, r.run or "(root)", _data_id_text(r.data_id), str(r.size), r.path]
        for r in refs
    ]
    if any(r.repository is not None for r in refs):  # a chain: say where each dataset lives
        for row, ref in zip(rows, refs, strict=True):
            row.insert(0, ref.repository or "(this)")
        return _table(["repository", "dataset_type", "run", "data_id", "size", "path"], rows)
    return _table(["dataset_type", "run", "data_id", "size", "path"], rows)


def format_data_ids(data_ids: Sequence[DataId], dimensions: Sequence[str], fmt: str) -> str:
    """Render data IDs as a table (one column per dimension) or a JSON array of objects."""
    if fmt == "json":
        return json.dumps([d.to_dict() for d in data_ids], indent=2)
    return _table(list(dimensions), [[str(d[k]) for k in dimensions] for d in data_ids])


def refuse_positional_where(stray: Sequence[str] | None) -> None:
    """A usage error for words after the dataset type: a where expression goes after ``-w``."""
    if stray:
        import typer

        text = " ".join(stray)
        raise typer.BadParameter(
            f"unexpected argument {text!r}: give a where expression with -w/--where, "
            f'e.g. -w "{text}"',
            param_hint="WHERE",
        )


def _flatten(value: Any, prefix: str) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        out: list[tuple[str, str]] = []
        for key, sub in value.items():
            out += _flatten(sub, f"{prefix}.{key}" if prefix else str(key))
        return out
    return [(prefix, json.dumps(value) if not isinstance(value, str) else value)]


def format_provenance(doc: dict[str, Any]) -> str:
    """A provenance record as text: what made the dataset, its inputs, software and config."""
    lines = [f"{key}: {doc[key]}" for key in ("task", "host", "start", "end") if key in doc]
    output = doc.get("output")
    if isinstance(output, dict):
        lines.append(
            f"output: {output.get('dataset_type')} {_data_id_text(output.get('data_id', {}))} "
            f"run {output.get('run') or '(root)'}"
        )
    inputs = doc.get("inputs", [])
    lines.append(f"inputs ({len(inputs)}):")
    rows = [
        [i.get("dataset_type", ""), i.get("run") or "(root)", _data_id_text(i.get("data_id", {})),
         str(i.get("checksum", ""))[:19]]
        for i in inputs
    ]  # fmt: skip
    header = ["dataset_type", "run", "data_id", "checksum"]
    if any(i.get("repository") for i in inputs):  # read from parent repositories
        header.insert(0, "repository")
        for row, i in zip(rows, inputs, strict=True):
            row.insert(0, i.get("repository") or "(this)")
    table = _table(header, rows)
    lines += ["  " + line for line in table.splitlines()]
    software = doc.get("software", {})
    lines.append("software: " + ", ".join(f"{k} {v}" for k, v in sorted(software.items())))
    lines.append("config:")
    lines += [f"  {key} = {text}" for key, text in _flatten(doc.get("config", {}), "")]
    return "\n".join(lines)


def format_reindex(report: dict[str, Any]) -> str:
    """``rb reindex``'s report as lines: datasets per type, runs, files not registered."""
    lines = [f"registered {report['total']} dataset(s)"]
    lines += [f"  {name}: {n}" for name, n in report["datasets"].items()]
    lines.append("runs: " + (", ".join(r or "(root)" for r in report["runs"]) or "-"))
    for key, what in (
        ("unrecognised", "matching no dataset type's template (not registered)"),
        ("ambiguous", "matching several dataset types (skipped)"),
        ("stale_sidecars", "with a stale provenance sidecar (registered without provenance)"),
    ):
        if report[key]:
            lines.append(f"{len(report[key])} file(s) {what}:")
            lines += [f"  {path}" for path in report[key]]
    if report["kept_unreadable"]:
        lines.append(f"the unreadable old registry was kept as {report['kept_unreadable']}")
    return "\n".join(lines)
