"""Dataset registries: the :class:`Registry` interface and its SQLite implementation."""

from __future__ import annotations

from repo_butler.registry.base import DatasetRecord, Registry
from repo_butler.registry.sqlite import SqliteRegistry

__all__ = ["DatasetRecord", "Registry", "SqliteRegistry"]
