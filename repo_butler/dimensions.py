"""Dimensions (data ID keys) and the immutable :class:`DataId` value.

A *dimension* is a named data ID key with a type (``int`` or ``str``) and constraints. The set of
dimensions a repository knows is its :class:`DimensionUniverse`, declared in ``butler.yaml``.
Informal mappings are accepted only at the API boundary and normalised once by
:meth:`DimensionUniverse.normalize` into a :class:`DataId`; code behind the boundary never sees raw
dicts.

Every value is also checked for *path safety*: a value that could escape the repository or change
the structure of a path (``/``, ``\\``, ``..``, NUL or other control characters, template braces,
empty strings) is rejected with :class:`~repo_butler.errors.DataIdError` before any I/O happens.
"""

from __future__ import annotations

import json
import logging
import operator
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from repo_butler.errors import ConfigError, DataIdError

__all__ = ["DataId", "DataIdValue", "Dimension", "DimensionUniverse", "check_path_safe"]

logger = logging.getLogger(__name__)

DataIdValue = int | str

_UNSAFE_CHARS = re.compile(r"[/\\{}\x00-\x1f\x7f]")
_INT_TEXT = re.compile(r"[+-]?\d+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_path_safe(key: str, value: str) -> None:
    """Reject a string data ID value that could escape the repo or change a path's structure.

    Parameters
    ----------
    key : str
        Dimension name, used in the error message.
    value : str
        The candidate value.

    Raises
    ------
    DataIdError
        If ``value`` is empty, ``.``, contains ``..``, a path separator, a template brace or a
        control character.
    """
    bad = _UNSAFE_CHARS.search(value)
    if bad is not None:
        raise DataIdError(
            f"data ID value {key}={value!r} contains the forbidden character {bad.group()!r}; "
            "values may not contain '/', '\\', '{', '}' or control characters because they are "
            "used to build file paths"
        )
    if value in ("", ".") or ".." in value:
        raise DataIdError(
            f"data ID value {key}={value!r} is not allowed in a path (empty, '.' or containing "
            "'..'); use a plain name"
        )


class DataId(Mapping[str, DataIdValue]):
    """An immutable, hashable, validated data ID (mapping of dimension name to int or str).

    Construct through :meth:`DimensionUniverse.normalize` to get full validation against a
    repository's dimensions. Direct construction performs the generic checks only (keys are
    identifiers, values are ``int`` or path-safe ``str``).

    Parameters
    ----------
    mapping : Mapping, optional
        Initial key/value pairs.
    **kwargs
        More key/value pairs.

    Examples
    --------
    >>> DataId(visit=903988, ccd=16)["ccd"]
    16
    """

    __slots__ = ("_data", "_hash", "_key")

    _data: dict[str, DataIdValue]
    _hash: int
    _key: str | None

    def __init__(self, mapping: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        data: dict[str, DataIdValue] = {}
        for source in (mapping or {}), kwargs:
            for key, value in source.items():
                data[key] = _generic_value(key, value)
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_hash", hash(frozenset(data.items())))
        object.__setattr__(self, "_key", None)

    @classmethod
    def _trusted(cls, data: dict[str, DataIdValue], key: str | None = None) -> DataId:
        """Build from already-validated values (internal fast path)."""
        self = cls.__new__(cls)
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_hash", hash(frozenset(data.items())))
        object.__setattr__(self, "_key", key)
        return self

    @property
    def key(self) -> str:
        """Canonical JSON text (sorted keys, compact): a stable string identity for registries."""
        if self._key is None:
            text = json.dumps(self._data, sort_keys=True, separators=(",", ":"))
            object.__setattr__(self, "_key", text)
            return text
        return self._key

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("DataId is immutable")

    def __getitem__(self, key: str) -> DataIdValue:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DataId):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._data.items())
        return f"DataId({inner})"

    def __str__(self) -> str:
        return "{" + ", ".join(f"{k}: {v!r}" for k, v in self._data.items()) + "}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (DataId, (self._data,))

    def to_dict(self) -> dict[str, DataIdValue]:
        """Return a plain ``dict`` copy (JSON-friendly)."""
        return dict(self._data)

    def subset(self, keys: Iterable[str]) -> DataId:
        """Return a new DataId with only ``keys`` (all must be present)."""
        return DataId._trusted({k: self._data[k] for k in keys})

    def sort_key(self) -> tuple[tuple[str, int, int, str], ...]:
        """Key that sorts data IDs deterministically (ints numerically, strings lexically)."""
        return tuple(
            (k, 0, v, "") if isinstance(v, int) else (k, 1, 0, v) for k, v in self._data.items()
        )


