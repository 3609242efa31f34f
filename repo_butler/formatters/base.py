"""The formatter plugin interface.

A formatter turns a Python object into the bytes of one file and back. Formatters are looked up by
name through the ``repo_butler.formatters`` entry-point group, so other packages (``warping``)
register theirs without ``repo_butler`` importing them.

A formatter whose files say which dataset they hold (an instrument's FITS header) may also
implement :class:`ReadsDataId`: :func:`repo_butler.ingest.ingest_files` then asks it for each
file's data ID and merges the answer with the file's path and the data ID given.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar, Protocol, runtime_checkable

from repo_butler.local_reads import ReadBuffer

__all__ = ["CodecFormatter", "FileDataId", "Formatter", "ReadsDataId"]


@dataclass(frozen=True)
class FileDataId:
    """What a file says about its own data ID (returned by :meth:`ReadsDataId.data_id_from_file`).

    Keys are dimension names, aliases or implied keys of the repository (others are ignored).

    Parameters
    ----------
    values : Mapping
        Values read from the file. A path or given data ID that contradicts one is an error.
    defaults : Mapping
        Values a documented rule derives (not read from the file); used only for keys that
        neither the file, the path, the data ID given nor the registry supply.
    origins : Mapping
        Key -> where its value came from (``"IDNUM card"``, ``"rule: pointing = visit"``),
        shown in the ingest report.
    missing : Mapping
        Key -> what was looked for and not found (``"IDNUM or EXPNUM card"``), for the error
        when nothing else supplies the key either.
    rule : str
        Name of the rule that read the file (``"CFHT MegaPrime"``), for reports.
    """

    values: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    origins: Mapping[str, str] = field(default_factory=dict)
    missing: Mapping[str, str] = field(default_factory=dict)
    rule: str = ""


@runtime_checkable
class ReadsDataId(Protocol):
    """Optional formatter capability: read a file's data ID from the file itself."""

    def data_id_from_file(
        self,
        fileobj: BinaryIO,
        *,
        source: str,
        dimensions: Sequence[str],
        known: Mapping[str, Any],
    ) -> FileDataId:
        """What ``fileobj`` (seekable, positioned at 0) says about its data ID.

        Parameters
        ----------
        fileobj : binary file
            The file; read only what is needed (headers, not pixels).
        source : str
            Its path or URL, for messages.
        dimensions : sequence of str
            The dataset type's dimensions (a reader may answer only for the shapes it knows).
        known : Mapping
            The data ID already known from the file's path and the data ID given (canonical
            dimension names), so that defaults can follow them.

        Raises
        ------
        repo_butler.errors.FormatterError
            If the file cannot be read or its header contradicts itself (naming ``source``).
        """
        ...


class Formatter(ABC):
    """Convert between an in-memory object and the bytes of one stored file.

    Subclasses set :attr:`name` (the key used in ``butler.yaml``), :attr:`extension` (the file
    suffix a path template should end with) and implement :meth:`to_bytes` / :meth:`from_bytes`.
    ``from_bytes`` must raise :class:`repo_butler.errors.FormatterError` naming ``source`` when the
    bytes are corrupt, truncated or of the wrong layout, never return a silently wrong object.
    """

    name: ClassVar[str]
    extension: ClassVar[str]
    reads_buffers: ClassVar[bool] = False
    """Whether :meth:`from_buffer` decodes a read-only buffer (a memory map of a local file,
    :func:`repo_butler.local_reads.map_file`) without copying it; readers then map large local
    files instead of reading them."""

    @abstractmethod
    def to_bytes(self, obj: Any) -> bytes:
        """Serialise ``obj`` to the complete bytes of a file."""

    @abstractmethod
    def from_bytes(self, data: bytes, *, source: str) -> Any:
        """Deserialise bytes read from ``source`` (a URI, used in error messages)."""

    def from_buffer(self, data: ReadBuffer, *, source: str) -> Any:
        """:meth:`from_bytes` of ``bytes`` or a read-only memory map. The result keeps no
        reference into ``data``. The default copies a map to ``bytes``; formatters that set
        :attr:`reads_buffers` decode it in place."""
        return self.from_bytes(data if isinstance(data, bytes) else bytes(data), source=source)

    def write_to(self, obj: Any, fh: BinaryIO) -> None:
        """Write the bytes of ``obj`` to the file ``fh`` (the same bytes as :meth:`to_bytes`).

        The default writes :meth:`to_bytes` at once; formatters of large objects stream them,
        so a local write never holds the whole file in memory.
        """
        fh.write(self.to_bytes(obj))


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
    A subclass may also set ``encode_to = staticmethod(f)`` with ``f(obj, fh)`` writing the
    same bytes to a file (:meth:`write_to` then streams).
    """

    stores: ClassVar[type | tuple[type, ...]] = object
    encode_to: ClassVar[Any] = None  # staticmethod(f), f(obj, fh) -> None

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
        self._check_type(obj)
        return self.encode(obj)

    def write_to(self, obj: Any, fh: BinaryIO) -> None:
        """Write ``obj`` with ``encode_to`` (streaming) if set, else :meth:`to_bytes`."""
        encode_to = type(self).encode_to  # a staticmethod: a plain function on the class
        if encode_to is None:
            super().write_to(obj, fh)
            return
        self._check_type(obj)
        encode_to(obj, fh)

    def _check_type(self, obj: Any) -> None:
        if not isinstance(obj, self.stores):
            kinds = self.stores if isinstance(self.stores, tuple) else (self.stores,)
            names = " or ".join(k.__name__ for k in kinds)
            raise TypeError(
                f"the {self.name} formatter writes {names} objects, got {type(obj).__name__}"
            )

    def from_bytes(self, data: bytes, *, source: str) -> Any:
        """Deserialise with :meth:`decode`; it raises a FormatterError naming ``source``."""
        return self.decode(data, source)
