"""Named mask planes: bit numbers belong to each image, never to global state."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["DEFAULT_MASK_PLANES", "MaskPlanes"]

#: afw's initial planes, in afw's order (BAD=0 ... NO_DATA=8, VIGNETTED=9, STREAK=10).
DEFAULT_MASK_PLANES: tuple[str, ...] = (
    "BAD",
    "SAT",
    "INTRP",
    "CR",
    "EDGE",
    "DETECTED",
    "DETECTED_NEGATIVE",
    "SUSPECT",
    "NO_DATA",
    "VIGNETTED",
    "STREAK",
)


@dataclass(frozen=True)
class MaskPlanes:
    """An immutable mapping from plane name to bit number for one mask array."""

    _bits: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bits = dict(self._bits)
        seen: dict[int, str] = {}
        for name, bit in bits.items():
            if not 0 <= bit < 31:
                raise ValueError(f"Mask plane {name!r} has bit {bit}; bits must be in 0..30")
            if bit in seen:
                raise ValueError(f"Mask planes {seen[bit]!r} and {name!r} share bit {bit}")
            seen[bit] = name
        object.__setattr__(self, "_bits", MappingProxyType(bits))

    @classmethod
    def default(cls) -> MaskPlanes:
        """afw's default planes (``BAD=0`` ... ``STREAK=10``)."""
        return cls({n: i for i, n in enumerate(DEFAULT_MASK_PLANES)})

    @property
    def bits(self) -> Mapping[str, int]:
        """Read-only view ``{name: bit}``."""
        return self._bits

    def __contains__(self, name: object) -> bool:
        return name in self._bits

    def __iter__(self) -> Iterator[str]:
        return iter(self._bits)

    def __len__(self) -> int:
        return len(self._bits)

    def bit(self, name: str) -> int:
        """Bit number of plane ``name``; raise ``KeyError`` listing the known planes."""
        try:
            return self._bits[name]
        except KeyError:
            raise KeyError(
                f"Unknown mask plane {name!r}; this mask has {sorted(self._bits)}. "
                "Add it with MaskPlanes.with_plane()."
            ) from None

    def bitmask(self, *names: str) -> int:
        """OR of the bit values of ``names`` (unknown names raise ``KeyError``)."""
        value = 0
        for n in names:
            value |= 1 << self.bit(n)
        return value

    def bitmask_if_present(self, *names: str) -> int:
        """OR of the bit values of those ``names`` this mask has; others are ignored."""
        value = 0
        for n in names:
            if n in self._bits:
                value |= 1 << self._bits[n]
        return value

    def with_plane(self, name: str) -> MaskPlanes:
        """A copy with ``name`` added at the lowest free bit (no-op if present)."""
        if name in self._bits:
            return self
        used = set(self._bits.values())
        bit = next(b for b in range(31) if b not in used)
        return MaskPlanes({**self._bits, name: bit})

    def names(self, value: int) -> list[str]:
        """Names of the planes set in ``value``."""
        return [n for n, b in self._bits.items() if value & (1 << b)]
