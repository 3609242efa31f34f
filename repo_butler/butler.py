"""The :class:`Butler` façade: get/put/query datasets by dataset type and data ID.

A Butler ties together ``butler.yaml``, a :class:`~repo_butler.datastore.Datastore` (bytes, via
fsspec), a :class:`~repo_butler.registry.Registry` (metadata) and formatters (objects ↔ bytes).

Runs and reruns (LSST Gen2 style): the repository root is the run ``""``; ``rerun="NAME"`` writes
under ``rerun/NAME/`` and reads search ``NAME``, then its parents, then the root.
``rerun="IN:OUT"`` creates ``OUT`` with parent ``IN`` (recorded in the registry and in a marker
``rerun/NAME/_run.json`` for ``reindex``). ``Butler.run_configs`` records task configurations.

Behind the façade: :mod:`~repo_butler.lookup` (data ID resolution), :mod:`~repo_butler.writes`
and :mod:`~repo_butler.run_writer` (plan, write, register), :mod:`~repo_butler.ingest`,
:mod:`~repo_butler.storage` and :mod:`~repo_butler.registry.factory` (the registry: local
SQLite, an SQLite object in the bucket, a cache copy, or PostgreSQL).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, BinaryIO

from repo_butler.butler_queries import ButlerQueries
from repo_butler.chain import ChainedLookup, check_parents, open_lookup
from repo_butler.config import CONFIG_FILENAME, DatasetType, load_repo_config, write_new_config
from repo_butler.datastore import Datastore, FsspecDatastore, TransferMode
from repo_butler.dimensions import DataId, DimensionUniverse
from repo_butler.errors import ConfigError, DatasetNotFoundError
from repo_butler.formatters import get_formatter
from repo_butler.ingest import IngestReport, ingest_files
from repo_butler.provenance import Provenance
from repo_butler.put_many import PutMany
from repo_butler.refs import DatasetRef
from repo_butler.registry import Registry, open_registry
from repo_butler.run_configs import RunConfigs
from repo_butler.run_writer import RunWriter
from repo_butler.runs import display_run, open_output_run
from repo_butler.storage import open_datastore
from repo_butler.writes import PlannedPut, WorkerIO, WrittenDataset, check_checksum

__all__ = ["Butler", "create_repo"]

logger = logging.getLogger(__name__)


class Butler(ButlerQueries, PutMany):
    """Read and write datasets in a repository.

    Parameters
    ----------
    root : str or os.PathLike
        Repository root: a local path or an fsspec URL (``file://``, ``memory://``, ``s3://``).
    rerun : str, optional
        ``"OUT"`` or ``"IN:OUT"``: write to rerun ``OUT`` (under ``rerun/OUT/``) and read from
        ``OUT``, its parents (``IN`` ...) and the root. ``None`` reads and writes the root run.
    storage_options : dict, optional
        fsspec options (credentials, endpoint) for the root; never written to disk.
    writeable : bool
        If false, ``put``/``remove``/``ingest`` raise and a new rerun is not created.
    parent_options : dict, optional
        fsspec options of parent repositories (``butler.yaml`` ``parents``) by their URL,
        merged over the non-secret ones stored there; never written to disk.

    Raises
    ------
    RepositoryNotFoundError
        If ``root`` has no ``butler.yaml``.
    ConfigError
        If the configuration or rerun specification is invalid.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        rerun: str | None = None,
        storage_options: dict[str, Any] | None = None,
        writeable: bool = True,
        parent_options: Mapping[str, Mapping[str, Any]] | None = None,
        _ancestors: tuple[str, ...] = (),
    ) -> None:
        self._storage_options = dict(storage_options or {})
        self._repo = open_datastore(root, self._storage_options)
        self._config = load_repo_config(self._repo)
        storage_root = self._config.storage_root
        self._store: FsspecDatastore = (
            self._repo
            if storage_root in (".", "")
            else open_datastore(storage_root, self._storage_options)
        )
        self._writeable = writeable
        self._registry = open_registry(
            self._config.registry,
            self._repo,
            self._config.universe,
            writeable=writeable,
            leave_no_files=bool(_ancestors),  # a parent: nothing at all is written there
        )
        self._run, self._search, pending = open_output_run(
            rerun, self._registry, self._store, writeable=writeable
        )
        self._lookup = open_lookup(
            self._config,
            self._registry,
            self._store,
            self.root,
            self._search,
            parent_options,
            _ancestors,
            opener=Butler,
        )
        self._child = f"; a parent of {_ancestors[-2]}, never written" if _ancestors else ""
        formatters = {name: dt.formatter for name, dt in self._config.dataset_types.items()}
        io = WorkerIO(
            self._store.root,
            dict(self._storage_options),
            formatters,
            self._run,
            self._lookup.prefixes() if isinstance(self._lookup, ChainedLookup) else (),
            _store=self._store,
        )
        self._writer = RunWriter(self._lookup, self._run, io, pending=pending)
        self.run_configs = RunConfigs(self._store, self._run, self._writer.ensure_run, writeable)

    @classmethod
    def create(
        cls,
        root: str | os.PathLike[str],
        *,
        config: Mapping[str, Any] | None = None,
        storage_options: dict[str, Any] | None = None,
        exist_ok: bool = False,
        preset: str | None = None,
        parent_options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Butler:
        """Create a repository (``butler.yaml`` + empty registry) and return a Butler on it.

        Parameters
        ----------
        root : str or os.PathLike
            Local path or fsspec URL of the new repository.
        config : Mapping, optional
            Entries merged over the preset's configuration (e.g. extra ``dataset_types`` or
            ``dimensions``).
        storage_options : dict, optional
            fsspec options for ``root``.
        exist_ok : bool
            Open an existing repository instead of failing (``config`` is then ignored).
        preset : str, optional
            Repository preset giving the dimensions and dataset types
            (:mod:`repo_butler.presets`); by default the only installed one (warping's), else
            ``"minimal"``.
        parent_options : dict, optional
            As for the constructor; ``config``'s ``parents`` are opened before anything is
            written (:class:`~repo_butler.errors.ParentRepositoryError` if one cannot be read).

        Raises
        ------
        RepositoryExistsError
            If a repository exists at ``root`` and ``exist_ok`` is false.
        ConfigError
            If the merged configuration is invalid (message names the key path) or the preset
            is unknown.
        """
        repo = open_datastore(root, storage_options)
        if config and config.get("parents") and not repo.exists(CONFIG_FILENAME):
            check_parents(config["parents"], repo.root, parent_options, opener=cls)
        write_new_config(repo, config, preset=preset, exist_ok=exist_ok)
        return cls(root, storage_options=storage_options, parent_options=parent_options)

    @property
    def root(self) -> str:
        """Repository root URL."""
        return self._repo.root

    @property
    def run(self) -> str:
        """Output run: ``""`` for the repository root, else the rerun name."""
        return self._run

    @property
    def rerun_spec(self) -> str | None:
        """Argument that reopens this Butler's output run: ``Butler(root, rerun=b.rerun_spec)``.

        ``None`` for the root run; the rerun name otherwise (its parents are remembered), or
        ``IN:OUT`` while a new rerun has not been written to yet.
        """
        return self._writer.rerun_spec

    @property
    def storage_options(self) -> dict[str, Any]:
        """A copy of the fsspec options given at construction (to reopen in a worker); secret."""
        return dict(self._storage_options)

    @property
    def search_runs(self) -> tuple[str, ...]:
        """Runs searched by reads, highest priority first (the root ``""`` last)."""
        return self._search

    @property
    def dataset_types(self) -> Mapping[str, DatasetType]:
        """Dataset type definitions by name (read-only)."""
        return MappingProxyType(self._config.dataset_types)

    @property
    def dimensions(self) -> DimensionUniverse:
        """The repository's dimensions."""
        return self._config.universe

    @property
    def config(self) -> Mapping[str, Any]:
        """The validated configuration as loaded from ``butler.yaml``."""
        return MappingProxyType(self._config.raw)

    @property
    def datastore(self) -> Datastore:
        """Where dataset files are stored."""
        return self._store

    @property
    def registry(self) -> Registry:
        """The dataset registry."""
        return self._registry

    def close(self) -> None:
        """Close the registry (dropping any local copy of it), and the parents'."""
        self._registry.close()
        for parent in self.parents:
            parent.close()

    def __enter__(self) -> Butler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Butler({self.root!r}, rerun={self._run or None!r})"

    def dataset_type(self, name: str) -> DatasetType:
        """Look up a dataset type by name.

        Raises
        ------
        DatasetTypeError
            If unknown; the message lists the known ones.
        """
        return self._lookup.dataset_type(name)

    @property
    def parents(self) -> tuple[Butler, ...]:
        """The read-only Butlers of the parent repositories, in search order."""
        if isinstance(self._lookup, ChainedLookup):
            return tuple(link.butler for link in self._lookup.parents)
        return ()

    def _check_writeable(self) -> None:
        if not self._writeable:
            raise ConfigError(f"{self!r} was opened read-only (writeable=False{self._child})")

    def put(
        self,
        obj: Any,
        dataset_type: str,
        data_id: Mapping[str, Any] | None = None,
        *,
        provenance: Provenance | None = None,
        overwrite: bool = False,
        **data_id_kwargs: Any,
    ) -> DatasetRef:
        """Write ``obj`` as a dataset in the output run.

        Parameters
        ----------
        obj : object
            What to store; the dataset type's formatter serialises it.
        dataset_type : str
            Dataset type name.
        data_id : Mapping or DataId, optional
            Data ID; must provide every dimension of the dataset type (extra known keys are
            ignored). ``data_id_kwargs`` are merged over it.
        provenance : Provenance, optional
            Stored in the registry and as a ``<file>.provenance.json`` sidecar.
        overwrite : bool
            Replace an existing dataset with the same type and data ID in the output run.
        **data_id_kwargs
            Data ID keys given as keywords.

        Returns
        -------
        DatasetRef
            The stored dataset.

        Raises
        ------
        DatasetExistsError
            If it exists in the output run and ``overwrite`` is false.
        DataIdError
            If the data ID is incomplete or invalid.

        Notes
        -----
        The requests a put costs in a bucket: :meth:`repo_butler.run_writer.RunWriter.put`.
        """
        self._check_writeable()
        dt = self.dataset_type(dataset_type)
        did = self._lookup.complete(dt, data_id, data_id_kwargs)
        return self._writer.put(obj, dt, did, provenance=provenance, overwrite=overwrite)

    def plan_put(
        self,
        dataset_type: str,
        data_id: DataId | Mapping[str, Any],
        *,
        overwrite: bool = True,
    ) -> PlannedPut:
        """Where :meth:`put` would write ``dataset_type`` / ``data_id`` in the output run.

        For the plan-write-register pattern of scaled-out jobs: the driver plans, a worker
        writes with :meth:`worker_io`, the driver calls :meth:`register`. By default the write
        replaces an existing dataset of the run once registered; ``overwrite=False`` refuses
        an existing dataset now and makes the worker's write exclusive (an existing file is
        never replaced).

        Raises
        ------
        ConfigError
            If the Butler is read-only.
        DatasetTypeError, DataIdError
            If the dataset type is unknown or the data ID incomplete or invalid.
        DatasetExistsError
            If ``overwrite`` is false and the dataset exists in the output run.
        """
        self._check_writeable()
        dt = self.dataset_type(dataset_type)
        return self._writer.plan(dt, self._lookup.complete(dt, data_id, {}), overwrite=overwrite)

    def worker_io(self) -> WorkerIO:
        """The picklable reader/writer of this repository's files for the output run: workers
        write planned datasets (:meth:`WorkerIO.write`) and read inputs with it, without a
        registry; it holds the storage options (credentials) but never shows them."""
        return self._writer.io

    def register(
        self, written: Iterable[WrittenDataset], *, replace: bool = True
    ) -> list[DatasetRef]:
        """Register datasets written by :meth:`WorkerIO.write` (one registry batch); return
        their refs, in order.

        Parameters
        ----------
        written : iterable of WrittenDataset
            What the workers returned.
        replace : bool
            Replace rows of the same dataset type and data ID in the output run (their file at
            the template path has already been replaced; a provenance sidecar the new write
            does not have is removed).

        Raises
        ------
        RegistryError
            If a dataset was planned for another run than this Butler's output run.
        DatasetExistsError
            If a dataset exists and ``replace`` is false; checked for every dataset before any
            is registered (plan with ``overwrite=False`` to refuse before writing).
        """
        self._check_writeable()
        return self._writer.register(written, replace=replace)

    def get(
        self,
        dataset_type: str | DatasetRef,
        data_id: Mapping[str, Any] | None = None,
        *,
        verify: bool = False,
        **data_id_kwargs: Any,
    ) -> Any:
        """Read a dataset.

        A partial data ID is completed from the registry when exactly one dataset matches
        (``get("calexp", visit=903988, ccd=16)``). A :class:`DatasetRef` (from ``get_ref``,
        ``put`` or ``query_datasets``) may be passed instead of type + data ID. With ``verify``
        the bytes read must have the checksum recorded at registration (SHA-256 of the whole
        file: about 0.6 ms per MB), else :class:`~repo_butler.writes.ChecksumMismatchError`.

        Raises
        ------
        DatasetNotFoundError
            Naming the dataset type, data ID and the runs searched.
        DataIdError
            If a partial data ID matches several datasets (the candidates are listed).
        FormatterError
            If the stored bytes cannot be decoded.
        """
        if isinstance(dataset_type, DatasetRef):
            ref = dataset_type
            fetch = None
        else:
            ref, fetch = self._lookup.resolve_and_fetch(dataset_type, data_id, data_id_kwargs)
        dt = self.dataset_type(ref.dataset_type)
        try:
            data = fetch() if fetch is not None else self._writer.io.read_bytes(ref.path)
        except FileNotFoundError:
            raise DatasetNotFoundError(
                f"{ref.dataset_type} {ref.data_id} is registered in run {display_run(ref.run)} "
                f"but its file {ref.uri} is missing; run `rb verify {self.root}`"
            ) from None
        if verify:
            check_checksum(data, ref)
        return get_formatter(dt.formatter).from_bytes(data, source=ref.uri)

    @contextmanager
    def open_file(
        self,
        dataset_type: str | DatasetRef,
        data_id: Mapping[str, Any] | None = None,
        **data_id_kwargs: Any,
    ) -> Iterator[BinaryIO]:
        """Open a dataset's file for reading without decoding it (e.g. to read FITS headers).

        Yields a binary, seekable file object from fsspec (remote files are read lazily).

        Raises
        ------
        DatasetNotFoundError
            As for :meth:`get`, or if the registered file is missing.
        """
        if isinstance(dataset_type, DatasetRef):
            ref = dataset_type
        else:
            ref = self.get_ref(dataset_type, data_id, **data_id_kwargs)
        try:
            handle = self._writer.io.open(ref)
        except FileNotFoundError:
            raise DatasetNotFoundError(
                f"{ref.dataset_type} {ref.data_id}: file {ref.uri} is missing; run "
                f"`rb verify {self.root}`"
            ) from None
        with handle as fh:
            yield fh

    def get_ref(
        self, dataset_type: str, data_id: Mapping[str, Any] | None = None, **data_id_kwargs: Any
    ) -> DatasetRef:
        """Resolve a (possibly partial) data ID to the stored :class:`DatasetRef`.

        Raises
        ------
        DatasetNotFoundError, DataIdError
            As for :meth:`get`.
        """
        return self._lookup.ref(self._lookup.resolve(dataset_type, data_id, data_id_kwargs))

    def exists(
        self,
        dataset_type: str,
        data_id: Mapping[str, Any] | None = None,
        *,
        output_run_only: bool = False,
        **data_id_kwargs: Any,
    ) -> bool:
        """Whether the registry has at least one matching dataset.

        Parameters
        ----------
        dataset_type : str
            Dataset type name.
        data_id : Mapping, optional
            Full or partial data ID (``data_id_kwargs`` merged over it).
        output_run_only : bool
            Look only in the output run, not in its parents and the root.
        **data_id_kwargs
            Data ID keys given as keywords.
        """
        dt = self.dataset_type(dataset_type)
        did = self._lookup.partial(dt, data_id, data_id_kwargs)
        runs = (self._run,) if output_run_only else self._search
        return bool(self._lookup.candidates(dt, did, runs))

    def uri(
        self, dataset_type: str, data_id: Mapping[str, Any] | None = None, **data_id_kwargs: Any
    ) -> str:
        """URL of the file holding a dataset (resolution as in :meth:`get`)."""
        return self.get_ref(dataset_type, data_id, **data_id_kwargs).uri

    def remove(
        self, dataset_type: str, data_id: Mapping[str, Any] | None = None, **data_id_kwargs: Any
    ) -> DatasetRef:
        """Delete a dataset of the *output* run (registry row, file and provenance sidecar).

        Datasets in parent runs are never touched. Files ingested with ``transfer="direct"``
        are unregistered but not deleted.

        Raises
        ------
        DatasetNotFoundError
            If the output run has no such dataset.
        """
        self._check_writeable()
        record = self._lookup.resolve(dataset_type, data_id, data_id_kwargs, runs=(self._run,))
        return self._writer.remove(record)

    def ingest(
        self,
        dataset_type: str,
        files: Sequence[str | os.PathLike[str]],
        *,
        transfer: TransferMode = "copy",
        data_id: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> IngestReport:
        """Register existing files (local paths or URLs) as datasets of the output run, all or
        none; see :mod:`repo_butler.ingest` and :mod:`repo_butler.ingest_ids`.

        Each data ID comes from the file (formatters implementing ``ReadsDataId``), its path
        (trailing segments following the template), ``data_id`` (keys for every file; sources
        must agree), then the registry and the formatter's rule defaults. ``transfer``: ``copy``
        or ``move`` to the template path, ``symlink`` (local), ``direct`` (registered in place).
        Files already registered with the same content are skipped and reported. ``dry_run``
        derives and checks everything but registers nothing.

        Returns
        -------
        IngestReport
            One DatasetRef per file, in order; ``.files`` says what happened to each.
        """
        if not dry_run:
            self._check_writeable()
            self._writer.ensure_run()
        return ingest_files(
            self._lookup,
            self._run,
            dataset_type,
            files,
            transfer=transfer,
            data_id=data_id,
            storage_options=self._storage_options,
            dry_run=dry_run,
        )


def create_repo(
    root: str | os.PathLike[str],
    *,
    config: Mapping[str, Any] | None = None,
    storage_options: dict[str, Any] | None = None,
    exist_ok: bool = False,
    preset: str | None = None,
) -> Butler:
    """Create a repository; same as :meth:`Butler.create`."""
    return Butler.create(
        root, config=config, storage_options=storage_options, exist_ok=exist_ok, preset=preset
    )
