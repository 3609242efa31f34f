"""Dimensions (data ID keys) and the immutable :class:`DataId` value.

A *dimension* is a named data ID key with a type (``int`` or ``str``) and constraints. The set of
dimensions a repository knows is its :class:`DimensionUniverse`, declared in ``butler.yaml``.
Informal mappings are accepted only at the API boundary and normalised once by
:meth:`DimensionUniverse.normalize` into a :class:`DataId`; code behind the boundary never sees raw
dicts.

A dimension may declare *aliases* (other spellings of the same key, e.g. Gen3's ``detector`` for
``ccd``) and *implied* keys (coarser keys that follow from its value, e.g. ``band`` from a
physical ``filter``). :meth:`DimensionUniverse.normalize` maps an alias to its dimension; an
implied key is accepted beside its dimension (where it adds nothing) and refused alone, since it
cannot pick one value. An unknown key gets the nearest known name as a suggestion.

Every value is also checked for *path safety*: a value that could escape the repository or change
the structure of a path (``/``, ``\\``, ``..``, NUL or other control characters, template braces,
empty strings) is rejected with :class:`~repo_butler.errors.DataIdError` before any I/O happens.
"""

from __future__ import annotations

import difflib
import json
import logging
import operator
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from repo_butler.errors import ConfigError, DataIdError

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "DataId",
    "DataIdValue",
    "Dimension",
    "DimensionUniverse",
    "check_int_range",
    "check_path_safe",
]

logger = logging.getLogger(__name__)

DataIdValue = int | str

_UNSAFE_CHARS = re.compile(r"[/\\{}\x00-\x1f\x7f]")
_INT_TEXT = re.compile(r"[+-]?[0-9]+", re.ASCII)
#: Integer values must fit a signed 64-bit registry column (SQLite INTEGER, PostgreSQL BIGINT).
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
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


