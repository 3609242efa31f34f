"""Repository maintenance: rebuild the registry from storage (``reindex``), check it (``verify``).

``reindex`` needs nothing but the files: it reads ``butler.yaml``, discovers reruns from their
``rerun/NAME/_run.json`` markers, parses every file path with the dataset types' templates,
recomputes sizes and checksums and re-attaches ``<file>.provenance.json`` sidecars. A lost or
corrupt registry therefore loses nothing except files ingested with ``transfer="direct"`` (they
live outside the repository) and the original creation times (replaced by the reindex time).
Do not run it while other processes write to the repository. On S3 it also aborts multipart
uploads left under the root by writers that died mid-upload; with a PostgreSQL registry the
tables are emptied (in the same transaction batch) instead of deleting a file.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

from repo_butler.butler import Butler
from repo_butler.config import CONFIG_FILENAME, DEFAULT_REGISTRY_FILE
from repo_butler.datastore import checksum_bytes
from repo_butler.errors import RepositoryNotFoundError
from repo_butler.leftovers import find_leftovers
from repo_butler.provenance import SIDECAR_SUFFIX, check_provenance_version, now_iso
from repo_butler.registry import DatasetRecord
from repo_butler.runs import RERUN_DIR, RUN_MARKER, decode_run_marker
from repo_butler.storage import open_datastore

__all__ = ["ReindexReport", "VerifyProblem", "VerifyReport", "reindex", "verify"]

logger = logging.getLogger(__name__)


@dataclass
class ReindexReport:
    """What ``reindex`` found."""

    datasets: dict[str, int] = field(default_factory=dict)
    """Number of datasets registered per dataset type."""
    runs: list[str] = field(default_factory=list)
    """Runs restored (``""`` is the root)."""
    unrecognised: list[str] = field(default_factory=list)
    """Files that match no dataset type's template."""
    ambiguous: list[str] = field(default_factory=list)
    """Files matching several dataset types (skipped)."""

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
        }


@dataclass(frozen=True)
class VerifyProblem:
    """One inconsistency between registry and storage."""

    kind: str
    """``"checksum"``, ``"size"``, ``"missing_file"``, ``"unregistered_file"``, or a crashed
    writer's leftover (:mod:`repo_butler.leftovers`): ``"temp_file"``, ``"incomplete_upload"``."""
    path: str
    detail: str
    dataset_type: str | None = None
    data_id: dict[str, int | str] | None = None
    run: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "kind": self.kind,
            "path": self.path,
            "detail": self.detail,
            "dataset_type": self.dataset_type,
            "data_id": self.data_id,
            "run": self.run,
        }


@dataclass
class VerifyReport:
    """What ``verify`` found."""

    checked: int = 0
    problems: list[VerifyProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when registry and storage agree."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "checked": self.checked,
            "ok": self.ok,
            "problems": [p.to_dict() for p in self.problems],
        }


def _is_bookkeeping(path: str, registry_name: str) -> bool:
    base = path.rsplit("/", 1)[-1]
    return (
        path == CONFIG_FILENAME
        or re.fullmatch(re.escape(CONFIG_FILENAME) + r"\.v[0-9]+", path) is not None  # rb migrate
        or path.startswith(registry_name)
        or (path.startswith(f"{RERUN_DIR}/") and base == RUN_MARKER and path.count("/") == 2)
    )


def _split_run(path: str) -> tuple[str, str]:
    if path.startswith(f"{RERUN_DIR}/"):
        parts = path.split("/", 2)
        if len(parts) == 3:
            return parts[1], parts[2]
    return "", path


