"""Writes made without a registry: plan in the driver, write in a worker, register in the driver.

:meth:`Butler.put <repo_butler.Butler.put>` is these three steps in one process. A scaled-out job
splits them:

1. the driver calls :meth:`Butler.plan_put <repo_butler.Butler.plan_put>` for each output and gets a
   :class:`PlannedPut` (validated data ID, run and storage path);
2. a worker, which never opens the registry, calls :meth:`WorkerIO.write` (from
   :meth:`Butler.worker_io <repo_butler.Butler.worker_io>`, picklable) and returns the small
   :class:`WrittenDataset` it gets back;
3. the driver registers those with :meth:`Butler.register <repo_butler.Butler.register>` in one
   registry batch.

The registry therefore stays single-writer (SQLite works, and a repository in a bucket uploads its
registry once per batch) while the bytes go straight from the worker to the datastore.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from repo_butler.checksums import algorithm_of, checksum_bytes, checksum_matches
from repo_butler.dimensions import DataId
from repo_butler.errors import DatasetTypeError, FormatterError, RegistryError, StorageError
from repo_butler.local_reads import ReadBuffer
from repo_butler.provenance import (
    SIDECAR_SUFFIX,
    Provenance,
    provenance_document,
    provenance_json,
)
from repo_butler.refs import DatasetRef

if TYPE_CHECKING:
    from repo_butler.datastore import Datastore, StagedFile
    from repo_butler.formatters import Formatter

__all__ = [
    "ChecksumMismatchError",
    "PlannedPut",
    "StagedDataset",
    "WorkerIO",
    "WrittenDataset",
    "check_checksum",
]

logger = logging.getLogger(__name__)


class ChecksumMismatchError(FormatterError):
    """The bytes read from a dataset's file are not those the registry recorded (corrupted)."""


def check_checksum(data: ReadBuffer, ref: DatasetRef) -> None:
    """Raise :class:`ChecksumMismatchError` unless ``data`` has the checksum ``ref`` recorded
    (hashed with the algorithm it names; one unknown to this release is not checked)."""
    if checksum_matches(data, ref.checksum) is False:
        found = checksum_bytes(data, algorithm_of(ref.checksum))
        raise ChecksumMismatchError(
            f"{ref.uri}: checksum mismatch: the file holds {found}, the registry recorded "
            f"{ref.checksum} for {ref.dataset_type} {ref.data_id}; the file was modified "
            "or corrupted after it was registered (run `rb verify`)"
        )


_DATASTORES: collections.OrderedDict[tuple[str, str], Datastore] = collections.OrderedDict()
_DATASTORES_LOCK = threading.Lock()
_DATASTORES_KEPT = 8


def _open_datastore(root: str, options: Mapping[str, Any]) -> Datastore:
    """The datastores :meth:`WorkerIO.datastore` opens: one per process, root and options (a
    worker serves few repositories; beyond eight the least recently used is dropped)."""
    key = (root, json.dumps(dict(options), sort_keys=True, default=str))
    with _DATASTORES_LOCK:
        store = _DATASTORES.get(key)
        if store is not None:
            _DATASTORES.move_to_end(key)
            return store
    from repo_butler.storage import open_datastore

    store = open_datastore(root, dict(options))
    with _DATASTORES_LOCK:
        store = _DATASTORES.setdefault(key, store)
        while len(_DATASTORES) > _DATASTORES_KEPT:
            _DATASTORES.popitem(last=False)
    return store


@dataclass(frozen=True)
class PlannedPut:
    """Where a dataset will be written (from :meth:`Butler.plan_put <repo_butler.Butler.plan_put>`).

    Attributes
    ----------
    dataset_type : str
        Dataset type name.
    data_id : DataId
        Validated data ID with exactly the dataset type's dimensions.
    run : str
        Output run (``""`` for the repository root).
    path : str
        Storage path relative to the datastore root (``rerun/<run>/`` prefix included).
    exclusive : bool
        Planned with ``overwrite=False``: :meth:`WorkerIO.write` leaves an existing file at
        ``path`` untouched and raises ``FileExistsError``.
    """

    dataset_type: str
    data_id: DataId
    run: str
    path: str
    exclusive: bool = False


@dataclass(frozen=True)
class WrittenDataset:
    """A dataset file (and provenance sidecar) written by :meth:`WorkerIO.write`, not registered.

    Attributes
    ----------
    planned : PlannedPut
        What was written where.
    uri : str
        Full URL of the file.
    size : int
        Size of the file in bytes.
    checksum : str
        ``"<algorithm>:<hex>"`` of the written bytes (:mod:`repo_butler.checksums`).
    provenance_path : str or None
        Storage path of the provenance sidecar, ``None`` when written without provenance.
    provenance_json : str or None
        The sidecar's JSON text (also stored in the registry).
    token : str or None
        Identity of the file this write published (see :class:`repo_butler.datastore.Stored`);
        registration checks the file at the path still has it, so the registry never records
        one writer's checksum beside another writer's bytes. ``None``: not checked.
    written_at : float
        ``time.time()`` when the file was published (0: unknown).
    """

    planned: PlannedPut
    uri: str
    size: int
    checksum: str
    provenance_path: str | None
    provenance_json: str | None
    token: str | None = None
    written_at: float = 0.0