def _generic_value(key: str, value: Any) -> DataIdValue:
    if not isinstance(key, str) or not _NAME.fullmatch(key):
        raise DataIdError(f"data ID key {key!r} is not a valid dimension name")
    if isinstance(value, bool):
        raise DataIdError(f"data ID value {key}={value!r} is a bool; use an int or a string")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        check_path_safe(key, value)
        return value
    if isinstance(value, tuple | list) and all(
        isinstance(v, int | str) and not isinstance(v, bool) for v in value
    ):  # e.g. patch=(5, 4) -> "5,4", the Gen2 convention
        return _generic_value(key, ",".join(str(v).strip() for v in value))
    try:
        return operator.index(value)
    except TypeError:
        raise DataIdError(
            f"data ID value {key}={value!r} has type {type(value).__name__}; expected int or str"
        ) from None


@dataclass(frozen=True, slots=True)
class Dimension:
    """One data ID key: its name, type and constraints.

    Parameters
    ----------
    name : str
        Key name (a Python identifier).
    type : {"int", "str"}
        Value type. Integer-like strings (``"903988"``) are accepted for ``int`` dimensions.
    doc : str
        Human description.
    minimum, maximum : int, optional
        Inclusive bounds for ``int`` dimensions.
    pattern : str, optional
        Regular expression a ``str`` value must match in full.
    join_sequence : str, optional
        For ``str`` dimensions: a tuple/list value is joined with this separator after converting
        each item to ``str`` (``patch=(5, 4)`` becomes ``"5,4"``); string values have whitespace
        around each part stripped.
    """

    name: str
    type: Literal["int", "str"]
    doc: str = ""
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None
    join_sequence: str | None = None

    def normalize(self, value: Any) -> DataIdValue:
        """Validate and normalise one value of this dimension.

        Raises
        ------
        DataIdError
            If the value has the wrong type, is out of range, does not match the pattern or is
            not path-safe.
        """
        if self.type == "int":
            return self._normalize_int(value)
        return self._normalize_str(value)

    def _normalize_int(self, value: Any) -> int:
        if isinstance(value, bool):
            raise DataIdError(f"{self.name}={value!r}: expected an integer, got a bool")
        if isinstance(value, str):
            text = value.strip()
            if not _INT_TEXT.fullmatch(text):
                raise DataIdError(f"{self.name}={value!r}: expected an integer")
            out = int(text)
        else:
            try:
                out = operator.index(value)
            except TypeError:
                raise DataIdError(
                    f"{self.name}={value!r}: expected an integer, got {type(value).__name__}"
                ) from None
        if self.minimum is not None and out < self.minimum:
            raise DataIdError(f"{self.name}={out} is below the minimum {self.minimum}")
        if self.maximum is not None and out > self.maximum:
            raise DataIdError(f"{self.name}={out} is above the maximum {self.maximum}")
        return out

    def _normalize_str(self, value: Any) -> str:
        sep = self.join_sequence
        if sep is not None and isinstance(value, tuple | list):
            parts = [self._part(p) for p in value]
            value = sep.join(parts)
        elif sep is not None and isinstance(value, str):
            value = sep.join(p.strip() for p in value.split(sep))
        if not isinstance(value, str):
            raise DataIdError(
                f"{self.name}={value!r}: expected a string, got {type(value).__name__}"
            )
        check_path_safe(self.name, value)
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise DataIdError(
                f"{self.name}={value!r} does not match the required pattern {self.pattern!r}"
            )
        return value

    def _part(self, item: Any) -> str:
        if isinstance(item, bool) or not isinstance(item, int | str):
            try:
                return str(operator.index(item))
            except TypeError:
                raise DataIdError(f"{self.name}: sequence item {item!r} is not int/str") from None
        return str(item).strip()


