"""Ingest: register existing files as datasets, copying, moving or linking them into place.

Each file's data ID comes from the data ID given and, for the keys it lacks, from the file's own
path when its trailing segments follow the dataset type's template. ``copy`` and ``move`` place
the file at its template path, ``symlink`` links it there (local only) and ``direct`` registers it
where it is (an absolute URL).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, get_args

from repo_butler.datastore import TransferMode, checksum_bytes
from repo_butler.errors import ConfigError, DataIdError, DatasetExistsError
from repo_butler.lookup import DatasetLookup
from repo_butler.provenance import now_iso
from repo_butler.refs import DatasetRef
from repo_butler.registry import DatasetRecord
from repo_butler.runs import display_run, run_prefix

__all__ = ["TRANSFERS", "ingest_files"]

TRANSFERS: tuple[str, ...] = get_args(TransferMode)


def ingest_files(
    lookup: DatasetLookup,
    run: str,
    dataset_type: str,
    files: Sequence[str | os.PathLike[str]],
    *,
    transfer: TransferMode,
    data_id: Mapping[str, Any] | None,
    storage_options: Mapping[str, Any],
) -> list[DatasetRef]:
    """Register ``files`` as datasets of ``run`` (one registry batch); see
    :meth:`Butler.ingest <repo_butler.Butler.ingest>`."""
    import fsspec.core

    if transfer not in TRANSFERS:
        raise ConfigError(f"transfer must be one of {TRANSFERS}, got {transfer!r}")
    registry, store = lookup.registry, lookup.store
    dt = lookup.dataset_type(dataset_type)
    given = lookup.partial(dt, data_id, {}) if data_id else None
    with registry.batch():  # one registry upload for the lot on object stores
        refs = []
        for item in files:
            source = os.fspath(item)
            fs, src_path = fsspec.core.url_to_fs(source, **storage_options)
            parsed = dt.path_template.parse_suffix(src_path)
            merged: dict[str, Any] = dict(parsed or {})
            for key, value in (given or {}).items():
                if key in merged and merged[key] != value:
                    raise DataIdError(
                        f"{source}: its path says {key}={merged[key]!r} but the data ID given "
                        f"says {key}={value!r}"
                    )
                merged[key] = value
            if len(merged) < len(dt.dimensions):
                raise DataIdError(
                    f"cannot derive a full {dataset_type} data ID for {source!r}: its path "
                    f"does not end like the template {dt.template!r} and the data ID given "
                    f"({given or {}}) lacks {[k for k in dt.dimensions if k not in merged]}"
                )
            did = lookup.complete(dt, merged, {})
            if registry.find(dt.name, did, (run,)) is not None:
                raise DatasetExistsError(
                    f"{dataset_type} {did} already exists in run {display_run(run)}; "
                    "remove it before ingesting"
                )
            data = fs.cat_file(src_path)
            path = run_prefix(run) + dt.path_template.format(did)
            if transfer == "direct":
                path = fs.unstrip_protocol(src_path)
            elif store.uri(path) != fs.unstrip_protocol(src_path):
                store.transfer_in(
                    source, path, mode=transfer, storage_options=dict(storage_options)
                )
            record = DatasetRecord(
                dt.name, did, run, path, len(data), checksum_bytes(data), now_iso(), None
            )
            registry.insert(record)
            refs.append(lookup.ref(record))
    return refs
