"""Carrying out an import plan: check every file, then place and register them all or none.

1. Every file is read (in concurrent batches; ``fsspec``'s ``cat``) for its size and checksum;
   files missing at the export's paths are listed and nothing is registered.
2. Rows already in the repository with the same checksum are counted as *already present*
   (a second import of the same export changes nothing); the same dataset with other content
   is an error, before anything is written.
3. Runs (and chains, as runs with parents) are defined, then each file is placed (``copy``,
   ``symlink``; ``direct`` registers the file's own URL) and its row inserted, in one registry
   batch; a failure undoes the files placed and rows inserted so far.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from repo_butler.checksums import checksum_bytes
from repo_butler.errors import ConfigError, DatasetExistsError, StorageError
from repo_butler.gen3.plan import ImportPlan, PlannedRow
from repo_butler.ingest import Placement, place_and_register
from repo_butler.provenance import now_iso
from repo_butler.registry import DatasetRecord
from repo_butler.runs import PendingRun, run_prefix

if TYPE_CHECKING:
    from repo_butler.butler import Butler

__all__ = ["Gen3Transfer", "MissingFilesError", "RegisteredRows", "register_plan"]

logger = logging.getLogger(__name__)

Gen3Transfer = Literal["copy", "symlink", "direct"]
_CHUNK = 64  # files read per concurrent batch: bounds memory to 64 files at a time


class MissingFilesError(StorageError):
    """Files named by the export cannot be read; nothing was imported."""

    def __init__(self, message: str, missing: Sequence[tuple[str, str]]) -> None:
        super().__init__(message)
        self.missing = tuple(missing)


@dataclass(frozen=True)
class RegisteredRows:
    """What :func:`register_plan` did: rows inserted, rows already present (both as records)."""

    inserted: tuple[DatasetRecord, ...]
    present: tuple[DatasetRecord, ...]


@dataclass(frozen=True)
class _Checked:
    row: PlannedRow
    size: int
    checksum: str


def register_plan(
    butler: Butler,
    plan: ImportPlan,
    *,
    transfer: Gen3Transfer,
    storage_options: Mapping[str, Any] | None = None,
) -> RegisteredRows:
    """Place and register the rows of ``plan`` in ``butler``'s repository (all or none).

    Raises
    ------
    MissingFilesError
        Listing every file that cannot be read (nothing registered).
    DatasetExistsError
        If a dataset of the plan is registered with other content (nothing registered).
    ConfigError
        For ``symlink`` into a repository or from files that are not local, or a chain whose
        run exists here with other parents (nothing registered).
    """
    if transfer not in ("copy", "symlink", "direct"):
        raise ConfigError(f"transfer must be copy, symlink or direct, got {transfer!r}")
    options = dict(storage_options or {})
    store = butler.datastore
    if transfer == "symlink":
        remote = [r.source for r in plan.rows if "://" in r.source and not _is_file(r.source)]
        if not store.is_local or remote:
            where = remote[0] if remote else butler.root
            raise ConfigError(
                f"--transfer symlink needs local files and a local repository ({where} is not "
                "local); use copy or direct"
            )
    known = butler.registry.runs()
    for run, parents in plan.runs.items():
        if parents and run in known and known[run] != parents:
            raise ConfigError(
                f"run {run!r} already exists with parents {list(known[run])}; the export's chain "
                f"gives {list(parents)} (a run's parents never change); import the chain into "
                "another repository, or leave it out with --collection"
            )
    checked = _check_files(plan.rows, store.checksum_algorithm, options)
    new, present = _compare(butler, checked)
    with_rows = {c.row.run for c in new}
    for run, parents in plan.runs.items():  # members before the chains holding them
        if run not in known and (run in with_rows or parents):
            PendingRun(run, parents, butler.registry, store).create()
    inserted = _place_and_insert(butler, new, transfer, options)
    return RegisteredRows(tuple(inserted), tuple(present))


def _is_file(url: str) -> bool:
    return url.startswith(("file://", "local://"))


def _filesystems(sources: Sequence[str], options: dict[str, Any]) -> Iterator[tuple[Any, str]]:
    """``(filesystem, path)`` of each source, one filesystem per protocol."""
    import fsspec.core

    by_protocol: dict[str, Any] = {}
    for source in sources:
        protocol = source.split("://", 1)[0] if "://" in source else "file"
        fs = by_protocol.get(protocol)
        if fs is None:
            fs, path = fsspec.core.url_to_fs(source, **options)
            by_protocol[protocol] = fs
        else:
            path = fs._strip_protocol(source)
        yield fs, path


def _check_files(
    rows: Sequence[PlannedRow], algorithm: str, options: dict[str, Any]
) -> list[_Checked]:
    """Size and checksum of every row's file; every unreadable one listed in one error."""
    located = list(_filesystems([r.source for r in rows], options))
    out: list[_Checked] = []
    missing: list[tuple[str, str]] = []
    for start in range(0, len(rows), _CHUNK):
        chunk = list(zip(rows[start : start + _CHUNK], located[start : start + _CHUNK],
                         strict=True))  # fmt: skip
        by_fs: dict[int, tuple[Any, list[str]]] = {}
        for _, (fs, path) in chunk:
            by_fs.setdefault(id(fs), (fs, []))[1].append(path)
        got: dict[tuple[int, str], Any] = {}
        for key, (fs, paths) in by_fs.items():
            try:
                result = fs.cat(paths, on_error="return")
            except OSError as err:
                result = dict.fromkeys(paths, err)
            if not isinstance(result, dict):  # one path: fsspec returns its bytes
                result = {paths[0]: result}
            for path, value in result.items():
                got[(key, fs._strip_protocol(path))] = value
        for row, (fs, path) in chunk:
            value = got.get((id(fs), fs._strip_protocol(path)), FileNotFoundError(path))
            if isinstance(value, BaseException):
                missing.append((row.source, _why(value)))
                continue
            out.append(_Checked(row, len(value), checksum_bytes(value, algorithm)))
    if missing:
        for source, why in missing:
            logger.warning("missing: %s (%s)", source, why)
        shown = "; ".join(f"{s} ({w})" for s, w in missing[:3])
        more = f" and {len(missing) - 3} more (listed above)" if len(missing) > 3 else ""
        raise MissingFilesError(
            f"{len(missing)} of the export's {len(rows)} files cannot be read: {shown}{more}; "
            "nothing was imported (fix the paths, or give --root where the files are)",
            missing,
        )
    return out


