"""Corrupted copies of FITS files, for the fault-injection tests of make-warp (issue 17).

Each function takes a file's bytes and returns them damaged the way a failing disk, an
interrupted copy or a broken producer would leave them. They edit bytes (not astropy objects), so
the damage is exactly what is described, whatever astropy would refuse to write.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

__all__ = ["CORRUPTIONS", "extension_span", "flip_pixel_byte", "set_card_text"]

BLOCK = 2880
CARD = 80


def _header_end(data: bytes, start: int) -> int:
    """Offset just past the header block holding the END card of the header at ``start``."""
    pos = start
    while pos < len(data):
        block = data[pos : pos + BLOCK]
        for i in range(0, BLOCK, CARD):
            if block[i : i + 8] == b"END     ":
                return pos + BLOCK
        pos += BLOCK
    raise ValueError("no END card")


def _value(header: bytes, key: bytes) -> int:
    for i in range(0, len(header), CARD):
        card = header[i : i + CARD]
        if card[:8].rstrip() == key:
            return int(card[10:30].split(b"/")[0])
    return 0


def extension_span(data: bytes, extname: str) -> tuple[int, int, int]:
    """``(header start, data start, data end)`` of the HDU named ``extname``."""
    pos = 0
    while pos < len(data):
        end = _header_end(data, pos)
        header = data[pos:end]
        bitpix, naxis = abs(_value(header, b"BITPIX")), _value(header, b"NAXIS")
        size = bitpix // 8 if naxis else 0
        for n in range(1, naxis + 1):
            size *= _value(header, b"NAXIS%d" % n)
        size += _value(header, b"PCOUNT") * (bitpix // 8 if naxis else 0)
        if re.search(rb"EXTNAME = '%s\s*'" % extname.encode(), header):
            return pos, end, end + size
        pos = end + -(-size // BLOCK) * BLOCK
    raise KeyError(extname)


def set_card_text(data: bytes, extname: str, key: str, text: str) -> bytes:
    """Replace the value field of card ``key`` in HDU ``extname`` by ``text`` (e.g. ``NaN``)."""
    start, end, _ = extension_span(data, extname)
    out = bytearray(data)
    for i in range(start, end, CARD):
        if out[i : i + 8].rstrip() == key.encode():
            out[i + 10 : i + 30] = text.rjust(20).encode()
            return bytes(out)
    raise KeyError(key)


def flip_pixel_byte(data: bytes, extname: str = "IMAGE") -> bytes:
    """Flip one bit of one byte in the middle of ``extname``'s pixels (a valid FITS file still)."""
    _, start, end = extension_span(data, extname)
    out = bytearray(data)
    out[(start + end) // 2] ^= 0x10
    return bytes(out)


def _garbage(n: int, seed: int) -> bytes:
    """Printable junk without an ``END`` card."""
    rng = random.Random(seed)
    text = bytes(rng.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789=/' .-") for _ in range(n))
    return text.replace(b"END", b"ENX")


def garbage_primary_header(data: bytes) -> bytes:
    """The primary header's cards after ``SIMPLE`` overwritten by junk (no END card)."""
    end = _header_end(data, 0)
    return data[:CARD] + _garbage(end - CARD, 1) + data[end:]


def garbage_image_header(data: bytes) -> bytes:
    """The IMAGE extension's header overwritten by junk (no END card)."""
    start, end, _ = extension_span(data, "IMAGE")
    return data[:start] + _garbage(end - start, 2) + data[end:]


def truncated(data: bytes) -> bytes:
    """Cut inside the MASK pixels (an interrupted copy)."""
    _, start, end = extension_span(data, "MASK")
    return data[: (start + end) // 2]


def non_fits(data: bytes) -> bytes:
    """Random bytes of the same length."""
    return random.Random(3).randbytes(len(data))


#: Damage name -> function of the file's bytes.
CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "garbage primary header": garbage_primary_header,
    "empty file": lambda data: b"",
    "non-FITS bytes": non_fits,
    "NaN CRVAL": lambda data: set_card_text(data, "IMAGE", "CRVAL1", "NaN"),
    "NaN PC": lambda data: set_card_text(data, "IMAGE", "PC1_1", "NaN"),
    "truncated": truncated,
    "garbage IMAGE header": garbage_image_header,
    "flipped pixel byte": flip_pixel_byte,
}


def reregister(root: str, dataset_type: str, data_id: dict[str, object]) -> None:
    """Record the current bytes of a dataset's file (rewritten in place by a test) in the
    registry, as if it had been written so: its checksum and size."""
    from pathlib import Path

    from repo_butler import Butler, WrittenDataset
    from repo_butler.checksums import checksum_bytes

    butler = Butler(root)
    ref = butler.get_ref(dataset_type, data_id)
    planned = butler.plan_put(dataset_type, ref.data_id.to_dict(), overwrite=True)
    assert planned.path == ref.path, (planned.path, ref.path)
    data = Path(ref.uri.removeprefix("file://")).read_bytes()
    butler.register([WrittenDataset(planned, ref.uri, len(data), checksum_bytes(data), None, None)])
