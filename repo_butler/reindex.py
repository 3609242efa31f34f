"""``reindex``: rebuild the registry from the files in storage, never losing the old one.

``reindex`` needs nothing but the files: it reads ``butler.yaml``, discovers reruns from their
``rerun/NAME/_run.json`` markers, parses every file path with the dataset types' templates,
recomputes sizes and checksums and re-attaches ``<file>.provenance.json`` sidecars (validated
against the provenance schema). A lost or corrupt registry therefore loses nothing except files
ingested with ``transfer="direct"`` (they live outside the repository) and the original creation
times (replaced by the reindex time).

It works in two phases so that any failure leaves the old registry as it was:

1. *scan* (read only): every marker, data file and sidecar is read and checked. A file whose
   name matches no template is reported (``unrecognised``), not fatal. A malformed run marker,
   an invalid sidecar or an unreadable file stops the reindex with one error listing each path
   and reason, before anything is written (fix or move the files, then run it again).
2. *build and swap*: the new registry is built in a separate file beside the old one
   (``<registry>.reindex-<hex>``) and swapped in by one atomic rename once complete; on an
   object store it is uploaded in one PUT. The old file's write-ahead log is first folded into
   it, so no stale log can be applied to the new file; an old registry SQLite cannot read at
   all is kept as ``<registry>.unreadable-<time>``. A PostgreSQL registry is emptied and refilled
   in one transaction.

Do not run it while other processes write to the repository. On S3 it also aborts multipart
uploads left under the root by writers that died mid-upload.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from repo_butler.checksums import algorithm_of, checksum_bytes, is_known
from repo_butler.config import CONFIG_FILENAME, RepoConfig, load_repo_config, registry_name
from repo_butler.datastore import Datastore, FsspecDatastore
from repo_butler.errors import RegistryError, RepoButlerError, RepositoryNotFoundError
from repo_butler.leftovers import DEFAULT_MIN_AGE
from repo_butler.maintenance import _is_bookkeeping, _split_run
from repo_butler.provenance import SIDECAR_SUFFIX, check_provenance_version, now_iso
from repo_butler.registry import DatasetRecord, Registry
from repo_butler.registry.sqlite import SqliteRegistry
from repo_butler.runs import RERUN_DIR, RUN_MARKER, decode_run_marker
from repo_butler.storage import open_datastore

__all__ = ["BUILD_INFIX", "ReindexReport", "reindex"]

logger = logging.getLogger(__name__)

#: The new registry is built as ``<registry><BUILD_INFIX><hex>`` beside the old one.
BUILD_INFIX = ".reindex-"
_MAX_LISTED = 20  # problems quoted in the error message


@dataclass
class ReindexReport:
    """What ``reindex`` found."""

    datasets: dict[str, int] = field(default_factory=dict)
    """Number of datasets registered per dataset type."""
    runs: list[str] = field(default_factory=list)
    """Runs restored (``""`` is the root)."""
    unrecognised: list[str] = field(default_factory=list)
    """Files that match no dataset type's template (not registered)."""
    ambiguous: list[str] = field(default_factory=list)
    """Files matching several dataset types (skipped)."""
    kept_unreadable: str | None = None
    """Where an old registry file SQLite could not read was moved (``None`` if none)."""
    stale_sidecars: list[str] = field(default_factory=list)
    """Provenance sidecars describing other bytes than their file (a write interrupted between
    its sidecar and its data): the dataset is registered without provenance."""

    @property
    def total(self) -> int:
        """Total datasets registered."""
        return sum(self.datasets.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "total": self.total,
            "datasets": dict(sorted(self.datasets.items())),
            "runs": self.runs,
            "unrecognised": self.unrecognised,
            "ambiguous": self.ambiguous,
            "kept_unreadable": self.kept_unreadable,
            "stale_sidecars": self.stale_sidecars,
        }


