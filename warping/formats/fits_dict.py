"""Store a JSON-like dict containing numpy arrays in one FITS binary table, exactly.

The dict's structure (numbers, strings, bools, None, lists, nested dicts) is stored as JSON in a
string column ``JSON``; every numpy array is replaced by ``{"__array__": "ARRn", "dtype": ...,
"shape": [...]}`` and stored, flattened, in a one-row column ``ARRn`` of the matching FITS type.
Floats go through JSON with Python's shortest round-trip repr and arrays as raw binary, so the
round trip is bit-exact. Non-finite floats are encoded as strings ``"nan"``, ``"inf"``, ``"-inf"``.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import numpy as np
from astropy.io import fits

logger = logging.getLogger(__name__)

__all__ = ["bintable_to_dict", "dict_to_bintable", "hdulist_layout"]

_FITS_CODES = {
    "f8": "D",
    "f4": "E",
    "i8": "K",
    "i4": "J",
    "i2": "I",
    "u1": "B",
    "b1": "L",
}
_FLOAT_TAG = "__float__"


def _encode(obj: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(obj, np.ndarray):
        code = obj.dtype.str[1:] if obj.dtype != np.bool_ else "b1"
        if code not in _FITS_CODES:
            raise TypeError(f"cannot store array of dtype {obj.dtype} in FITS")
        name = f"ARR{len(arrays)}"
        arrays.append(obj)
        return {"__array__": name, "dtype": code, "shape": list(obj.shape)}
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, str):
                raise TypeError(f"dict keys must be strings, got {k!r}")
        return {k: _encode(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_encode(v, arrays) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        if not math.isfinite(f):
            return {_FLOAT_TAG: repr(f)}
        return f
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a FITS dict table")


def _decode(obj: Any, row: Any) -> Any:
    if isinstance(obj, dict):
        if "__array__" in obj:
            dtype = np.dtype(obj["dtype"]) if obj["dtype"] != "b1" else np.dtype(bool)
            shape = tuple(obj["shape"])
            if int(np.prod(shape)) == 0:
                return np.zeros(shape, dtype=dtype)
            flat = np.asarray(row[obj["__array__"]])
            return np.array(flat, dtype=dtype.newbyteorder("=")).reshape(shape)
        if set(obj) == {_FLOAT_TAG}:
            return float(obj[_FLOAT_TAG])
        return {k: _decode(v, row) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, row) for v in obj]
    return obj


def dict_to_bintable(d: dict[str, Any], extname: str) -> fits.BinTableHDU:
    """Encode ``d`` as a one-row binary table named ``extname``."""
    arrays: list[np.ndarray] = []
    skeleton = json.dumps(_encode(d, arrays), separators=(",", ":"), allow_nan=False)
    raw = skeleton.encode("utf-8")
    cols = [fits.Column(name="JSON", format=f"{max(len(raw), 1)}A", array=np.array([raw]))]
    for i, arr in enumerate(arrays):
        if arr.size == 0:
            continue
        code = arr.dtype.str[1:] if arr.dtype != np.bool_ else "b1"
        flat = np.ascontiguousarray(arr).reshape(1, -1)
        cols.append(
            fits.Column(name=f"ARR{i}", format=f"{arr.size}{_FITS_CODES[code]}", array=flat)
        )
    hdu = fits.BinTableHDU.from_columns(cols)
    hdu.header["EXTNAME"] = extname
    return hdu


def bintable_to_dict(hdu: fits.BinTableHDU) -> dict[str, Any]:
    """Inverse of :func:`dict_to_bintable`; raises ``ValueError`` on a malformed table."""
    names = hdu.columns.names or []
    if "JSON" not in names or hdu.data is None or len(hdu.data) != 1:
        raise ValueError(
            f"extension {hdu.header.get('EXTNAME')!r} is not a one-row dict table "
            "with a JSON column"
        )
    row = hdu.data[0]
    raw = row["JSON"]
    text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    try:
        skeleton = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"extension {hdu.header.get('EXTNAME')!r}: bad JSON ({err})") from None
    out = _decode(skeleton, row)
    if not isinstance(out, dict):
        raise ValueError(f"extension {hdu.header.get('EXTNAME')!r} does not hold a dict")
    return out


def hdulist_layout(hdul: fits.HDUList) -> dict[str, Any]:
    """The JSON-Schema instance describing a file (see ``schemas/exposure-fits.schema.json``):
    ``{EXTNAME or "PRIMARY": header dict, "<EXTNAME>#content": decoded dict table}``; repeated
    EXTNAMEs get ``#<n>`` suffixes from the second occurrence on."""
    out: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for i, hdu in enumerate(hdul):
        name = "PRIMARY" if i == 0 else str(hdu.header.get("EXTNAME", f"HDU{i}"))
        n = seen.get(name, 0)
        seen[name] = n + 1
        key = name if n == 0 else f"{name}#{n}"
        header = {k: v for k, v in hdu.header.items() if k not in ("COMMENT", "HISTORY", "")}
        out[key] = {
            k: (v if isinstance(v, bool | int | float | str) else str(v)) for k, v in header.items()
        }
        if isinstance(hdu, fits.BinTableHDU) and "JSON" in (hdu.columns.names or []):
            content = bintable_to_dict(hdu)
            arrays: list[np.ndarray] = []
            out[f"{name}#content" if n == 0 else f"{name}#content#{n}"] = _encode(content, arrays)
    return out
