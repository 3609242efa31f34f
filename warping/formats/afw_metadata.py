"""The exposure metadata of afw-layout files written by :mod:`warping.formats.afw_exposure_write`.

afw keeps an exposure's metadata as primary-header cards, so LSST tools see them there. A value
goes to a card when it reads back unchanged (a FITS keyword, a finite number, a bool or a short
printable string that no layout card already uses); ``RBMDKEYS`` lists those keys (JSON). The
rest (nested values, NaN, other keys) is one JSON object in ``RBMDJSON``. Our reader takes the
metadata from these two cards only, so it round-trips exactly.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from astropy.io import fits

from warping.errors import FormatError

__all__ = ["METADATA_CARDS", "metadata_from_header", "metadata_to_header"]

#: The cards holding the metadata's keys and its JSON part.
METADATA_CARDS = ("RBMDKEYS", "RBMDJSON")


def _card(header: fits.Header, key: str, value: Any, comment: str = "") -> None:
    header[key if len(key) <= 8 else f"HIERARCH {key}"] = (value, comment)


def _header_safe(key: str, value: Any) -> bool:
    """Whether ``key = value`` is one card that reads back unchanged."""
    if not re.fullmatch(r"[A-Z0-9_-]{1,60}", key) or key.startswith(("RBMD", "HIERARCH")):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        fits_text = value == value.strip() and value.isprintable() and value.isascii()
        return fits_text and len(key) + len(value) <= 60  # one card, no CONTINUE
    return isinstance(value, bool | int) and abs(int(value)) < 2**63


def metadata_to_header(header: fits.Header, metadata: Mapping[str, Any]) -> None:
    """Add ``metadata`` to a primary ``header`` already holding the layout's own cards."""
    in_header, as_json = [], {}
    for key, value in metadata.items():
        if _header_safe(key, value) and key.upper() not in header:
            _card(header, key, value)
            in_header.append(key)
        else:
            as_json[key] = value
    if in_header:
        _card(header, "RBMDKEYS", json.dumps(in_header), "metadata keys (repo-butler)")
    if as_json:
        _card(header, "RBMDJSON", json.dumps(as_json, sort_keys=True), "other metadata (JSON)")


def metadata_from_header(header: fits.Header, source: str) -> dict[str, Any]:
    """Inverse of :func:`metadata_to_header`.

    Raises
    ------
    FormatError
        If the cards are not the JSON written (the message names ``source``).
    """
    try:
        out = {k: header[k] for k in json.loads(str(header.get("RBMDKEYS", "[]")))}
        out.update(json.loads(str(header.get("RBMDJSON", "{}"))))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise FormatError(
            f"{source}: metadata cards RBMDKEYS/RBMDJSON are corrupt: {err}"
        ) from None
    return out
