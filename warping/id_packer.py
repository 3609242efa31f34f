"""Integer ids packed from data-ID fields (the ``id`` column of a warp's CCD inputs table).

LSST Gen2 numbered a CCD of HSC ``visit * 200 + ccd``; Gen3 packs the ``visit`` and ``detector``
of a data ID with a dimension packer. :class:`DataIdPacker` does the same from data: an ordered
list of data-ID keys, most significant first, and the number of values each key after the first
may take. The id is the mixed-radix number

    id = (...((v0 * n1 + v1) * n2 + v2) ...) * nk + vk

with ``0 <= vi < ni``; the first value is bounded only by the 63 bits of a signed 64-bit id. A
size of ``2**b`` is a bit field of width ``b``. ``dimensions=("visit", "ccd"), sizes=(200,)``
is the HSC packing. :meth:`DataIdPacker.unpack` inverts :meth:`DataIdPacker.pack` exactly.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from warping.errors import WarpingError

__all__ = ["MAX_ID", "DataIdPacker", "IdPackingError"]

#: Largest id: ids are stored as signed 64-bit integers (FITS ``K``).
MAX_ID = 2**63 - 1
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class IdPackingError(WarpingError, ValueError):
    """A data ID cannot be packed: a field is missing, not an integer, or out of range."""


def _fmt(data_id: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(dict(data_id).items()))


@dataclass(frozen=True)
class DataIdPacker:
    """Pack the integer fields ``dimensions`` of a data ID into one id (mixed radix).

    Parameters
    ----------
    dimensions
        Data-ID keys, most significant first (at least one, no repeats).
    sizes
        Number of values (``0 .. size-1``) of each key after the first: ``len(dimensions) - 1``
        entries, each >= 1.
    where
        The configuration prefix named in error messages (``idGenerator.``).

    Raises
    ------
    IdPackingError
        If the layout is malformed or its fields after the first leave no room for the first.
    """

    dimensions: tuple[str, ...] = ("visit", "ccd")
    sizes: tuple[int, ...] = (200,)
    where: str = "idGenerator."

    def __post_init__(self) -> None:
        dims, sizes, w = tuple(self.dimensions), tuple(self.sizes), self.where
        object.__setattr__(self, "dimensions", dims)
        object.__setattr__(self, "sizes", sizes)
        if not dims:
            raise IdPackingError(f"{w}dimensions is empty; give at least one data-ID key.")
        bad = [d for d in dims if not isinstance(d, str) or not _NAME.match(d)]
        if bad:
            raise IdPackingError(f"{w}dimensions: {bad} are not data-ID key names.")
        if len(set(dims)) != len(dims):
            raise IdPackingError(f"{w}dimensions repeats a key: {list(dims)}.")
        if len(sizes) != len(dims) - 1:
            raise IdPackingError(
                f"{w}sizes has {len(sizes)} entries for {len(dims)} dimensions {list(dims)}; "
                f"give one size per dimension after the first ({len(dims) - 1})."
            )
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
            raise IdPackingError(f"{w}sizes must be integers >= 1, got {list(sizes)}.")
        if self.radix > MAX_ID:
            raise IdPackingError(
                f"{w}sizes {list(sizes)} multiply to {self.radix}, above the 63-bit id range; "
                f"no value of {dims[0]!r} would fit."
            )

    @property
    def radix(self) -> int:
        """Product of :attr:`sizes`: ids of consecutive first-field values are this far apart."""
        out = 1
        for s in self.sizes:
            out *= s
        return out

    @property
    def max_first(self) -> int:
        """Largest value of the first dimension that packs into a 63-bit id, whatever the
        other fields' values."""
        return (MAX_ID + 1) // self.radix - 1

    def pack(self, data_id: Mapping[str, Any]) -> int:
        """The id of ``data_id``.

        Raises
        ------
        IdPackingError
            Naming the data ID when a key is missing, not a non-negative integer, or out of
            range (the id would overflow 63 bits or a field its size).
        """
        values = []
        for dim in self.dimensions:
            if dim not in data_id:
                raise IdPackingError(
                    f"data ID {_fmt(data_id)} has no {dim!r} to pack into its id; set "
                    f"{self.where}dimensions to keys the data IDs have."
                )
            value = data_id[dim]
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise IdPackingError(
                    f"data ID {_fmt(data_id)}: {dim}={value!r} is not a non-negative integer; "
                    f"only integer keys can be packed ({self.where}dimensions)."
                )
            values.append(int(value))
        if values[0] > self.max_first:
            raise IdPackingError(
                f"data ID {_fmt(data_id)}: {self.dimensions[0]}={values[0]} overflows the 63-bit "
                f"id (largest {self.max_first} with {self.where}sizes {list(self.sizes)}); "
                "use smaller sizes."
            )
        out = values[0]
        for i, (dim, size, value) in enumerate(
            zip(self.dimensions[1:], self.sizes, values[1:], strict=True)
        ):
            if value >= size:
                raise IdPackingError(
                    f"data ID {_fmt(data_id)}: {dim}={value} does not fit {self.where}sizes[{i}]"
                    f" = {size} (values 0..{size - 1}); raise that size."
                )
            out = out * size + value
        return out

    def unpack(self, packed: int) -> dict[str, int]:
        """The data-ID fields of an id made by :meth:`pack`.

        Raises
        ------
        IdPackingError
            If ``packed`` is negative or above the 63-bit range.
        """
        if isinstance(packed, bool) or not 0 <= int(packed) <= MAX_ID:
            raise IdPackingError(f"id {packed} is outside 0..2**63-1: not a packed id")
        rest = int(packed)
        out: dict[str, int] = {}
        for dim, size in zip(reversed(self.dimensions[1:]), reversed(self.sizes), strict=True):
            rest, out[dim] = divmod(rest, size)
        out[self.dimensions[0]] = rest
        return {d: out[d] for d in self.dimensions}
