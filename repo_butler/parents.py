"""Parent repositories: what ``butler.yaml``'s ``parents`` entries and ``--parent-option`` mean.

A repository may name read-only *parent* repositories (any fsspec URL), searched in order after
its own runs. This module holds the values only: :class:`ParentSpec` (one entry, validated),
the per-parent storage options given at run time, and the canonical form of a root URL used to
match options to parents, to detect cycles and as the prefix of a parent's file URLs.
:mod:`repo_butler.chain` opens and searches them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from repo_butler.errors import ConfigError
from repo_butler.redaction import secret_option_keys

__all__ = ["ParentSpec", "canonical_root", "parse_parents"]


def canonical_root(url: str | os.PathLike[str]) -> str:
    """The form of a repository root used to compare roots: ``scheme://path`` without a trailing
    slash; a local path becomes an absolute ``file://`` URL."""
    text = os.fspath(url)
    if "://" not in text:
        text = "file://" + os.path.abspath(os.path.expanduser(text))
    scheme, _, rest = text.partition("://")
    if scheme == "file":
        rest = os.path.abspath(rest) if rest.startswith("/") else rest
    return f"{scheme}://{rest.rstrip('/')}" if rest.rstrip("/") else f"{scheme}://{rest}"


@dataclass(frozen=True)
class ParentSpec:
    """One parent repository of a repository.

    Attributes
    ----------
    url : str
        Root of the parent (a path or fsspec URL), as written in ``butler.yaml``.
    rerun : str or None
        Rerun of the parent searched first (then its parents and root); ``None``: its root run.
    storage_options : Mapping
        Non-secret fsspec options for the parent from ``butler.yaml`` (``anon``, ``profile``,
        ``client_kwargs.endpoint_url`` ...); run-time options are merged over them.
    """

    url: str
    rerun: str | None = None
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Canonical root URL (:func:`canonical_root`)."""
        return canonical_root(self.url)

    def to_config(self) -> dict[str, Any]:
        """The ``butler.yaml`` entry."""
        out: dict[str, Any] = {"url": self.url}
        if self.rerun is not None:
            out["rerun"] = self.rerun
        if self.storage_options:
            out["storage_options"] = dict(self.storage_options)
        return out

    def options(self, given: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
        """The storage options to open this parent with: the configured ones, with those given
        at run time for this parent (keyed by its URL in any spelling) merged over them."""
        merged = dict(self.storage_options)
        for url, opts in (given or {}).items():
            if canonical_root(url) == self.key:
                merged.update(opts)
        return merged


def parse_parents(entries: Iterable[Any], *, source: str) -> tuple[ParentSpec, ...]:
    """Validated :class:`ParentSpec` values of ``butler.yaml``'s ``parents`` (already checked
    against the schema): no duplicates, no secrets in the stored options.

    Raises
    ------
    ConfigError
        Naming the entry and the key at fault.
    """
    specs: list[ParentSpec] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"{source}: parents[{i}]"
        spec = ParentSpec(
            str(entry["url"]), entry.get("rerun"), dict(entry.get("storage_options") or {})
        )
        secrets = secret_option_keys(spec.storage_options)
        if secrets:
            raise ConfigError(
                f"{where}.storage_options: {', '.join(secrets)} look like credentials, which "
                "never go into butler.yaml; give them through the environment (AWS_*), a "
                f"profile, or `--parent-option {spec.url}=KEY=VALUE`"
            )
        if spec.key in seen:
            raise ConfigError(f"{where}: {spec.url} is listed twice")
        seen.add(spec.key)
        specs.append(spec)
    return tuple(specs)
