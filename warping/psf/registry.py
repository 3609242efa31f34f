"""Generic PSF persistence: every PSF class converts to a plain dict and back.

A PSF dict has a ``"type"`` entry naming a registered class and any number of other entries
(numbers, strings, lists, nested dicts and numpy arrays). File formats store the dict generically
(:mod:`warping.formats.fits_dict`), so new PSF types — e.g. the coadd PSF — only need to call
:func:`register_psf_type` to become persistable.
"""

from __future__ import annotations

import importlib
import logging
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np

from warping.psf.base import Psf

logger = logging.getLogger(__name__)

__all__ = [
    "SerializablePsf",
    "deep_equal",
    "psf_from_dict",
    "psf_to_dict",
    "register_psf_type",
    "registered_psf_types",
]

_REGISTRY: dict[str, type[Psf]] = {}


def register_psf_type(name: str, cls: type[Psf]) -> None:
    """Register ``cls`` (which must provide ``to_dict()`` and ``from_dict(d)``) under ``name``.

    Re-registering the same class is a no-op; registering a different class under a taken name
    raises ``ValueError``.
    """
    if not hasattr(cls, "to_dict") or not hasattr(cls, "from_dict"):
        raise TypeError(f"PSF class {cls.__name__} must define to_dict() and from_dict()")
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(
            f"PSF type name {name!r} is already registered to {existing.__module__}."
            f"{existing.__qualname__}; choose another name"
        )
    _REGISTRY[name] = cls


def registered_psf_types() -> dict[str, type[Psf]]:
    """A copy of the ``{type name: class}`` registry."""
    return dict(_REGISTRY)


def psf_to_dict(psf: Psf) -> dict[str, Any]:
    """Serialise ``psf`` to a dict with ``"type"`` and ``"module"`` entries."""
    to_dict = getattr(psf, "to_dict", None)
    if to_dict is None:
        raise TypeError(f"{type(psf).__name__} has no to_dict(); it cannot be persisted")
    d = dict(to_dict())
    if "type" not in d:
        raise TypeError(f"{type(psf).__name__}.to_dict() must include a 'type' entry")
    d.setdefault("module", type(psf).__module__)
    return d


def psf_from_dict(d: dict[str, Any]) -> Psf:
    """Rebuild a PSF from :func:`psf_to_dict` output.

    An unregistered type whose ``"module"`` entry names a ``warping`` module is imported first
    (so a file written with e.g. the coadd PSF reads back without an explicit import).
    """
    name = d.get("type")
    if not isinstance(name, str):
        raise ValueError(f"PSF dict has no string 'type' entry: keys {sorted(d)}")
    if name not in _REGISTRY:
        module = d.get("module")
        if isinstance(module, str) and module.split(".")[0] == "warping":
            importlib.import_module(module)
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ValueError(
            f"Unknown PSF type {name!r}; registered types are {sorted(_REGISTRY)}. "
            "Import the module defining it (it must call register_psf_type)."
        )
    body = {k: v for k, v in d.items() if k not in ("type", "module")}
    return cls.from_dict(body)  # type: ignore[attr-defined]


def deep_equal(a: Any, b: Any) -> bool:
    """Exact structural equality of dicts/lists/arrays/scalars (arrays: same dtype, shape, bits)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b, True))
    if isinstance(a, dict):
        if not isinstance(b, dict) or set(a) != set(b):
            return False
        return all(deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        if not isinstance(b, list | tuple) or len(a) != len(b):
            return False
        return all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return bool(a == b)


class SerializablePsf(Psf):
    """A PSF with dict persistence and value equality (two PSFs are equal when their dicts are)."""

    type_name: ClassVar[str]

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """All parameters, with ``"type": type_name``."""

    @classmethod
    @abstractmethod
    def from_dict(cls, d: dict[str, Any]) -> SerializablePsf:
        """Inverse of :meth:`to_dict` (the ``type``/``module`` entries are removed)."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SerializablePsf) or type(other) is not type(self):
            return NotImplemented
        return deep_equal(self.to_dict(), other.to_dict())

    __hash__ = None  # type: ignore[assignment]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("type_name")
        if isinstance(name, str):
            register_psf_type(name, cls)
