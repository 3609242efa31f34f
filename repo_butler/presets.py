"""Named starting configurations for new repositories, contributed by other packages.

repo_butler itself knows no dataset types: a package that does (``warping`` declares the HSC/LSST
Gen2 layout) registers a *preset* in the entry-point group ``repo_butler.presets``; the entry
point names a function returning a configuration overlay (``dimensions``, ``dataset_types`` …),
merged over the base configuration by :meth:`Butler.create <repo_butler.Butler.create>`.

When no preset is named, the only installed one is used; with none installed a new repository
gets the :data:`MINIMAL` preset (one generic ``name`` dimension, no dataset types), with several
the caller must choose.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from repo_butler.errors import ConfigError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from repo_butler.dimensions import DimensionUniverse

__all__ = [
    "ENTRY_POINT_GROUP",
    "MINIMAL",
    "alias_hint",
    "available_presets",
    "default_preset",
    "installed_aliases",
    "load_preset",
    "preset_aliases",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "repo_butler.presets"
MINIMAL = "minimal"
"""The built-in preset of a bare general butler (always available)."""

_MINIMAL_OVERLAY: dict[str, Any] = {
    "dimensions": {
        "name": {
            "type": "str",
            "pattern": r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
            "doc": "A dataset's name; declare your own dimensions in the configuration.",
        },
    },
    "dataset_types": {},
}


@cache
def _entry_points() -> dict[str, EntryPoint]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_presets() -> list[str]:
    """Names of every preset: the installed ones and :data:`MINIMAL`."""
    return sorted({MINIMAL, *_entry_points()})


def default_preset() -> str:
    """The preset used when none is named: the only installed one, else :data:`MINIMAL`.

    Raises
    ------
    ConfigError
        If several presets are installed (the caller must pick one).
    """
    installed = sorted(_entry_points())
    if not installed:
        return MINIMAL
    if len(installed) == 1:
        return installed[0]
    raise ConfigError(
        f"several repository presets are installed ({', '.join(installed)}); name one "
        "(rb create --preset NAME, or Butler.create(..., preset=NAME))"
    )


def load_preset(name: str | None = None) -> dict[str, Any]:
    """The configuration overlay of preset ``name`` (:func:`default_preset` if ``None``).

    Raises
    ------
    ConfigError
        If no such preset is installed or it does not return a mapping.
    """
    if name is None:
        name = default_preset()
        logger.info("using the repository preset %r (the default)", name)
    if name == MINIMAL:
        return copy.deepcopy(_MINIMAL_OVERLAY)
    ep = _entry_points().get(name)
    if ep is None:
        raise ConfigError(
            f"no repository preset named {name!r}; available: {', '.join(available_presets())}. "
            f"Packages declare presets in the entry-point group {ENTRY_POINT_GROUP!r}."
        )
    try:
        factory: Callable[[], Mapping[str, Any]] = ep.load()
        overlay = factory()
    except Exception as err:
        raise ConfigError(f"repository preset {name!r} ({ep.value}) failed to load: {err}") from err
    if not isinstance(overlay, Mapping):
        raise ConfigError(
            f"repository preset {name!r} ({ep.value}) returned {type(overlay).__name__}, "
            "not a configuration mapping"
        )
    return copy.deepcopy(dict(overlay))


def preset_aliases(overlay: Mapping[str, Any]) -> dict[str, tuple[str, str, str]]:
    """Every alias and implied key a preset overlay declares:
    ``{name: (dimension, type, "aliases" or "implies")}``."""
    out: dict[str, tuple[str, str, str]] = {}
    for dim, spec in (overlay.get("dimensions") or {}).items():
        if not isinstance(spec, Mapping):
            continue
        for field in ("aliases", "implies"):
            for name in spec.get(field) or ():
                out[str(name)] = (str(dim), str(spec.get("type")), field)
    return out


def alias_hint(key: str, universe: DimensionUniverse) -> str | None:
    """A hint for a data ID key unknown to a repository that an installed preset declares as an
    alias of one of its dimensions (the repository's ``butler.yaml`` predates aliases)."""
    for name in sorted(_entry_points()):
        try:
            declared = preset_aliases(load_preset(name))
        except ConfigError:
            continue
        found = declared.get(key)
        if found is not None and found[0] in universe and universe[found[0]].type == found[1]:
            kind = "an alias of" if found[2] == "aliases" else "a key implied by"
            return (
                f"{key!r} is {kind} {found[0]} in the {name!r} preset, but this repository "
                f"declares no such alias (its butler.yaml predates aliases): use {found[0]}, or "
                "run `rb migrate REPO` to add the preset's aliases"
            )
    return None


def installed_aliases() -> dict[str, tuple[str, str, str]]:
    """The aliases and implied keys of every installed preset (:func:`preset_aliases`); where two
    presets declare the same name, the first by preset name wins."""
    out: dict[str, tuple[str, str, str]] = {}
    for name in sorted(_entry_points()):
        try:
            declared = preset_aliases(load_preset(name))
        except ConfigError:
            continue
        for alias, target in declared.items():
            out.setdefault(alias, target)
    return out
