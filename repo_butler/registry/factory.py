"""Open the registry a repository's configuration and storage call for.

``registry: {type: postgresql, ...}`` selects a shared :class:`PostgresRegistry`;
``registry: {type: delta}`` a Delta Lake table in the bucket (:class:`DeltaRegistry`, S3 only:
commits cost the same at any size). Otherwise the
registry is an SQLite file beside ``butler.yaml`` and the store's capabilities decide how it is
used: on local disk directly (:class:`SqliteRegistry`, WAL); in a store with conditional writes
(S3) as an object updated by compare-and-swap (:class:`ObjectStoreRegistry`); in any other
fsspec store through a cache copy uploaded after each write (:class:`CachedSqliteRegistry`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from repo_butler.config import (
    CONFIG_FILENAME,
    DEFAULT_REGISTRY_FILE,
    check_delta_store,
    registry_name,
)
from repo_butler.datastore import FsspecDatastore
from repo_butler.dimensions import DimensionUniverse
from repo_butler.errors import RegistryError
from repo_butler.registry.base import Registry
from repo_butler.registry.cached import CachedSqliteRegistry
from repo_butler.registry.postgres import PostgresRegistry
from repo_butler.registry.s3 import ObjectStoreRegistry
from repo_butler.registry.sqlite import SqliteRegistry

if TYPE_CHECKING:
    from repo_butler.registry.delta import DeltaRegistry

__all__ = ["DEFAULT_REGISTRY_FILE", "open_delta_registry", "open_registry", "refuse_lost_registry"]


def open_registry(
    settings: Mapping[str, Any],
    store: FsspecDatastore,
    universe: DimensionUniverse,
    *,
    writeable: bool = True,
    leave_no_files: bool = False,
) -> Registry:
    """The registry for the ``registry`` settings of ``butler.yaml``.

    Parameters
    ----------
    settings : Mapping
        The validated ``registry`` section.
    store : FsspecDatastore
        The store holding ``butler.yaml`` (and the SQLite registry file).
    universe : DimensionUniverse
        The repository's dimensions.
    writeable : bool
        A read-only registry never uploads (read permission suffices).
    leave_no_files : bool
        Read-only and creating no file in the repository at all, not even SQLite's ``-wal`` and
        ``-shm`` beside a local registry (a parent repository's).
    """
    if settings.get("type") == "postgresql":
        return PostgresRegistry(settings["url"], universe, schema=settings.get("schema"))
    if settings.get("type") == "delta":
        return open_delta_registry(settings, store, universe, writeable=writeable)
    name = settings.get("path", DEFAULT_REGISTRY_FILE)
    timeout = float(settings.get("busy_timeout", 60.0))
    local = store.local_path(name)
    if local is not None:
        if writeable:
            refuse_lost_registry(local)
        return SqliteRegistry(
            local,
            universe,
            busy_timeout=timeout,
            read_only=not writeable,
            leave_no_files=leave_no_files and not writeable,
        )
    if store.conditional_writes:
        return ObjectStoreRegistry(
            store.filesystem,
            store.full_path(name),
            universe,
            writeable=writeable,
            max_staleness=float(settings.get("max_staleness", 0.0)),
            write_timeout=float(settings.get("write_timeout", 120.0)),
            secrets=store.secrets,
        )
    return CachedSqliteRegistry(store, name, universe, busy_timeout=timeout, writeable=writeable)


def open_delta_registry(
    settings: Mapping[str, Any],
    store: FsspecDatastore,
    universe: DimensionUniverse,
    *,
    writeable: bool = True,
    rebuilding: bool = False,
) -> DeltaRegistry:
    """The Delta Lake registry of a bucket repository (``rebuilding``: for ``rb reindex``, a
    missing table is created even though the repository holds files)."""
    check_delta_store(store, RegistryError)
    from repo_butler.registry.delta import DeltaRegistry

    return DeltaRegistry(
        store.filesystem,
        store.full_path(registry_name(settings)),
        universe,
        writeable=writeable,
        max_staleness=float(settings.get("max_staleness", 0.0)),
        write_timeout=float(settings.get("write_timeout", 120.0)),
        compact_every=int(settings.get("compact_every", 100)),
        secrets=store.secrets,
        rebuilding=rebuilding,
    )


def refuse_lost_registry(local: str) -> None:
    """Refuse to start an empty registry file in a repository that already holds files.

    A registry file is created when a repository is first opened. When it is missing or empty
    (zero bytes) but the directory holds anything besides ``butler.yaml`` (dataset files,
    reruns), it was lost: creating an empty one would make the repository look empty.

    Raises
    ------
    RegistryError
        Pointing to ``rb reindex``, which rebuilds the registry from the files.
    """
    try:
        if os.path.getsize(local) > 0:
            return
        state = "is empty (0 bytes)"
    except FileNotFoundError:
        state = "is missing"
    directory = os.path.dirname(local) or "."
    base = os.path.basename(local)
    others = sorted(
        name
        for name in os.listdir(directory)
        if not name.startswith((CONFIG_FILENAME, base)) and not name.startswith(".")
    )
    if others:
        raise RegistryError(
            f"the registry {local} {state} but the repository holds files ({', '.join(others[:3])}"
            f"{', ...' if len(others) > 3 else ''}); rebuild it from them with `rb reindex "
            f"{directory}` (nothing was changed)"
        )
