"""The JSON Schema of :class:`~warping.task.config.MakeWarpConfig`, generated from its dataclasses.

``schemas/makewarp-config.schema.json`` is this module's output (a test checks it is current);
regenerate it after changing a config field with::

    .venv/bin/python -m warping.task.config_schema > schemas/makewarp-config.schema.json
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, Union

from warping.task.config import MakeWarpConfig
from warping.task.config_overrides import _field_map

__all__ = ["config_json_schema", "dumps_schema"]


def _set_maximum(schema: dict[str, Any], maximum: int) -> None:
    if schema.get("type") in ("integer", "number"):
        schema["maximum"] = maximum
    for sub in schema.get("anyOf", []):
        _set_maximum(sub, maximum)


def config_json_schema() -> dict[str, Any]:
    """JSON Schema describing :class:`MakeWarpConfig` (generated from the dataclasses)."""

    def type_schema(tp: Any) -> dict[str, Any]:
        origin = typing.get_origin(tp)
        if origin in (Union, types.UnionType):
            return {"anyOf": [type_schema(a) for a in typing.get_args(tp)]}
        if origin is tuple:
            return {"type": "array", "items": type_schema(typing.get_args(tp)[0])}
        if origin in (Mapping, dict) or tp is Mapping:
            return {"type": "object"}
        if typing.get_origin(tp) is not None and typing.get_origin(tp).__name__ == "Mapping":
            return {"type": "object"}
        if tp is type(None):
            return {"type": "null"}
        if dataclasses.is_dataclass(tp):
            return cls_schema(tp)
        return {"type": {bool: "boolean", int: "integer", float: "number", str: "string"}[tp]}

    def cls_schema(cls: Any) -> dict[str, Any]:
        props: dict[str, Any] = {}
        for name, (fld, tp) in _field_map(cls).items():
            origin = typing.get_origin(tp)
            if origin is not None and getattr(origin, "__name__", "") == "Mapping":
                value_tp = typing.get_args(tp)[1]
                sch: dict[str, Any] = {
                    "type": "object",
                    "additionalProperties": cls_schema(value_tp)
                    if dataclasses.is_dataclass(value_tp)
                    else type_schema(value_tp),
                }
            else:
                sch = type_schema(tp)
            sch["description"] = fld.metadata.get("doc", "")
            if "choices" in fld.metadata:
                sch["enum"] = list(fld.metadata["choices"])
            if "maximum" in fld.metadata:  # the number's bound (null stays allowed)
                _set_maximum(sch, fld.metadata["maximum"])
            props[name] = sch
        return {
            "type": "object",
            "description": (cls.__doc__ or "").strip().splitlines()[0],
            "properties": props,
            "required": sorted(props),
            "additionalProperties": False,
        }

    schema = cls_schema(MakeWarpConfig)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://repo-butler.invalid/schemas/makewarp-config.schema.json"
    schema["title"] = "MakeWarp task configuration"
    return schema


def dumps_schema() -> str:
    """The schema as stable JSON text: the content of ``schemas/makewarp-config.schema.json``."""
    return json.dumps(config_json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(dumps_schema())
