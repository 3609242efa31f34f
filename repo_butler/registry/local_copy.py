"""Reads answered from a local SQLite copy of a shared registry (the bucket registries).

:class:`~repo_butler.registry.s3.ObjectStoreRegistry` and
:class:`~repo_butler.registry.delta.DeltaRegistry` keep the registry in a bucket and query a
private SQLite copy; they differ in how the copy is kept current (:meth:`_read` returns it,
fresh enough), not in how it is read.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from repo_butler.dimensions import DataId
from repo_butler.registry.base import DatasetRecord, Registry
from repo_butler.registry.sqlite import SqliteRegistry

__all__ = ["LocalCopyReads"]


class LocalCopyReads(Registry):
    """The read methods of a :class:`Registry` whose queries run on a local SQLite copy."""

    max_staleness: float
    _mutex: threading.RLock

    @abstractmethod
    def _read(self) -> SqliteRegistry:
        """The local copy, brought up to date first unless ``max_staleness`` allows it not."""

    @contextmanager
    def trusting_local_copy(self) -> Iterator[None]:
        """Reads inside the block use the local copy without checking the bucket.

        For speculative reads: the caller checks :meth:`changed_in_bucket` afterwards (while
        its data request is in flight) and redoes the read if the registry had changed.
        """
        with self._mutex:
            saved, self.max_staleness = self.max_staleness, float("inf")
            try:
                yield
            finally:
                self.max_staleness = saved

    def analyze(self) -> None:
        """Refresh the query planner's statistics of the local copy."""
        self._read().analyze()

    def runs(self) -> dict[str, tuple[str, ...]]:
        """All runs and their parents."""
        return self._read().runs()

    def find(self, dataset_type: str, data_id: DataId, runs: Sequence[str]) -> DatasetRecord | None:
        """The dataset in the first of ``runs`` having it."""
        return self._read().find(dataset_type, data_id, runs)

    def find_checksums(
        self, dataset_type: str, run: str, checksums: Sequence[str]
    ) -> list[DatasetRecord]:
        """Datasets of one type in ``run`` with one of ``checksums``."""
        return self._read().find_checksums(dataset_type, run, checksums)

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
        """Datasets of one type matching ``data_id`` and ``where``."""
        return self._read().query(
            dataset_type, runs, data_id=data_id, where=where, bind=bind, dimensions=dimensions
        )

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
        """Distinct data IDs among datasets in ``runs``."""
        return self._read().query_data_ids(
            dimensions, runs, dataset_types=dataset_types, data_id=data_id, where=where, bind=bind
        )

    def get_provenance(self, dataset_type: str, data_id: DataId, run: str) -> str | None:
        """Provenance JSON of one dataset."""
        return self._read().get_provenance(dataset_type, data_id, run)

    def all_records(self) -> Iterator[DatasetRecord]:
        """Every dataset row."""
        return self._read().all_records()
