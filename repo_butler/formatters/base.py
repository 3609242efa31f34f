"""The formatter plugin interface.

A formatter turns a Python object into the bytes of one file and back. Formatters are looked up by
name through the ``repo_butler.formatters`` entry-point group, so other packages (``warping``)
register theirs without ``repo_butler`` importing them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

__all__ = ["CodecFormatter", "Formatter"]


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


class CodecFormatter(Formatter):
    """A formatter made of two functions and the type it stores; subclasses only declare them::

        class PhotoCalibFormatter(CodecFormatter):
            name = "photocalib"
            extension = ".fits"
            stores = PhotoCalib
            encode = staticmethod(photocalib_to_bytes)  # (obj) -> bytes
            decode = staticmethod(photocalib_from_bytes)  # (data, source) -> obj

    :meth:`to_bytes` refuses an object that is not an instance of :attr:`stores` with a
    :class:`TypeError` naming the formatter and both types (``object``: the encoder checks).
    """

    stores: ClassVar[type | tuple[type, ...]] = object

    @staticmethod
    def encode(obj: Any, /) -> bytes:
        """The bytes of ``obj`` (set by the subclass)."""
        raise NotImplementedError

    @staticmethod
    def decode(data: bytes, source: str, /) -> Any:
        """The object held by ``data`` read from ``source`` (set by the subclass)."""
        raise NotImplementedError

    def to_bytes(self, obj: Any) -> bytes:
        """Serialise ``obj`` with :meth:`encode` after checking its type."""
        if not isinstance(obj, self.stores):
            kinds = self.stores if isinstance(self.stores, tuple) else (self.stores,)
            names = " or ".join(k.__name__ for k in kinds)
            raise TypeError(
                f"the {self.name} formatter writes {names} objects, got {type(obj).__name__}"
            )
        return self.encode(obj)

    def from_bytes(self, data: bytes, *, source: str) -> Any:
        """Deserialise with :meth:`decode`; it raises a FormatterError naming ``source``."""
        return self.decode(data, source)
