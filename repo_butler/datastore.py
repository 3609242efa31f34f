"""Byte storage behind a small ABC, with one implementation over fsspec.

Every path handed to a :class:`Datastore` is *relative* to its root and ``/``-separated. All I/O
goes through an fsspec filesystem resolved once by ``fsspec.core.url_to_fs(root,
**storage_options)``, so local paths, ``file://``, ``memory://`` and (later) ``s3://`` share the
same code. Writes are atomic: locally a temporary file in the destination directory followed by
``os.replace``; elsewhere one complete ``pipe_file`` upload (object stores publish an object only
when its upload completes).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import posixpath
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, ClassVar, Literal, cast

from repo_butler import local_writes
from repo_butler.checksums import DEFAULT_ALGORITHM, checksum_bytes
from repo_butler.errors import StorageError
from repo_butler.local_reads import ReadBuffer, map_file
from repo_butler.local_writes import HashingFile, link_exclusive, local_token
from repo_butler.redaction import redact_text, secret_values

__all__ = [
    "Datastore",
    "FsspecDatastore",
    "IncompleteUpload",
    "Stored",
    "TransferMode",
    "checksum_bytes",
    "join_url",
]

logger = logging.getLogger(__name__)

TransferMode = Literal["copy", "move", "symlink", "direct"]
TEMP_MARKER = ".rb-tmp-"


@dataclass(frozen=True)
class Stored:
    """What a completed write left at its path.

    Attributes
    ----------
    checksum : str
        ``"sha256:<hex>"`` of the bytes written.
    token : str
        Identity of the file this write published (as :meth:`Datastore.stray_state` reports
        it): ``dev:inode:mtime_ns:size`` locally, the ETag the server returned on S3. If the
        path later reports another token, another writer has replaced the file since.
    """

    checksum: str
    token: str


@dataclass(frozen=True)
class StagedFile:
    """A complete file written beside its path, not yet visible there (see
    :meth:`FsspecDatastore.stage`)."""

    path: str
    tmp: str
    stored: Stored
    size: int


def join_url(root: str, path: str) -> str:
    """Join a root URL and a relative ``/`` path."""
    return root.rstrip("/") + "/" + path.lstrip("/")


@dataclass(frozen=True)
class IncompleteUpload:
    """A multipart upload that was started and neither completed nor aborted."""

    path: str
    """Relative path of the object being uploaded."""
    upload_id: str
    age: float
    """Seconds since the upload was initiated."""


class Datastore(ABC):
    """Store and retrieve whole files by relative path under one root.

    Implementations must make :meth:`put_bytes` atomic (a reader sees the old file, no file or
    the complete new file, never a partial one) and raise ``FileNotFoundError`` for missing paths.

    Backend differences are capabilities, not class checks: :attr:`conditional_writes`,
    :attr:`is_local` / :meth:`local_path`, :meth:`abort_incomplete_uploads`.
    """

    checksum_algorithm: ClassVar[str] = DEFAULT_ALGORITHM
    """The algorithm of the checksums this store records for what it writes
    (:mod:`repo_butler.checksums`); files are verified with whatever algorithm was recorded."""

    conditional_writes: ClassVar[bool] = False
    """Whether the store makes single-request conditional writes (``If-None-Match`` /
    ``If-Match``): an exclusive :meth:`put_bytes_started` then costs no extra request, and a
    registry kept in the store can be updated by compare-and-swap."""

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
        self, path: str, data: bytes, *, exclusive: bool = False, checksum: str | None = None
    ) -> Callable[[], Stored]:
        """Start :meth:`put_bytes`; return a function that waits for it and returns the
        :class:`Stored` checksum of ``data`` (as :func:`checksum_bytes`) and file token.

        The default writes at once and hashes when waited for; object stores upload in the
        background and hash meanwhile (or reuse the hash their client computed to sign the
        request). Errors are raised by the returned function.

        With ``exclusive=True`` an existing file is left untouched and the returned function
        raises ``FileExistsError``. Local stores make this atomic with ``os.link``,
        :class:`~repo_butler.s3.S3Datastore` with one ``If-None-Match: *`` request; the
        default (other fsspec stores) checks first, and its token is read back after the write
        (so it cannot tell a concurrent replacement apart).

        ``checksum``, when the caller has already hashed ``data``, is returned as is.
        """
        if exclusive and self.exists(path):
            uri = self.uri(path)

            def refuse() -> Stored:
                raise FileExistsError(uri)

            return refuse
        self.put_bytes(path, data)
        state = self.stray_state(path)
        token = path if state is None else state[0]
        return lambda: Stored(checksum or checksum_bytes(data, self.checksum_algorithm), token)

    def stray_state(self, path: str) -> tuple[str, float] | None:
        """Identity token and age in seconds of the file at ``path`` (``None`` if absent).

        The default knows no age (infinite): the file counts as old at once.
        """
        return (path, float("inf")) if self.exists(path) else None

    def put_bytes_replacing(self, path: str, data: bytes, token: str) -> Stored:
        """Replace ``path`` with ``data`` if it is still the file ``token`` describes (from
        :meth:`stray_state`); ``FileExistsError`` if it changed.

        The default checks, then writes (stores without conditional writes).
        """
        state = self.stray_state(path)
        if state is None or state[0] != token:
            raise FileExistsError(self.uri(path))
        self.put_bytes(path, data)
        state = self.stray_state(path)
        return Stored(
            checksum_bytes(data, self.checksum_algorithm), path if state is None else state[0]
        )

    def get_bytes_started(self, path: str) -> Callable[[], bytes]:
        """Start :meth:`get_bytes` and return a function that waits for the bytes.

        The default reads when the function is called; object stores start the download at
        once so the caller can do other requests meanwhile.
        """
        return lambda: self.get_bytes(path)

    @abstractmethod
    def get_bytes(self, path: str) -> bytes:
        """Return the complete content of ``path`` (``FileNotFoundError`` if absent)."""

    def get_buffer(self, path: str) -> ReadBuffer:
        """The complete content of ``path`` as ``bytes`` or a read-only map of a local file
        (:func:`repo_butler.local_reads.map_file`), for readers that decode it at once.

        The default is :meth:`get_bytes`.
        """
        return self.get_bytes(path)

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

    def local_path(self, path: str) -> str | None:
        """Local OS path of ``path`` when the store is on the local filesystem, else ``None``."""
        return None

    def stage(
        self, path: str, write: Callable[[BinaryIO], None], *, sync: bool = True
    ) -> StagedFile | None:
        """Stream a file into a temporary file beside ``path`` (see
        :meth:`FsspecDatastore.stage`); ``None`` (the default): this store takes bytes."""
        return None

    def publish(self, staged: StagedFile, *, exclusive: bool) -> None:
        """Make a file from :meth:`stage` visible at its path."""
        raise NotImplementedError(f"{type(self).__name__} does not stage files")

    def discard(self, staged: StagedFile) -> None:
        """Remove a file from :meth:`stage` that will not be published."""
        raise NotImplementedError(f"{type(self).__name__} does not stage files")

    def deferring_directory_sync(
        self, pending: set[str]
    ) -> contextlib.AbstractContextManager[None]:
        """:func:`repo_butler.local_writes.deferring_directory_sync` for this store's local
        writes (each file fsynced, its directory added to ``pending``); no-op by default."""
        return contextlib.nullcontext()

    def abort_incomplete_uploads(self, min_age: float = 0.0) -> int:
        """Abort unfinished uploads at least ``min_age`` seconds old (left by crashed writers);
        return how many (none by default)."""
        return 0

    def incomplete_uploads(self) -> list[IncompleteUpload]:
        """Unfinished multipart uploads under the root (none by default)."""
        return []

    def abort_upload(self, upload: IncompleteUpload) -> None:
        """Abort one unfinished upload from :meth:`incomplete_uploads`."""
        raise NotImplementedError(f"{type(self).__name__} has no multipart uploads")

    def temp_files(self) -> list[tuple[str, float]]:
        """Temporary files (``.rb-tmp-*``) under the root and their ages in seconds; a writer
        that was killed mid-write leaves one (none by default)."""
        return []

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
    Open a store with :func:`repo_butler.storage.open_datastore`, which picks the class for the
    URL (:class:`~repo_butler.s3.S3Datastore` for ``s3://``).
    """

    def __init__(self, root: str | os.PathLike[str], storage_options: dict[str, Any] | None = None):
        import fsspec.core
        from fsspec.implementations.local import LocalFileSystem

        text = os.fspath(root)
        self.storage_options = dict(storage_options or {})
        self.secrets: list[str] = secret_values(self.storage_options)
        """Secret values of the options (removed from error messages)."""
        try:
            fs, path = fsspec.core.url_to_fs(text, **self.storage_options)
        except (ValueError, ImportError) as err:
            msg = f"cannot open storage {text!r}: {err}"
            raise StorageError(redact_text(msg, self.secrets)) from None
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
        """Atomically and durably write ``data`` to ``path`` (local: fsync of the file and of
        its directory around ``os.replace``, so a power loss never leaves an empty file)."""
        try:
            if self._local:
                self._put_local(path, data, exclusive=False)
            else:
                self.fs.pipe_file(self.full_path(path), data)
        except OSError as err:
            raise StorageError(f"cannot write {self.uri(path)}: {err}") from err

    def put_bytes_started(
        self, path: str, data: bytes, *, exclusive: bool = False, checksum: str | None = None
    ) -> Callable[[], Stored]:
        """As :meth:`Datastore.put_bytes_started`; locally an exclusive write is atomic
        (``os.link`` of a complete temporary file, which fails if the name exists), and the
        token is that of the temporary file, so it names exactly the file this write
        published."""
        if not self._local:
            return super().put_bytes_started(path, data, exclusive=exclusive, checksum=checksum)
        try:
            token = self._put_local(path, data, exclusive=exclusive)
        except FileExistsError:
            uri = self.uri(path)

            def refuse() -> Stored:
                raise FileExistsError(uri)

            return refuse
        except OSError as err:
            raise StorageError(f"cannot write {self.uri(path)}: {err}") from err
        return lambda: Stored(checksum or checksum_bytes(data, self.checksum_algorithm), token)

    def _put_local(self, path: str, data: bytes, *, exclusive: bool) -> str:
        """Write a complete, fsynced temporary file beside ``path`` and publish it: replacing
        (``os.replace``) or exclusively (``os.link``, ``FileExistsError`` if ``path`` exists;
        the existing file is never touched). Return the published file's token (taken from
        the temporary file, whose inode and mtime the published name keeps)."""

        def write(fh: BinaryIO) -> None:
            fh.write(data)

        staged = self._stage_local(path, write, hash_bytes=False)
        self.publish(staged, exclusive=exclusive)
        return staged.stored.token

    def stage(
        self, path: str, write: Callable[[BinaryIO], None], *, sync: bool = True
    ) -> StagedFile | None:
        """Locally: let ``write`` stream a file's bytes into a temporary file beside ``path``
        (hashed as they pass, fsynced unless ``sync`` is false: the caller then makes it
        durable before publishing, see :class:`~repo_butler.local_writes.BatchSync`) and
        return it, not yet visible at ``path`` (:meth:`publish` or :meth:`discard` it).
        ``None`` for other stores (write bytes).

        A large dataset (a 200 MB warp) is then never held in memory as one ``bytes``.
        Whatever ``write`` raises leaves nothing behind.
        """
        if not self._local:
            return None
        return self._stage_local(path, write, hash_bytes=True, sync=sync)

    def _stage_local(
        self, path: str, write: Callable[[BinaryIO], None], *, hash_bytes: bool, sync: bool = True
    ) -> StagedFile:
        full = self.full_path(path)
        directory = posixpath.dirname(full)
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
                sink = HashingFile(fd, self.checksum_algorithm if hash_bytes else None)
                write(cast(BinaryIO, sink))
                if self.durable and sync:
                    os.fdatasync(fd)
                token = local_token(os.fstat(fd))
            finally:
                os.close(fd)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        checksum = sink.checksum() if hash_bytes else ""
        return StagedFile(path, tmp, Stored(checksum, token), sink.size)

    def publish(self, staged: StagedFile, *, exclusive: bool) -> None:
        """Make a staged file visible at its path: replacing, or exclusively
        (``FileExistsError`` if the path exists; the staged file is then removed)."""
        full = self.full_path(staged.path)
        try:
            if exclusive:
                if link_exclusive(staged.tmp, full):
                    os.unlink(staged.tmp)
            else:
                os.replace(staged.tmp, full)
        except BaseException:
            self.discard(staged)
            raise
        if self.durable:
            local_writes.sync_or_defer(self, posixpath.dirname(full))

    def deferring_directory_sync(
        self, pending: set[str]
    ) -> contextlib.AbstractContextManager[None]:
        """See :meth:`Datastore.deferring_directory_sync` (local stores with :attr:`durable`)."""
        return local_writes.deferring_directory_sync(self, pending)

    def discard(self, staged: StagedFile) -> None:
        """Remove a staged file that will not be published."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged.tmp)

    durable: bool = True
    """Whether local writes fsync the file and its directory (off only to measure the cost)."""

    def stray_state(self, path: str) -> tuple[str, float] | None:
        """Identity token and age in seconds of the file at ``path``; ``None`` if absent.

        Used to replace a file left unregistered by a crashed writer only if it is old enough
        and still the same file (:meth:`put_bytes_replacing`).
        """
        if not self._local:
            return super().stray_state(path)
        try:
            st = os.stat(self.full_path(path))
        except FileNotFoundError:
            return None
        return local_token(st), time.time() - st.st_mtime

    def put_bytes_replacing(self, path: str, data: bytes, token: str) -> Stored:
        """Replace the file at ``path`` with ``data`` only if it is still the one ``token``
        (from :meth:`stray_state`) describes.

        Locally the old file is locked (``flock``) while it is checked and replaced, so of
        several writers that found the same stray file exactly one replaces it.

        Raises
        ------
        FileExistsError
            If the file changed, vanished, or another writer is replacing it.
        """
        if not self._local:
            return super().put_bytes_replacing(path, data, token)
        import fcntl

        full = self.full_path(path)
        try:
            fd = os.open(full, os.O_RDONLY)
        except FileNotFoundError:
            raise FileExistsError(self.uri(path)) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FileExistsError(self.uri(path)) from None
            st = os.fstat(fd)
            now = os.stat(full)
            same = local_token(st) == token
            if not same or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                raise FileExistsError(self.uri(path))
            try:
                new_token = self._put_local(path, data, exclusive=False)
            except OSError as err:
                raise StorageError(f"cannot write {self.uri(path)}: {err}") from err
        finally:
            os.close(fd)  # releases the lock
        return Stored(checksum_bytes(data, self.checksum_algorithm), new_token)

    def get_bytes(self, path: str) -> bytes:
        """Return the content of ``path`` (local files with a plain ``open``: fsspec's path
        handling was a third of a small dataset's ``get``)."""
        if self._local:
            with open(self.full_path(path), "rb") as fh:
                return fh.read()
        data: bytes = self.fs.cat_file(self.full_path(path))
        return data

    def get_buffer(self, path: str) -> ReadBuffer:
        """Local files: a read-only map (no copy of a large file); others: :meth:`get_bytes`."""
        if self._local:
            return map_file(self.full_path(path))
        return self.get_bytes(path)

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

    def temp_files(self) -> list[tuple[str, float]]:
        """Temporary files left under the root by killed writers, with their ages (local)."""
        return local_writes.temp_files(self.path, TEMP_MARKER) if self._local else []

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
