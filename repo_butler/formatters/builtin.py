"""Formatters shipped with repo_butler: JSON, YAML, FITS binary table, FITS image array."""

from __future__ import annotations

import io
import json
import logging
import warnings
from typing import Any, ClassVar

from repo_butler.errors import FormatterError
from repo_butler.formatters.base import Formatter

__all__ = ["FitsArrayFormatter", "FitsTableFormatter", "JsonFormatter", "YamlFormatter"]

logger = logging.getLogger(__name__)


def _corrupt(source: str, kind: str, data: bytes, err: Exception) -> FormatterError:
    out = FormatterError(f"{source} is not a valid {kind} file ({err}); re-create or re-ingest it")
    out.add_note(f"first bytes: {data[:40]!r}")
    return out


class JsonFormatter(Formatter):
    """JSON documents (any ``json``-serialisable object; keys sorted, UTF-8)."""

    name: ClassVar[str] = "json"
    extension: ClassVar[str] = ".json"

    def to_bytes(self, obj: Any) -> bytes:
        """Serialise ``obj`` as UTF-8 JSON with sorted keys."""
        try:
            return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        except (TypeError, ValueError) as err:
            raise FormatterError(f"cannot write {type(obj).__name__} as JSON: {err}") from err

    def from_bytes(self, data: bytes, *, source: str) -> Any:
        """Parse JSON bytes read from ``source``."""
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise _corrupt(source, "JSON", data, err) from err


class YamlFormatter(Formatter):
    """YAML documents (``yaml.safe_dump`` / ``yaml.safe_load``; never executes tags)."""

    name: ClassVar[str] = "yaml"
    extension: ClassVar[str] = ".yaml"

    def to_bytes(self, obj: Any) -> bytes:
        """Serialise ``obj`` with ``yaml.safe_dump``."""
        import yaml

        try:
            return yaml.safe_dump(obj, sort_keys=True).encode()
        except yaml.YAMLError as err:
            raise FormatterError(f"cannot write {type(obj).__name__} as YAML: {err}") from err

    def from_bytes(self, data: bytes, *, source: str) -> Any:
        """Parse YAML bytes read from ``source`` with ``yaml.safe_load``."""
        import yaml

        try:
            return yaml.safe_load(data)
        except (UnicodeDecodeError, yaml.YAMLError) as err:
            raise _corrupt(source, "YAML", data, err) from err


def _read_hdus(data: bytes, source: str) -> Any:
    from astropy.io import fits

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            hdul = fits.HDUList.fromstring(data)
            hdul.verify("exception")
            for hdu in hdul:
                _ = hdu.data  # force the (lazy) read so truncation shows up here
    except Exception as err:  # astropy raises many types for corrupt input
        raise _corrupt(source, "FITS", data, err) from err
    return hdul


class FitsTableFormatter(Formatter):
    """A table as a FITS binary table in HDU 1 (returns an :class:`astropy.table.Table`).

    Accepts an ``astropy.table.Table``, a numpy structured array or a mapping of column name to
    1-D array.
    """

    name: ClassVar[str] = "fits_table"
    extension: ClassVar[str] = ".fits"

    def to_bytes(self, obj: Any) -> bytes:
        """Write ``obj`` as a primary HDU plus one BINTABLE extension."""
        from astropy.io import fits
        from astropy.table import Table

        try:
            table = obj if isinstance(obj, Table) else Table(obj)
            hdu = fits.table_to_hdu(table)
        except (TypeError, ValueError) as err:
            raise FormatterError(
                f"cannot write {type(obj).__name__} as a FITS table: {err}"
            ) from err
        buf = io.BytesIO()
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
        return buf.getvalue()

    def from_bytes(self, data: bytes, *, source: str) -> Any:
        """Read the first table HDU from FITS bytes."""
        from astropy.io import fits
        from astropy.table import Table

        hdul = _read_hdus(data, source)
        for hdu in hdul:
            if isinstance(hdu, fits.BinTableHDU | fits.TableHDU):
                return Table.read(hdu)
        raise FormatterError(f"{source} has no table HDU; it is not a fits_table dataset")


_FITS_BLOCK = 2880
_FITS_NATIVE = frozenset({("u", 1), ("i", 2), ("i", 4), ("i", 8), ("f", 4), ("f", 8)})
"""(kind, itemsize) of the dtypes FITS stores as they are (BITPIX 8, 16, 32, 64, -32, -64)."""


class FitsArrayFormatter(Formatter):
    """An n-dimensional numpy array as the primary FITS image HDU."""

    name: ClassVar[str] = "fits_array"
    extension: ClassVar[str] = ".fits"

    def to_bytes(self, obj: Any) -> bytes:
        """Write ``obj`` (array-like, numeric) as a primary image HDU."""
        import numpy as np
        from astropy.io import fits

        array = np.asarray(obj)
        if array.dtype.kind not in "biuf":
            raise FormatterError(
                f"cannot write an array of dtype {array.dtype} as a FITS image; "
                "use a bool, integer or float array"
            )
        if array.dtype.kind == "b":
            array = array.astype(np.uint8)
        hdu = fits.PrimaryHDU(array)
        if array.size == 0 or (array.dtype.kind, array.dtype.itemsize) not in _FITS_NATIVE:
            buf = io.BytesIO()
            hdu.writeto(buf)
            return buf.getvalue()
        # Same bytes as ``hdu.writeto`` (tested), in one byte-swapping pass into the output
        # buffer instead of astropy's swap-write-swap-back through a BytesIO.
        header = hdu.header.tostring().encode("ascii")
        out = bytearray(len(header) + -(-array.nbytes // _FITS_BLOCK) * _FITS_BLOCK)
        out[: len(header)] = header
        big_endian = array.dtype.newbyteorder(">")
        dest = np.frombuffer(out, dtype=big_endian, count=array.size, offset=len(header))
        dest.reshape(array.shape)[...] = array
        return bytes(out)

    def from_bytes(self, data: bytes, *, source: str) -> Any:
        """Read the primary image HDU as a numpy array (native byte order)."""
        import numpy as np

        hdul = _read_hdus(data, source)
        array = hdul[0].data
        if array is None:
            raise FormatterError(f"{source} has an empty primary HDU; it is not a fits_array")
        return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
