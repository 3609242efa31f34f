"""Dataset registries: the :class:`Registry` interface and its implementations.

:class:`SqliteRegistry` (local repositories), :class:`ObjectStoreRegistry` (an SQLite object in
an S3 bucket, updated by compare-and-swap) and :class:`PostgresRegistry` (a shared database).
"""

from __future__ import annotations

from repo_butler.registry.base import DatasetRecord, Registry
from repo_butler.registry.objectstore import ObjectStoreRegistry
from repo_butler.registry.postgres import PostgresRegistry
from repo_butler.registry.sqlite import SqliteRegistry

__all__ = [
    "DatasetRecord",
    "ObjectStoreRegistry",
    "PostgresRegistry",
    "Registry",
    "SqliteRegistry",
]
