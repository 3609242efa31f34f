"""repo_butler: a mini data butler over local and object storage.

Datasets are identified by a dataset type and a data ID, stored through fsspec with Gen2-style
path templates, and indexed in an SQLite registry that can be rebuilt from storage.
"""

from __future__ import annotations

from repo_butler.butler import Butler, create_repo
from repo_butler.config import DatasetType
from repo_butler.dimensions import DataId, Dimension, DimensionUniverse
from repo_butler.provenance import Provenance, ProvenanceInput, software_versions
from repo_butler.refs import DatasetRef

__all__ = [
    "Butler",
    "DataId",
    "DatasetRef",
    "DatasetType",
    "Dimension",
    "DimensionUniverse",
    "Provenance",
    "ProvenanceInput",
    "create_repo",
    "software_versions",
]
