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
from typing import Any

from repo_butler.dimensions import DimensionUniverse
from repo_butler.errors import ConfigError
from repo_butler.formats import check_version
from repo_butler.templates import PathTemplate

__all__ = [
    "CONFIG_FILENAME",
    "CONFIG_VERSION",
    "DatasetType",
    "RepoConfig",
    "default_config",
    "merge_config",
    "validate_config",
]

logger = logging.getLogger(__name__)

CONFIG_FILENAME = "butler.yaml"
CONFIG_VERSION = 1

_FILTER = r"[A-Za-z0-9][A-Za-z0-9_.+-]*"
_NAME = r"[A-Za-z][A-Za-z0-9_.+-]*"
_CORR = "{pointing:05d}/{filter}/corr"
_JOINTCAL = "jointcal-results/{filter}/{tract:04d}"
_WARP_DIR = "deepCoadd/{filter}/{tract:d}/{patch}"
_WARP_TAIL = "{filter}-{tract:d}-{patch}-{visit:d}.fits"

_DEFAULT_CONFIG: dict[str, Any] = {
    "version": CONFIG_VERSION,
    "storage": {"root": "."},
    "registry": {"type": "sqlite", "path": "registry.sqlite3", "busy_timeout": 60.0},
    "dimensions": {
        "instrument": {"type": "str", "pattern": _NAME, "doc": "Camera name, e.g. HSC."},
        "skymap": {"type": "str", "pattern": _NAME, "doc": "Sky map name."},
        "tract": {"type": "int", "minimum": 0, "doc": "Sky map tract index."},
        "patch": {
            "type": "str",
            "pattern": r"(0|[1-9][0-9]*),(0|[1-9][0-9]*)",
            "join_sequence": ",",
            "doc": "Patch index 'x,y' within a tract; (x, y) tuples are accepted.",
        },
        "pointing": {"type": "int", "minimum": 0, "doc": "Telescope pointing number."},
        "filter": {"type": "str", "pattern": _FILTER, "doc": "Filter name, e.g. HSC-I."},
        "visit": {"type": "int", "minimum": 0, "doc": "Exposure (visit) number."},
        "ccd": {"type": "int", "minimum": 0, "doc": "Detector number."},
    },
    "dataset_types": {
        "calexp": {
            "dimensions": ["pointing", "filter", "visit", "ccd"],
            "formatter": "exposure",
            "template": f"{_CORR}/CORR-{{visit:07d}}-{{ccd:03d}}.fits",
        },
        "calexpBackground": {
            "dimensions": ["pointing", "filter", "visit", "ccd"],
            "formatter": "background",
            "template": f"{_CORR}/BKGD-{{visit:07d}}-{{ccd:03d}}.fits",
        },
        "skyCorr": {
            "dimensions": ["pointing", "filter", "visit", "ccd"],
            "formatter": "background",
            "template": f"{_CORR}/skyCorr-{{visit:07d}}-{{ccd:03d}}.fits",
        },
        "jointcal_wcs": {
            "dimensions": ["filter", "tract", "visit", "ccd"],
            "formatter": "skywcs",
            "template": f"{_JOINTCAL}/jointcal_wcs-{{visit:07d}}-{{ccd:03d}}.fits",
        },
        "jointcal_photoCalib": {
            "dimensions": ["filter", "tract", "visit", "ccd"],
            "formatter": "photocalib",
            "template": f"{_JOINTCAL}/jointcal_photoCalib-{{visit:07d}}-{{ccd:03d}}.fits",
        },
        "fgcm_photoCalib": {
            "dimensions": ["filter", "visit", "ccd"],
            "formatter": "photocalib",
            "template": "fgcm-results/{filter}/fgcm_photoCalib-{visit:05d}-{ccd:03d}.fits",
        },
        "deepCoadd_skyMap": {
            "dimensions": [],
            "formatter": "skymap",
            "template": "deepCoadd/skyMap.yaml",
        },
        "deepCoadd_directWarp": {
            "dimensions": ["filter", "tract", "patch", "visit"],
            "formatter": "exposure",
            "template": f"{_WARP_DIR}/warp-{_WARP_TAIL}",
        },
        "deepCoadd_psfMatchedWarp": {
            "dimensions": ["filter", "tract", "patch", "visit"],
            "formatter": "exposure",
            "template": f"{_WARP_DIR}/psfMatchedWarp-{_WARP_TAIL}",
        },
        "truth_catalog": {
            "dimensions": [],
            "formatter": "fits_table",
            "template": "simulation/truth.fits",
        },
    },
}


def default_config() -> dict[str, Any]:
    """Return a deep copy of the default configuration (LSST Gen2 HSC-style layout)."""
    return copy.deepcopy(_DEFAULT_CONFIG)


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


@dataclass(frozen=True)
class RepoConfig:
    """Typed view of a validated ``butler.yaml``."""

    raw: dict[str, Any]
    universe: DimensionUniverse
    dataset_types: dict[str, DatasetType]
    storage_root: str
    registry: dict[str, Any]

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
        registry = raw.get("registry", {})
        if registry.get("type") == "postgresql":
            from repo_butler.registry.postgres import check_postgres_url

            if "url" not in registry:
                raise ConfigError(
                    f"{source}: registry.url is required for a PostgreSQL registry "
                    "(postgresql://user@host:port/dbname)"
                )
            check_postgres_url(registry["url"], source=source)
        universe = DimensionUniverse.from_config(raw["dimensions"])
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
        )
