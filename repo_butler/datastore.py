"""Byte storage behind a small ABC, with one implementation over fsspec.

Every path handed to a :class:`Datastore` is *relative* to its root and ``/``-separated. All I/O
goes through an fsspec filesystem resolved once by ``fsspec.core.url_to_fs(root,
**storage_options)``, so local paths, ``file://``, ``memory://`` and (later) ``s3://`` share the
same code. Writes are atomic: locally a temporary file in the destination directory followed by
``os.replace``; elsewhere one complete ``pipe_file`` upload (object stores publish an object only
when its upload completes).
"""

from __future__ import annotations

import errno
import logging
import os
import posixpath
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, Literal

from repo_butler.errors import StorageError

__all__ = ["Datastore", "FsspecDatastore", "TransferMode", "checksum_bytes", "join_url"]

logger = logging.getLogger(__name__)

TransferMode = Literal["copy", "move", "symlink", "direct"]
TEMP_MARKER = ".rb-tmp-"


def checksum_bytes(data: bytes) -> str:
    """Return the checksum recorded for stored bytes: ``"sha256:<hex>"``."""
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def join_url(root: str, path: str) -> str:
    """Join a root URL and a relative ``/`` path."""
    return root.rstrip("/") + "/" + path.lstrip("/")


class Datastore(ABC):
    """Store and retrieve whole files by relative path under one root.

    Implementations must make :meth:`put_bytes` atomic (a reader sees the old file, no file or
    the complete new file, never a partial one) and raise ``FileNotFoundError`` for missing paths.
    """

    @property
    @abstractmethod
    def root(self) -> str:
        """The root as a URL (``file:///abs/path``, ``memory://repo``, ``s3://bucket/key``)."""

    @property
    @abstractmethod
    def is_local(self) -> bool:
        """Whether paths live on the local filesystem (symlink transfers are possible)."""

    @abstractmethod
    def put_bytes(self, path: str, data: bytes) -> None:
        """Atomically write ``data`` to ``path``, creating parent directories."""

    def put_bytes_started(
        self, path: str, data: bytes, *, exclusive: bool = False
    ) -> Callable[[], str]:
        """Start :meth:`put_bytes`; return a function that waits for it and returns the
        checksum of ``data`` (as :func:`checksum_bytes`).

        The default writes at once and hashes when waited for; object stores upload in the
        background and hash meanwhile (or reuse the hash their client computed to sign the
        request). Errors are raised by the returned function.

        With ``exclusive=True`` an existing file is left untouched and the returned function
        raises ``FileExistsError``. Only :class:`~repo_butler.objectstore.S3Datastore` makes
        this a single atomic request (``If-None-Match: *``); the default checks first.
        """
        if exclusive and self.exists(path):
            uri = self.uri(path)

            def refuse() -> str:
                raise FileExistsError(uri)

            return refuse
        self.put_bytes(path, data)
        return lambda: checksum_bytes(data)

    def get_bytes_started(self, path: str) -> Callable[[], bytes]:
        """Start :meth:`get_bytes` and return a function that waits for the bytes.

        The default reads when the function is called; object stores start the download at
        once so the caller can do other requests meanwhile.
        """
        return lambda: self.get_bytes(path)

    @abstractmethod
    def get_bytes(self, path: str) -> bytes:
        """Return the complete content of ``path`` (``FileNotFoundError`` if absent)."""

    @abstractmethod
    def open(self, path: str, *, block_size: int | None = None) -> BinaryIO:
        """Open ``path`` for binary reading (``FileNotFoundError`` if absent).

        ``block_size`` is the read-ahead of remote files (small for header-only reads).
        """

    @abstractmethod
    def exists(self, path: str) -> bool:
        """Whether a file exists at ``path``."""

    @abstractmethod
    def remove(self, path: str) -> None:
        """Delete ``path`` (``FileNotFoundError`` if absent)."""

    @abstractmethod
    def walk(self, prefix: str = "") -> Iterator[str]:
        """Yield the relative paths of all files under ``prefix`` (temporary files excluded)."""

    @abstractmethod
    def transfer_in(
        self, source: str, path: str, *, mode: TransferMode, storage_options: dict[str, Any]
    ) -> None:
        """Bring an external file (path or URL) to ``path`` (``copy``, ``move``, ``symlink``)."""

    def uri(self, path: str) -> str:
        """Full URL of ``path`` (absolute URLs pass through unchanged)."""
        if "://" in path:
            return path
        return join_url(self.root, path)


