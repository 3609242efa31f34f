"""The in-memory model of a calibrated exposure: image, mask, variance and their calibrations."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.wcs import WCS

from warping.geom import Box2I
from warping.masks import MaskPlanes

if TYPE_CHECKING:
    from warping.psf.base import Psf

logger = logging.getLogger(__name__)

__all__ = ["Exposure", "VisitInfo"]


@dataclass(frozen=True)
class VisitInfo:
    """Observation metadata of one exposure (afw ``VisitInfo`` subset)."""

    exposure_time: float = float("nan")  # seconds
    mid_time_mjd: float = float("nan")  # MJD (TAI) of mid-exposure
    boresight_ra: float = float("nan")  # degrees
    boresight_dec: float = float("nan")  # degrees
    rotation_angle: float = float("nan")  # degrees, sky position angle of the focal plane
    airmass: float = float("nan")


@dataclass(eq=False)
class Exposure:
    """A masked image with WCS, PSF, photometric calibration and metadata.

    Parameters
    ----------
    image, mask, variance
        2-D arrays of one shape: float32 image, int32 bit-plane mask, float32 variance.
    mask_planes
        Names of the mask bits of *this* mask.
    xy0
        Parent-pixel position of array element ``[0, 0]``.
    wcs
        Celestial WCS mapping **parent** pixel positions (0-based, ``origin=0``) to sky.
    """

    image: np.ndarray
    mask: np.ndarray
    variance: np.ndarray
    mask_planes: MaskPlanes = field(default_factory=MaskPlanes.default)
    xy0: tuple[int, int] = (0, 0)
    wcs: WCS | None = None
    psf: Psf | None = None
    photo_calib: Any = None  # warping.photocalib.PhotoCalib
    visit_info: VisitInfo | None = None
    filter: str | None = None
    id: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    coadd_inputs: Any = None  # warping.coadd_inputs.CoaddInputs, on warps

    def __post_init__(self) -> None:
        self.image = np.asarray(self.image, dtype=np.float32)
        self.mask = np.asarray(self.mask, dtype=np.int32)
        self.variance = np.asarray(self.variance, dtype=np.float32)
        if self.image.ndim != 2:
            raise ValueError(f"Exposure image must be 2-D, got shape {self.image.shape}")
        if self.mask.shape != self.image.shape or self.variance.shape != self.image.shape:
            raise ValueError(
                f"image {self.image.shape}, mask {self.mask.shape} and variance "
                f"{self.variance.shape} must have the same shape"
            )
        self.xy0 = (int(self.xy0[0]), int(self.xy0[1]))

    @classmethod
    def empty(
        cls,
        bbox: Box2I,
        *,
        wcs: WCS | None = None,
        mask_planes: MaskPlanes | None = None,
        fill_no_data: bool = True,
    ) -> Exposure:
        """An exposure covering ``bbox``, pre-filled with NaN / NO_DATA / +inf (or zeros)."""
        planes = mask_planes or MaskPlanes.default()
        if fill_no_data:
            image = np.full(bbox.shape, np.nan, dtype=np.float32)
            mask = np.full(bbox.shape, planes.bitmask("NO_DATA"), dtype=np.int32)
            variance = np.full(bbox.shape, np.inf, dtype=np.float32)
        else:
            image = np.zeros(bbox.shape, dtype=np.float32)
            mask = np.zeros(bbox.shape, dtype=np.int32)
            variance = np.zeros(bbox.shape, dtype=np.float32)
        return cls(image, mask, variance, mask_planes=planes, xy0=(bbox.x0, bbox.y0), wcs=wcs)

    @property
    def bbox(self) -> Box2I:
        """Parent-pixel bbox of the arrays."""
        h, w = self.image.shape
        return Box2I(self.xy0[0], self.xy0[1], w, h)

    @property
    def width(self) -> int:
        """Number of columns."""
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        """Number of rows."""
        return int(self.image.shape[0])
