"""Helpers shared by the FITS readers/writers: safe opening and error wrapping."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

from astropy.io import fits

from warping.errors import FormatError

logger = logging.getLogger(__name__)

__all__ = ["hdulist_to_bytes", "open_fits_bytes", "reading"]


@contextlib.contextmanager
def reading(source: str, what: str) -> Iterator[None]:
    """Turn low-level parsing errors into one :class:`FormatError` naming ``source``."""
    try:
        yield
    except FormatError:
        raise
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
        raise FormatError(
            f"{source}: cannot read {what}: {type(err).__name__}: {err}. "
            "The file is corrupt, truncated or not in a supported layout."
        ) from err


def open_fits_bytes(data: bytes, source: str) -> fits.HDUList:
    """Open FITS bytes (optionally gzipped) in memory; :class:`FormatError` if bad/truncated."""
    if data[:2] == b"\x1f\x8b":
        import gzip

        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise FormatError(f"{source}: corrupt gzip-compressed FITS file: {err}") from err
    if len(data) < 2880 or not data.startswith(b"SIMPLE  ="):
        raise FormatError(
            f"{source}: not a FITS file ({len(data)} bytes; FITS files start with 'SIMPLE  =' and "
            "are multiples of 2880 bytes)"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(io.BytesIO(data), lazy_load_hdus=False, memmap=False)
            for hdu in hdul:
                _ = hdu.data  # force reading so truncation shows up here
        except (OSError, ValueError, TypeError, IndexError) as err:
            raise FormatError(
                f"{source}: corrupt or truncated FITS file ({len(data)} bytes): {err}"
            ) from err
    for w in caught:
        msg = str(w.message)
        if "truncated" in msg.lower() or "unexpected end" in msg.lower():
            raise FormatError(f"{source}: truncated FITS file: {msg}")
    if len(data) % 2880 != 0:
        raise FormatError(
            f"{source}: truncated or padded FITS file: {len(data)} bytes is not a multiple of 2880"
        )
    return hdul


def hdulist_to_bytes(hdul: fits.HDUList) -> bytes:
    """Serialise an HDU list (verification fixes silently applied)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        hdul.writeto(buf, output_verify="silentfix")
    return buf.getvalue()
