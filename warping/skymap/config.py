"""Skymap configuration (LSST ``BaseSkyMapConfig`` with its defaults)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["PROJECTIONS", "SkyMapConfig"]

PROJECTIONS = ("TAN", "STG")


@dataclass(frozen=True)
class SkyMapConfig:
    """Tract/patch geometry.

    Parameters
    ----------
    patch_inner_dimensions
        Inner patch size ``(width, height)`` in pixels (LSST ``patchInnerDimensions``).
    patch_border
        Border added around each patch's inner bbox, clipped at the tract edge (``patchBorder``).
    tract_overlap_deg
        Extra radius around each tract (``tractOverlap``; LSST default 1 degree).
    pixel_scale_arcsec
        Pixel scale (``pixelScale``; LSST default 0.333, HSC 0.168).
    projection
        ``TAN`` or ``STG`` (LSST default ``STG``; HSC uses ``TAN``).
    rotation_deg
        Rotation of the tract pixel grid (``rotation``).
    """

    patch_inner_dimensions: tuple[int, int] = (4000, 4000)
    patch_border: int = 100
    tract_overlap_deg: float = 1.0
    pixel_scale_arcsec: float = 0.333
    projection: str = "STG"
    rotation_deg: float = 0.0

    def __post_init__(self) -> None:
        dims = tuple(int(v) for v in self.patch_inner_dimensions)
        object.__setattr__(self, "patch_inner_dimensions", dims)
        if len(dims) != 2 or min(dims) < 1:
            raise ValueError(f"patch_inner_dimensions must be two positive ints, got {dims}")
        if self.patch_border < 0:
            raise ValueError(f"patch_border must be >= 0, got {self.patch_border}")
        if self.tract_overlap_deg < 0:
            raise ValueError(f"tract_overlap_deg must be >= 0, got {self.tract_overlap_deg}")
        if not self.pixel_scale_arcsec > 0:
            raise ValueError(f"pixel_scale_arcsec must be > 0, got {self.pixel_scale_arcsec}")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}, got {self.projection!r}")

    @classmethod
    def hsc(cls, **changes: Any) -> SkyMapConfig:
        """HSC's rings settings: TAN, 0.168"/px, 1 arcmin overlap."""
        base = {"projection": "TAN", "pixel_scale_arcsec": 0.168, "tract_overlap_deg": 1.0 / 60}
        return cls(**{**base, **changes})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists for tuples)."""
        d = asdict(self)
        d["patch_inner_dimensions"] = list(self.patch_inner_dimensions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SkyMapConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**d, "patch_inner_dimensions": tuple(d["patch_inner_dimensions"])})
