"""Dataset look-up: dataset type names and (partial) data IDs resolved to registry records.

A read names a dataset type and a full or partial data ID; :class:`DatasetLookup` validates the
data ID against the dataset type's dimensions, searches the runs in priority order (a rerun, its
parents, the root) and returns the one matching record, or an error that names what was searched
and how to find what exists.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from repo_butler.config import CONFIG_FILENAME, DatasetType, RepoConfig
from repo_butler.datastore import Datastore
from repo_butler.dimensions import DataId
from repo_butler.errors import DataIdError, DatasetNotFoundError, DatasetTypeError
from repo_butler.refs import DatasetRef, data_id_key
from repo_butler.registry import DatasetRecord, Registry
from repo_butler.runs import display_run

__all__ = ["DatasetLookup", "prioritise"]


def prioritise(records: list[DatasetRecord], runs: Sequence[str]) -> list[DatasetRecord]:
    """One record per data ID (the one of the first run in ``runs``), sorted by data ID."""
    rank = {run: i for i, run in enumerate(runs)}
    best: dict[str, DatasetRecord] = {}
    for rec in records:
        key = data_id_key(rec.data_id)
        current = best.get(key)
        if current is None or rank[rec.run] < rank[current.run]:
            best[key] = rec
    return sorted(best.values(), key=lambda r: r.data_id.sort_key())


class DatasetLookup:
    """Resolve dataset types and data IDs of one repository.

    Parameters
    ----------
    config : RepoConfig
        The repository's configuration (dimensions and dataset types).
    registry : Registry
        Its registry.
    store : Datastore
        Where its dataset files are (to build URLs).
    root : str
        Repository root URL (for messages).
    search : tuple of str
        Runs searched by default, highest priority first.
    """

    def __init__(
        self,
        config: RepoConfig,
        registry: Registry,
        store: Datastore,
        root: str,
        search: tuple[str, ...],
    ) -> None:
        self.config = config
        self.registry = registry
        self.store = store
        self.root = root
        self.search = search

    def dataset_type(self, name: str) -> DatasetType:
        """The dataset type called ``name`` (``DatasetTypeError`` listing the known ones)."""
        try:
            return self.config.dataset_types[name]
        except KeyError:
            raise DatasetTypeError(
                f"unknown dataset type {name!r}; known: "
                f"{', '.join(sorted(self.config.dataset_types))}. Add it under dataset_types in "
                f"{CONFIG_FILENAME}"
            ) from None

    def partial(
        self, dt: DatasetType, data_id: Mapping[str, Any] | None, kwargs: Mapping[str, Any]
    ) -> DataId:
        """Validated data ID restricted to ``dt``'s dimensions (some may be missing)."""
        if (
            isinstance(data_id, DataId)
            and not kwargs
            and len(data_id) == len(dt.dimensions)
            and all(k in data_id for k in dt.dimensions)
        ):
            return data_id
        full = self.config.universe.normalize(data_id, order=dt.dimensions, **kwargs)
        return full.subset([k for k in dt.dimensions if k in full])

    def complete(
        self, dt: DatasetType, data_id: Mapping[str, Any] | None, kwargs: Mapping[str, Any]
    ) -> DataId:
        """Validated data ID with every dimension of ``dt`` (``DataIdError`` naming the missing)."""
        did = self.partial(dt, data_id, kwargs)
        if len(did) != len(dt.dimensions):
            missing = [k for k in dt.dimensions if k not in did]
            raise DataIdError(
                f"{dt.name} needs data ID keys {list(dt.dimensions)}; {did} lacks {missing}"
            )
        return did

    def ref(self, record: DatasetRecord) -> DatasetRef:
        """The public :class:`DatasetRef` of a registry record."""
        return DatasetRef(
            record.dataset_type,
            record.data_id,
            record.run,
            record.path,
            self.store.uri(record.path),
            record.size,
            record.checksum,
            record.created,
        )

    def candidates(self, dt: DatasetType, did: DataId, runs: Sequence[str]) -> list[DatasetRecord]:
        """Records matching a full or partial data ID, one per data ID, by run priority."""
        if len(did) == len(dt.dimensions):
            found = self.registry.find(dt.name, did, runs)
            return [found] if found is not None else []
        return prioritise(self.registry.query(dt.name, runs, data_id=did), runs)

    def query_datasets(
        self,
        dataset_type: str,
        where: str | None = None,
        *,
        data_id: Mapping[str, Any] | None = None,
        bind: Mapping[str, Any] | None = None,
        runs: Sequence[str] | None = None,
    ) -> list[DatasetRef]:
        """Datasets of one type matching ``data_id`` and ``where`` in the search order (or in
        ``runs``), one per data ID (from the first run that has it), sorted by data ID."""
        dt = self.dataset_type(dataset_type)
        did = self.partial(dt, data_id, {}) if data_id else None
        return [self.ref(r) for r in self.query_records(dt, did, where, bind, runs)]

    def query_records(
        self,
        dt: DatasetType,
        did: DataId | None,
        where: str | None,
        bind: Mapping[str, Any] | None,
        runs: Sequence[str] | None,
    ) -> list[DatasetRecord]:
        """The records behind :meth:`query_datasets`, one per data ID, sorted by data ID."""
        search = self.search if runs is None else tuple(runs)
        records = self.registry.query(
            dt.name, search, data_id=did, where=where, bind=bind, dimensions=dt.dimensions
        )
        return prioritise(records, search)

    def query_data_ids(
        self,
        dimensions: Sequence[str],
        where: str | None = None,
        *,
        dataset_type: str | None = None,
        data_id: Mapping[str, Any] | None = None,
        bind: Mapping[str, Any] | None = None,
    ) -> list[DataId]:
        """Distinct values of ``dimensions`` among datasets in the search order (of one type
        if given, else of every type having those dimensions), sorted."""
        universe = self.config.universe
        dims = [universe.canonical(d) for d in dimensions]  # aliases allowed; unknown: error
        if dataset_type is not None:
            dt = self.dataset_type(dataset_type)
            extra = [d for d in dims if d not in dt.dimensions]
            if extra:
                raise DataIdError(f"{dataset_type} has no dimensions {extra}")
            types: list[str] | None = [dt.name]
        else:
            types = [
                t.name for t in self.config.dataset_types.values() if set(dims) <= set(t.dimensions)
            ]
        did = universe.normalize(data_id) if data_id else None
        return self.registry.query_data_ids(
            universe.order(dims),
            self.search,
            dataset_types=types,
            data_id=did,
            where=where,
            bind=bind,
        )

    def resolve(
        self,
        dataset_type: str,
        data_id: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
        runs: Sequence[str] | None = None,
    ) -> DatasetRecord:
        """The one record matching the data ID in ``runs`` (default: the search order).

        Raises
        ------
        DatasetNotFoundError
            If none matches (naming the runs searched).
        DataIdError
            If a partial data ID matches several datasets (listing them).
        """
        dt = self.dataset_type(dataset_type)
        did = self.partial(dt, data_id, kwargs)
        runs = self.search if runs is None else runs
        found = self.candidates(dt, did, runs)
        if not found:
            raise DatasetNotFoundError(self.not_found(dataset_type, did, runs))
        if len(found) > 1:
            shown = "; ".join(str(rec.data_id) for rec in found[:10])
            more = f" and {len(found) - 10} more" if len(found) > 10 else ""
            raise DataIdError(
                f"data ID {did} is ambiguous for {dataset_type}: {len(found)} datasets match "
                f"({shown}{more}); add keys from {list(dt.dimensions)} to pick one"
            )
        return found[0]

    def provenance(self, record: DatasetRecord) -> str | None:
        """The provenance JSON stored with a record's dataset, or ``None``."""
        return self.registry.get_provenance(record.dataset_type, record.data_id, record.run)

    def not_found(self, dataset_type: str, did: DataId, runs: Sequence[str]) -> str:
        """What was searched, for a :class:`DatasetNotFoundError` message."""
        return (
            f"no {dataset_type} dataset with data ID {did} in {self.searched(runs)}; check the "
            f"data ID or list what exists with `rb query-datasets {self.root} {dataset_type}`"
        )

    def searched(self, runs: Sequence[str]) -> str:
        """Where a look-up in ``runs`` searched, in words."""
        return f"the runs searched [{', '.join(display_run(r) for r in runs)}] of {self.root}"

    def resolve_and_fetch(
        self, dataset_type: str, data_id: Mapping[str, Any] | None, kwargs: Mapping[str, Any]
    ) -> tuple[DatasetRef, Callable[[], bytes] | None]:
        """Resolve a data ID and, with a registry allowing speculative reads, start reading the
        file at once.

        With an S3 registry the lookup uses the local registry copy and the data GET starts
        before the registry's freshness HEAD, so the two requests overlap; if the registry had
        changed, the lookup is redone and the early read is used only if it still applies.
        """
        registry = self.registry
        if not registry.speculative_reads:
            return self.ref(self.resolve(dataset_type, data_id, kwargs)), None
        try:
            with registry.trusting_local_copy():
                record = self.resolve(dataset_type, data_id, kwargs)
        except (DatasetNotFoundError, DataIdError):  # maybe just stale: decide on fresh data
            return self.ref(self.resolve(dataset_type, data_id, kwargs)), None
        if "://" in record.path:  # ingested with transfer="direct"
            fetch = None
        else:
            fetch = self.store.get_bytes_started(record.path)
        if registry.changed_in_bucket():
            fresh = self.resolve(dataset_type, data_id, kwargs)
            if fresh != record:
                if fetch is not None:
                    with contextlib.suppress(Exception):
                        fetch()  # drain the superseded read
                return self.ref(fresh), None
        return self.ref(record), fetch
