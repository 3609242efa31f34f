"""Helpers shared by the FITS readers/writers: safe opening and error wrapping."""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from collections.abc import Iterator
from typing import IO, Any, cast

import numpy as np
from astropy.io import fits

from repo_butler.local_reads import ReadBuffer
from warping.errors import FormatError
from warping.row_padding import padded_copy

logger = logging.getLogger(__name__)

__all__ = ["MAX_HEADER_BLOCKS", "check_headers", "hdulist_to_bytes", "open_fits_bytes", "reading"]

BLOCK = 2880
CARD = 80
#: A header longer than this many 2880-byte blocks (36 cards each) is refused as corrupt.
MAX_HEADER_BLOCKS = 1000
_KEY_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _valid_card(card: bytes) -> bool:
    """Whether an 80-byte card is header text: printable ASCII and a FITS keyword (or HIERARCH,
    or blank) left-justified in its first 8 bytes."""
    if any(b < 0x20 or b > 0x7E for b in card):
        return False
    key = card[:8].rstrip(b" ")
    return b" " not in key and all(b in _KEY_CHARS for b in key)


def _int_card(header: bytes, key: bytes, default: int) -> int:
    for i in range(0, len(header), CARD):
        if header[i : i + 8].rstrip(b" ") == key:
            try:
                return int(header[i + 10 : i + 80].split(b"/")[0].strip())
            except ValueError:
                return default
    return default


def _next_xtension(f: IO[bytes], pos: int, source: str, n: int) -> tuple[int, bytes]:
    """The first block at or after ``pos`` that starts an extension header (and the block),
    within :data:`MAX_HEADER_BLOCKS` blocks; ``(end of file, b"")`` when there is none."""
    for _ in range(MAX_HEADER_BLOCKS):
        f.seek(pos)
        block = f.read(BLOCK)
        if not block or block.startswith(b"XTENSION= "):
            return pos, block
        pos += BLOCK
    raise FormatError(
        f"{source}: no header of HDU {n} within {MAX_HEADER_BLOCKS} blocks after the heap of HDU "
        f"{n - 1}: the file is corrupt"
    )


