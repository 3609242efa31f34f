"""Deferred registration: workers write dataset files, the driver alone writes the registry.

:meth:`repo_butler.Butler.put` does four things in one process: path from the template, bytes from
the formatter (with a checksum), a provenance sidecar validated against the provenance schema, and
a registry row. A scaled-out run splits them: a worker (which never opens the registry) calls
:func:`write_dataset` and returns the small, picklable :class:`WrittenDataset`; the driver calls
:func:`register_datasets`. The registry therefore stays single-writer (SQLite works, and a repo in
a bucket uploads its registry once per batch), while the bytes go straight from the worker to the
datastore through fsspec.

This mirrors ``Butler.put`` step by step (same path, checksum and sidecar document, the latter
built by ``repo_butler.butler.provenance_document`` / ``provenance_json``, which ``Butler.put``
uses too).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["StoreContext", "WrittenDataset", "output_path", "register_datasets", "write_dataset"]

_DATASTORES: dict[tuple[str, str], Any] = {}


@dataclass(frozen=True)
class StoreContext:
    """What a worker needs to read and write a repository's files without a Butler.

    Parameters
    ----------
    storage_root
        URL of the datastore root (``butler.datastore.root``).
    storage_options
        fsspec options (credentials). Never shown by ``repr`` (Dask logs task arguments).
    formatters
        Formatter name of every dataset type the worker reads or writes.
    run
        Output run (``""`` for the repository root).
    """

    storage_root: str
    storage_options: Mapping[str, Any]
    formatters: Mapping[str, str]
    run: str

    def __repr__(self) -> str:
        keys = ", ".join(sorted(self.storage_options))
        return (
            f"StoreContext({self.storage_root!r}, run={self.run!r}, "
            f"storage_options=<{len(self.storage_options)} keys: {keys}; values hidden>)"
        )

    @classmethod
    def from_butler(cls, butler: Any) -> StoreContext:
        """The context of ``butler``'s datastore and output run."""
        formatters = {name: dt.formatter for name, dt in butler.dataset_types.items()}
        return cls(butler.datastore.root, butler.storage_options, formatters, butler.run)

    def datastore(self) -> Any:
        """The datastore (one per worker process and root, reused across tasks)."""
        from repo_butler.objectstore import open_datastore

        key = (
            self.storage_root,
            json.dumps(dict(self.storage_options), sort_keys=True, default=str),
        )
        store = _DATASTORES.get(key)
        if store is None:
            store = open_datastore(self.storage_root, dict(self.storage_options))
            _DATASTORES[key] = store
        return store

    def read_bytes(self, path: str) -> bytes:
        """Whole content of a dataset file (relative path or absolute URL)."""
        if "://" in path:  # ingested with transfer="direct"
            import fsspec.core

            fs, p = fsspec.core.url_to_fs(path, **dict(self.storage_options))
            data: bytes = fs.cat_file(p)
            return data
        data = self.datastore().get_bytes(path)
        return data

    def read(self, dataset_type: str, path: str) -> Any:
        """Read and decode a dataset file."""
        from repo_butler.formatters import get_formatter

        data = self.read_bytes(path)
        return get_formatter(self.formatters[dataset_type]).from_bytes(
            data, source=self.datastore().uri(path)
        )


@dataclass(frozen=True)
class WrittenDataset:
    """A dataset file (and provenance sidecar) written by a worker, not yet registered."""

    dataset_type: str
    data_id: dict[str, Any]
    run: str
    path: str
    uri: str
    size: int
    checksum: str
    provenance_path: str | None
    provenance_json: str | None


def output_path(butler: Any, dataset_type: str, data_id: Mapping[str, Any]) -> str:
    """Storage path ``butler.put`` would use for ``dataset_type`` / ``data_id`` in its run."""
    from repo_butler.runs import run_prefix

    dt = butler.dataset_type(dataset_type)
    did = butler.dimensions.normalize(data_id, order=dt.dimensions)
    return run_prefix(butler.run) + str(dt.path_template.format(did))


def _provenance_document(
    ctx: StoreContext,
    provenance: Any,
    dataset_type: str,
    data_id: Mapping[str, Any],
) -> dict[str, Any]:
    """The sidecar document exactly as ``Butler.put`` builds it (completed, redacted, validated),
    with a placeholder checksum until the bytes are written."""
    from repo_butler.butler import provenance_document

    return provenance_document(
        provenance,
        dataset_type=dataset_type,
        data_id=dict(data_id),
        run=ctx.run,
        storage_options=dict(ctx.storage_options),
    )


def write_dataset(
    ctx: StoreContext,
    obj: Any,
    dataset_type: str,
    data_id: Mapping[str, Any],
    path: str,
    provenance: Any | None,
) -> WrittenDataset:
    """Serialise ``obj`` and write it (and its provenance sidecar) at ``path``; no registry.

    The provenance is validated before anything is written; each file is written atomically.
    """
    from repo_butler.butler import provenance_json
    from repo_butler.formatters import get_formatter
    from repo_butler.provenance import SIDECAR_SUFFIX

    data = get_formatter(ctx.formatters[dataset_type]).to_bytes(obj)
    prov_path = prov_json = None
    prov_doc = None
    if provenance is not None:  # validated before anything is written
        prov_path = path + SIDECAR_SUFFIX
        prov_doc = _provenance_document(ctx, provenance, dataset_type, data_id)
    store = ctx.datastore()
    # as in Butler.put: the checksum is computed while the bytes upload (or taken from the S3
    # client's payload signature)
    checksum = store.put_bytes_started(path, data)()
    if prov_path is not None and prov_doc is not None:
        prov_json = provenance_json(prov_doc, checksum)
        store.put_bytes(prov_path, prov_json.encode())
    return WrittenDataset(
        dataset_type,
        dict(data_id),
        ctx.run,
        path,
        store.uri(path),
        len(data),
        checksum,
        prov_path,
        prov_json,
    )


def register_datasets(butler: Any, written: Iterable[WrittenDataset]) -> int:
    """Register files written by :func:`write_dataset` in ``butler``'s registry (one batch).

    Existing rows of the same dataset type and data ID in the output run are replaced (the file
    at the template path has already been replaced). Returns the number registered.
    """
    from repo_butler.errors import RegistryError
    from repo_butler.provenance import now_iso
    from repo_butler.registry import DatasetRecord

    items = list(written)
    if not items:
        return 0
    registry = butler.registry
    with registry.batch():
        for w in items:
            if w.run != butler.run:
                raise RegistryError(
                    f"{w.dataset_type} {w.data_id} was written for run {w.run!r} but the driver "
                    f"registers into run {butler.run!r}; reopen the Butler with rerun={w.run!r}"
                )
            dt = butler.dataset_type(w.dataset_type)
            did = butler.dimensions.normalize(w.data_id, order=dt.dimensions)
            record = DatasetRecord(
                dt.name, did, w.run, w.path, w.size, w.checksum, now_iso(), w.provenance_path
            )
            registry.insert(record, provenance=w.provenance_json, replace=True)
    return len(items)
