"""The registry interface: dataset records, runs and queries, independent of the database.

A registry stores one row per dataset (type, data ID, run, path, size, checksum, creation time,
provenance link) plus run definitions (a rerun's parents). :class:`Registry` is the seam where a
PostgreSQL implementation can be added next to :class:`~repo_butler.registry.sqlite.SqliteRegistry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, NamedTuple

from repo_butler.dimensions import DataId

__all__ = ["DatasetRecord", "Registry"]


class DatasetRecord(NamedTuple):
    """One registry row."""

    dataset_type: str
    data_id: DataId
    run: str
    path: str
    size: int
    checksum: str
    created: str
    provenance: str | None
    """Path of the provenance sidecar, or ``None`` when the dataset has no provenance."""


class Registry(ABC):
    """Dataset metadata store. All methods are safe to call from several processes at once.

    Backend differences are capabilities: :attr:`speculative_reads` (with
    :meth:`trusting_local_copy` and :meth:`changed_in_bucket`) and :meth:`batch`.
    """

    speculative_reads: ClassVar[bool] = False
    """Whether reads can use a local copy without a freshness check
    (:meth:`trusting_local_copy`) and confirm it afterwards with one request
    (:meth:`changed_in_bucket`), so a data read can overlap the check."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection (and flush any cached copy)."""

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group several writes into one transaction (an object-store registry uploads once at
        the end). All or nothing: if the block raises, none of its writes is kept (a write
        refused inside it, caught by the caller, leaves the others in).

        The default does nothing special: every write is committed on its own.
        """
        yield

    @contextmanager
    def trusting_local_copy(self) -> Iterator[None]:
        """Reads inside the block may use a local copy unchecked (if :attr:`speculative_reads`)."""
        yield

    def changed_in_bucket(self) -> bool:
        """Whether the shared registry differs from the local copy (never, without one)."""
        return False

    def refresh(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Re-read shared state now (registries with a local cache copy)."""

    def clear(self) -> None:
        """Delete every dataset, provenance record and run (used by ``rb reindex``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be cleared in place")

    # -- runs -------------------------------------------------------------------------------
    @abstractmethod
    def runs(self) -> dict[str, tuple[str, ...]]:
        """All runs and their direct parents (the root run ``""`` has none)."""

    @abstractmethod
    def define_run(self, name: str, parents: Sequence[str]) -> None:
        """Record a run and its direct parents (no-op if already recorded identically)."""

    # -- datasets ---------------------------------------------------------------------------
    @abstractmethod
    def insert(
        self,
        record: DatasetRecord,
        *,
        provenance: str | None = None,
        replace: bool = False,
        check: Callable[[], None] | None = None,
    ) -> None:
        """Insert one dataset (and its provenance JSON) in a single transaction.

        ``check`` is called inside the transaction, serialised with every other insert of the
        same dataset, before the row is written; whatever it raises aborts the insert (the
        butler checks there that the file is still the one this row describes).

        Raises
        ------
        DatasetExistsError
            If the same dataset type, data ID and run exist and ``replace`` is false.
        """

    @abstractmethod
    def find(self, dataset_type: str, data_id: DataId, runs: Sequence[str]) -> DatasetRecord | None:
        """The dataset with exactly this data ID in the first of ``runs`` that has it."""

    @abstractmethod
    def query(
        self,
        dataset_type: str,
        runs: Sequence[str],
        *,
        data_id: DataId | None = None,
        where: str | None = None,
        bind: Mapping[str, Any] | None = None,
        dimensions: Sequence[str] = (),
    ) -> list[DatasetRecord]:
        """Datasets of one type in ``runs`` matching ``data_id`` and ``where``.

        Every record is returned (a data ID present in two runs appears twice); callers apply
        run priority. ``dimensions`` restricts identifiers allowed in ``where``.
        """

    @abstractmethod
    def query_data_ids(
        self,
        dimensions: Sequence[str],
        runs: Sequence[str],
        *,
        dataset_types: Sequence[str] | None = None,
        data_id: DataId | None = None,
        where: str | None = None,
        bind: Mapping[str, Any] | None = None,
    ) -> list[DataId]:
        """Distinct combinations of ``dimensions`` among datasets in ``runs``."""

    def find_checksums(
        self, dataset_type: str, run: str, checksums: Sequence[str]
    ) -> list[DatasetRecord]:
        """Datasets of one type in ``run`` whose checksum is one of ``checksums`` (used by ingest
        to report files already registered under another data ID). SQL backends override this
        with one query; the default filters :meth:`query`."""
        wanted = set(checksums)
        return [r for r in self.query(dataset_type, (run,)) if r.checksum in wanted]

    @abstractmethod
    def remove(self, dataset_type: str, data_id: DataId, run: str) -> DatasetRecord | None:
        """Delete one dataset row; return it, or ``None`` if it was not there."""

    @abstractmethod
    def get_provenance(self, dataset_type: str, data_id: DataId, run: str) -> str | None:
        """The provenance JSON text of one dataset, if any."""

    def analyze(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Refresh query-planner statistics (no-op unless the backend needs it)."""

    @abstractmethod
    def all_records(self) -> Iterator[DatasetRecord]:
        """Every dataset row (for ``verify``)."""
