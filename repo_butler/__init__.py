"""repo_butler: a mini data butler over local and object storage.

Datasets are identified by a dataset type and a data ID, stored through fsspec with Gen2-style
path templates, and indexed in an SQLite registry that can be rebuilt from storage.

Public names are imported on first access, so ``import repo_butler.errors`` (used by every
command-line adapter) does not pay for the butler, fsspec and the registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from repo_butler._lazy import lazy_getattr

if TYPE_CHECKING:
    from repo_butler.butler import Butler, create_repo
    from repo_butler.config import DatasetType
    from repo_butler.dimensions import DataId, Dimension, DimensionUniverse
    from repo_butler.ingest import IngestedFile, IngestReport
    from repo_butler.provenance import Provenance, ProvenanceInput, software_versions
    from repo_butler.put_many import PutItem
    from repo_butler.refs import DatasetRef
    from repo_butler.writes import PlannedPut, WorkerIO, WrittenDataset

_EXPORTS = {
    "Butler": "repo_butler.butler",
    "create_repo": "repo_butler.butler",
    "DatasetType": "repo_butler.config",
    "DataId": "repo_butler.dimensions",
    "Dimension": "repo_butler.dimensions",
    "DimensionUniverse": "repo_butler.dimensions",
    "IngestReport": "repo_butler.ingest",
    "IngestedFile": "repo_butler.ingest",
    "Provenance": "repo_butler.provenance",
    "ProvenanceInput": "repo_butler.provenance",
    "software_versions": "repo_butler.provenance",
    "PutItem": "repo_butler.put_many",
    "DatasetRef": "repo_butler.refs",
    "PlannedPut": "repo_butler.writes",
    "WorkerIO": "repo_butler.writes",
    "WrittenDataset": "repo_butler.writes",
}

__all__ = [
    "Butler",
    "DataId",
    "DatasetRef",
    "DatasetType",
    "Dimension",
    "DimensionUniverse",
    "IngestReport",
    "IngestedFile",
    "PlannedPut",
    "Provenance",
    "ProvenanceInput",
    "PutItem",
    "WorkerIO",
    "WrittenDataset",
    "create_repo",
    "software_versions",
]

__getattr__ = lazy_getattr("repo_butler", _EXPORTS, globals())
