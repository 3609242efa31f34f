"""A CCD's aperture corrections (afw ``ApCorrMap``): one bounded field per measurement name.

Each entry maps a flux measurement's name (``base_PsfFlux_instFlux``, ``..._instFluxErr``) to a
:class:`~warping.photocalib.ChebyshevBoundedField` over the CCD's parent pixels, as afw persists
them; the only bounded field class seen in real calexps (obs_base, CFHT), so the reader refuses
others. A warp does not apply them: its inputs table carries each CCD's map, so a coadd can build
its own (LSST ``makeCoaddApCorrMap``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from warping.photocalib import ChebyshevBoundedField

__all__ = ["ApCorrMap"]


class ApCorrMap(Mapping[str, ChebyshevBoundedField]):
    """Aperture-correction fields by measurement name (names kept in the order given)."""

    def __init__(self, fields: Mapping[str, ChebyshevBoundedField] | None = None) -> None:
        self._fields: dict[str, ChebyshevBoundedField] = {}
        for name, fld in (fields or {}).items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"an aperture correction needs a non-empty name, got {name!r}")
            if not isinstance(fld, ChebyshevBoundedField):
                raise TypeError(
                    f"aperture correction {name!r} is a {type(fld).__name__}, not a "
                    "ChebyshevBoundedField"
                )
            self._fields[name] = fld

    def __getitem__(self, name: str) -> ChebyshevBoundedField:
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ApCorrMap):
            return NotImplemented
        return list(self._fields) == list(other._fields) and all(
            self._fields[k] == other._fields[k] for k in self._fields
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ApCorrMap({len(self)} fields)"

    def evaluate(self, name: str, x: Any, y: Any) -> np.ndarray:
        """The correction ``name`` at parent positions ``(x, y)``."""
        return self._fields[name].evaluate(x, y)

    def to_dict(self) -> dict[str, Any]:
        """``{"names": [...], "fields": [ChebyshevBoundedField.to_dict(), ...]}`` (order kept;
        coefficients stay numpy arrays, which :func:`warping.coadd_inputs.encode_json` stores
        bit-exactly)."""
        return {
            "names": list(self._fields),
            "fields": [f.to_dict() for f in self._fields.values()],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ApCorrMap:
        """Inverse of :meth:`to_dict`."""
        names, fields = list(d["names"]), list(d["fields"])
        if len(names) != len(fields):
            raise ValueError(f"ApCorrMap dict has {len(names)} names for {len(fields)} fields")
        return cls(
            {n: ChebyshevBoundedField.from_dict(f) for n, f in zip(names, fields, strict=True)}
        )
