"""Minimal, fast FITS I/O for plain 2-D images and text headers (numpy + stdlib only).

Used by ``rb warp-image`` to avoid importing :mod:`astropy.io.fits` (~0.45 s) in the common case:

* :func:`read_cards` parses a text file of FITS cards (a SWarp ``.head``), as astropy's
  ``Header.fromtextfile`` accepts;
* :func:`read_image` reads the first 2-D image (primary HDU, or the first ``IMAGE`` extension
  after an empty primary) with ``BZERO``/``BSCALE`` applied as astropy does, and returns None for
  anything else (compressed, gzip, random groups, tables, ``BLANK`` integers...) so the caller
  can fall back to astropy;
* :func:`write_image` writes a single-HDU image atomically (temporary file + ``os.replace``).

Malformed input raises :class:`warping.errors.FormatError` naming the file (and line/card).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = ["FitsCards", "Unparsed", "read_cards", "read_image", "write_image"]

logger = logging.getLogger(__name__)

BLOCK = 2880
CARD = 80
_COMMENTARY = {"COMMENT", "HISTORY", ""}
_STRUCTURAL = {"SIMPLE", "BITPIX", "NAXIS", "EXTEND", "BZERO", "BSCALE", "END", "XTENSION"}
_STRUCTURAL_RE = re.compile(r"^(NAXIS\d+|PCOUNT|GCOUNT|GROUPS|BLANK)$")
_KEY_RE = re.compile(r"^[A-Z0-9_-]{0,8}$")
_INT_RE = re.compile(r"^[+-]?\d+$")
_FLOAT_RE = re.compile(r"^[+-]?(\.\d+|\d+(\.\d*)?)([DEde][+-]?\d+)?$")
_BITPIX = {8: "u1", 16: "i2", 32: "i4", 64: "i8", -32: "f4", -64: "f8"}
# astropy's pseudo-unsigned (and signed-byte) conventions: BSCALE = 1 and these BZERO values
_PSEUDO = {(8, -128): np.int8, (16, 1 << 15): np.uint16, (32, 1 << 31): np.uint32}
_PSEUDO[(64, 1 << 63)] = np.uint64


def _printable(text: str) -> bool:
    """Only printable ASCII (0x20-0x7E), as FITS headers require."""
    return text.isascii() and text.isprintable()


def _format_error(message: str) -> Exception:
    """A :class:`warping.errors.FormatError` (imported lazily: it pulls in repo_butler)."""
    from warping.errors import FormatError

    return FormatError(message)


class Unparsed(str):
    """The raw value text of a card whose value could not be parsed (only from FITS files)."""


class FitsCards(Mapping[str, Any]):
    """Ordered FITS cards: a keyword -> value mapping (first occurrence wins, as astropy).

    ``cards`` keeps every card in order as ``(keyword, value, comment)``, including ``COMMENT``
    and ``HISTORY`` (value = their text), which the mapping itself does not contain.
    """

    def __init__(self, cards: Iterable[tuple[str, Any, str]] = ()) -> None:
        self.cards: list[tuple[str, Any, str]] = []
        self._index: dict[str, int] = {}
        for card in cards:
            self.append(*card)

    def append(self, key: str, value: Any, comment: str = "") -> None:
        """Add a card at the end (keywords are upper-cased)."""
        key = key.upper()
        if key not in _COMMENTARY and key not in self._index:
            self._index[key] = len(self.cards)
        self.cards.append((key, value, comment))

    def __getitem__(self, key: str) -> Any:
        return self.cards[self._index[key.upper()]][1]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.upper() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def comment(self, key: str) -> str:
        """The comment of the first card ``key``."""
        return str(self.cards[self._index[key.upper()]][2])

    def __repr__(self) -> str:
        return f"FitsCards({len(self.cards)} cards)"


# ---- card parsing ----------------------------------------------------------------------------


def _parse_value(text: str) -> tuple[Any, str]:
    """Value and comment from the text after ``=``; raises ValueError when malformed."""
    s = text.lstrip(" ")
    if s.startswith("'"):
        i = 1
        chars = []
        while True:
            j = s.find("'", i)
            if j < 0:
                raise ValueError("string value without a closing quote")
            chars.append(s[i:j])
            if s.startswith("''", j):
                chars.append("'")
                i = j + 2
                continue
            break
        rest = s[j + 1 :].strip()
        if rest and not rest.startswith("/"):
            raise ValueError(f"unexpected text {rest!r} after the string value")
        return "".join(chars).rstrip(" "), rest[1:].strip() if rest else ""
    value_text, _, comment = s.partition("/")
    token = value_text.strip()
    comment = comment.strip()
    if token == "":
        return None, comment
    if token == "T":
        return True, comment
    if token == "F":
        return False, comment
    if _INT_RE.match(token):
        return int(token), comment
    if _FLOAT_RE.match(token):
        return float(token.replace("D", "E").replace("d", "e")), comment
    if token.startswith("(") and token.endswith(")"):
        parts = token[1:-1].split(",")
        if len(parts) == 2:
            re_, im = (p.strip() for p in parts)
            if all(_FLOAT_RE.match(p) or _INT_RE.match(p) for p in (re_, im)):
                return complex(float(re_.replace("D", "E")), float(im.replace("D", "E"))), comment
    raise ValueError(f"cannot parse the value {token!r}")


def _split_card(image: str) -> tuple[str, str | None]:
    """``(keyword, value_text)``; value_text is None for commentary / valueless cards."""
    if image[:9].upper() == "HIERARCH ":
        hkey, sep, rest = image[9:].partition("=")
        if not sep:
            raise ValueError("HIERARCH card without '='")
        return hkey.strip().upper(), rest
    head = image[:8].rstrip(" ").upper()
    if head in _COMMENTARY or head == "CONTINUE":
        return head, None
    eq = image.find("=", 0, 10)
    if eq >= 0:
        key = image[:eq].strip().upper()
        if not key or not _KEY_RE.match(key):
            raise ValueError(f"invalid keyword {image[:eq].strip()!r}")
        return key, image[eq + 1 :]
    if not _KEY_RE.match(head):
        raise ValueError(f"invalid keyword {head!r}")
    return head, None


class _CardParser:
    """Turns card images into :class:`FitsCards`, joining CONTINUE long strings."""

    def __init__(self, source: str, strict: bool) -> None:
        self.source = source
        self.strict = strict
        self.cards = FitsCards()
        self._long: list[Any] | None = None  # [key, parts, comment] of an open long string

    def _flush(self) -> None:
        if self._long is not None:
            key, parts, comment = self._long
            self.cards.append(key, "".join(parts), comment)
            self._long = None

    def add(self, image: str, where: str) -> None:
        if not _printable(image):
            raise _format_error(f"{self.source}: {where}: non-ASCII or control character in card")
        try:
            key, value_text = _split_card(image)
            if key == "CONTINUE" and self._long is not None:
                value, comment = _parse_value(image[8:])
                if not isinstance(value, str):
                    raise ValueError("CONTINUE card without a string value")
                self._long[1].append(value[:-1] if value.endswith("&") else value)
                if comment:
                    self._long[2] = (self._long[2] + " " + comment).strip()
                if not value.endswith("&"):
                    self._flush()
                return
            self._flush()
            if value_text is None:
                if key in _COMMENTARY or key == "CONTINUE":
                    self.cards.append(key, image[8:].rstrip(" "), "")
                else:
                    self.cards.append(key, None, "")
                return
            value, comment = _parse_value(value_text)
        except ValueError as err:
            if self.strict:
                raise _format_error(
                    f"{self.source}: {where}: malformed card {image.rstrip()!r} ({err}); "
                    "fix or remove it"
                ) from None
            self._flush()
            key = image[:8].strip().upper()
            self.cards.append(key, Unparsed(image[10:].strip()), "")
            return
        if isinstance(value, str) and value.endswith("&"):
            self._long = [key, [value[:-1]], comment]
            return
        self.cards.append(key, value, comment)

    def finish(self) -> FitsCards:
        self._flush()
        return self.cards


def read_cards(path: str | Path) -> FitsCards:
    """Parse a text file of FITS cards, one per line (a SWarp ``.head`` / astropy text header).

    ``END`` is optional (parsing stops there); ``COMMENT``/``HISTORY``/blank cards are kept in
    :attr:`FitsCards.cards`; ``CONTINUE`` long strings are joined; strings with ``''`` escapes,
    logicals ``T``/``F``, integers, floats with ``E`` or ``D`` exponents and complex values
    ``(re, im)`` are understood.

    Parameters
    ----------
    path
        Text file.

    Returns
    -------
    FitsCards
        Keyword -> value mapping (upper-case keywords) keeping the card order.

    Raises
    ------
    warping.errors.FormatError
        If the file cannot be read, or a card is malformed (the message names the path and
        line).
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise _format_error(f"{path}: cannot read the header file ({err.strerror})") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as err:
        bad_line = raw[: err.start].count(b"\n") + 1
        raise _format_error(f"{path}: line {bad_line}: non-ASCII byte in a FITS header") from None
    parser = _CardParser(str(path), strict=True)
    for number, line in enumerate(text.splitlines(), start=1):
        image = line.rstrip("\r\n")
        if image.rstrip(" ") == "":
            continue
        if image[:8].rstrip(" ").upper() == "END" and image[8:].strip() == "":
            break
        parser.add(image, f"line {number}")
    return parser.finish()


