"""Stand-in for the butler's worker-side write API until ``repo_butler`` ships it (issue 14).

The shapes are exactly those ``repo_butler`` is getting (:class:`PlannedPut`,
:class:`WrittenDataset`, :class:`WorkerIO`, ``Butler.plan_put``, ``Butler.worker_io``,
``Butler.register``), so switching is an import change; this module then goes away.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from repo_butler import Butler, DataId, DatasetRef, Provenance

logger = logging.getLogger(__name__)

__all__ = ["PlannedPut", "WorkerIO", "WrittenDataset", "plan_put", "register", "worker_io"]

_DATASTORES: dict[tuple[str, str], Any] = {}


@dataclass(frozen=True)
class PlannedPut:
    """Where a dataset will be written: dataset type, validated data ID, run and path."""

    dataset_type: str
    data_id: DataId
    run: str
    path: str


@dataclass(frozen=True)
class WrittenDataset:
    """A dataset file (and provenance sidecar) written by a worker, not yet registered."""

    planned: PlannedPut
    uri: str
    size: int
    checksum: str
    provenance_path: str | None
    provenance_json: str | None


@dataclass(frozen=True)
class WorkerIO:
    """What a worker needs to read and write a repository's files without a registry."""

    storage_root: str
    storage_options: Mapping[str, Any]
    formatters: Mapping[str, str]
    run: str

    def __repr__(self) -> str:
        keys = ", ".join(sorted(self.storage_options))
        return (
            f"WorkerIO({self.storage_root!r}, run={self.run!r}, "
            f"storage_options=<{len(self.storage_options)} keys: {keys}; values hidden>)"
        )

    def datastore(self) -> Any:
        """The datastore (one per worker process and root, reused across tasks)."""
        from repo_butler.objectstore import open_datastore

        key = (
            self.storage_root,
            json.dumps(dict(self.storage_options), sort_keys=True, default=str),
        )
        store = _DATASTORES.get(key)
        if store is None:
            store = _DATASTORES[key] = open_datastore(self.storage_root, dict(self.storage_options))
        return store

    def uri(self, path: str) -> str:
        """Full URL of a stored path."""
        return str(self.datastore().uri(path))

    def read_bytes(self, ref_or_path: DatasetRef | str) -> bytes:
        """Whole content of a dataset file (relative path or absolute URL)."""
        path = ref_or_path if isinstance(ref_or_path, str) else ref_or_path.path
        if "://" in path:  # ingested with transfer="direct"
            import fsspec.core

            fs, p = fsspec.core.url_to_fs(path, **dict(self.storage_options))
            data: bytes = fs.cat_file(p)
            return data
        data = self.datastore().get_bytes(path)
        return data

    def read(self, ref: DatasetRef) -> Any:
        """Read and decode a dataset."""
        from repo_butler.formatters import get_formatter

        data = self.read_bytes(ref)
        formatter = get_formatter(self.formatters[ref.dataset_type])
        return formatter.from_bytes(data, source=self.uri(ref.path))

    @contextmanager
    def open(self, ref: DatasetRef, *, block_size: int | None = None) -> Iterator[BinaryIO]:
        """Open a dataset's file for reading (remote files lazily, ``block_size`` read-ahead)."""
        kw = {} if block_size is None else {"block_size": block_size}
        if "://" in ref.path:
            import fsspec.core

            fs, full = fsspec.core.url_to_fs(ref.path, **dict(self.storage_options))
        else:
            store = self.datastore()
            fs, full = store.filesystem, store.full_path(ref.path)
        with fs.open(full, "rb", **kw) as fh:
            yield fh

    def write(
        self, planned: PlannedPut, obj: Any, provenance: Provenance | None = None
    ) -> WrittenDataset:
        """Serialise ``obj`` and write it (and its provenance sidecar); no registry."""
        from repo_butler.butler import provenance_document, provenance_json
        from repo_butler.formatters import get_formatter
        from repo_butler.provenance import SIDECAR_SUFFIX

        data = get_formatter(self.formatters[planned.dataset_type]).to_bytes(obj)
        prov_path = prov_json = None
        prov_doc = None
        if provenance is not None:  # validated before anything is written
            prov_path = planned.path + SIDECAR_SUFFIX
            prov_doc = provenance_document(
                provenance,
                dataset_type=planned.dataset_type,
                data_id=dict(planned.data_id),
                run=planned.run,
                storage_options=dict(self.storage_options),
            )
        store = self.datastore()
        checksum = store.put_bytes_started(planned.path, data)()
        if prov_path is not None and prov_doc is not None:
            prov_json = provenance_json(prov_doc, checksum)
            store.put_bytes(prov_path, prov_json.encode())
        uri = store.uri(planned.path)
        return WrittenDataset(planned, uri, len(data), checksum, prov_path, prov_json)


def worker_io(butler: Butler) -> WorkerIO:
    """``butler.worker_io()``."""
    formatters = {name: dt.formatter for name, dt in butler.dataset_types.items()}
    return WorkerIO(butler.datastore.root, butler.storage_options, formatters, butler.run)


def plan_put(butler: Butler, dataset_type: str, data_id: Mapping[str, Any]) -> PlannedPut:
    """``butler.plan_put(dataset_type, data_id)``."""
    from repo_butler.runs import run_prefix

    dt = butler.dataset_type(dataset_type)
    did = butler.dimensions.normalize(data_id, order=dt.dimensions)
    path = run_prefix(butler.run) + str(dt.path_template.format(did))
    return PlannedPut(dt.name, did, butler.run, path)


def register(butler: Butler, written: Iterable[WrittenDataset]) -> list[Any]:
    """``butler.register(written)``: one registry batch, replacing rows of the output run."""
    from repo_butler.errors import RegistryError
    from repo_butler.provenance import now_iso
    from repo_butler.registry import DatasetRecord

    items = list(written)
    if not items:
        return []
    registry = butler.registry
    with registry.batch():
        for w in items:
            p = w.planned
            if p.run != butler.run:
                raise RegistryError(
                    f"{p.dataset_type} {p.data_id} was written for run {p.run!r} but the driver "
                    f"registers into run {butler.run!r}; reopen the Butler with rerun={p.run!r}"
                )
            record = DatasetRecord(
                p.dataset_type, p.data_id, p.run, p.path, w.size, w.checksum, now_iso(),
                w.provenance_path,
            )  # fmt: skip
            registry.insert(record, provenance=w.provenance_json, replace=True)
    return items
