"""``import_gen3``: read an export, plan, check and register; the report of what happened."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from repo_butler.gen3.apply import Gen3Transfer, register_plan
from repo_butler.gen3.export import Gen3Export, read_export
from repo_butler.gen3.plan import Gen3TypeRule, ImportPlan, SkippedDataset, build_plan

if TYPE_CHECKING:
    from repo_butler.butler import Butler

__all__ = ["Gen3ImportReport", "import_gen3"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gen3ImportReport:
    """The outcome of an import.

    ``imported`` and ``already_present`` count datasets per dataset type of this repository;
    ``runs`` maps each Gen3 collection imported to its run here, ``parents`` each run defined to
    its parents (chains); ``skipped`` and ``skipped_collections`` say what was not imported and
    why.
    """

    export: str
    transfer: str
    selected: int
    imported: Mapping[str, int]
    already_present: Mapping[str, int]
    runs: Mapping[str, str]
    parents: Mapping[str, tuple[str, ...]]
    skipped: tuple[SkippedDataset, ...]
    skipped_collections: Mapping[str, str]

    @property
    def complete(self) -> bool:
        """Whether every selected dataset and collection was imported (or already present)."""
        return not self.skipped and not self.skipped_collections

    def lines(self) -> list[str]:
        """The human summary: counts, runs, then every skipped dataset grouped by reason."""
        out = [f"import of {self.export} ({self.transfer}): {self.selected} dataset(s) selected"]
        for name in sorted({*self.imported, *self.already_present}):
            out.append(
                f"  {name}: {self.imported.get(name, 0)} imported, "
                f"{self.already_present.get(name, 0)} already present"
            )
        for gen3, ours in self.runs.items():
            parents = self.parents.get(ours, ())
            tail = f" (chain: {', '.join(parents)})" if parents else ""
            out.append(f"  collection {gen3} -> run {ours}{tail}")
        for name, reason in self.skipped_collections.items():
            out.append(f"  skipped collection {name}: {reason}")
        by_reason: dict[tuple[str, str], list[SkippedDataset]] = {}
        for s in self.skipped:
            by_reason.setdefault((s.dataset_type, s.reason), []).append(s)
        for (dtype, reason), items in by_reason.items():
            first = ", ".join(str(dict(s.data_id)) for s in items[:3])
            more = f" and {len(items) - 3} more" if len(items) > 3 else ""
            out.append(f"  skipped {len(items)} {dtype}: {reason} ({first}{more})")
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``rb import-gen3 --format json``)."""
        return {
            "export": self.export,
            "transfer": self.transfer,
            "selected": self.selected,
            "imported": dict(self.imported),
            "already_present": dict(self.already_present),
            "runs": dict(self.runs),
            "parents": {k: list(v) for k, v in self.parents.items()},
            "skipped": [
                {
                    "dataset_type": s.dataset_type,
                    "data_id": dict(s.data_id),
                    "run": s.run,
                    "reason": s.reason,
                }
                for s in self.skipped
            ],
            "skipped_collections": dict(self.skipped_collections),
            "complete": self.complete,
        }


def import_gen3(
    butler: Butler,
    export: str | Gen3Export,
    rules: Mapping[str, Gen3TypeRule],
    *,
    transfer: Gen3Transfer = "copy",
    collections: Sequence[str] | None = None,
    where: str | None = None,
    dataset_types: Sequence[str] | None = None,
    root: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Gen3ImportReport:
    """Import the datasets of a daf_butler export into ``butler``'s repository.

    Parameters
    ----------
    butler : Butler
        The repository (opened writeable).
    export : str or Gen3Export
        The export file (path or fsspec URL), or an already parsed one.
    rules : Mapping
        Gen3 dataset type → :class:`~repo_butler.gen3.plan.Gen3TypeRule` (what a repository
        preset accepts; warping's is :data:`warping.gen3_types.GEN3_TYPES`).
    transfer : {"copy", "symlink", "direct"}
        How files enter: copied or linked to the template path, or registered where they are.
    collections, where, dataset_types
        Partial import: these collections only, data IDs matching ``where`` (Gen3 keys), these
        Gen3 dataset types only.
    root : str, optional
        Where the export's relative paths start (default: the export file's directory).
    storage_options : Mapping, optional
        fsspec options for the export and its files (default: the butler's).

    Raises
    ------
    MissingFilesError, DatasetExistsError
        Before anything is registered.
    """
    options = dict(butler.storage_options if storage_options is None else storage_options)
    parsed = export if isinstance(export, Gen3Export) else read_export(export, options)
    plan: ImportPlan = build_plan(
        parsed,
        butler.dimensions,
        butler.dataset_types,
        rules,
        root=root or parsed.directory,
        collections=collections,
        where=where,
        gen3_types=dataset_types,
    )
    done = register_plan(butler, plan, transfer=transfer, storage_options=options)
    used = {r.gen3.run for r in plan.rows} | {
        g for g, ours in plan.run_names.items() if plan.runs.get(ours)
    }
    report = Gen3ImportReport(
        export=parsed.source,
        transfer=transfer,
        selected=plan.selected,
        imported=dict(Counter(r.dataset_type for r in done.inserted)),
        already_present=dict(Counter(r.dataset_type for r in done.present)),
        runs={g: plan.run_names[g] for g in plan.run_names if g in used},
        parents={k: v for k, v in plan.runs.items() if v},
        skipped=plan.skipped,
        skipped_collections=dict(plan.skipped_collections),
    )
    logger.debug("%s", "; ".join(report.lines()))
    return report