class FsspecDatastore(Datastore):
    """A :class:`Datastore` over any fsspec filesystem.

    Parameters
    ----------
    root : str or os.PathLike
        Local path or fsspec URL.
    storage_options : dict, optional
        Passed to ``fsspec.core.url_to_fs`` (credentials, endpoint URL, ...).

    Notes
    -----
    ``FsspecDatastore("s3://...")`` returns a
    :class:`~repo_butler.objectstore.S3Datastore` (bounded round trips, fail-fast timeouts,
    errors without secrets), so callers need not know the backend.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> FsspecDatastore:
        root = args[0] if args else kwargs.get("root", "")
        if cls is FsspecDatastore and os.fspath(root).startswith(("s3://", "s3a://")):
            from repo_butler.objectstore import S3Datastore

            return super().__new__(S3Datastore)
        return super().__new__(cls)

    def __init__(self, root: str | os.PathLike[str], storage_options: dict[str, Any] | None = None):
        import fsspec.core
        from fsspec.implementations.local import LocalFileSystem

        text = os.fspath(root)
        self.storage_options = dict(storage_options or {})
        try:
            fs, path = fsspec.core.url_to_fs(text, **self.storage_options)
        except (ValueError, ImportError) as err:
            raise StorageError(f"cannot open storage {text!r}: {err}") from err
        self.fs: Any = fs
        self._local = isinstance(fs, LocalFileSystem)
        if self._local:
            path = os.path.abspath(path)
        self.path: str = path.rstrip("/") or "/"
        self._root = fs.unstrip_protocol(self.path)
        self._made_dirs: set[str] = set()

    @property
    def root(self) -> str:
        """The root as a URL."""
        return self._root

    @property
    def is_local(self) -> bool:
        """Whether this store is on the local filesystem."""
        return self._local

    @property
    def filesystem(self) -> Any:
        """The fsspec filesystem (paths are :meth:`full_path` of relative paths)."""
        return self.fs

    def full_path(self, path: str) -> str:
        """Filesystem path (protocol stripped) of a relative ``path``."""
        return self.path + "/" + path

    def local_path(self, path: str) -> str | None:
        """Local OS path of ``path`` for local stores, else ``None``."""
        return self.full_path(path) if self._local else None

    def _makedirs(self, directory: str) -> None:
        if directory not in self._made_dirs:
            self.fs.makedirs(directory, exist_ok=True)
            self._made_dirs.add(directory)

    def put_bytes(self, path: str, data: bytes) -> None:
        """Atomically write ``data`` to ``path``."""
        full = self.full_path(path)
        directory = posixpath.dirname(full)
        try:
            if self._local:
                self._makedirs(directory)
                tmp = f"{directory}/{TEMP_MARKER}{os.urandom(8).hex()}"
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
                try:
                    try:
                        fd = os.open(tmp, flags, 0o666)
                    except FileNotFoundError:  # directory removed behind our back: recreate
                        self._made_dirs.discard(directory)
                        self._makedirs(directory)
                        fd = os.open(tmp, flags, 0o666)
                    try:
                        view = memoryview(data)
                        while view:
                            view = view[os.write(fd, view) :]
                    finally:
                        os.close(fd)
                    os.replace(tmp, full)
                except BaseException:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
                    raise
            else:
                self.fs.pipe_file(full, data)
        except OSError as err:
            raise StorageError(f"cannot write {self.uri(path)}: {err}") from err

    def get_bytes(self, path: str) -> bytes:
        """Return the content of ``path``."""
        data: bytes = self.fs.cat_file(self.full_path(path))
        return data

    def open(self, path: str, *, block_size: int | None = None) -> BinaryIO:
        """Open ``path`` for binary reading (a lazily read file object for remote stores)."""
        kwargs = {} if block_size is None else {"block_size": block_size}
        handle: BinaryIO = self.fs.open(self.full_path(path), "rb", **kwargs)
        return handle

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""
        return bool(self.fs.exists(self.full_path(path)))

    def size(self, path: str) -> int:
        """Size of ``path`` in bytes."""
        return int(self.fs.size(self.full_path(path)))

    def remove(self, path: str) -> None:
        """Delete ``path``."""
        full = self.full_path(path)
        if not self.fs.exists(full):
            raise FileNotFoundError(self.uri(path))
        self.fs.rm_file(full)

    def walk(self, prefix: str = "") -> Iterator[str]:
        """Yield relative paths of all files under ``prefix``."""
        base = self.full_path(prefix).rstrip("/") if prefix else self.path
        if not self.fs.exists(base):
            return
        start = len(self.path.rstrip("/")) + 1
        for found in sorted(self.fs.find(base, withdirs=False, detail=False)):
            rel = self.fs._strip_protocol(found)[start:]
            if TEMP_MARKER not in posixpath.basename(rel):
                yield rel

    def transfer_in(
        self, source: str, path: str, *, mode: TransferMode, storage_options: dict[str, Any]
    ) -> None:
        """Bring ``source`` to ``path`` (``copy``, ``move`` or ``symlink``)."""
        import fsspec.core
        from fsspec.implementations.local import LocalFileSystem

        src_fs, src_path = fsspec.core.url_to_fs(source, **storage_options)
        src_local = isinstance(src_fs, LocalFileSystem)
        full = self.full_path(path)
        if mode == "symlink":
            if not (src_local and self._local):
                raise StorageError(
                    f"cannot symlink {source!r} into {self.root}: symlinks need both sides on "
                    "the local filesystem; use --transfer copy or direct"
                )
            self._makedirs(posixpath.dirname(full))
            if os.path.lexists(full):
                os.unlink(full)
            os.symlink(os.path.abspath(src_path), full)
            return
        if mode == "move" and src_local and self._local:
            self._makedirs(posixpath.dirname(full))
            try:
                os.replace(src_path, full)
                return
            except OSError as err:
                if err.errno != errno.EXDEV:  # other errors are real; EXDEV: copy + delete
                    raise StorageError(
                        f"cannot move {source!r} to {self.uri(path)}: {err}"
                    ) from err
        self.put_bytes(path, src_fs.cat_file(src_path))
        if mode == "move":
            src_fs.rm_file(src_path)
