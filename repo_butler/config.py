"""Repository configuration (``butler.yaml``): defaults, merging, validation, typed view.

The file is data, never code. It is validated against ``schemas/butler-config.schema.json``
(JSON Schema errors name the key path and the reason), then turned into typed objects:
a :class:`~repo_butler.dimensions.DimensionUniverse` and :class:`DatasetType` definitions whose
templates are checked against their dimensions.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from repo_butler.dimensions import DimensionUniverse
from repo_butler.errors import (
    ConfigError,
    Remedy,
    RepositoryExistsError,
    RepositoryNotFoundError,
)
from repo_butler.formats import check_version
from repo_butler.parents import ParentSpec, parse_parents
from repo_butler.templates import PathTemplate

if TYPE_CHECKING:
    from repo_butler.datastore import Datastore

__all__ = [
    "CONFIG_FILENAME",
    "CONFIG_VERSION",
    "DEFAULT_REGISTRY_FILE",
    "DatasetType",
    "RepoConfig",
    "default_config",
    "load_repo_config",
    "merge_config",
    "registry_name",
    "validate_config",
    "write_new_config",
]

logger = logging.getLogger(__name__)

CONFIG_FILENAME = "butler.yaml"
#: Version 2 added dimension ``aliases``, ``implies`` and ``determined_by``; version 3 added
#: ``parents``. Older files read unchanged.
CONFIG_VERSION = 3
#: File name of a repository's SQLite registry, beside ``butler.yaml``.
DEFAULT_REGISTRY_FILE = "registry.sqlite3"
#: Directory of a Delta Lake registry (``registry: {type: delta}``) beside ``butler.yaml``.
DELTA_REGISTRY_DIR = "registry.delta"


def check_delta_store(store: Datastore, error: type[Exception]) -> None:
    """Refuse a Delta Lake registry (``registry: {type: delta}``) for ``store``: raise ``error``
    unless it is an S3 bucket (conditional writes), and ``MissingExtraError`` unless
    ``deltalake`` is installed."""
    if not store.conditional_writes:
        raise error(
            f"registry type 'delta' needs a repository in an S3 bucket, not {store.root}; use "
            "'sqlite' (the default) there"
        )
    from repo_butler.extras import require

    require("deltalake", "delta", "the Delta Lake registry (registry: {type: delta})")


def registry_name(settings: Mapping[str, Any]) -> str:
    """Name of the registry file (or Delta table directory) in the repository, for the
    ``registry`` section of ``butler.yaml``."""
    default = DELTA_REGISTRY_DIR if settings.get("type") == "delta" else DEFAULT_REGISTRY_FILE
    return str(settings.get("path", default))


_BASE_CONFIG: dict[str, Any] = {
    "version": CONFIG_VERSION,
    "storage": {"root": "."},
    "registry": {"type": "sqlite", "path": DEFAULT_REGISTRY_FILE, "busy_timeout": 60.0},
}


def default_config(preset: str | None = None) -> dict[str, Any]:
    """The configuration a new repository gets: storage and registry defaults plus a preset.

    Parameters
    ----------
    preset : str, optional
        Name of a repository preset (:mod:`repo_butler.presets`) giving the dimensions and
        dataset types; the default preset if ``None`` (the only installed one, e.g. warping's
        HSC/LSST Gen2 layout, else the minimal one).
    """
    from repo_butler.presets import load_preset

    return merge_config(_BASE_CONFIG, load_preset(preset))


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` over ``base`` (mappings merge recursively, other values replace)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def validate_config(config: Mapping[str, Any], *, source: str = CONFIG_FILENAME) -> None:
    """Validate a configuration mapping against ``butler-config.schema.json``.

    Raises
    ------
    ConfigError
        Naming ``source``, the key path of the offending value and the reason.
    """
    from repo_butler.schemas import validate

    validate(config, "butler-config.schema.json", source=source, error=ConfigError)


@dataclass(frozen=True)
class DatasetType:
    """A named kind of dataset: its dimensions, formatter name and path template.

    Parameters
    ----------
    name : str
        Dataset type name (``calexp``).
    dimensions : tuple of str
        Data ID keys identifying one dataset of this type.
    formatter : str
        Formatter plugin name (entry point in group ``repo_butler.formatters``).
    template : str
        Path template relative to a run's root.
    path_template : PathTemplate
        The compiled template.
    doc : str
        Description.
    """

    name: str
    dimensions: tuple[str, ...]
    formatter: str
    template: str
    path_template: PathTemplate = field(repr=False, compare=False)
    doc: str = ""


def load_repo_config(store: Datastore) -> RepoConfig:
    """Read and validate the ``butler.yaml`` at the root of ``store``.

    Raises
    ------
    RepositoryNotFoundError
        If there is no ``butler.yaml``.
    ConfigError
        If it is not valid YAML or not a valid configuration (naming the key path).
    """
    import yaml

    try:
        text = store.get_bytes(CONFIG_FILENAME)
    except FileNotFoundError:
        raise RepositoryNotFoundError(
            f"no repository at {store.root} ({CONFIG_FILENAME} not found); create one "
            "with `rb create` or Butler.create()"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{store.uri(CONFIG_FILENAME)} is not valid YAML: {err}") from err
    return RepoConfig.from_mapping(raw, source=store.uri(CONFIG_FILENAME))


def write_new_config(
    store: Datastore,
    config: Mapping[str, Any] | None,
    *,
    preset: str | None = None,
    exist_ok: bool = False,
) -> None:
    """Write the ``butler.yaml`` of a new repository: ``config`` merged over
    :func:`default_config` of ``preset``, validated first.

    An existing repository is left untouched if ``exist_ok``.

    Raises
    ------
    RepositoryExistsError
        If ``store`` already holds a repository and ``exist_ok`` is false.
    ConfigError
        If the merged configuration is invalid (naming the key path) or the preset unknown.
    """
    import yaml

    if store.exists(CONFIG_FILENAME):
        if exist_ok:
            return
        raise RepositoryExistsError(
            f"a repository already exists at {store.root}",
            remedy=Remedy("exist_ok", otherwise="use it as it is, or choose another location"),
        )

    merged = merge_config(default_config(preset), config or {})
    chosen = (config or {}).get("registry")
    if isinstance(chosen, Mapping) and chosen.get("type") not in (None, "sqlite"):
        merged["registry"] = dict(chosen)  # the SQLite defaults do not apply
        if chosen.get("type") == "delta":
            merged["registry"].setdefault("path", DELTA_REGISTRY_DIR)
            check_delta_store(store, ConfigError)  # before anything is written
    RepoConfig.from_mapping(merged, source="configuration")
    store.put_bytes(CONFIG_FILENAME, yaml.safe_dump(merged, sort_keys=False).encode())
    logger.info("created repository at %s", store.root)


@dataclass(frozen=True)
class RepoConfig:
    """Typed view of a validated ``butler.yaml``."""

    raw: dict[str, Any]
    universe: DimensionUniverse
    dataset_types: dict[str, DatasetType]
    storage_root: str
    registry: dict[str, Any]
    parents: tuple[ParentSpec, ...] = ()
    """Read-only parent repositories, searched in order after this one's runs."""

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, source: str = CONFIG_FILENAME) -> RepoConfig:
        """Validate ``raw`` and build the typed configuration.

        Raises
        ------
        ConfigError
            If the schema or a semantic check fails (e.g. a template field that is not one of its
            dataset type's dimensions), naming the key path.
        """
        raw = dict(raw)
        if isinstance(raw.get("registry"), str):  # ``registry: postgresql://...`` shorthand
            raw["registry"] = {"type": "postgresql", "url": raw["registry"]}
        if isinstance(raw.get("version"), int):  # a newer file: say so before the schema does
            check_version(raw["version"], CONFIG_VERSION, what=CONFIG_FILENAME, source=source)
        validate_config(raw, source=source)
        if raw["version"] < 2:
            for name, spec in raw["dimensions"].items():
                for field in ("aliases", "implies", "determined_by"):
                    if field in spec:
                        raise ConfigError(
                            f"{source}: dimensions.{name}.{field} needs version: 2 (version 1 "
                            "readers do not know it); run `rb migrate REPO`, or set version: 2"
                        )
        if "parents" in raw and raw["version"] < 3:
            raise ConfigError(
                f"{source}: parents needs version: 3 (older readers do not know it); run "
                "`rb migrate REPO`, or set version: 3"
            )
        parents = parse_parents(raw.get("parents", ()), source=source)
        registry = raw.get("registry", {})
        if registry.get("type") == "postgresql":
            from repo_butler.registry.postgres import check_postgres_url

            if "url" not in registry:
                raise ConfigError(
                    f"{source}: registry.url is required for a PostgreSQL registry "
                    "(postgresql://user@host:port/dbname)"
                )
            check_postgres_url(registry["url"], source=source)
        try:
            universe = DimensionUniverse.from_config(raw["dimensions"])
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
        dataset_types: dict[str, DatasetType] = {}
        for name, spec in raw["dataset_types"].items():
            where = f"{source}: dataset_types.{name}"
            dims = tuple(spec["dimensions"])
            for dim in dims:
                if dim not in universe:
                    raise ConfigError(
                        f"{where}.dimensions: {dim!r} is not a declared dimension "
                        f"(declared: {', '.join(universe.names)})"
                    )
            template = PathTemplate(spec["template"], universe, where=f"{where}.template")
            if set(template.fields) != set(dims):
                raise ConfigError(
                    f"{where}.template: fields {sorted(template.fields)} must be exactly the "
                    f"dataset type's dimensions {sorted(dims)} so that every dataset gets a "
                    "unique path that parses back to its data ID"
                )
            dataset_types[name] = DatasetType(
                name=name,
                dimensions=dims,
                formatter=spec["formatter"],
                template=spec["template"],
                path_template=template,
                doc=spec.get("doc", ""),
            )
        return cls(
            raw=dict(raw),
            universe=universe,
            dataset_types=dataset_types,
            storage_root=raw.get("storage", {}).get("root", "."),
            registry=dict(raw.get("registry", {})),
            parents=parents,
        )
