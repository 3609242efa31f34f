"""Config overrides of MakeWarp: ``key=value`` strings and LSST-syntax files, parsed, never run.

Every value is type-checked against the dataclass field it targets; unknown fields get a
"did you mean" suggestion. :mod:`warping.task.config` re-exports the public functions.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, Union

from repo_butler.errors import ConfigError

if TYPE_CHECKING:
    from warping.task.config import MakeWarpConfig

__all__ = ["apply_overrides", "config_to_dict", "parse_config_file", "parse_override"]

C = TypeVar("C")
_PathElem = str


def config_to_dict(config: Any) -> Any:
    """Plain JSON-compatible dict of a config (tuples become lists)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {k: config_to_dict(v) for k, v in config.items()}
    if isinstance(config, tuple | list):
        return [config_to_dict(v) for v in config]
    return config


def _field_map(cls: type) -> dict[str, tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}


def _suggest(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if _scalar_map(tp):
        return f"dict of {_type_name(typing.get_args(tp)[1])} by name"
    return getattr(tp, "__name__", str(tp))


def _scalar_map(tp: Any) -> bool:
    """Whether ``tp`` is ``Mapping[str, <not a dataclass>]`` (a dict of numbers by band...)."""
    origin = typing.get_origin(tp)
    if origin is None or getattr(origin, "__name__", "") != "Mapping":
        return False
    return not dataclasses.is_dataclass(typing.get_args(tp)[1])


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert ``value`` to type ``tp``; raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}.")
    if origin is tuple:
        (elem,) = typing.get_args(tp)[:1]
        if isinstance(value, str) and elem is str:
            value = [value]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list of {_type_name(elem)}, got {value!r}.")
        return tuple(_coerce(v, elem, f"{where}[{i}]") for i, v in enumerate(value))
    if _scalar_map(tp):
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ConfigError(
                f"{where} must be a {_type_name(tp)} (e.g. {{'r': 1}}), got {value!r}."
            )
        elem = typing.get_args(tp)[1]
        return types.MappingProxyType(
            {k: _coerce(v, elem, f"{where}[{k!r}]") for k, v in value.items()}
        )
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be True or False, got {value!r}.")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be an integer, got {value!r}.")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} must be a number, got {value!r}.")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a string, got {value!r}.")
    raise ConfigError(f"{where} cannot be set directly; set one of its fields instead.")


def _set_path(config: C, path: Sequence[_PathElem], value: Any, full: str) -> C:
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise ConfigError(f"{full}: {path[0]!r} is not a configuration field.")
    fields = _field_map(type(config))
    name = path[0]
    if name not in fields:
        where = full[: full.index(name)] if name in full else ""
        raise ConfigError(
            f"Unknown configuration field {name!r} in {full!r}"
            f"{' under ' + where.rstrip('.') if where.rstrip('.') else ''}."
            f"{_suggest(name, fields)} Known fields: {', '.join(sorted(fields))}."
        )
    fld, tp = fields[name]
    current = getattr(config, name)
    if len(path) == 1:
        new = _coerce(value, tp, full)
        choices = fld.metadata.get("choices")
        if choices is not None and new not in choices:
            raise ConfigError(
                f"{full} must be one of {list(choices)}, got {new!r}.{_suggest(str(new), choices)}"
            )
    elif isinstance(current, Mapping) and _scalar_map(tp):  # config.x['r'] = 5 adds or replaces
        if len(path) > 2:
            raise ConfigError(f"{full}: the entries of {name} are values, not fields.")
        updated = dict(current)
        updated[path[1]] = _coerce(value, typing.get_args(tp)[1], full)
        new = types.MappingProxyType(updated)
    elif isinstance(current, Mapping):
        key = path[1]
        if key == "active":
            key = next(iter(current))
        if key not in current:
            raise ConfigError(
                f"{full}: {name} has no entry {key!r}; available: {sorted(current)}."
                f"{_suggest(key, current)}"
            )
        if len(path) == 2:
            raise ConfigError(f"{full} cannot be set directly; set one of its fields instead.")
        updated = dict(current)
        updated[key] = _set_path(current[key], path[2:], value, full)
        new = types.MappingProxyType(updated)
    else:
        new = _set_path(current, path[1:], value, full)
    return dataclasses.replace(config, **{name: new})


