"""Output repositories chained to the repository they read (LSST Gen2's ``--output``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from repo_butler.butler import Butler
from repo_butler.chain import open_parents
from repo_butler.config import CONFIG_FILENAME, load_repo_config, write_new_config
from repo_butler.errors import ConfigError
from repo_butler.parents import ParentSpec, canonical_root
from repo_butler.storage import open_datastore

__all__ = ["open_output_repository"]

logger = logging.getLogger(__name__)


def open_output_repository(
    output: str,
    parent: str,
    *,
    rerun: str | None = None,
    storage_options: dict[str, Any] | None = None,
    parent_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Butler:
    """The Butler writing to ``output`` and reading from ``parent`` (LSST Gen2's ``--output``).

    A new ``output`` repository is created with ``parent``'s dimensions and dataset types and
    ``parent`` as its only parent (opened first, so nothing is written if it cannot be read); an
    existing one must already have ``parent`` among its parents.

    Raises
    ------
    ConfigError
        If ``output`` is ``parent``, or an existing ``output`` does not name ``parent``.
    ParentRepositoryError
        If ``parent`` cannot be opened.
    """
    if canonical_root(output) == canonical_root(parent):
        raise ConfigError(
            f"--output {output} is the input repository itself; give another location"
        )
    store = open_datastore(output, storage_options)
    if store.exists(CONFIG_FILENAME):  # checked before its parents are opened
        named = [p.key for p in load_repo_config(store).parents]
        if canonical_root(parent) not in named:
            raise ConfigError(
                f"--output {output} is a repository whose parents are "
                f"[{', '.join(named) or 'none'}], not {parent}; choose a new output location"
            )
    else:
        spec = ParentSpec(parent)
        here = (canonical_root(store.root),)
        (link,) = open_parents(
            [spec], parent_options, child=store.root, ancestors=here, opener=Butler
        )
        with link.butler as source:  # opened, so readable, before anything is written
            config = {
                "dimensions": dict(source.config["dimensions"]),
                "dataset_types": dict(source.config["dataset_types"]),
                "parents": [spec.to_config()],
            }
        write_new_config(store, config, preset="minimal")
        logger.info("created output repository %s with parent %s", store.root, parent)
    return Butler(
        output, rerun=rerun, storage_options=storage_options, parent_options=parent_options
    )
