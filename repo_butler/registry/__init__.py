"""Dataset registries: the :class:`Registry` interface and its implementations.

:class:`SqliteRegistry` (local repositories), :class:`ObjectStoreRegistry` (an SQLite object in
an S3 bucket, updated by compare-and-swap), :class:`CachedSqliteRegistry` (an SQLite file in any
other fsspec store, through a cache copy) and :class:`PostgresRegistry` (a shared database);
:func:`open_registry` picks one from the configuration and the store's capabilities.
"""

from __future__ import annotations

from repo_butler.registry.base import DatasetRecord, Registry
from repo_butler.registry.cached import CachedSqliteRegistry
from repo_butler.registry.factory import open_registry
from repo_butler.registry.postgres import PostgresRegistry
from repo_butler.registry.s3 import ObjectStoreRegistry
from repo_butler.registry.sqlite import SqliteRegistry

__all__ = [
    "CachedSqliteRegistry",
    "DatasetRecord",
    "ObjectStoreRegistry",
    "PostgresRegistry",
    "Registry",
    "SqliteRegistry",
    "open_registry",
]
