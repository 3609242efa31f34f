"""Registry of a repository on an fsspec store without conditional writes (``memory://``, GCS …).

The registry is one SQLite file stored beside ``butler.yaml``. This class works on a private
cache copy of it: before every access the stored file's size/ETag/mtime is compared with the one
last seen and the copy is re-downloaded when it changed; after every committed write the copy is
uploaded whole. Without compare-and-swap the last upload wins between concurrent writers, so
S3 repositories use :class:`~repo_butler.registry.s3.ObjectStoreRegistry` instead and shared
repositories with many writers a PostgreSQL registry.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from repo_butler.dimensions import DimensionUniverse
from repo_butler.leftovers import registry_cache_dir
from repo_butler.registry.sqlite import SqliteRegistry

if TYPE_CHECKING:
    from repo_butler.datastore import FsspecDatastore

__all__ = ["CachedSqliteRegistry"]

logger = logging.getLogger(__name__)


class CachedSqliteRegistry(SqliteRegistry):
    """An SQLite registry file in a remote store, used through a local cache copy.

    Parameters
    ----------
    store : FsspecDatastore
        The repository's store (the one holding ``butler.yaml``).
    name : str
        Path of the registry file relative to ``store``'s root.
    universe : DimensionUniverse
        Dimensions of the repository.
    busy_timeout : float
        Seconds to wait for another writer's lock on the cache copy.
    writeable : bool
        Upload the copy after every write (a read-only registry never uploads).
    """

    def __init__(
        self,
        store: FsspecDatastore,
        name: str,
        universe: DimensionUniverse,
        *,
        busy_timeout: float = 60.0,
        writeable: bool = True,
    ) -> None:
        self._store = store
        self._name = name
        self._seen: Any = None
        self._cache = registry_cache_dir()  # named after the pid: stale ones are swept
        cache_path = os.path.join(self._cache.name, name)
        initial = self._fetch_if_changed()
        if initial is not None:
            with open(cache_path, "wb") as fh:
                fh.write(initial)
        else:
            logger.debug("no registry at %s yet; starting an empty one", store.uri(name))
        super().__init__(
            cache_path,
            universe,
            busy_timeout=busy_timeout,
            journal_mode="DELETE",
            after_write=self._upload if writeable else None,
            refresh=self._fetch_if_changed,
        )

    def _token(self) -> Any:
        """What identifies the stored version (``None`` when there is no stored registry)."""
        full = self._store.full_path(self._name)
        fs = self._store.filesystem
        fs.invalidate_cache(full)  # listings cached by the filesystem would be stale
        try:
            info = fs.info(full)
        except FileNotFoundError:
            return None
        return tuple(info.get(k) for k in ("size", "ETag", "etag", "mtime", "created"))

    def _fetch_if_changed(self) -> bytes | None:
        """The stored registry's bytes if it changed since last seen, else ``None``."""
        current = self._token()
        if current is None or current == self._seen:
            return None
        self._seen = current
        return self._store.get_bytes(self._name)

    def _upload(self) -> None:
        with open(self.path, "rb") as fh:
            self._store.put_bytes(self._name, fh.read())
        self._seen = self._token()

    def close(self) -> None:
        """Close the connection and delete the cache copy."""
        super().close()
        self._cache.cleanup()
