"""The :class:`Butler` façade: get/put/query datasets by dataset type and data ID.

A Butler ties together a configuration (``butler.yaml``), a
:class:`~repo_butler.datastore.Datastore` (bytes, via fsspec), a
:class:`~repo_butler.registry.Registry` (metadata: SQLite, an SQLite object in the bucket, or
PostgreSQL) and formatter plugins
(objects ↔ bytes).

Runs and reruns (LSST Gen2 style): the repository root is the run ``""``; ``rerun="NAME"`` writes
under ``rerun/NAME/`` and reads search ``NAME``, then its parents, then the root.
``rerun="IN:OUT"`` creates ``OUT`` with parent ``IN``. Parents are recorded in the registry and in
a marker file ``rerun/NAME/_run.json`` so ``reindex`` can restore them.

Registries: a local root keeps ``registry.sqlite3`` beside the data (WAL, several writer
processes). An ``s3://`` root keeps it as one object in the bucket
(:class:`~repo_butler.registry.objectstore.ObjectStoreRegistry`: local copy checked with one HEAD
per read, writes uploaded with ``If-Match`` compare-and-swap and replayed on conflict, so writers
on different machines never lose each other's records). ``registry: postgresql://...`` in
``butler.yaml`` selects a shared :class:`~repo_butler.registry.postgres.PostgresRegistry` for any
root. Other remote roots (``memory://``) work on a cache copy refreshed when the stored copy
changes and uploaded after every write (last upload wins between concurrent writers).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, BinaryIO

from repo_butler.config import (
    CONFIG_FILENAME,
    DatasetType,
    RepoConfig,
    default_config,
    merge_config,
)
from repo_butler.datastore import Datastore, FsspecDatastore, TransferMode, checksum_bytes
from repo_butler.dimensions import DataId, DimensionUniverse
from repo_butler.errors import (
    ConfigError,
    DataIdError,
    DatasetExistsError,
    DatasetNotFoundError,
    DatasetTypeError,
    RepositoryExistsError,
    RepositoryNotFoundError,
)
from repo_butler.formatters import get_formatter
from repo_butler.objectstore import S3Datastore, secret_values
from repo_butler.provenance import (
    SIDECAR_SUFFIX,
    Provenance,
    now_iso,
    redact_values,
    software_versions,
)
from repo_butler.refs import DatasetRef, data_id_key
from repo_butler.registry import (
    DatasetRecord,
    ObjectStoreRegistry,
    PostgresRegistry,
    Registry,
    SqliteRegistry,
)
from repo_butler.runs import (
    RUN_MARKER,
    display_run,
    encode_run_marker,
    parse_rerun,
    run_prefix,
    search_order,
)

if TYPE_CHECKING:
    from tempfile import TemporaryDirectory

__all__ = ["PENDING_CHECKSUM", "Butler", "create_repo", "provenance_document", "provenance_json"]

logger = logging.getLogger(__name__)

_TRANSFERS = ("copy", "move", "symlink", "direct")
PENDING_CHECKSUM = "sha256:" + "0" * 64
"""Placeholder checksum: provenance is validated before the bytes are written and hashed."""


class Butler:
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
    ) -> None:
        import yaml

        self._storage_options = dict(storage_options or {})
        self._repo = FsspecDatastore(root, self._storage_options)
        try:
            text = self._repo.get_bytes(CONFIG_FILENAME)
        except FileNotFoundError:
            raise RepositoryNotFoundError(
                f"no repository at {self._repo.root} ({CONFIG_FILENAME} not found); create one "
                "with `rb create` or Butler.create()"
            ) from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(
                f"{self._repo.uri(CONFIG_FILENAME)} is not valid YAML: {err}"
            ) from err
        self._config = RepoConfig.from_mapping(raw, source=self._repo.uri(CONFIG_FILENAME))
        storage_root = self._config.storage_root
        self._store: FsspecDatastore = (
            self._repo
            if storage_root in (".", "")
            else FsspecDatastore(storage_root, self._storage_options)
        )
        self._writeable = writeable
        self._cache: TemporaryDirectory[str] | None = None
        self._registry = self._open_registry()
        self._run, self._inputs = self._parse_rerun(rerun)
        self._search = self._search_order()

    # -- construction helpers ---------------------------------------------------------------
    def _open_registry(self) -> Registry:
        settings = self._config.registry
        if settings.get("type") == "postgresql":
            return PostgresRegistry(
                settings["url"], self._config.universe, schema=settings.get("schema")
            )
        name = settings.get("path", "registry.sqlite3")
        timeout = float(settings.get("busy_timeout", 60.0))
        local = self._repo.local_path(name) if isinstance(self._repo, FsspecDatastore) else None
        if local is not None:
            return SqliteRegistry(local, self._config.universe, busy_timeout=timeout)
        if isinstance(self._repo, S3Datastore):
            return ObjectStoreRegistry(
                self._repo.fs,
                self._repo.full_path(name),
                self._config.universe,
                writeable=self._writeable,
                max_staleness=float(settings.get("max_staleness", 0.0)),
                write_timeout=float(settings.get("write_timeout", 120.0)),
                secrets=self._repo.secrets,
            )
        from tempfile import TemporaryDirectory

        self._cache = TemporaryDirectory(prefix="rb-registry-")
        cache_path = os.path.join(self._cache.name, name)
        repo = self._repo
        seen: dict[str, Any] = {"token": None}

        def token() -> Any:
            full = repo.full_path(name)
            repo.fs.invalidate_cache(full)  # listings cached by s3fs & co. would be stale
            try:
                info = repo.fs.info(full)
            except FileNotFoundError:
                return None
            return tuple(info.get(k) for k in ("size", "ETag", "etag", "mtime", "created"))

        def refresh() -> bytes | None:
            current = token()
            if current is None or current == seen["token"]:
                return None
            seen["token"] = current
            return repo.get_bytes(name)

        def upload() -> None:
            with open(cache_path, "rb") as fh:
                repo.put_bytes(name, fh.read())
            seen["token"] = token()

        initial = refresh()
        if initial is not None:
            with open(cache_path, "wb") as fh:
                fh.write(initial)
        else:
            logger.debug("no registry at %s yet; starting an empty one", repo.uri(name))
        return SqliteRegistry(
            cache_path,
            self._config.universe,
            busy_timeout=timeout,
            journal_mode="DELETE",
            after_write=upload if self._writeable else None,
            refresh=refresh,
        )

    def _parse_rerun(self, rerun: str | None) -> tuple[str, tuple[str, ...]]:
        run, parents, is_new = parse_rerun(rerun, self._registry.runs(), writeable=self._writeable)
        if is_new:
            self._registry.define_run(run, parents)
            self._store.put_bytes(f"{run_prefix(run)}{RUN_MARKER}", encode_run_marker(run, parents))
            logger.info("created rerun %r (parents %s)", run, list(parents))
        return run, parents

    def _search_order(self) -> tuple[str, ...]:
        return search_order(self._run, self._inputs, self._registry.runs())

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        root: str | os.PathLike[str],
        *,
        config: Mapping[str, Any] | None = None,
        storage_options: dict[str, Any] | None = None,
        exist_ok: bool = False,
    ) -> Butler:
        """Create a repository (``butler.yaml`` + empty registry) and return a Butler on it.

        Parameters
        ----------
        root : str or os.PathLike
            Local path or fsspec URL of the new repository.
        config : Mapping, optional
            Entries merged over the default configuration (e.g. extra ``dataset_types`` or
            ``dimensions``).
        storage_options : dict, optional
            fsspec options for ``root``.
        exist_ok : bool
            Open an existing repository instead of failing (``config`` is then ignored).

        Raises
        ------
        RepositoryExistsError
            If a repository exists at ``root`` and ``exist_ok`` is false.
        ConfigError
            If the merged configuration is invalid (message names the key path).
        """
        import yaml

        repo = FsspecDatastore(root, storage_options)
        if repo.exists(CONFIG_FILENAME):
            if not exist_ok:
                raise RepositoryExistsError(
                    f"a repository already exists at {repo.root}; open it with Butler(root) or "
                    "pass exist_ok=True"
                )
            return cls(root, storage_options=storage_options)
        merged = merge_config(default_config(), config or {})
        RepoConfig.from_mapping(merged, source="configuration")
        repo.put_bytes(CONFIG_FILENAME, yaml.safe_dump(merged, sort_keys=False).encode())
        logger.info("created repository at %s", repo.root)
        return cls(root, storage_options=storage_options)

    # -- properties -------------------------------------------------------------------------
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

        ``None`` for the root run; the rerun name otherwise (its parents are remembered).
        """
        return self._run or None

    @property
    def storage_options(self) -> dict[str, Any]:
        """A copy of the fsspec options given at construction (e.g. to reopen in a worker).

        Never written anywhere by repo_butler; treat it as secret.
        """
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
        """Close the registry and drop any local cache."""
        self._registry.close()
        if self._cache is not None:
            self._cache.cleanup()
            self._cache = None

    def __enter__(self) -> Butler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Butler({self.root!r}, rerun={self._run or None!r})"

    # -- data ID handling -------------------------------------------------------------------
    def dataset_type(self, name: str) -> DatasetType:
        """Look up a dataset type by name.

        Raises
        ------
        DatasetTypeError
            If unknown; the message lists the known ones.
        """
        try:
            return self._config.dataset_types[name]
        except KeyError:
            raise DatasetTypeError(
                f"unknown dataset type {name!r}; known: "
                f"{', '.join(sorted(self._config.dataset_types))}. Add it under dataset_types in "
                f"{CONFIG_FILENAME}"
            ) from None

    def _partial(
        self, dt: DatasetType, data_id: Mapping[str, Any] | None, kwargs: Mapping[str, Any]
    ) -> DataId:
        if (
            isinstance(data_id, DataId)
            and not kwargs
            and len(data_id) == len(dt.dimensions)
            and all(k in data_id for k in dt.dimensions)
        ):
            return data_id
        full = self._config.universe.normalize(data_id, order=dt.dimensions, **kwargs)
        return full.subset([k for k in dt.dimensions if k in full])

    def _complete(
        self, dt: DatasetType, data_id: Mapping[str, Any] | None, kwargs: Mapping[str, Any]
    ) -> DataId:
        did = self._partial(dt, data_id, kwargs)
        if len(did) != len(dt.dimensions):
            missing = [k for k in dt.dimensions if k not in did]
            raise DataIdError(
                f"{dt.name} needs data ID keys {list(dt.dimensions)}; {did} lacks {missing}"
            )
        return did

    def _ref(self, record: DatasetRecord) -> DatasetRef:
        return DatasetRef(
            record.dataset_type,
            record.data_id,
            record.run,
            record.path,
            self._store.uri(record.path),
            record.size,
            record.checksum,
            record.created,
        )

    def _candidates(self, dt: DatasetType, did: DataId, runs: Sequence[str]) -> list[DatasetRecord]:
        if len(did) == len(dt.dimensions):
            found = self._registry.find(dt.name, did, runs)
            return [found] if found is not None else []
        return self._prioritise(self._registry.query(dt.name, runs, data_id=did), runs)

    @staticmethod
    def _prioritise(records: list[DatasetRecord], runs: Sequence[str]) -> list[DatasetRecord]:
        rank = {run: i for i, run in enumerate(runs)}
        best: dict[str, DatasetRecord] = {}
        for rec in records:
            key = data_id_key(rec.data_id)
            current = best.get(key)
            if current is None or rank[rec.run] < rank[current.run]:
                best[key] = rec
        return sorted(best.values(), key=lambda r: r.data_id.sort_key())

    def _resolve(
        self,
        dataset_type: str,
        data_id: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
        runs: Sequence[str] | None = None,
    ) -> DatasetRecord:
        dt = self.dataset_type(dataset_type)
        did = self._partial(dt, data_id, kwargs)
        runs = self._search if runs is None else runs
        found = self._candidates(dt, did, runs)
        if not found:
            searched = ", ".join(display_run(r) for r in runs)
            raise DatasetNotFoundError(
                f"no {dataset_type} dataset with data ID {did} in the runs searched "
                f"[{searched}] of {self.root}; check the data ID or list what exists with "
                f"`rb query-datasets {self.root} {dataset_type}`"
            )
        if len(found) > 1:
            shown = "; ".join(str(rec.data_id) for rec in found[:10])
            more = f" and {len(found) - 10} more" if len(found) > 10 else ""
            raise DataIdError(
                f"data ID {did} is ambiguous for {dataset_type}: {len(found)} datasets match "
                f"({shown}{more}); add keys from {list(dt.dimensions)} to pick one"
            )
        return found[0]

    def _resolve_and_fetch(
        self, dataset_type: str, data_id: Mapping[str, Any] | None, kwargs: Mapping[str, Any]
    ) -> tuple[DatasetRef, Callable[[], bytes] | None]:
        """Resolve a data ID and, on an object store, start reading the file at once.

        With an S3 registry the lookup uses the local registry copy and the data GET starts
        before the registry's freshness HEAD, so the two requests overlap; if the registry had
        changed, the lookup is redone and the early read is used only if it still applies.
        """
        registry = self._registry
        if not isinstance(registry, ObjectStoreRegistry):
            return self._ref(self._resolve(dataset_type, data_id, kwargs)), None
        try:
            with registry.trusting_local_copy():
                record = self._resolve(dataset_type, data_id, kwargs)
        except (DatasetNotFoundError, DataIdError):  # maybe just stale: decide on fresh data
            return self._ref(self._resolve(dataset_type, data_id, kwargs)), None
        if "://" in record.path:  # ingested with transfer="direct"
            fetch = None
        else:
            fetch = self._store.get_bytes_started(record.path)
        if registry.changed_in_bucket():
            fresh = self._resolve(dataset_type, data_id, kwargs)
            if fresh != record:
                if fetch is not None:
                    with contextlib.suppress(Exception):
                        fetch()  # drain the superseded read
                return self._ref(fresh), None
        return self._ref(record), fetch

    def _check_writeable(self) -> None:
        if not self._writeable:
            raise ConfigError(f"{self!r} was opened read-only (writeable=False)")

    # -- public API -------------------------------------------------------------------------
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
        In a bucket with the object-store registry a new dataset costs two requests: the data
        PUT with ``If-None-Match: *`` (the existence check uses the local registry copy; a file
        stored meanwhile by another writer makes the PUT fail and the put raise
        ``DatasetExistsError``, a stray file of a crashed writer is replaced) and, once it has
        completed, the registry's ``If-Match`` upload. ``overwrite=True`` adds one HEAD.
        """
        self._check_writeable()
        dt = self.dataset_type(dataset_type)
        did = self._complete(dt, data_id, data_id_kwargs)
        # In a bucket with an object-store registry a new dataset is written without asking
        # the bucket first: the existence check uses the local registry copy and the upload is
        # conditional (If-None-Match: *), so an existing file is never replaced by mistake.
        registry = self._registry
        exclusive = (
            not overwrite
            and isinstance(registry, ObjectStoreRegistry)
            and isinstance(self._store, S3Datastore)
        )
        existing = self._find_in_output_run(dt.name, did, trust_local=exclusive)
        if existing is not None and not overwrite:
            raise self._exists_error(dataset_type, did)
        path = run_prefix(self._run) + dt.path_template.format(did)
        data = get_formatter(dt.formatter).to_bytes(obj)
        prov_path: str | None = None
        prov_doc: dict[str, Any] | None = None
        prov_json: str | None = None
        if provenance is not None:  # validated before anything is written
            prov_path = path + SIDECAR_SUFFIX
            prov_doc = provenance_document(
                provenance,
                dataset_type=dt.name,
                data_id=did,
                run=self._run,
                storage_options=self._storage_options,
            )
        # On object stores the checksum is computed while the upload runs (or taken from the
        # S3 client, which hashed the body to sign the request).
        wait = self._store.put_bytes_started(path, data, exclusive=exclusive)
        try:
            checksum = wait()
        except FileExistsError:
            # Registered by another writer since our registry copy was read, or a stray file
            # left by a writer that crashed before registering it (then it is replaced).
            if registry.find(dt.name, did, (self._run,)) is not None:
                raise self._exists_error(dataset_type, did) from None
            logger.info("replacing %s, an unregistered file", self._store.uri(path))
            checksum = self._store.put_bytes_started(path, data)()
        if prov_path is not None and prov_doc is not None:
            prov_json = provenance_json(prov_doc, checksum)
            self._store.put_bytes(prov_path, prov_json.encode())
        elif existing is not None and existing.provenance:
            self._remove_file(existing.provenance)
        record = DatasetRecord(
            dt.name, did, self._run, path, len(data), checksum, now_iso(), prov_path
        )
        self._registry.insert(record, provenance=prov_json, replace=overwrite)
        return self._ref(record)

    def _find_in_output_run(
        self, dataset_type: str, did: DataId, *, trust_local: bool
    ) -> DatasetRecord | None:
        """The output run's dataset, looked up in the local registry copy if ``trust_local``
        (a hit is confirmed against the bucket, since the dataset may have been removed)."""
        registry = self._registry
        if trust_local and isinstance(registry, ObjectStoreRegistry):
            with registry.trusting_local_copy():
                found = registry.find(dataset_type, did, (self._run,))
            if found is None:
                return None
        return registry.find(dataset_type, did, (self._run,))

    def _exists_error(self, dataset_type: str, did: DataId) -> DatasetExistsError:
        return DatasetExistsError(
            f"{dataset_type} {did} already exists in run {display_run(self._run)} of "
            f"{self.root}; remove it first or pass overwrite=True"
        )

    def get(
        self,
        dataset_type: str | DatasetRef,
        data_id: Mapping[str, Any] | None = None,
        **data_id_kwargs: Any,
    ) -> Any:
        """Read a dataset.

        A partial data ID is completed from the registry when exactly one dataset matches
        (``get("calexp", visit=903988, ccd=16)``). A :class:`DatasetRef` (from ``get_ref``,
        ``put`` or ``query_datasets``) may be passed instead of type + data ID.

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
            ref, fetch = self._resolve_and_fetch(dataset_type, data_id, data_id_kwargs)
        dt = self.dataset_type(ref.dataset_type)
        try:
            data = fetch() if fetch is not None else self._read_bytes(ref.path)
        except FileNotFoundError:
            raise DatasetNotFoundError(
                f"{ref.dataset_type} {ref.data_id} is registered in run {display_run(ref.run)} "
                f"but its file {ref.uri} is missing; run `rb verify {self.root}`"
            ) from None
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
        import fsspec.core

        if "://" in ref.path:
            fs, path = fsspec.core.url_to_fs(ref.path, **self._storage_options)
        else:
            fs, path = self._store.filesystem, self._store.full_path(ref.path)
        try:
            handle = fs.open(path, "rb")
        except FileNotFoundError:
            raise DatasetNotFoundError(
                f"{ref.dataset_type} {ref.data_id}: file {ref.uri} is missing; run "
                f"`rb verify {self.root}`"
            ) from None
        with handle as fh:
            yield fh

    def _read_bytes(self, path: str) -> bytes:
        if "://" in path:  # ingested with transfer="direct"
            import fsspec.core

            fs, p = fsspec.core.url_to_fs(path, **self._storage_options)
            data: bytes = fs.cat_file(p)
            return data
        return self._store.get_bytes(path)

    def get_ref(
        self, dataset_type: str, data_id: Mapping[str, Any] | None = None, **data_id_kwargs: Any
    ) -> DatasetRef:
        """Resolve a (possibly partial) data ID to the stored :class:`DatasetRef`.

        Raises
        ------
        DatasetNotFoundError, DataIdError
            As for :meth:`get`.
        """
        return self._ref(self._resolve(dataset_type, data_id, data_id_kwargs))

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
            Look only in the output run (e.g. "was this already written by this rerun?"),
            not in its parents and the root.
        **data_id_kwargs
            Data ID keys given as keywords.
        """
        dt = self.dataset_type(dataset_type)
        did = self._partial(dt, data_id, data_id_kwargs)
        runs = (self._run,) if output_run_only else self._search
        return bool(self._candidates(dt, did, runs))

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
        record = self._resolve(dataset_type, data_id, data_id_kwargs, runs=(self._run,))
        self._registry.remove(record.dataset_type, record.data_id, record.run)
        if "://" not in record.path:
            self._remove_file(record.path)
        if record.provenance:
            self._remove_file(record.provenance)
        return self._ref(record)

    def _remove_file(self, path: str) -> None:
        try:
            self._store.remove(path)
        except FileNotFoundError:
            logger.warning("file %s was already gone", self._store.uri(path))

    def query_datasets(
        self,
        dataset_type: str,
        where: str | None = None,
        *,
        data_id: Mapping[str, Any] | None = None,
        bind: Mapping[str, Any] | None = None,
    ) -> list[DatasetRef]:
        """Datasets of one type matching ``data_id`` and a ``where`` expression.

        A data ID present in several searched runs is reported once, from the first run.

        Parameters
        ----------
        dataset_type : str
            Dataset type name.
        where : str, optional
            Expression such as ``"visit = 903988 AND ccd IN (16..24)"``; may refer only to the
            dataset type's dimensions.
        data_id : Mapping, optional
            Equality constraints.
        bind : Mapping, optional
            Values for ``:name`` placeholders in ``where``.

        Returns
        -------
        list of DatasetRef
            Sorted by data ID.

        Raises
        ------
        QuerySyntaxError
            If ``where`` cannot be parsed (the message points at the column).
        """
        dt = self.dataset_type(dataset_type)
        did = self._partial(dt, data_id, {}) if data_id else None
        records = self._registry.query(
            dt.name, self._search, data_id=did, where=where, bind=bind, dimensions=dt.dimensions
        )
        return [self._ref(r) for r in self._prioritise(records, self._search)]

    def query_data_ids(
        self,
        dimensions: Sequence[str],
        where: str | None = None,
        *,
        dataset_type: str | None = None,
        data_id: Mapping[str, Any] | None = None,
        bind: Mapping[str, Any] | None = None,
    ) -> list[DataId]:
        """Distinct values of ``dimensions`` among stored datasets (of one type if given).

        Partial data ID expansion: ``query_data_ids(["visit", "ccd"], data_id={"visit": 903988},
        dataset_type="calexp")`` lists every CCD of that visit known to the registry.

        Returns
        -------
        list of DataId
            Sorted, each with exactly ``dimensions``.
        """
        universe = self._config.universe
        dims = list(dimensions)
        for dim in dims:
            universe[dim]  # raises DataIdError for unknown names
        if dataset_type is not None:
            dt = self.dataset_type(dataset_type)
            extra = [d for d in dims if d not in dt.dimensions]
            if extra:
                raise DataIdError(f"{dataset_type} has no dimensions {extra}")
            types: list[str] | None = [dt.name]
        else:
            types = [
                t.name
                for t in self._config.dataset_types.values()
                if set(dims) <= set(t.dimensions)
            ]
        did = universe.normalize(data_id) if data_id else None
        return self._registry.query_data_ids(
            universe.order(dims),
            self._search,
            dataset_types=types,
            data_id=did,
            where=where,
            bind=bind,
        )

    def ingest(
        self,
        dataset_type: str,
        files: Sequence[str | os.PathLike[str]],
        *,
        transfer: TransferMode = "copy",
        data_id: Mapping[str, Any] | None = None,
    ) -> list[DatasetRef]:
        """Register existing files as datasets of the output run.

        Parameters
        ----------
        dataset_type : str
            Dataset type name.
        files : sequence of str or os.PathLike
            Local paths or URLs.
        transfer : {"copy", "move", "symlink", "direct"}
            ``copy``/``move`` place the file at its template path; ``symlink`` links it there
            (local only); ``direct`` registers the file where it is (absolute URL).
        data_id : Mapping, optional
            Data ID keys; missing ones are parsed from each file's path when its trailing
            segments follow the dataset type's template.

        Returns
        -------
        list of DatasetRef
            One per file, in order.
        """
        import fsspec.core

        self._check_writeable()
        if transfer not in _TRANSFERS:
            raise ConfigError(f"transfer must be one of {_TRANSFERS}, got {transfer!r}")
        dt = self.dataset_type(dataset_type)
        given = self._partial(dt, data_id, {}) if data_id else None
        with self._registry.batch():  # one registry upload for the lot on object stores
            refs = []
            for item in files:
                source = os.fspath(item)
                fs, src_path = fsspec.core.url_to_fs(source, **self._storage_options)
                parsed = dt.path_template.parse_suffix(src_path)
                merged: dict[str, Any] = dict(parsed or {})
                for key, value in (given or {}).items():
                    if key in merged and merged[key] != value:
                        raise DataIdError(
                            f"{source}: its path says {key}={merged[key]!r} but the data ID given "
                            f"says {key}={value!r}"
                        )
                    merged[key] = value
                if len(merged) < len(dt.dimensions):
                    raise DataIdError(
                        f"cannot derive a full {dataset_type} data ID for {source!r}: its path "
                        f"does not end like the template {dt.template!r} and the data ID given "
                        f"({given or {}}) lacks {[k for k in dt.dimensions if k not in merged]}"
                    )
                did = self._complete(dt, merged, {})
                if self._registry.find(dt.name, did, (self._run,)) is not None:
                    raise DatasetExistsError(
                        f"{dataset_type} {did} already exists in run {display_run(self._run)}; "
                        "remove it before ingesting"
                    )
                data = fs.cat_file(src_path)
                path = run_prefix(self._run) + dt.path_template.format(did)
                if transfer == "direct":
                    path = fs.unstrip_protocol(src_path)
                elif self._store.uri(path) != fs.unstrip_protocol(src_path):
                    self._store.transfer_in(
                        source, path, mode=transfer, storage_options=self._storage_options
                    )
                record = DatasetRecord(
                    dt.name, did, self._run, path, len(data), checksum_bytes(data), now_iso(), None
                )
                self._registry.insert(record)
                refs.append(self._ref(record))
        return refs

    def get_provenance(
        self, dataset_type: str, data_id: Mapping[str, Any] | None = None, **data_id_kwargs: Any
    ) -> Provenance | None:
        """The provenance recorded with a dataset, or ``None`` if it was stored without one."""
        doc = self.get_provenance_dict(dataset_type, data_id, **data_id_kwargs)
        return None if doc is None else Provenance.from_dict(doc)

    def get_provenance_dict(
        self, dataset_type: str, data_id: Mapping[str, Any] | None = None, **data_id_kwargs: Any
    ) -> dict[str, Any] | None:
        """The stored provenance document (including its ``output`` section), or ``None``."""
        record = self._resolve(dataset_type, data_id, data_id_kwargs)
        text = self._registry.get_provenance(record.dataset_type, record.data_id, record.run)
        if text is None:
            return None
        doc: dict[str, Any] = json.loads(text)
        return doc


def provenance_document(
    provenance: Provenance,
    *,
    dataset_type: str,
    data_id: Mapping[str, Any],
    run: str,
    checksum: str = PENDING_CHECKSUM,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The provenance document stored with a dataset (as :meth:`Butler.put` writes it).

    Empty ``start``/``end``/``host``/``software`` are completed, the ``output`` section names the
    dataset, the values of secrets in ``storage_options`` are removed wherever they appear, and
    the result is validated against ``provenance.schema.json`` (so a bad document is refused
    before anything is written). Finish it with :func:`provenance_json` once the checksum of
    the written bytes is known.

    Raises
    ------
    ConfigError
        If the document does not match the schema.
    """
    import platform

    from repo_butler.schemas import validate

    doc = provenance.to_dict()
    # Complete what the caller left empty so every record says when, where and with what.
    stamp = now_iso()
    doc["start"] = doc["start"] or stamp
    doc["end"] = doc["end"] or stamp
    doc["host"] = doc["host"] or platform.node()
    doc["software"] = doc["software"] or software_versions()
    doc["output"] = {
        "dataset_type": dataset_type,
        "data_id": dict(data_id),
        "run": run,
        "checksum": checksum,
    }
    # Key-based scrubbing happened in Provenance; also remove the values we know are
    # secret (the storage options' credentials) wherever the caller put them.
    doc = redact_values(doc, secret_values(dict(storage_options or {})))
    source = f"provenance of {dataset_type} {data_id}"
    validate(doc, "provenance.schema.json", source=source, error=ConfigError)
    return doc


def provenance_json(doc: dict[str, Any], checksum: str) -> str:
    """The sidecar/registry JSON of a :func:`provenance_document` with the final checksum."""
    doc["output"]["checksum"] = checksum
    return json.dumps(doc, sort_keys=True, indent=1)


def create_repo(
    root: str | os.PathLike[str],
    *,
    config: Mapping[str, Any] | None = None,
    storage_options: dict[str, Any] | None = None,
    exist_ok: bool = False,
) -> Butler:
    """Create a repository; same as :meth:`Butler.create`."""
    return Butler.create(root, config=config, storage_options=storage_options, exist_ok=exist_ok)