def _why(err: BaseException) -> str:
    if isinstance(err, FileNotFoundError):
        return "no such file"
    return f"{type(err).__name__}: {err}".strip()


def _compare(butler: Butler, checked: list[_Checked]) -> tuple[list[_Checked], list[DatasetRecord]]:
    """Split into new rows and rows already registered with the same content."""
    registry = butler.registry
    existing: dict[tuple[str, str], dict[str, DatasetRecord]] = {}
    new: list[_Checked] = []
    present: list[DatasetRecord] = []
    known_runs = registry.runs()
    for c in checked:
        key = (c.row.dataset_type.name, c.row.run)
        if key not in existing:
            found = registry.query(key[0], (key[1],)) if key[1] in known_runs else []
            existing[key] = {r.data_id.key: r for r in found}
        record = existing[key].get(c.row.data_id.key)
        if record is None:
            new.append(c)
        elif record.checksum == c.checksum:
            present.append(record)
        else:
            raise DatasetExistsError(
                f"{c.row.dataset_type.name} {c.row.data_id} is already in run {c.row.run!r} with "
                f"other content ({butler.datastore.uri(record.path)}) than {c.row.source}; "
                "remove it first (rb remove) or import into another repository; nothing was "
                "imported"
            )
    return new, present


def _place_and_insert(
    butler: Butler, checked: list[_Checked], transfer: Gen3Transfer, options: dict[str, Any]
) -> list[DatasetRecord]:
    created = now_iso()
    items = []
    for c in checked:
        row = c.row
        if transfer == "direct":
            path, source = _absolute(row.source), None
        else:
            path = run_prefix(row.run) + row.dataset_type.path_template.format(row.data_id)
            source = row.source
        record = DatasetRecord(
            row.dataset_type.name, row.data_id, row.run, path, c.size, c.checksum, created, None
        )
        items.append(Placement(record, source))
    place_and_register(butler.registry, butler.datastore, items, transfer, options, what="import")
    return [item.record for item in items]


def _absolute(source: str) -> str:
    """A local path as a ``file://`` URL (``direct`` rows hold absolute URLs)."""
    if "://" in source:
        return source
    import os

    return "file://" + os.path.abspath(source)