@dataclass(frozen=True)
class StagedDataset:
    """A dataset file (and provenance sidecar) written beside its path by
    :meth:`WorkerIO.stage`, not yet visible there: :meth:`WorkerIO.publish` or
    :meth:`WorkerIO.discard` it."""

    planned: PlannedPut
    data: StagedFile
    sidecar: StagedFile | None
    provenance_json: str | None
    exclusive: bool

    @property
    def files(self) -> list[StagedFile]:
        """The temporary files (data, then sidecar)."""
        return [self.data] if self.sidecar is None else [self.data, self.sidecar]


@dataclass(frozen=True)
class WorkerIO:
    """What a worker needs to read and write a repository's dataset files without a registry.

    Picklable (a worker process reopens the datastore once per root through
    :meth:`datastore`); ``repr`` never shows the storage options' values, since Dask logs task
    arguments.

    Parameters
    ----------
    storage_root : str
        URL of the datastore root.
    storage_options : Mapping
        fsspec options (credentials) for the root and for files ingested in place.
    formatters : Mapping
        Formatter name of each dataset type.
    run : str
        Output run (``""`` for the repository root).
    """

    storage_root: str
    storage_options: Mapping[str, Any]
    formatters: Mapping[str, str]
    run: str
    parents: tuple[tuple[str, str, Mapping[str, Any]], ...] = ()
    """Parent repositories' datastores, read-only: ``(url prefix, storage root, options)``; a
    ref's absolute ``path`` under a prefix is read from that datastore with its options."""
    _store: Datastore | None = field(default=None, repr=False, compare=False)
    """The datastore of the process that built this value (dropped when pickled)."""

    def __repr__(self) -> str:
        keys = ", ".join(sorted(self.storage_options))
        return (
            f"WorkerIO({self.storage_root!r}, run={self.run!r}, "
            f"storage_options=<{len(self.storage_options)} keys: {keys}; values hidden>)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        args = (
            self.storage_root,
            dict(self.storage_options),
            dict(self.formatters),
            self.run,
            self.parents,
        )
        return (WorkerIO, args)

    # -- storage ------------------------------------------------------------------------------
    def datastore(self) -> Datastore:
        """The datastore (one per worker process, root and options; reused across tasks)."""
        if self._store is not None:
            return self._store
        return _open_datastore(self.storage_root, self.storage_options)

    def uri(self, path: str) -> str:
        """Full URL of a storage path (absolute URLs pass through)."""
        return self.datastore().uri(path)

    def _formatter(self, dataset_type: str) -> Formatter:
        from repo_butler.formatters import get_formatter

        try:
            name = self.formatters[dataset_type]
        except KeyError:
            raise DatasetTypeError(
                f"{self!r} has no formatter for dataset type {dataset_type!r}; known: "
                f"{', '.join(sorted(self.formatters)) or '(none)'}"
            ) from None
        return get_formatter(name)

    # -- writing ------------------------------------------------------------------------------
    def write(
        self,
        planned: PlannedPut,
        obj: Any,
        provenance: Provenance | None = None,
        *,
        exclusive: bool = False,
        replacing: str | None = None,
    ) -> WrittenDataset:
        """Serialise ``obj`` and write it (and its provenance sidecar) at ``planned.path``.

        The provenance is completed, redacted and validated before anything is written; each
        file is written atomically, and the checksum is computed while the bytes upload (or
        taken from the S3 client, which hashed the body to sign the request).

        Parameters
        ----------
        planned : PlannedPut
            From :meth:`Butler.plan_put <repo_butler.Butler.plan_put>`.
        obj : object
            What to store; the dataset type's formatter serialises it.
        provenance : Provenance, optional
            Written as ``<file>.provenance.json`` (and returned for the registry).
        exclusive : bool
            Leave an existing file untouched and raise ``FileExistsError`` (one conditional
            request on S3); implied by a plan made with ``overwrite=False``.
        replacing : str, optional
            Replace the file at ``planned.path`` only if it is still the one this token (from
            ``Datastore.stray_state``) describes, else raise ``FileExistsError``.

        Raises
        ------
        ConfigError
            If the provenance document is invalid (nothing is written).
        FormatterError
            If ``obj`` cannot be serialised (nothing is written).
        StorageError
            If the storage refuses the write.
        RegistryError
            If ``planned`` is for another run than this WorkerIO's.
        FileExistsError
            If the write is exclusive and a file exists at ``planned.path``.
        """
        self._check_run(planned)
        exclusive = exclusive or planned.exclusive
        formatter = self._formatter(planned.dataset_type)
        prov_doc = self._provenance_document(planned, provenance)
        store = self.datastore()
        if replacing is None:
            # Locally the formatter streams into a temporary file beside the path (hashed on
            # the way), published once its sidecar is staged: no copy of the file in memory.
            staged = self._stage(planned, formatter, obj, prov_doc, exclusive, sync=True)
            if staged is not None:
                return self.publish(staged)
        prov_path = None if prov_doc is None else planned.path + SIDECAR_SUFFIX
        prov_json = None

        def write_sidecar(checksum: str) -> str:
            assert prov_doc is not None and prov_path is not None
            text = provenance_json(prov_doc, checksum)
            store.put_bytes(prov_path, text.encode())
            return text

        # An overwrite writes its sidecar first: every writer's sidecar then lands before its
        # data, so the registration of the data that stays (which makes sure the sidecar is its
        # own, see RunWriter) comes after all of them. A create writes it after the data: if the
        # exclusive write fails, the sidecar beside the file is the other writer's.
        sidecar_first = prov_doc is not None and not exclusive and replacing is None
        data = formatter.to_bytes(obj)
        checksum = checksum_bytes(data, store.checksum_algorithm) if sidecar_first else None
        if checksum is not None:
            prov_json = write_sidecar(checksum)
        if replacing is not None:
            stored = store.put_bytes_replacing(planned.path, data, replacing)
        else:
            wait = store.put_bytes_started(
                planned.path, data, exclusive=exclusive, checksum=checksum
            )
            stored = wait()
        written_at = time.time()
        if prov_doc is not None and not sidecar_first:
            prov_json = write_sidecar(stored.checksum)
        return WrittenDataset(
            planned,
            store.uri(planned.path),
            len(data),
            stored.checksum,
            prov_path,
            prov_json,
            token=stored.token,
            written_at=written_at,
        )

    def _check_run(self, planned: PlannedPut) -> None:
        if planned.run != self.run:
            raise RegistryError(
                f"{planned.dataset_type} {planned.data_id} was planned for run "
                f"{planned.run or '(root)'!r} but this WorkerIO writes run {self.run or '(root)'!r}"
            )

    def _provenance_document(
        self, planned: PlannedPut, provenance: Provenance | None
    ) -> dict[str, Any] | None:
        """The completed, redacted, validated sidecar document (before anything is written)."""
        if provenance is None:
            return None
        return provenance_document(
            provenance,
            dataset_type=planned.dataset_type,
            data_id=planned.data_id,
            run=planned.run,
            storage_options=self.storage_options,
        )

    def stage(
        self,
        planned: PlannedPut,
        obj: Any,
        provenance: Provenance | None = None,
        *,
        exclusive: bool = False,
        sync: bool = True,
    ) -> StagedDataset | None:
        """First half of :meth:`write` on a local store: write the dataset's file (and its
        provenance sidecar) as temporary files beside their paths, not yet visible.

        With ``sync=False`` they are not fsynced: the caller makes a whole batch durable at
        once (:class:`~repo_butler.local_writes.BatchSync`) before :meth:`publish`, so a name
        never points at bytes that a power loss could take back. ``None`` on other stores
        (use :meth:`write`). Parameters and errors as :meth:`write`.
        """
        self._check_run(planned)
        formatter = self._formatter(planned.dataset_type)
        prov_doc = self._provenance_document(planned, provenance)
        exclusive = exclusive or planned.exclusive
        return self._stage(planned, formatter, obj, prov_doc, exclusive, sync=sync)

    def _stage(
        self,
        planned: PlannedPut,
        formatter: Formatter,
        obj: Any,
        prov_doc: dict[str, Any] | None,
        exclusive: bool,
        *,
        sync: bool,
    ) -> StagedDataset | None:
        store = self.datastore()
        path = planned.path
        try:
            data = store.stage(path, lambda fh: formatter.write_to(obj, fh), sync=sync)
        except OSError as err:
            raise StorageError(f"cannot write {store.uri(path)}: {err}") from err
        if data is None:
            return None
        if prov_doc is None:
            return StagedDataset(planned, data, None, None, exclusive)
        text = provenance_json(prov_doc, data.stored.checksum)

        def write_sidecar(fh: BinaryIO) -> None:
            fh.write(text.encode())

        try:
            sidecar = store.stage(path + SIDECAR_SUFFIX, write_sidecar, sync=sync)
        except BaseException as err:
            store.discard(data)
            if isinstance(err, OSError):
                raise StorageError(
                    f"cannot write {store.uri(path + SIDECAR_SUFFIX)}: {err}"
                ) from err
            raise
        assert sidecar is not None
        return StagedDataset(planned, data, sidecar, text, exclusive)

    def publish(self, staged: StagedDataset) -> WrittenDataset:
        """Second half of :meth:`write`: make a dataset from :meth:`stage` visible at its path.

        An overwrite publishes its sidecar first, a create after its file: every writer's
        sidecar then lands before its data, and a create that finds the path taken
        (``FileExistsError``) leaves the other writer's sidecar alone. Files not published
        are removed.
        """
        store = self.datastore()
        planned = staged.planned
        pending = [staged.data] if staged.sidecar is None else [staged.data, staged.sidecar]
        if not staged.exclusive:
            pending.reverse()
        try:
            while pending:
                store.publish(pending[0], exclusive=staged.exclusive and pending[0] is staged.data)
                pending.pop(0)
        except FileExistsError:
            raise FileExistsError(store.uri(planned.path)) from None
        except OSError as err:
            raise StorageError(f"cannot write {store.uri(pending[0].path)}: {err}") from err
        finally:
            for left in pending:  # store.publish removed the one that failed
                store.discard(left)
        return WrittenDataset(
            planned,
            store.uri(planned.path),
            staged.data.size,
            staged.data.stored.checksum,
            None if staged.sidecar is None else staged.sidecar.path,
            staged.provenance_json,
            token=staged.data.stored.token,
            written_at=time.time(),
        )

    def discard(self, staged: StagedDataset) -> None:
        """Remove the temporary files of a dataset from :meth:`stage` that will not be
        published."""
        store = self.datastore()
        store.discard(staged.data)
        if staged.sidecar is not None:
            store.discard(staged.sidecar)

    # -- reading ------------------------------------------------------------------------------
    def read_bytes(self, ref_or_path: DatasetRef | str) -> bytes:
        """Whole content of a dataset file (``FileNotFoundError`` if missing).

        ``ref_or_path`` is a ref or its ``path``: relative to the datastore root, or an absolute
        URL for files ingested with ``transfer="direct"``.
        """
        path = ref_or_path.path if isinstance(ref_or_path, DatasetRef) else ref_or_path
        located = self._locate(path)
        if located is not None:
            return located[0].get_bytes(located[1])
        fs, full = self._direct(path)
        data: bytes = fs.cat_file(full)
        return data

    def _locate(self, path: str) -> tuple[Datastore, str] | None:
        """The datastore holding a ref's ``path`` and the path in it: this repository's for a
        relative path, a parent's for a URL under its prefix; ``None`` for a file ingested in
        place (``transfer="direct"``, read with :meth:`_direct`)."""
        if "://" not in path:
            return self.datastore(), path
        for prefix, root, options in self.parents:
            if path.startswith(prefix + "/"):
                return _open_datastore(root, options), path[len(prefix) + 1 :]
        return None

    def _direct(self, url: str) -> tuple[Any, str]:
        """Filesystem and path of a file ingested in place (``transfer="direct"``)."""
        import fsspec.core

        fs, full = fsspec.core.url_to_fs(url, **dict(self.storage_options))
        return fs, full

    def read(self, ref: DatasetRef, *, verify: bool = False) -> Any:
        """Read and decode a dataset (``FileNotFoundError`` if its file is missing).

        With ``verify``, the checksum of the bytes read is compared with the ref's (the one
        recorded at registration) before decoding: :class:`ChecksumMismatchError` if they differ.
        """
        formatter = self._formatter(ref.dataset_type)
        data: ReadBuffer
        located = self._locate(ref.path)
        if formatter.reads_buffers and located is not None:
            data = located[0].get_buffer(located[1])  # a local file is mapped, not copied
        else:
            data = self.read_bytes(ref)
        if verify:
            check_checksum(data, ref)
        return formatter.from_buffer(data, source=ref.uri)

    def open(self, ref: DatasetRef, *, block_size: int | None = None) -> BinaryIO:
        """Open a dataset's file for binary reading without decoding it (e.g. FITS headers).

        The file object is a context manager (``with io.open(ref) as fh: ...``).

        Parameters
        ----------
        ref : DatasetRef
            The dataset.
        block_size : int, optional
            Read-ahead of remote files (small for header-only reads); fsspec's default if
            ``None``.

        Raises
        ------
        FileNotFoundError
            If the file is missing.
        """
        located = self._locate(ref.path)
        if located is not None:
            return located[0].open(located[1], block_size=block_size)
        fs, full = self._direct(ref.path)  # ingested with transfer="direct"
        kwargs = {} if block_size is None else {"block_size": block_size}
        handle: BinaryIO = fs.open(full, "rb", **kwargs)
        return handle