# ---- FITS files --------------------------------------------------------------------------------


def _read_header(f: BinaryIO, source: str, first: bool) -> tuple[FitsCards, int] | None:
    """Parse one header from the current position: ``(cards, data_offset)``; None at EOF."""
    parser = _CardParser(source, strict=False)
    nblock = 0
    while True:
        block = f.read(BLOCK)
        if not block and nblock == 0 and not first:
            return None
        if first and nblock == 0 and not block.startswith(b"SIMPLE  ="):
            raise _format_error(f"{source}: not a FITS file (does not start with SIMPLE)")
        if len(block) < BLOCK:
            raise _format_error(f"{source}: truncated header (no END card); the file is damaged")
        try:
            text = block.decode("ascii")
        except UnicodeDecodeError:
            raise _format_error(f"{source}: non-ASCII bytes in a header block") from None
        nblock += 1
        for i in range(0, BLOCK, CARD):
            image = text[i : i + CARD]
            if image[:8] == "END     ":
                return parser.finish(), f.tell()
            parser.add(image, f"header card {(nblock - 1) * 36 + i // CARD + 1}")


def _int_card(cards: FitsCards, key: str) -> int | None:
    value = cards.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _data_bytes(cards: FitsCards) -> int | None:
    """Size of the data unit (unpadded) from BITPIX/NAXISn/PCOUNT/GCOUNT, None if malformed."""
    bitpix, naxis = _int_card(cards, "BITPIX"), _int_card(cards, "NAXIS")
    if bitpix not in _BITPIX or naxis is None or naxis < 0:
        return None
    if naxis == 0:
        return 0
    size = 1
    for i in range(1, naxis + 1):
        n = _int_card(cards, f"NAXIS{i}")
        if n is None or n < 0:
            return None
        size *= n
    pcount = _int_card(cards, "PCOUNT") or 0
    gcount = _int_card(cards, "GCOUNT")
    return abs(bitpix) // 8 * (gcount if gcount is not None else 1) * (pcount + size)


