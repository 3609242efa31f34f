"""Reads that continue into parent repositories once a repository's own runs are searched.

A repository whose ``butler.yaml`` names ``parents`` (:mod:`repo_butler.parents`) opens each
one as a read-only Butler (never writing a byte there: no registry rows, locks, temporary files
or cache copies) with that parent's own storage options. :class:`ChainedLookup` then answers
look-ups and queries from the repository's own runs first and from each parent (with *its*
parents) in order, one dataset per data ID. A parent's dataset comes back with an absolute
``path`` under the parent's datastore URL, which :class:`~repo_butler.writes.WorkerIO` reads with
the parent's options, and with ``repository`` naming the parent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from repo_butler.config import DatasetType, RepoConfig
from repo_butler.datastore import Datastore
from repo_butler.dimensions import DataId
from repo_butler.errors import (
    ConfigError,
    DatasetNotFoundError,
    ParentRepositoryError,
    RepositoryNotFoundError,
)
from repo_butler.lookup import DatasetLookup
from repo_butler.parents import ParentSpec, canonical_root, parse_parents
from repo_butler.refs import DatasetRef, data_id_key
from repo_butler.registry import DatasetRecord, Registry

if TYPE_CHECKING:
    from repo_butler.butler import Butler

__all__ = [
    "ChainedLookup",
    "ParentLink",
    "check_parents",
    "open_lookup",
    "open_parents",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParentLink:
    """An opened parent repository.

    Attributes
    ----------
    url : str
        Its root, as named in the child's ``butler.yaml``.
    butler : Butler
        The read-only Butler on it (its own parents opened too).
    lookup : DatasetLookup
        That Butler's look-up (searching its parents as well).
    prefix : str
        Absolute URL of its datastore: the prefix of the ``path`` of its datasets' refs.
    options : Mapping
        The storage options it was opened with (secret; never shown).
    """

    url: str
    butler: Butler
    lookup: DatasetLookup
    prefix: str
    options: Mapping[str, Any]

    def absolute(self, record: DatasetRecord) -> DatasetRecord:
        """``record`` with its path made absolute (readable without this parent's registry)."""
        if "://" in record.path:
            return record
        return record._replace(path=f"{self.prefix}/{record.path}")


def open_parents(
    specs: Sequence[ParentSpec],
    parent_options: Mapping[str, Mapping[str, Any]] | None,
    *,
    child: str,
    ancestors: tuple[str, ...],
    opener: Callable[..., Butler],
) -> tuple[ParentLink, ...]:
    """Open the parents of repository ``child`` read-only, in order.

    Parameters
    ----------
    specs : sequence of ParentSpec
        The child's ``parents``.
    parent_options : Mapping
        Storage options given at run time, by parent URL (any spelling of it).
    child : str
        The child's root URL (for messages).
    ancestors : tuple of str
        Canonical roots of the repositories on the way here (to refuse a cycle).
    opener : callable
        The Butler class (called as ``Butler(url, rerun=..., writeable=False, ...)``).

    Raises
    ------
    ParentRepositoryError
        If a parent is not a repository, cannot be read with the options given, or the chain
        comes back to a repository already in it.
    """
    links: list[ParentLink] = []
    try:
        for spec in specs:
            links.append(_open_parent(spec, parent_options, child, ancestors, opener))
    except BaseException:
        for link in links:  # those already open: their registries and temporary copies
            link.butler.close()
        raise
    return tuple(links)


def _open_parent(
    spec: ParentSpec,
    parent_options: Mapping[str, Mapping[str, Any]] | None,
    child: str,
    ancestors: tuple[str, ...],
    opener: Callable[..., Butler],
) -> ParentLink:
    """One parent of :func:`open_parents`, opened read-only (errors as documented there)."""
    if spec.key in ancestors:
        path = " -> ".join([*ancestors, spec.key])
        raise ParentRepositoryError(
            f"a cycle of parent repositories: {path}; remove {spec.url} from the parents of {child}"
        )
    options = spec.options(parent_options)
    try:
        parent = opener(
            spec.url,
            rerun=spec.rerun,
            storage_options=options,
            writeable=False,
            parent_options=parent_options,
            _ancestors=(*ancestors, spec.key),
        )
    except ParentRepositoryError:
        raise
    except RepositoryNotFoundError as err:
        raise ParentRepositoryError(
            f"parent repository {spec.url} of {child} is not a repository ({err}); fix "
            f"the parents in {child}/butler.yaml or create it"
        ) from None
    except PermissionError as err:
        raise ParentRepositoryError(
            f"cannot read parent repository {spec.url} of {child} with the credentials "
            f"given ({type(err).__name__}: {err}); give read credentials with "
            f"`--parent-option {spec.url}=profile=NAME` (or anon=true for a public bucket)"
        ) from None
    except (ConfigError, DatasetNotFoundError) as err:
        raise ParentRepositoryError(f"parent repository {spec.url} of {child}: {err}") from None
    except OSError as err:
        raise ParentRepositoryError(
            f"cannot open parent repository {spec.url} of {child} "
            f"({type(err).__name__}: {err}); check its URL, endpoint and credentials "
            f"(`--parent-option {spec.url}=KEY=VALUE`)"
        ) from None
    store = parent.datastore
    return ParentLink(spec.url, parent, parent._lookup, canonical_root(store.root), options)


class ChainedLookup(DatasetLookup):
    """A :class:`DatasetLookup` that continues into parent repositories.

    Only look-ups over the default search order go on into the parents; an explicit list of
    runs (``remove``, ``exists(output_run_only=True)``, ``query_datasets(runs=...)``) names runs
    of this repository only.
    """

    def __init__(
        self,
        config: RepoConfig,
        registry: Registry,
        store: Datastore,
        root: str,
        search: tuple[str, ...],
        parents: tuple[ParentLink, ...],
    ) -> None:
        super().__init__(config, registry, store, root, search)
        self.parents = parents

    def _link_of(self, path: str) -> ParentLink | None:
        """The parent through which the absolute ``path`` is reached: its datastore, or one of
        its own parents', holds the file."""
        for link in self.parents:
            if path.startswith(link.prefix + "/"):
                return link
            if isinstance(link.lookup, ChainedLookup) and link.lookup._link_of(path) is not None:
                return link
        return None

    def origin(self, path: str) -> str | None:
        """URL of the parent (or grandparent ...) repository whose datastore holds the absolute
        ``path``, or ``None``."""
        link = self._link_of(path)
        if link is None:
            return None
        nested = link.lookup.origin(path) if isinstance(link.lookup, ChainedLookup) else None
        return nested or link.url

    def ref(self, record: DatasetRecord) -> DatasetRef:
        """The :class:`DatasetRef` of a record of this repository or of a parent."""
        ref = super().ref(record)
        origin = self.origin(record.path) if "://" in record.path else None
        return ref if origin is None else replace(ref, repository=origin)

    def provenance(self, record: DatasetRecord) -> str | None:
        """The provenance of a record, from the registry of the repository holding it (a
        registry finds it by type, data ID and run; the path only says which one)."""
        link = self._link_of(record.path) if "://" in record.path else None
        return super().provenance(record) if link is None else link.lookup.provenance(record)

    def prefixes(self) -> tuple[tuple[str, str, Mapping[str, Any]], ...]:
        """``(url prefix, storage root, options)`` of every parent's datastore, nearest first
        (for :class:`~repo_butler.writes.WorkerIO`)."""
        out: list[tuple[str, str, Mapping[str, Any]]] = []
        for link in self.parents:
            out.append((link.prefix, link.butler.datastore.root, dict(link.options)))
            if isinstance(link.lookup, ChainedLookup):
                out += link.lookup.prefixes()
        return tuple(out)

    def _parent_type(self, link: ParentLink, dt: DatasetType) -> DatasetType | None:
        theirs = link.lookup.config.dataset_types.get(dt.name)
        if theirs is None or tuple(theirs.dimensions) != tuple(dt.dimensions):
            return None
        return theirs

    def _with_parents(
        self,
        own: list[DatasetRecord],
        dt: DatasetType,
        find: Callable[[DatasetLookup], list[DatasetRecord]],
    ) -> list[DatasetRecord]:
        """``own`` followed by each parent's records (``find`` on its look-up, paths made
        absolute) for data IDs not found before, sorted by data ID."""
        found = {data_id_key(rec.data_id): rec for rec in own}
        for link in self.parents:
            if self._parent_type(link, dt) is None:
                continue
            for rec in find(link.lookup):
                found.setdefault(data_id_key(rec.data_id), link.absolute(rec))
        return sorted(found.values(), key=lambda r: r.data_id.sort_key())

    def candidates(self, dt: DatasetType, did: DataId, runs: Sequence[str]) -> list[DatasetRecord]:
        """As :meth:`DatasetLookup.candidates`, then the parents' for data IDs not found here
        (only when ``runs`` is the default search order)."""
        own = super().candidates(dt, did, runs)
        if runs is not self.search or (own and len(did) == len(dt.dimensions)):
            return own
        return self._with_parents(own, dt, lambda lk: lk.candidates(dt, did, lk.search))

    def query_records(
        self,
        dt: DatasetType,
        did: DataId | None,
        where: str | None,
        bind: Mapping[str, Any] | None,
        runs: Sequence[str] | None,
    ) -> list[DatasetRecord]:
        """As :meth:`DatasetLookup.query_records`; with the default search order, the parents'
        records follow for data IDs this repository does not have."""
        own = super().query_records(dt, did, where, bind, runs)
        if runs is not None:
            return own
        return self._with_parents(own, dt, lambda lk: lk.query_records(dt, did, where, bind, None))

    def query_data_ids(
        self,
        dimensions: Sequence[str],
        where: str | None = None,
        *,
        dataset_type: str | None = None,
        data_id: Mapping[str, Any] | None = None,
        bind: Mapping[str, Any] | None = None,
    ) -> list[DataId]:
        """Distinct values over this repository and its parents."""
        own = super().query_data_ids(
            dimensions, where, dataset_type=dataset_type, data_id=data_id, bind=bind
        )
        dt = None if dataset_type is None else self.dataset_type(dataset_type)
        found = {data_id_key(did): did for did in own}
        for link in self.parents:
            if dt is not None and self._parent_type(link, dt) is None:
                continue
            for did in link.lookup.query_data_ids(
                dimensions, where, dataset_type=dataset_type, data_id=data_id, bind=bind
            ):
                found.setdefault(data_id_key(did), did)
        return sorted(found.values(), key=lambda d: d.sort_key())

    def searched(self, runs: Sequence[str]) -> str:
        """As :meth:`DatasetLookup.searched`, then the parents when they were searched."""
        here = super().searched(runs)
        if runs is not self.search:
            return here
        return here + "".join(f"; then {link.url}" for link in self.parents)


def open_lookup(
    config: RepoConfig,
    registry: Registry,
    store: Datastore,
    root: str,
    search: tuple[str, ...],
    parent_options: Mapping[str, Mapping[str, Any]] | None,
    ancestors: tuple[str, ...],
    opener: Callable[..., Butler],
) -> DatasetLookup:
    """The look-up of the repository at ``root``: a :class:`ChainedLookup` over its parents
    (opened read-only here) when ``config`` names any, else a plain one. ``ancestors`` are the
    canonical roots from the repository first opened down to this one (empty for that one)."""
    if not config.parents:
        return DatasetLookup(config, registry, store, root, search)
    here = ancestors or (canonical_root(root),)
    links = open_parents(config.parents, parent_options, child=root, ancestors=here, opener=opener)
    return ChainedLookup(config, registry, store, root, search, links)


def check_parents(
    entries: Sequence[Any],
    root: str,
    parent_options: Mapping[str, Mapping[str, Any]] | None,
    opener: Callable[..., Butler],
) -> None:
    """Open (read-only) and close the parents a new repository at ``root`` would have, so that
    a parent that is not a repository or cannot be read is refused before anything is written.

    Raises
    ------
    ConfigError
        If an entry is invalid (secrets in its options, listed twice).
    ParentRepositoryError
        If a parent cannot be opened.
    """
    specs = parse_parents(entries, source="parents")
    here = (canonical_root(root),)
    for link in open_parents(specs, parent_options, child=root, ancestors=here, opener=opener):
        link.butler.close()
