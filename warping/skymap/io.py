"""The ``skymap`` formatter: skymaps stored as schema-validated YAML (never pickle)."""

from __future__ import annotations

from typing import ClassVar

from repo_butler.formats import check_version
from repo_butler.formatters.base import CodecFormatter
from warping.errors import FormatError
from warping.skymap.skymaps import BaseSkyMap, skymap_from_dict

__all__ = ["SkyMapFormatter", "skymap_from_yaml", "skymap_to_yaml"]

#: ``format_version`` written in skymap files; readers refuse newer versions.
FORMAT_VERSION = 1


def skymap_to_yaml(skymap: BaseSkyMap) -> str:
    """YAML text of a skymap, validated against ``skymap.schema.json``."""
    import yaml

    from repo_butler.schemas import validate

    doc = {"format_version": FORMAT_VERSION, **skymap.to_dict()}
    validate(doc, "skymap.schema.json", source="skymap", error=FormatError)
    return str(yaml.safe_dump(doc, sort_keys=False))


def skymap_from_yaml(text: str | bytes, *, source: str = "<skymap>") -> BaseSkyMap:
    """Parse and validate skymap YAML; errors name ``source`` and the offending key."""
    import yaml

    from repo_butler.schemas import validate

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise FormatError(f"{source}: not valid YAML ({err})") from None
    if not isinstance(doc, dict):
        raise FormatError(f"{source}: a skymap file must hold a mapping, got {type(doc).__name__}")
    check_version(
        doc.get("format_version"), FORMAT_VERSION, what="skymap", source=source, oldest=1,
        error=FormatError,
    )  # fmt: skip
    validate(doc, "skymap.schema.json", source=source, error=FormatError)
    try:
        return skymap_from_dict(doc)
    except (ValueError, KeyError) as err:
        raise FormatError(f"{source}: invalid skymap: {err}") from None


def _skymap_to_bytes(skymap: BaseSkyMap) -> bytes:
    return skymap_to_yaml(skymap).encode()


def _skymap_from_bytes(data: bytes, source: str) -> BaseSkyMap:
    return skymap_from_yaml(data, source=source)


class SkyMapFormatter(CodecFormatter):
    """Formatter ``skymap``: :class:`~warping.skymap.skymaps.BaseSkyMap` <-> YAML."""

    name: ClassVar[str] = "skymap"
    extension: ClassVar[str] = ".yaml"
    stores = BaseSkyMap
    encode = staticmethod(_skymap_to_bytes)
    decode = staticmethod(_skymap_from_bytes)