class DimensionUniverse:
    """All dimensions a repository knows, in declaration order.

    Parameters
    ----------
    dimensions : Iterable[Dimension]
        The dimension definitions.
    """

    def __init__(self, dimensions: Iterable[Dimension]) -> None:
        self._dims: dict[str, Dimension] = {}
        for dim in dimensions:
            if dim.name in self._dims:
                raise ConfigError(f"dimension {dim.name!r} is declared twice")
            self._dims[dim.name] = dim
        self._order = {name: i for i, name in enumerate(self._dims)}

    @classmethod
    def from_config(cls, config: Mapping[str, Mapping[str, Any]]) -> DimensionUniverse:
        """Build from the ``dimensions`` section of ``butler.yaml``.

        Raises
        ------
        ConfigError
            Naming the key path (``dimensions.<name>.<field>``) of an invalid entry.
        """
        dims = []
        for name, spec in config.items():
            where = f"dimensions.{name}"
            if not _NAME.fullmatch(name):
                raise ConfigError(f"{where}: dimension names must be Python identifiers")
            kind = spec.get("type")
            if kind not in ("int", "str"):
                raise ConfigError(f"{where}.type: must be 'int' or 'str', got {kind!r}")
            pattern = spec.get("pattern")
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as err:
                    raise ConfigError(
                        f"{where}.pattern: invalid regular expression: {err}"
                    ) from err
            dims.append(
                Dimension(
                    name=name,
                    type=kind,
                    doc=str(spec.get("doc", "")),
                    minimum=spec.get("minimum"),
                    maximum=spec.get("maximum"),
                    pattern=pattern,
                    join_sequence=spec.get("join_sequence"),
                )
            )
        return cls(dims)

    def __getitem__(self, name: str) -> Dimension:
        try:
            return self._dims[name]
        except KeyError:
            raise DataIdError(
                f"unknown dimension {name!r}; known dimensions: {', '.join(self._dims)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._dims

    def __iter__(self) -> Iterator[str]:
        return iter(self._dims)

    def __len__(self) -> int:
        return len(self._dims)

    @property
    def names(self) -> tuple[str, ...]:
        """Dimension names in declaration order."""
        return tuple(self._dims)

    def order(self, names: Iterable[str]) -> list[str]:
        """Return ``names`` sorted in declaration order."""
        return sorted(names, key=self._rank)

    def _rank(self, name: str) -> int:
        return self._order.get(name, len(self._order))

    def normalize(
        self,
        data_id: Mapping[str, Any] | None = None,
        /,
        *,
        order: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> DataId:
        """Validate an informal data ID and return an immutable :class:`DataId`.

        Parameters
        ----------
        data_id : Mapping or DataId, optional
            Key/value pairs; ``kwargs`` are merged over it.
        order : Iterable[str], optional
            Preferred key order (e.g. a dataset type's dimensions); other keys follow in
            declaration order.
        **kwargs
            More key/value pairs.

        Raises
        ------
        DataIdError
            For unknown keys or invalid values.
        """
        merged: dict[str, Any] = dict(data_id) if data_id else {}
        merged.update(kwargs)
        values: dict[str, DataIdValue] = {}
        for key, raw in merged.items():
            if key not in self._dims:
                raise DataIdError(
                    f"unknown data ID key {key!r} in {merged!r}; known dimensions: "
                    f"{', '.join(self._dims)}"
                )
            values[key] = self._dims[key].normalize(raw)
        keys = [k for k in order if k in values] if order else []
        if len(keys) != len(values):
            keys += [k for k in self.order(values) if k not in keys]
        return DataId._trusted({k: values[k] for k in keys})