def read_image(
    path: str | Path, *, accept: Callable[[FitsCards], bool] | None = None
) -> tuple[np.ndarray, FitsCards] | None:
    """The first 2-D image of a FITS file and its header, or None if this reader cannot.

    The image is the primary HDU's, or that of the first ``IMAGE`` extension when the primary
    has ``NAXIS = 0``. ``BZERO``/``BSCALE`` are applied as astropy does: ``BSCALE = 1`` with
    ``BZERO = 2**(n-1)`` gives unsigned integers (``-128`` for 8 bits gives int8); other
    scalings give float32 for 8/16-bit integers, float64 for 32/64-bit, and scale float data
    in its own type. Data come back native-endian and writeable.

    Parameters
    ----------
    path
        FITS file.
    accept
        Called with the image header before the data are read; if it returns False the data
        are not read and the result is None (e.g. a WCS only astropy can handle).

    Returns
    -------
    (numpy.ndarray, FitsCards) or None
        None for gzip/bzip2 files, tile-compressed images, random groups, tables, integer data
        with ``BLANK``, images that are not 2-D: the caller should fall back to astropy.

    Raises
    ------
    warping.errors.FormatError
        If the file cannot be opened, is not FITS, or is truncated.
    """
    source = str(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as err:
        raise _format_error(f"{source}: cannot open the FITS file ({err.strerror})") from None
    with f:
        magic = f.read(3)
        if magic[:2] in (b"\x1f\x8b", b"BZ") or magic == b"PK\x03":
            return None  # compressed container: astropy decompresses
        f.seek(0)
        got = _read_header(f, source, first=True)
        assert got is not None  # first header: errors raise
        cards, offset = got
        if cards.get("GROUPS") is True:
            return None
        if _int_card(cards, "NAXIS") == 0:
            got = _read_header(f, source, first=False)
            if got is None:
                return None
            cards, offset = got
            xtension = cards.get("XTENSION")
            if not isinstance(xtension, str) or xtension.strip() != "IMAGE":
                return None
            if _int_card(cards, "PCOUNT") not in (0, None) or _int_card(cards, "GCOUNT") not in (
                1,
                None,
            ):
                return None
        if accept is not None and not accept(cards):
            return None
        return _read_data(f, cards, offset, source)


def _read_data(
    f: BinaryIO, cards: FitsCards, offset: int, source: str
) -> tuple[np.ndarray, FitsCards] | None:
    bitpix = _int_card(cards, "BITPIX")
    nx, ny = _int_card(cards, "NAXIS1"), _int_card(cards, "NAXIS2")
    if _int_card(cards, "NAXIS") != 2 or bitpix not in _BITPIX or not nx or not ny:
        return None
    if nx < 0 or ny < 0:
        raise _format_error(f"{source}: negative NAXIS1/NAXIS2 ({nx}x{ny})")
    bscale = cards.get("BSCALE", 1.0)
    bzero = cards.get("BZERO", 0)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (bscale, bzero)):
        return None
    if bitpix > 0 and "BLANK" in cards:
        return None  # astropy's BLANK -> NaN conversion rules: let it handle them
    dtype = np.dtype(_BITPIX[bitpix])
    nbytes = nx * ny * dtype.itemsize
    if os.fstat(f.fileno()).st_size < offset + nbytes:
        raise _format_error(
            f"{source}: truncated data ({ny}x{nx} BITPIX={bitpix} needs {nbytes} bytes at "
            f"offset {offset}); the file is damaged"
        )
    data = np.empty((ny, nx), dtype=dtype)
    f.seek(offset)
    view = memoryview(data.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
    got = 0
    while got < nbytes:
        n = f.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            raise _format_error(f"{source}: truncated data; the file is damaged")
        got += n
    if dtype.itemsize > 1 and sys.byteorder == "little":
        data.byteswap(inplace=True)  # big-endian on disk -> native
    return _scale(data, bitpix, float(bscale), bzero), cards


def _scale(data: np.ndarray, bitpix: int, bscale: float, bzero: float) -> np.ndarray:
    """Apply BSCALE/BZERO as astropy's ``ImageHDU.data`` does."""
    if bscale == 1.0 and bzero == 0:
        return data
    pseudo = None
    if bscale == 1.0 and float(bzero).is_integer():
        pseudo = _PSEUDO.get((bitpix, int(bzero)))
    if pseudo is not None:  # flipping the top bit adds/subtracts 2**(n-1) modulo 2**n
        out = data.view(pseudo)
        out ^= np.array(1 << (8 * out.itemsize - 1), dtype=np.uint64).astype(pseudo)
        return out
    if bitpix > 0:
        data = data.astype(np.float32 if bitpix <= 16 else np.float64)
    if bscale != 1.0:
        np.multiply(data, bscale, out=data)
    if bzero != 0:
        data += bzero
    return data


# ---- writing ---------------------------------------------------------------------------------


def _format_value(value: Any, key: str) -> str:
    if isinstance(value, bool | np.bool_):
        return f"{'T' if value else 'F':>20}"
    if isinstance(value, int | np.integer):
        return f"{int(value):>20}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if not np.isfinite(v):
            raise _format_error(f"card {key}: FITS cannot store the non-finite value {v}")
        text = repr(v).upper()
        if "." not in text and "E" not in text:
            text += ".0"
        return f"{text:>20}"
    if isinstance(value, str):
        if not _printable(value):
            raise _format_error(f"card {key}: string value must be printable ASCII")
        quoted = "'" + f"{value.replace(chr(39), chr(39) * 2):8}" + "'"
        if len(quoted) > 70:
            raise _format_error(f"card {key}: string value too long for one card ({len(value)})")
        return f"{quoted:20}"
    if value is None:
        return " " * 20
    raise _format_error(f"card {key}: cannot write a value of type {type(value).__name__}")


def _format_card(key: str, value: Any, comment: str = "") -> str:
    key = key.upper()
    if not _KEY_RE.match(key):
        raise _format_error(f"invalid FITS keyword {key!r} (1-8 characters A-Z 0-9 _ -)")
    if key in _COMMENTARY:
        text = str(value if value is not None else comment)
        return f"{key:8}{text}"[:CARD].ljust(CARD)
    image = f"{key:8}= {_format_value(value, key)}"
    if comment:
        image += f" / {comment}"
    if not _printable(image):
        raise _format_error(f"card {key}: comment must be printable ASCII")
    return image[:CARD].ljust(CARD)


def _header_bytes(cards: list[tuple[str, Any, str]]) -> bytes:
    text = "".join(_format_card(*c) for c in cards) + "END".ljust(CARD)
    text += " " * (-len(text) % BLOCK)
    return text.encode("ascii")


_WRITE_TYPES: dict[str, tuple[int, int | None]] = {
    "float32": (-32, None),
    "float64": (-64, None),
    "uint8": (8, None),
    "int16": (16, None),
    "int32": (32, None),
    "int64": (64, None),
    "int8": (8, -128),
    "uint16": (16, 1 << 15),
    "uint32": (32, 1 << 31),
    "uint64": (64, 1 << 63),
}


def write_image(
    path: str | Path, data: np.ndarray, cards: Iterable[tuple[str, Any, str]] = ()
) -> None:
    """Write ``data`` as a single-HDU FITS image with extra header ``cards``, atomically.

    Parameters
    ----------
    path
        Output file; written to a temporary file in the same directory, then renamed over it.
    data
        2-D array of float32/64, (u)int8/16/32/64 (unsigned and int8 stored with the usual
        ``BZERO`` offset, as astropy does).
    cards
        ``(keyword, value, comment)`` written after ``SIMPLE``/``BITPIX``/``NAXIS*``; structural
        keywords among them (``SIMPLE``, ``BITPIX``, ``NAXISn``, ``BZERO``, ``END``...) are skipped.

    Raises
    ------
    warping.errors.FormatError
        For an unsupported array or card (nothing is written).
    """
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise _format_error(f"{path}: write_image needs a 2-D array, got shape {arr.shape}")
    kind = _WRITE_TYPES.get(arr.dtype.name)
    if kind is None:
        raise _format_error(f"{path}: cannot write {arr.dtype} pixels; use float32 or float64")
    bitpix, bzero = kind
    ny, nx = arr.shape
    head: list[tuple[str, Any, str]] = [
        ("SIMPLE", True, "conforms to FITS standard"),
        ("BITPIX", bitpix, "array data type"),
        ("NAXIS", 2, "number of array dimensions"),
        ("NAXIS1", nx, ""),
        ("NAXIS2", ny, ""),
    ]
    if bzero is not None:
        head += [("BSCALE", 1, ""), ("BZERO", bzero, "")]
    for key, value, comment in cards:
        k = key.upper()
        if k in _STRUCTURAL or _STRUCTURAL_RE.match(k):
            continue
        head.append((k, value, comment))
    header = _header_bytes(head)
    out = Path(path)
    fd, tmp = tempfile.mkstemp(dir=out.parent or ".", prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            _write_data(f, arr, bzero)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    logger.debug("wrote %s (%dx%d, BITPIX=%d)", out, nx, ny, bitpix)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_data(f: BinaryIO, arr: np.ndarray, bzero: int | None) -> None:
    """Big-endian data in row chunks of ~4 MB (no full-size copy), then zero padding."""
    big = arr.dtype.newbyteorder(">")
    rows = max(1, (1 << 20) // max(1, arr.shape[1] * arr.dtype.itemsize))
    # one ~1 MB big-endian buffer reused for every chunk (stays in cache, no page faults)
    buf = np.empty((min(rows, arr.shape[0]), arr.shape[1]), dtype=big)
    for start in range(0, arr.shape[0], rows):
        chunk = arr[start : start + rows]
        if bzero is not None:  # unsigned -> signed with offset (int8: the reverse)
            stored = np.dtype("u1" if arr.dtype == np.int8 else f"i{arr.dtype.itemsize}")
            unsigned = np.dtype(f"u{arr.dtype.itemsize}")
            flip = np.array(1 << (8 * arr.dtype.itemsize - 1), dtype=np.uint64).astype(unsigned)
            chunk = (chunk.view(unsigned) ^ flip).view(stored).astype(stored.newbyteorder(">"))
        elif arr.dtype.byteorder == ">" and chunk.flags.c_contiguous:
            pass  # already big-endian
        else:
            out = buf[: chunk.shape[0]]
            np.copyto(out, chunk)
            chunk = out
        f.write(memoryview(chunk.reshape(-1).view(np.uint8)))  # type: ignore[arg-type]
    nbytes = arr.size * arr.dtype.itemsize
    f.write(b"\0" * (-nbytes % BLOCK))