def _path_from_target(node: ast.expr, line: str) -> list[str]:
    """``config.a.b['C'].d`` -> ``['a', 'b', 'C', 'd']``; anything else is an error."""
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript):
            sl = node.slice
            if not (isinstance(sl, ast.Constant) and isinstance(sl.value, str)):
                raise ConfigError(f"Only string keys like ['AL'] are allowed: {line!r}")
            parts.append(sl.value)
            node = node.value
        elif isinstance(node, ast.Name):
            if node.id != "config":
                parts.append(node.id)
            break
        else:
            raise ConfigError(f"Not a configuration field reference: {line!r}")
    return parts[::-1]


def _literal(node: ast.expr, line: str) -> Any:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        raise ConfigError(
            f"Only literal values (numbers, strings, True/False/None, lists) are allowed: {line!r}"
        ) from None
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse one ``--config`` token ``key=value`` into a field path and a value.

    The key may be written with or without a leading ``config.``; values are Python literals
    (``27``, ``1.6``, ``True``, ``[1.5, 3.0]``, ``'fgcm'``), ``true``/``false``, or a bare word
    taken as a string (``externalPhotoCalibName=fgcm``).
    """
    if "=" not in text:
        raise ConfigError(f"Config override {text!r} must look like key=value.")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    try:
        target = ast.parse(key, mode="eval").body
    except SyntaxError:
        raise ConfigError(f"Config override {text!r}: {key!r} is not a field path.") from None
    path = _path_from_target(target, text)
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return path, lowered == "true"
    try:
        value: Any = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        if raw and all(ch.isalnum() or ch in "_-.:/+" for ch in raw):
            value = raw
        else:
            raise ConfigError(f"Config override {text!r}: cannot parse value {raw!r}.") from None
    return path, value


def parse_config_file(text: str, *, source: str = "<config>") -> list[tuple[list[str], Any, str]]:
    """Parse an LSST-style config file into ``(path, value, line)`` assignments, never executing it.

    Accepted: comments, blank lines, and ``config.<field path> = <literal>`` statements (one per
    line or spread over several lines). Anything else (imports, calls, expressions, loops) is a
    :class:`ConfigError` that quotes the offending line.
    """
    try:
        tree = ast.parse(text, filename=source)
    except SyntaxError as err:
        raise ConfigError(
            f"{source}:{err.lineno}: syntax error in config file: {(err.text or '').strip()!r}"
        ) from None
    lines = text.splitlines()
    out: list[tuple[list[str], Any, str]] = []
    for stmt in tree.body:
        line = "\n".join(lines[stmt.lineno - 1 : (stmt.end_lineno or stmt.lineno)]).strip()
        loc = f"{source}:{stmt.lineno}"
        if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
            raise ConfigError(
                f"{loc}: only assignments 'config.<field> = <literal>' are allowed, got: {line!r}"
            )
        target = stmt.targets[0]
        root = target
        while isinstance(root, ast.Attribute | ast.Subscript):
            root = root.value
        if not (isinstance(root, ast.Name) and root.id == "config"):
            raise ConfigError(f"{loc}: assignments must start with 'config.': {line!r}")
        try:
            path = _path_from_target(target, line)
            value = _literal(stmt.value, line)
        except ConfigError as err:
            raise ConfigError(f"{loc}: {err}") from None
        out.append((path, value, f"{loc}: {line}"))
    return out


def apply_overrides(
    config: MakeWarpConfig,
    overrides: Sequence[str] = (),
    *,
    files: Sequence[tuple[str, str]] = (),
    instrument: str | None = None,
) -> MakeWarpConfig:
    """Apply an instrument preset, then config files (``(source, text)`` pairs), then
    ``key=value`` overrides; validate.

    Later assignments win, as on LSST's command line (obs package config, then
    ``--configfile``, then ``--config``): explicit settings always win over the preset.
    ``instrument`` names a preset (:mod:`warping.task.presets`); None applies none.
    """
    if instrument is not None:
        from warping.task.presets import instrument_preset

        files = [instrument_preset(instrument), *files]
    for source, text in files:
        for path, value, where in parse_config_file(text, source=source):
            try:
                config = _set_path(config, path, value, ".".join(path))
            except ConfigError as err:
                raise ConfigError(f"{where.split(': ', 1)[0]}: {err}") from None
    for text in overrides:
        path, value = parse_override(text)
        if not path:
            raise ConfigError(f"Config override {text!r} names no field.")
        config = _set_path(config, path, value, text.split("=", 1)[0].strip())
    config.validate()
    return config
