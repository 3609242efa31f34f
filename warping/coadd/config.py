"""Configuration of the coadd: a subset of LSST's ``AssembleCoaddConfig``, named in the docs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from warping.coadd.errors import CoaddConfigError

__all__ = ["STATISTICS", "WEIGHTINGS", "CoaddConfig"]

#: Stacking statistics, named as LSST's ``AssembleCoaddConfig.statistic``.
STATISTICS = ("MEAN", "MEANCLIP", "MEDIAN")
#: ``scalar``: one weight per warp, 1/(clipped mean variance) (LSST); ``pixel``: 1/variance.
WEIGHTINGS = ("scalar", "pixel")


@dataclass(frozen=True)
class CoaddConfig:
    """How warps are combined.

    Parameters
    ----------
    statistic
        ``MEAN`` (weighted mean), ``MEANCLIP`` (sigma-clipped weighted mean; LSST's default) or
        ``MEDIAN``.
    weighting
        ``scalar``: one weight per warp, the inverse of the sigma-clipped mean of its variance
        over good pixels (LSST ``AssembleCoaddTask.prepareInputs``); ``pixel``: the inverse of
        each input pixel's variance (each warp's weight in the CoaddPsf and the provenance is
        then the inverse of its mean variance over good pixels, unclipped, counted in the same
        pass over the tiles).
    sigma_clip, clip_iter
        Clipping threshold (standard deviations) and number of clipping passes of ``MEANCLIP``
        and of the scalar weights (LSST ``sigmaClip=3``, ``clipIter=2``).
    tile
        The coadd is computed in tiles of about ``tile**2`` pixels (LSST ``subregionSize``),
        bands of whole rows: memory grows with ``tile**2 x number of warps``, never with whole
        warps.
    bad_mask_planes
        Input pixels with any of these planes are left out (LSST ``badMaskPlanes``).
    mask_propagation_thresholds
        Plane -> fraction: the plane is set on a coadd pixel when the inputs left out that have
        it would have carried more than this fraction of the weight (LSST
        ``maskPropagationThresholds``).
    """

    statistic: str = "MEANCLIP"
    weighting: str = "scalar"
    sigma_clip: float = 3.0
    clip_iter: int = 2
    tile: int = 512
    bad_mask_planes: tuple[str, ...] = ("NO_DATA", "BAD", "SAT", "EDGE")
    mask_propagation_thresholds: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({"SAT": 0.1})
    )

    def __post_init__(self) -> None:
        stat = str(self.statistic).upper()
        if stat not in STATISTICS:
            raise CoaddConfigError(
                f"unknown coadd statistic {self.statistic!r}; choose one of {', '.join(STATISTICS)}"
            )
        object.__setattr__(self, "statistic", stat)
        weighting = str(self.weighting).lower()
        if weighting not in WEIGHTINGS:
            raise CoaddConfigError(
                f"unknown weighting {self.weighting!r}; choose one of {', '.join(WEIGHTINGS)}"
            )
        object.__setattr__(self, "weighting", weighting)
        if not (math.isfinite(self.sigma_clip) and self.sigma_clip > 0):
            raise CoaddConfigError(f"sigma_clip must be a positive number, got {self.sigma_clip}")
        if int(self.clip_iter) < 1:
            raise CoaddConfigError(f"clip_iter must be at least 1, got {self.clip_iter}")
        if int(self.tile) < 1:
            raise CoaddConfigError(f"tile must be a positive number of pixels, got {self.tile}")
        object.__setattr__(self, "clip_iter", int(self.clip_iter))
        object.__setattr__(self, "tile", int(self.tile))
        object.__setattr__(self, "bad_mask_planes", tuple(self.bad_mask_planes))
        thresholds = {str(k): float(v) for k, v in dict(self.mask_propagation_thresholds).items()}
        for plane, value in thresholds.items():
            if not 0.0 <= value <= 1.0:
                raise CoaddConfigError(
                    f"mask_propagation_thresholds[{plane!r}] must be in [0, 1], got {value}"
                )
        object.__setattr__(self, "mask_propagation_thresholds", MappingProxyType(thresholds))

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (recorded in the coadd's provenance)."""
        return {
            "statistic": self.statistic,
            "weighting": self.weighting,
            "sigma_clip": self.sigma_clip,
            "clip_iter": self.clip_iter,
            "tile": self.tile,
            "bad_mask_planes": list(self.bad_mask_planes),
            "mask_propagation_thresholds": dict(self.mask_propagation_thresholds),
        }