@dataclass
class _Scan:
    runs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    records: list[tuple[DatasetRecord, str | None]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def reindex(
    root: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None
) -> ReindexReport:
    """Rebuild the registry of the repository at ``root`` from its files alone.

    The old registry stays in place, untouched, until the new one is complete (see the module
    documentation). Returns what was found.

    Raises
    ------
    RepositoryNotFoundError
        If ``root`` has no ``butler.yaml``.
    RegistryError
        If run markers or provenance sidecars are malformed or files cannot be read (listing
        each path and reason); the old registry is then unchanged.
    """
    repo = open_datastore(root, storage_options)
    if not repo.exists(CONFIG_FILENAME):
        raise RepositoryNotFoundError(f"no repository at {repo.root} ({CONFIG_FILENAME} missing)")
    config = load_repo_config(repo)
    store = (
        repo
        if config.storage_root in (".", "")
        else open_datastore(config.storage_root, storage_options)
    )
    name = registry_name(config.registry)
    # parts left by writers that died mid-upload (S3); a younger upload may be a live writer's
    repo.abort_incomplete_uploads(min_age=DEFAULT_MIN_AGE)
    report = ReindexReport()
    scan = _scan(store, config, name, report)
    if scan.problems:
        listed = "; ".join(f"{path}: {why}" for path, why in scan.problems[:_MAX_LISTED])
        more = len(scan.problems) - _MAX_LISTED
        raise RegistryError(
            f"reindex of {repo.root} stopped before changing the registry: "
            f"{len(scan.problems)} file(s) cannot be used: {listed}"
            + (f"; and {more} more" if more > 0 else "")
            + ". Fix or move these files away, then run `rb reindex` again"
        )
    if config.registry.get("type") == "delta":
        from repo_butler.registry.factory import open_delta_registry

        delta = open_delta_registry(config.registry, repo, config.universe, rebuilding=True)
        try:
            with delta.batch():  # one commit: a ``clear`` event, then every row
                delta.clear()
                _fill(delta, scan)
        finally:
            delta.close()
    elif config.registry.get("type") == "postgresql":
        from repo_butler.registry import open_registry
        from repo_butler.registry.postgres import PostgresRegistry

        registry = open_registry(config.registry, repo, config.universe)
        assert isinstance(registry, PostgresRegistry)
        try:
            with registry.atomic():  # emptied and refilled in one transaction
                registry.clear()
                _fill(registry, scan, analyze=False)
            registry.analyze()
        finally:
            registry.close()
    else:
        report.kept_unreadable = _rebuild_file(repo, name, config, scan)
    report.runs = sorted(scan.runs)
    logger.info("reindexed %d datasets from %s", report.total, root)
    return report


def _scan(store: Datastore, config: RepoConfig, registry_name: str, report: ReindexReport) -> _Scan:
    """Read and check every file; change nothing."""
    from repo_butler.schemas import validate

    scan = _Scan(runs={"": ()})
    files = list(store.walk())
    existing = set(files)
    for path in files:
        if path.startswith(f"{RERUN_DIR}/") and path.endswith(f"/{RUN_MARKER}"):
            if path.count("/") != 2:
                continue
            try:
                run, parents = decode_run_marker(store.get_bytes(path), source=store.uri(path))
            except (RepoButlerError, OSError) as err:
                scan.problems.append((path, f"malformed run marker ({err})"))
                continue
            if run != path.split("/")[1]:
                scan.problems.append((path, f"run marker names the run {run!r}"))
                continue
            scan.runs[run] = parents
    for path in files:
        if _is_bookkeeping(path, registry_name) or path.endswith(SIDECAR_SUFFIX):
            continue
        run, rel = _split_run(path)
        matches = [
            (dt, did)
            for dt in config.dataset_types.values()
            if (did := dt.path_template.parse(rel)) is not None
        ]
        if not matches:
            report.unrecognised.append(path)
            continue
        if len(matches) > 1:
            logger.warning("%s matches several dataset types; skipped", path)
            report.ambiguous.append(path)
            continue
        dt, did = matches[0]
        sidecar = path + SIDECAR_SUFFIX
        try:
            data = store.get_bytes(path)
        except OSError as err:
            scan.problems.append((path, f"cannot be read ({err})"))
            continue
        prov_text = None
        if sidecar in existing:
            try:
                prov_text = store.get_bytes(sidecar).decode()
            except (OSError, UnicodeDecodeError) as err:
                scan.problems.append((sidecar, f"cannot be read ({err})"))
                continue
        if prov_text is not None:
            try:
                doc = json.loads(prov_text)
                if not isinstance(doc, dict):
                    raise ValueError("not a JSON object")
                check_provenance_version(doc, source=store.uri(sidecar))
                validate(doc, "provenance.schema.json", source=sidecar, error=RegistryError)
            except (ValueError, RepoButlerError) as err:
                scan.problems.append((sidecar, f"invalid provenance sidecar ({err})"))
                continue
        described = doc.get("output", {}).get("checksum") if prov_text is not None else None
        # the sidecar's algorithm (an earlier release's sha256), so that equal bytes compare equal
        algorithm = store.checksum_algorithm
        if isinstance(described, str) and is_known(described):
            algorithm = algorithm_of(described)
        checksum = checksum_bytes(data, algorithm)
        if prov_text is not None and described != checksum:
            logger.warning("%s describes other bytes than %s; not attached", sidecar, path)
            report.stale_sidecars.append(sidecar)
            prov_text = None
        record = DatasetRecord(
            dt.name,
            did,
            run,
            path,
            len(data),
            checksum,
            now_iso(),
            sidecar if prov_text is not None else None,
        )
        scan.records.append((record, prov_text))
        report.datasets[dt.name] = report.datasets.get(dt.name, 0) + 1
    return scan


def _fill(registry: Registry, scan: _Scan, *, analyze: bool = True) -> None:
    with registry.batch():
        for run, parents in scan.runs.items():
            if run:
                registry.define_run(run, parents)
        for record, prov_text in scan.records:
            registry.insert(record, provenance=prov_text)
        if analyze:
            registry.analyze()


def _rebuild_file(
    repo: FsspecDatastore, registry_name: str, config: RepoConfig, scan: _Scan
) -> str | None:
    """Build a new SQLite registry beside the old one and swap it in; return where an
    unreadable old registry was kept."""
    local = repo.local_path(registry_name)
    if local is None:  # object store or remote filesystem: build locally, upload in one PUT
        with tempfile.TemporaryDirectory(prefix="rb-reindex-") as tmp:
            path = os.path.join(tmp, "registry.sqlite3")
            _build(path, config, scan)
            with open(path, "rb") as fh:
                repo.put_bytes(registry_name, fh.read())
        return None
    directory = os.path.dirname(local) or "."
    for name in os.listdir(directory):  # leftovers of an interrupted reindex
        if name.startswith(os.path.basename(local) + BUILD_INFIX):
            os.unlink(os.path.join(directory, name))
    new = f"{local}{BUILD_INFIX}{uuid.uuid4().hex[:12]}"
    try:
        _build(new, config, scan)
        _fsync(new)
        kept = _quiesce_old(local)
        os.replace(new, local)
        _fsync(directory)
    except BaseException:
        for suffix in ("", "-journal"):
            if os.path.exists(new + suffix):
                os.unlink(new + suffix)
        raise
    return kept


def _build(path: str, config: RepoConfig, scan: _Scan) -> None:
    registry = SqliteRegistry(path, config.universe, journal_mode="DELETE")
    try:
        _fill(registry, scan)
    finally:
        registry.close()


def _quiesce_old(local: str) -> str | None:
    """Fold the old registry's WAL into its main file (so no ``-wal`` is left to be applied to
    the new file); move aside an old registry SQLite cannot read. Returns where it was moved."""
    if not os.path.exists(local):
        for suffix in ("-wal", "-shm", "-journal"):  # orphans of a deleted registry
            _move_aside(local + suffix, f"{local}.orphan-{_stamp()}{suffix}")
        return None
    try:
        conn = sqlite3.connect(local, timeout=10.0, isolation_level=None)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
            if busy or str(mode).lower() != "delete":
                raise sqlite3.OperationalError("database is locked")
        finally:
            conn.close()
    except sqlite3.OperationalError as err:  # in use by another process: change nothing
        raise RegistryError(
            f"cannot replace the registry {local} ({err}): another process has it open; stop "
            "the processes using the repository and run `rb reindex` again (nothing was changed)"
        ) from None
    except sqlite3.DatabaseError as err:
        kept = f"{local}.unreadable-{_stamp()}"
        logger.warning("the old registry %s is unreadable (%s); kept as %s", local, err, kept)
        for suffix in ("-wal", "-journal", ""):  # main file last: the WAL must not stay behind
            _move_aside(local + suffix, kept + suffix)
        if os.path.exists(local + "-shm"):
            os.unlink(local + "-shm")
        return kept
    if os.path.exists(local + "-shm"):
        os.unlink(local + "-shm")
    return None


def _move_aside(path: str, target: str) -> None:
    if os.path.exists(path):
        os.replace(path, target)


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def _fsync(path: str) -> None:
    opener: Callable[[str, int], int] = os.open
    fd = opener(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
