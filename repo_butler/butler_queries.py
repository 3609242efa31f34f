"""The query and provenance reads of :class:`~repo_butler.Butler` (a mixin; butler.py is at its
size limit): :meth:`~ButlerQueries.query_datasets`, :meth:`~ButlerQueries.query_data_ids` and the
provenance look-ups, all answered by the Butler's :class:`~repo_butler.lookup.DatasetLookup`
(which continues into parent repositories, :mod:`repo_butler.chain`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from repo_butler.dimensions import DataId
from repo_butler.lookup import DatasetLookup
from repo_butler.provenance import Provenance, decode_provenance
from repo_butler.refs import DatasetRef

__all__ = ["ButlerQueries"]


class ButlerQueries:
    """Queries and provenance reads of a :class:`~repo_butler.Butler`."""

    _lookup: DatasetLookup

    def query_datasets(
        self,
        dataset_type: str,
        where: str | None = None,
        *,
        data_id: Mapping[str, Any] | None = None,
        bind: Mapping[str, Any] | None = None,
        runs: Sequence[str] | None = None,
    ) -> list[DatasetRef]:
        """Datasets of one type matching ``data_id`` and a ``where`` expression; a data ID
        present in several searched runs is reported once, from the first run.

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
        runs : sequence of str, optional
            Runs to search, in order, instead of :attr:`search_runs` (``""`` is the root).

        Returns
        -------
        list of DatasetRef
            Sorted by data ID.

        Raises
        ------
        QuerySyntaxError
            If ``where`` cannot be parsed (the message points at the column).
        """
        return self._lookup.query_datasets(
            dataset_type, where, data_id=data_id, bind=bind, runs=runs
        )

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
        return self._lookup.query_data_ids(
            dimensions, where, dataset_type=dataset_type, data_id=data_id, bind=bind
        )

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
        record = self._lookup.resolve(dataset_type, data_id, data_id_kwargs)
        text = self._lookup.provenance(record)
        if text is None:
            return None
        return decode_provenance(
            text, source=f"{record.dataset_type} {record.data_id} ({record.run!r})"
        )