def reindex(
    root: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None
) -> ReindexReport:
    """Rebuild the registry of the repository at ``root`` from its files alone.

    The old registry file is deleted first (it may be corrupt). Returns what was found.

    Raises
    ------
    RepositoryNotFoundError
        If ``root`` has no ``butler.yaml``.
    """
    repo = open_datastore(root, storage_options)
    if not repo.exists(CONFIG_FILENAME):
        raise RepositoryNotFoundError(f"no repository at {repo.root} ({CONFIG_FILENAME} missing)")
    import yaml

    raw = yaml.safe_load(repo.get_bytes(CONFIG_FILENAME))
    settings = raw.get("registry", {})
    shared_db = isinstance(settings, str) or settings.get("type") == "postgresql"
    registry_name = (
        DEFAULT_REGISTRY_FILE if isinstance(settings, str) else settings.get("path")
    ) or DEFAULT_REGISTRY_FILE
    if not shared_db:  # a file (or bucket object) that may be corrupt: start from nothing
        for suffix in ("", "-wal", "-shm", "-journal"):
            if repo.exists(registry_name + suffix):
                repo.remove(registry_name + suffix)
    repo.abort_incomplete_uploads()  # parts left by writers that died mid-upload (S3)
    report = ReindexReport()
    with Butler(root, storage_options=storage_options) as butler, butler.registry.batch():
        store = butler.datastore
        registry = butler.registry
        if shared_db:
            registry.clear()
        files = list(store.walk())
        for path in files:
            if path.startswith(f"{RERUN_DIR}/") and path.endswith(f"/{RUN_MARKER}"):
                run, parents = decode_run_marker(store.get_bytes(path), source=store.uri(path))
                registry.define_run(run, parents)
        existing = set(files)
        for path in files:
            if _is_bookkeeping(path, registry_name) or path.endswith(SIDECAR_SUFFIX):
                continue
            run, rel = _split_run(path)
            matches = [
                (dt, did)
                for dt in butler.dataset_types.values()
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
            data = store.get_bytes(path)
            sidecar = path + SIDECAR_SUFFIX
            prov_text = store.get_bytes(sidecar).decode() if sidecar in existing else None
            if prov_text is not None:
                check_provenance_version(json.loads(prov_text), source=store.uri(sidecar))
            record = DatasetRecord(
                dt.name,
                did,
                run,
                path,
                len(data),
                checksum_bytes(data),
                now_iso(),
                sidecar if prov_text is not None else None,
            )
            registry.insert(record, provenance=prov_text)
            report.datasets[dt.name] = report.datasets.get(dt.name, 0) + 1
        registry.analyze()
        report.runs = sorted(registry.runs())
    logger.info("reindexed %d datasets from %s", report.total, root)
    return report


def verify(butler: Butler) -> VerifyReport:
    """Recompute checksums of every registered dataset and compare registry with storage.

    Reports datasets whose file is missing, whose size or checksum differs, files in storage
    that no registry row accounts for (bookkeeping files and provenance sidecars excluded), and
    what crashed writers left (temporary files, incomplete uploads; ``rb cleanup`` removes them).
    """

    report = VerifyReport()
    store = butler.datastore
    io = butler.worker_io()
    registry_name = butler.config.get("registry", {}).get("path", DEFAULT_REGISTRY_FILE)
    tracked: set[str] = set()
    for rec in butler.registry.all_records():
        report.checked += 1
        tracked.add(rec.path)
        if rec.provenance:
            tracked.add(rec.provenance)

        def problem(kind: str, detail: str, rec: DatasetRecord = rec) -> None:
            report.problems.append(
                VerifyProblem(
                    kind, rec.path, detail, rec.dataset_type, rec.data_id.to_dict(), rec.run
                )
            )

        try:
            data = io.read_bytes(rec.path)  # also files ingested in place (absolute URLs)
        except FileNotFoundError:
            problem("missing_file", "registered but not in storage")
            continue
        if len(data) != rec.size:
            problem("size", f"registry {rec.size} B, file {len(data)} B")
        actual = checksum_bytes(data)
        if actual != rec.checksum:
            problem("checksum", f"registry {rec.checksum}, file {actual}")
    for path in store.walk():
        if path in tracked or _is_bookkeeping(path, registry_name):
            continue
        report.problems.append(
            VerifyProblem("unregistered_file", path, "in storage but not in the registry")
        )
    for item in find_leftovers(store):  # temporary files, incomplete uploads
        report.problems.append(VerifyProblem(item.kind, item.path, item.describe()))
    return report