def check_int_range(key: str, value: int) -> int:
    """Return ``value`` if it fits the registry's signed 64-bit integer columns.

    Raises
    ------
    DataIdError
        Otherwise (before anything is written: a larger value cannot be stored or queried).
    """
    if not INT_MIN <= value <= INT_MAX:
        shown = str(value) if abs(value) < 10**40 else f"<an integer of {value.bit_length()} bits>"
        raise DataIdError(
            f"data ID value {key}={shown} is out of range: integer data ID values must lie "
            f"between {INT_MIN} and {INT_MAX} (a signed 64-bit integer)"
        )
    return value


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
        return check_int_range(key, int(value))
    if isinstance(value, str):
        check_path_safe(key, value)
        return value
    if isinstance(value, tuple | list) and all(
        isinstance(v, int | str) and not isinstance(v, bool) for v in value
    ):  # e.g. patch=(5, 4) -> "5,4", the Gen2 convention
        return _generic_value(key, ",".join(str(v).strip() for v in value))
    try:
        return check_int_range(key, operator.index(value))
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
    aliases : tuple of str
        Other names of this key, accepted wherever a data ID is given (``detector`` for ``ccd``).
    implies : tuple of str
        Coarser keys this dimension's value determines (``band`` for a physical ``filter``):
        accepted beside it, refused alone.
    determined_by : tuple of str
        Dimensions whose values fix this one (``visit`` fixes ``filter`` and ``pointing``): ingest
        may take this key from the one registered data ID that matches them. Keys without it
        (``ccd``) are never filled in from the registry.
    """

    name: str
    type: Literal["int", "str"]
    doc: str = ""
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None
    join_sequence: str | None = None
    aliases: tuple[str, ...] = ()
    implies: tuple[str, ...] = ()
    determined_by: tuple[str, ...] = ()

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
            # ASCII digits only, no surrounding blanks: int() would also take ' 3', '3_0' and
            # other scripts' digits, and the same value must always have one spelling.
            if not _INT_TEXT.fullmatch(value):
                raise DataIdError(
                    f"{self.name}={value!r}: expected an integer written with ASCII digits 0-9 "
                    "(optionally signed, no spaces)"
                )
            if len(value) > 30:  # far beyond the range: do not convert a huge string
                raise DataIdError(
                    f"{self.name}: an integer of {len(value)} characters is out of range "
                    f"{INT_MIN}..{INT_MAX}"
                )
            out = int(value)
        else:
            try:
                out = operator.index(value)
            except TypeError:
                raise DataIdError(
                    f"{self.name}={value!r}: expected an integer, got {type(value).__name__}"
                ) from None
        check_int_range(self.name, out)
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
    """All dimensions a repository knows, in declaration order, with their aliases.

    Parameters
    ----------
    dimensions : Iterable[Dimension]
        The dimension definitions.

    Raises
    ------
    ConfigError
        If a name is declared twice, or an alias or implied key is also a dimension, an alias of
        another dimension, or not a Python identifier.
    """

    def __init__(self, dimensions: Iterable[Dimension]) -> None:
        self._dims: dict[str, Dimension] = {}
        for dim in dimensions:
            if dim.name in self._dims:
                raise ConfigError(f"dimension {dim.name!r} is declared twice")
            self._dims[dim.name] = dim
        self._order = {name: i for i, name in enumerate(self._dims)}
        self._aliases: dict[str, str] = {}
        self._implied: dict[str, str] = {}
        for dim in self._dims.values():
            for field, names, table in (
                ("aliases", dim.aliases, self._aliases),
                ("implies", dim.implies, self._implied),
            ):
                for alias in names:
                    where = f"dimensions.{dim.name}.{field}"
                    if not isinstance(alias, str) or not _NAME.fullmatch(alias):
                        raise ConfigError(f"{where}: {alias!r} is not a Python identifier")
                    owner = self._dims.get(alias) or self._aliases.get(alias)
                    owner = owner or self._implied.get(alias)
                    if owner is not None:
                        taken = alias if alias in self._dims else f"a name of {owner}"
                        raise ConfigError(f"{where}: {alias!r} is already {taken!r}")
                    table[alias] = dim.name
        for dim in self._dims.values():
            for other in dim.determined_by:
                if other not in self._dims or other == dim.name:
                    raise ConfigError(
                        f"dimensions.{dim.name}.determined_by: {other!r} is not another dimension"
                    )

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
                    aliases=tuple(spec.get("aliases", ())),
                    implies=tuple(spec.get("implies", ())),
                    determined_by=tuple(spec.get("determined_by", ())),
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

    @property
    def aliases(self) -> Mapping[str, str]:
        """Alias -> dimension name, for every declared alias (read-only)."""
        return MappingProxyType(self._aliases)

    @property
    def implied(self) -> Mapping[str, str]:
        """Implied key -> the dimension that determines it (``band`` -> ``filter``; read-only)."""
        return MappingProxyType(self._implied)

    def order(self, names: Iterable[str]) -> list[str]:
        """Return ``names`` sorted in declaration order."""
        return sorted(names, key=self._rank)

    def _rank(self, name: str) -> int:
        return self._order.get(name, len(self._order))

    def canonical(self, name: str) -> str:
        """The dimension a name or alias stands for (``detector`` -> ``ccd``).

        Raises
        ------
        DataIdError
            For an implied key (it cannot stand for its dimension) or an unknown name (with the
            nearest known name as a suggestion).
        """
        if name in self._dims:
            return name
        target = self._aliases.get(name)
        if target is not None:
            return target
        if name in self._implied:
            dim = self._implied[name]
            raise DataIdError(
                f"{name!r} cannot stand for the dimension {dim!r}: several {dim} values share "
                f"one {name}; use {self._spellings(dim)}"
            )
        raise DataIdError(self._unknown(name))

    def _spellings(self, dim: str) -> str:
        return " or ".join(repr(n) for n in (dim, *self._dims[dim].aliases))

    def _describe(self, name: str) -> str:
        if name in self._aliases:
            return f"{name!r} (alias of {self._aliases[name]})"
        if name in self._implied:
            return f"{name!r} (implied by {self._implied[name]})"
        return repr(name)

    def suggest(self, key: str) -> str:
        """A hint for an unknown key: the nearest dimension, alias or implied key (``did you
        mean 'detector' (alias of ccd)?``), or a preset's alias this repository lacks; ``""``."""
        names = [*self._dims, *self._aliases, *self._implied]
        close = difflib.get_close_matches(key, names, n=1, cutoff=0.6) if len(key) > 1 else []
        if close:
            return f"did you mean {self._describe(close[0])}?"
        from repo_butler.presets import alias_hint

        hint = alias_hint(key, self)
        return f"{hint}." if hint else ""

    def _unknown(self, key: str, merged: Mapping[str, Any] | None = None) -> str:
        """The message for an unknown key: a suggestion, then what is known."""
        where = f" in {dict(merged)!r}" if merged is not None else ""
        hint = self.suggest(key)
        text = f"unknown data ID key {key!r}{where}" + (f"; {hint}" if hint else ".")
        text += f" Known dimensions: {', '.join(self._dims)}"
        if self._aliases:
            text += "; aliases: " + ", ".join(f"{a}->{d}" for a, d in self._aliases.items())
        return text

    def normalize(
        self,
        data_id: Mapping[str, Any] | None = None,
        /,
        *,
        order: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> DataId:
        """Validate an informal data ID and return an immutable :class:`DataId`.

        Aliases are replaced by their dimension (an alias and its dimension given together must
        agree); an implied key is accepted beside its dimension and dropped.

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
            For unknown keys (suggesting the nearest known one), an implied key without its
            dimension, an alias that disagrees with its dimension, or invalid values.
        """
        merged: dict[str, Any] = dict(data_id) if data_id else {}
        merged.update(kwargs)
        values: dict[str, DataIdValue] = {}
        spelled: dict[str, str] = {}
        implied: list[str] = []
        for key, raw in merged.items():
            name = key if key in self._dims else self._aliases.get(key)
            if name is None:
                if key not in self._implied:
                    raise DataIdError(self._unknown(key, merged))
                implied.append(key)
                continue
            value = self._dims[name].normalize(raw)
            if name in values and values[name] != value:
                raise DataIdError(
                    f"data ID {dict(merged)!r} gives {spelled[name]}={values[name]!r} and "
                    f"{key}={value!r}, two spellings of the dimension {name!r}; give one value"
                )
            values[name] = value
            spelled.setdefault(name, key)
        for key in implied:
            dim = self._implied[key]
            if dim not in values:
                raise DataIdError(
                    f"data ID key {key}={merged[key]!r} does not identify a {dim}: several {dim} "
                    f"values share one {key}; give {self._spellings(dim)} (a {key} is accepted "
                    "beside it)"
                )
        keys = [k for k in order if k in values] if order else []
        if len(keys) != len(values):
            keys += [k for k in self.order(values) if k not in keys]
        return DataId._trusted({k: values[k] for k in keys})