def check_headers(f: IO[bytes], source: str, *, max_hdus: int | None = None) -> int:
    """Walk the HDU headers of a FITS file and refuse junk before astropy parses it.

    Each header must end with an ``END`` card within :data:`MAX_HEADER_BLOCKS` blocks, and no
    block may hold a majority of cards that are not header text: a header overwritten by junk
    (no ``END``) would otherwise make astropy read the following pixels as cards, warning for
    each. Only headers are read (the data are skipped with ``seek``); the file is left at its
    start.

    Parameters
    ----------
    f
        The file, positioned anywhere (seekable).
    source
        Name of the file in messages.
    max_hdus
        Stop after this many HDUs (all by default).

    Returns
    -------
    int
        The number of HDUs walked.

    Raises
    ------
    FormatError
        Naming the file, the HDU and the byte offset of the bad header block.
    """
    pos = 0
    n = 0
    heap = False  # the previous HDU is a table with a heap
    try:
        while max_hdus is None or n < max_hdus:
            f.seek(pos)
            block = f.read(BLOCK)
            if not block:
                break
            if heap and not block.startswith(b"XTENSION= "):
                # astropy writes some copied tables with a heap longer than their PCOUNT says
                # (and reads them back): the next header is found at a later block
                pos, block = _next_xtension(f, pos, source, n)
                if not block:
                    break
            header = bytearray()
            start = pos
            while True:
                if len(block) < BLOCK:
                    raise FormatError(
                        f"{source}: truncated FITS file: HDU {n}'s header at byte {start} ends "
                        f"after {len(header) + len(block)} bytes without an END card"
                    )
                bad = sum(not _valid_card(block[i : i + CARD]) for i in range(0, BLOCK, CARD))
                if bad > BLOCK // CARD // 2:
                    raise FormatError(
                        f"{source}: HDU {n}'s header is not FITS header text at byte {pos} "
                        f"({bad} of {BLOCK // CARD} cards invalid, no END card before): the file "
                        "is corrupt"
                    )
                header += block
                pos += BLOCK
                if any(block[i : i + 8] == b"END     " for i in range(0, BLOCK, CARD)):
                    break
                if len(header) >= MAX_HEADER_BLOCKS * BLOCK:
                    raise FormatError(
                        f"{source}: HDU {n}'s header at byte {start} has no END card in its first "
                        f"{MAX_HEADER_BLOCKS * BLOCK // CARD} cards: the file is corrupt"
                    )
                block = f.read(BLOCK)
            hdr = bytes(header)
            heap = _int_card(hdr, b"PCOUNT", 0) > 0 and hdr.startswith(b"XTENSION= 'BINTABLE")
            naxis = _int_card(hdr, b"NAXIS", 0)
            size = 0
            if naxis > 0:
                size = 1
                for axis in range(1, naxis + 1):
                    size *= _int_card(hdr, b"NAXIS%d" % axis, 0)
                size = (
                    abs(_int_card(hdr, b"BITPIX", 8))
                    // 8
                    * _int_card(hdr, b"GCOUNT", 1)
                    * (_int_card(hdr, b"PCOUNT", 0) + size)
                )
            pos += -(-size // BLOCK) * BLOCK
            n += 1
    finally:
        f.seek(0)
    return n


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


_NATIVE = {8: "u1", 16: "i2", 32: "i4", 64: "i8", -32: "f4", -64: "f8"}


def _native_image_data(hdu: fits.hdu.base._BaseHDU, data: ReadBuffer, source: str) -> bool:
    """Give an uncompressed, unscaled image HDU its data as a native-endian array converted
    straight from the file's bytes (one pass; astropy would copy them twice), in rows padded
    against cache aliasing (:func:`warping.row_padding.empty_rows`). False if the HDU is not
    such an image (astropy then reads it).

    Raises
    ------
    FormatError
        If the file ends before the image's data does.
    """
    header = hdu.header
    if not isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU) or header.get("NAXIS", 0) == 0:
        return False
    if isinstance(hdu, fits.CompImageHDU):  # tile-compressed: astropy decompresses it
        return False
    if header.get("BSCALE", 1) != 1 or header.get("BZERO", 0) != 0 or header.get("BLANK"):
        return False
    code = _NATIVE.get(header.get("BITPIX"))
    if code is None:
        return False
    shape = tuple(int(header[f"NAXIS{k}"]) for k in range(header["NAXIS"], 0, -1))
    count = math.prod(shape)
    offset = int(hdu.fileinfo()["datLoc"])
    dtype = np.dtype(">" + code)
    if offset + count * dtype.itemsize > len(data):
        raise FormatError(
            f"{source}: truncated FITS file: {hdu.name or 'PRIMARY'} needs "
            f"{offset + count * dtype.itemsize} bytes, the file has {len(data)}"
        )
    raw = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)
    hdu.data = padded_copy(raw, dtype.newbyteorder("="))  # rows the warp reads without a copy
    return True


class BufferFile(io.RawIOBase):
    """A read-only, seekable file over a buffer (``bytes`` or a memory map), without copying it
    (``io.BytesIO`` copies anything but ``bytes``)."""

    def __init__(self, data: ReadBuffer) -> None:
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        start = min(self._pos, len(self._view))
        n = min(len(memoryview(buffer).cast("B")), len(self._view) - start)
        memoryview(buffer).cast("B")[:n] = self._view[start : start + n]
        self._pos = start + n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # a slice still alive: released when collected
            self._view.release()
        super().close()


def open_fits_bytes(data: ReadBuffer, source: str) -> fits.HDUList:
    """Open FITS bytes (optionally gzipped; ``bytes`` or a read-only memory map) in memory;
    :class:`FormatError` if bad/truncated. No array of the result refers to ``data``."""
    if data[:2] == b"\x1f\x8b":
        import gzip

        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise FormatError(f"{source}: corrupt gzip-compressed FITS file: {err}") from err
    if len(data) < 2880 or data[:9] != b"SIMPLE  =":
        raise FormatError(
            f"{source}: not a FITS file ({len(data)} bytes; FITS files start with 'SIMPLE  =' and "
            "are multiples of 2880 bytes)"
        )
    buffer = cast(IO[bytes], io.BytesIO(data) if isinstance(data, bytes) else BufferFile(data))
    check_headers(buffer, source)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(buffer, lazy_load_hdus=False, memmap=False)
            for hdu in hdul:
                if not _native_image_data(hdu, data, source):
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
    write_hdulist(hdul, buf)
    return buf.getvalue()


def write_hdulist(hdul: fits.HDUList, fh: IO[bytes]) -> None:
    """Write an HDU list to an open binary file, as :func:`hdulist_to_bytes` would give it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        hdul.writeto(fh, output_verify="silentfix")
