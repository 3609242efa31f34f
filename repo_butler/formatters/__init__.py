"""Formatter plugins: look-up by name through the ``repo_butler.formatters`` entry-point group.

Built-in formatters (``json``, ``yaml``, ``fits_table``, ``fits_array``) live in
:mod:`repo_butler.formatters.builtin`; other packages (``warping``) declare theirs as entry points
so ``repo_butler`` never imports them eagerly. Look-ups are lazy and cached: entry points are
scanned once per process and each formatter class is imported on first use.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from repo_butler.errors import FormatterError
from repo_butler.formatters.base import FileDataId, Formatter, ReadsDataId

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = [
    "ENTRY_POINT_GROUP",
    "FileDataId",
    "Formatter",
    "ReadsDataId",
    "available_formatters",
    "get_formatter",
    "register_formatter",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "repo_butler.formatters"

_lock = threading.Lock()
_entry_points: dict[str, EntryPoint] | None = None
_registered: dict[str, type[Formatter]] = {}
_instances: dict[str, Formatter] = {}


def _scan() -> dict[str, EntryPoint]:
    global _entry_points
    if _entry_points is None:
        from importlib.metadata import entry_points

        found: dict[str, EntryPoint] = {}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in found and found[ep.name].value != ep.value:
                logger.warning(
                    "formatter %r is declared twice (%s, %s); using the first",
                    ep.name,
                    found[ep.name].value,
                    ep.value,
                )
                continue
            found[ep.name] = ep
        _entry_points = found
    return _entry_points


def available_formatters() -> list[str]:
    """Names of all formatters that are registered or declared as entry points (not imported)."""
    return sorted(set(_scan()) | set(_registered))


def register_formatter(name: str, cls: type[Formatter], *, clobber: bool = False) -> None:
    """Register a formatter class explicitly (tests, notebooks, plugins without entry points).

    Raises
    ------
    ValueError
        If ``name`` is already registered to a different class and ``clobber`` is false.
    """
    with _lock:
        existing = _registered.get(name)
        if existing is not None and existing is not cls and not clobber:
            raise ValueError(f"formatter {name!r} is already registered to {existing!r}")
        _registered[name] = cls
        _instances.pop(name, None)


def get_formatter(name: str) -> Formatter:
    """Return the (cached) formatter instance registered under ``name``.

    Raises
    ------
    FormatterError
        If no formatter has that name (the message lists the available ones and an install
        hint), or its entry point cannot be imported.
    """
    inst = _instances.get(name)
    if inst is not None:
        return inst
    with _lock:
        inst = _instances.get(name)
        if inst is not None:
            return inst
        cls = _registered.get(name)
        if cls is None:
            ep = _scan().get(name)
            if ep is None:
                raise FormatterError(
                    f"no formatter named {name!r} (install the package that provides it); "
                    "available formatters: "
                    f"{', '.join(available_formatters()) or '(none)'}. Plugins register in the "
                    f"entry-point group {ENTRY_POINT_GROUP!r}."
                )
            try:
                cls = ep.load()
            except (ImportError, AttributeError) as err:
                raise FormatterError(
                    f"formatter {name!r} is declared as {ep.value!r} but cannot be loaded "
                    f"({err}); check that {ep.value!r} is importable"
                ) from err
        if not (isinstance(cls, type) and issubclass(cls, Formatter)):
            raise FormatterError(f"formatter {name!r} resolves to {cls!r}, not a Formatter class")
        inst = cls()
        _instances[name] = inst
        return inst
