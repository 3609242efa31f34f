"""Repository maintenance: check the registry against storage (``verify``).

Rebuilding the registry from storage is :func:`repo_butler.reindex.reindex`.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from repo_butler.butler import Butler
from repo_butler.checksums import algorithm_of, checksum_bytes, checksum_matches
from repo_butler.config import CONFIG_FILENAME
from repo_butler.config import registry_name as config_registry_name
from repo_butler.datastore import Datastore
from repo_butler.leftovers import find_leftovers
from repo_butler.registry import DatasetRecord
from repo_butler.run_configs import is_run_config_path
from repo_butler.runs import RERUN_DIR, RUN_MARKER

__all__ = ["VerifyProblem", "VerifyReport", "verify"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyProblem:
    """One inconsistency between registry and storage."""

    kind: str
    """``"checksum"``, ``"size"``, ``"missing_file"``, ``"unregistered_file"``, ``"sidecar"``
    (a provenance sidecar missing or describing other bytes than the dataset's), or a crashed
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
        or is_run_config_path(path)
    )


def _sidecar_trouble(store: Datastore, rec: DatasetRecord) -> str | None:
    """What is wrong with a dataset's provenance sidecar (``None``: it describes the file)."""
    assert rec.provenance is not None
    try:
        doc = json.loads(store.get_bytes(rec.provenance))
    except FileNotFoundError:
        return "provenance sidecar missing"
    except (OSError, ValueError) as err:
        return f"provenance sidecar unreadable ({err})"
    found = doc.get("output", {}).get("checksum") if isinstance(doc, dict) else None
    if found != rec.checksum:
        return f"provenance sidecar describes {found}, the dataset is {rec.checksum}"
    return None


def _split_run(path: str) -> tuple[str, str]:
    if path.startswith(f"{RERUN_DIR}/"):
        parts = path.split("/", 2)
        if len(parts) == 3:
            return parts[1], parts[2]
    return "", path


def verify(butler: Butler, *, repair_sidecars: bool = False) -> VerifyReport:
    """Recompute checksums of every registered dataset and compare registry with storage.

    Reports datasets whose file is missing, whose size or checksum differs, provenance sidecars
    that are missing or describe other bytes (the registry keeps its own copy of each record),
    files in storage that no registry row accounts for (bookkeeping files and provenance
    sidecars excluded), and what crashed writers left (temporary files, incomplete uploads;
    ``rb cleanup`` removes them).

    With ``repair_sidecars`` such sidecars are rewritten from the registry's copy (and not
    reported); the repository must be open for writing.
    """

    report = VerifyReport()
    store = butler.datastore
    io = butler.worker_io()
    registry_name = config_registry_name(butler.config.get("registry", {}))
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
        matches = checksum_matches(data, rec.checksum)
        if matches is None:
            problem("checksum", f"registry {rec.checksum}: algorithm unknown to this release")
        elif not matches:
            actual = checksum_bytes(data, algorithm_of(rec.checksum))
            problem("checksum", f"registry {rec.checksum}, file {actual}")
        if rec.provenance:
            trouble = _sidecar_trouble(store, rec)
            if trouble is not None and repair_sidecars:
                text = butler.registry.get_provenance(rec.dataset_type, rec.data_id, rec.run)
                if text is not None:
                    store.put_bytes(rec.provenance, text.encode())
                    logger.info("rewrote %s from the registry", store.uri(rec.provenance))
                    continue
            if trouble is not None:
                report.problems.append(
                    VerifyProblem(
                        "sidecar",
                        rec.provenance,
                        f"{trouble}; `rb verify --repair-sidecars` rewrites it from the "
                        "registry's copy",
                        rec.dataset_type,
                        rec.data_id.to_dict(),
                        rec.run,
                    )
                )
    for path in store.walk():
        if path in tracked or _is_bookkeeping(path, registry_name):
            continue
        report.problems.append(
            VerifyProblem("unregistered_file", path, "in storage but not in the registry")
        )
    for item in find_leftovers(store):  # temporary files, incomplete uploads
        report.problems.append(VerifyProblem(item.kind, item.path, item.describe()))
    return report
