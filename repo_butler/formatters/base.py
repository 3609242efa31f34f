"""The formatter plugin interface.

A formatter turns a Python object into the bytes of one file and back. Formatters are looked up by
name through the ``repo_butler.formatters`` entry-point group, so other packages (``warping``)
register theirs without ``repo_butler`` importing them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

__all__ = ["Formatter"]


class Formatter(ABC):
    """Convert between an in-memory object and the bytes of one stored file.

    Subclasses set :attr:`name` (the key used in ``butler.yaml``), :attr:`extension` (the file
    suffix a path template should end with) and implement :meth:`to_bytes` / :meth:`from_bytes`.
    ``from_bytes`` must raise :class:`repo_butler.errors.FormatterError` naming ``source`` when the
    bytes are corrupt, truncated or of the wrong layout, never return a silently wrong object.
    """

    name: ClassVar[str]
    extension: ClassVar[str]

    @abstractmethod
    def to_bytes(self, obj: Any) -> bytes:
        """Serialise ``obj`` to the complete bytes of a file."""

    @abstractmethod
    def from_bytes(self, data: bytes, *, source: str) -> Any:
        """Deserialise bytes read from ``source`` (a URI, used in error messages)."""
