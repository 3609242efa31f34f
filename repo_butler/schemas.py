"""Locate and apply the JSON Schemas shipped with repo_butler.

In a wheel the ``schemas/`` directory is installed as package data ``repo_butler/_schemas``
(``meson.build``); in an editable checkout it is the top-level ``schemas/`` directory.
:func:`schema_dir` returns whichever exists, preferring the installed copy.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from repo_butler.errors import RepoButlerError

__all__ = ["checkout_schema_dir", "load_schema", "schema_dir", "validate"]

logger = logging.getLogger(__name__)

_PACKAGE_DATA = "repo_butler._schemas"


def checkout_schema_dir() -> Path:
    """Return the ``schemas/`` directory of a source checkout (may not exist when installed)."""
    return Path(__file__).resolve().parent.parent / "schemas"


def schema_dir() -> Traversable:
    """Return the directory holding the schemas: package data if installed, else the checkout's."""
    try:
        installed = resources.files(_PACKAGE_DATA)
        if installed.is_dir():
            return installed
    except (ModuleNotFoundError, TypeError, ValueError):  # editable install: not a real package
        pass
    return checkout_schema_dir()


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """Load a schema by file name (``"provenance.schema.json"``).

    Raises
    ------
    FileNotFoundError
        If the schema is in neither location.
    """
    path = schema_dir() / name
    if not path.is_file():
        raise FileNotFoundError(
            f"schema {name!r} not found in {schema_dir()}; reinstall repo-butler"
        )
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _validator(name: str) -> Any:
    import jsonschema

    schema = load_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _key_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate(
    instance: Mapping[str, Any] | Any,
    name: str,
    *,
    source: str,
    error: type[RepoButlerError],
) -> None:
    """Validate ``instance`` against schema ``name``; raise ``error`` naming key path and reason.

    Parameters
    ----------
    instance : object
        The decoded document.
    name : str
        Schema file name.
    source : str
        What is being validated (a file name or URI), used in the message.
    error : type
        The exception class to raise (e.g. :class:`~repo_butler.errors.ConfigError`).
    """
    errors = sorted(
        _validator(name).iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path]
    )
    if not errors:
        return
    lines = [f"{_key_path(e.absolute_path)}: {e.message}" for e in errors[:5]]
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    raise error(f"{source} does not match {name}: " + "; ".join(lines) + more)
