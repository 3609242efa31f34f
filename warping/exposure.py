"""The in-memory model of a calibrated exposure: image, mask, variance and their calibrations."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.wcs import WCS

from warping.geom import Box2I
from warping.masks import MaskPlanes
from warping.skywcs import SkyWcs

if TYPE_CHECKING:
    import xarray as xr
    from astropy.nddata import CCDData

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
        Celestial WCS mapping **parent** pixel positions (0-based, ``origin=0``) to sky: an
        astropy WCS or an exact afw SkyWcs (:class:`warping.ast_wcs.AstSkyWcs`). A warp's
        parent pixels are tract pixels, so ``wcs`` does not describe ``image[0, 0]`` unless
        ``xy0`` is ``(0, 0)``: for astropy tools (``imshow`` on a WCS axis, ``reproject``) use
        :attr:`astropy_wcs`, which does.
    """

    image: np.ndarray
    mask: np.ndarray
    variance: np.ndarray
    mask_planes: MaskPlanes = field(default_factory=MaskPlanes.default)
    xy0: tuple[int, int] = (0, 0)
    wcs: SkyWcs | None = None
    psf: Psf | None = None
    photo_calib: Any = None  # warping.photocalib.PhotoCalib
    visit_info: VisitInfo | None = None
    filter: str | None = None
    id: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    coadd_inputs: Any = None  # warping.coadd_inputs.CoaddInputs, on warps
    valid_polygon: Any = None  # warping.polygon.ValidPolygon (parent pixels), on calexps
    ap_corr_map: Any = None  # warping.apcorr.ApCorrMap, on calexps

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
        wcs: SkyWcs | None = None,
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

    def __repr__(self) -> str:
        """One line: shape, origin, unit, WCS and PSF kinds (never the arrays)."""
        h, w = self.image.shape
        parts = [f"{w}x{h} px at xy0={self.xy0}", f"unit={self.unit!r}"]
        if self.filter:
            parts.append(f"filter={self.filter!r}")
        if self.id is not None:
            parts.append(f"id={self.id}")
        parts.append(f"wcs={type(self.wcs).__name__ if self.wcs is not None else None}")
        parts.append(f"psf={type(self.psf).__name__ if self.psf is not None else None}")
        planes = ",".join(sorted(self.mask_planes.bits))
        return f"Exposure({', '.join(parts)}, mask planes {planes})"

    @property
    def astropy_wcs(self) -> WCS | None:
        """An astropy WCS of the *arrays* (``image[0, 0]`` is pixel (0, 0); ``pixel_shape`` is
        the array's), for astropy tools; ``None`` without a WCS. An exact afw SkyWcs becomes its
        TAN-SIP approximation over the bbox. :attr:`wcs` stays in parent pixels (LSST's
        convention), which is off by ``xy0`` for arrays of a warp."""
        if self.wcs is None:
            return None
        from warping.skywcs import fits_wcs, shift_wcs

        out = shift_wcs(fits_wcs(self.wcs, self.bbox), -self.xy0[0], -self.xy0[1])
        out.pixel_shape = (self.width, self.height)
        return out

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

    # -- conveniences (additive) -------------------------------------------------------------
    @property
    def unit(self) -> str:
        """Pixel unit: ``"nJy"`` for a calibrated (photoCalib 1.0) image, else ``"count"``.

        ``metadata["BUNIT"]`` overrides the guess.
        """
        bunit = self.metadata.get("BUNIT")
        if isinstance(bunit, str) and bunit:
            return bunit
        pc = self.photo_calib
        if pc is not None and getattr(pc, "calibration_mean", None) == 1.0 and pc.field is None:
            return "nJy"
        return "count"

    def copy(self) -> Exposure:
        """A deep copy of the pixel arrays; models and metadata are shallow-copied."""
        return Exposure(
            self.image.copy(),
            self.mask.copy(),
            self.variance.copy(),
            mask_planes=self.mask_planes,
            xy0=self.xy0,
            wcs=None if self.wcs is None else copy.deepcopy(self.wcs),
            psf=self.psf,
            photo_calib=self.photo_calib,
            visit_info=self.visit_info,
            filter=self.filter,
            id=self.id,
            metadata=dict(self.metadata),
            coadd_inputs=self.coadd_inputs,
            valid_polygon=self.valid_polygon,
            ap_corr_map=self.ap_corr_map,
        )

    def subset(self, bbox: Box2I) -> Exposure:
        """The part of this exposure inside ``bbox`` (which must lie within :attr:`bbox`);
        arrays are copies, the WCS is unchanged (parent coordinates)."""
        inter = bbox.intersection(self.bbox)
        if inter != bbox:
            raise ValueError(f"subset bbox {bbox} is not inside the exposure bbox {self.bbox}")
        sl = bbox.slices(self.bbox)
        out = self.copy()
        out.image = self.image[sl].copy()
        out.mask = self.mask[sl].copy()
        out.variance = self.variance[sl].copy()
        out.xy0 = (bbox.x0, bbox.y0)
        return out

    def bad_pixels(self, *planes: str) -> np.ndarray:
        """Boolean array, ``True`` where any of ``planes`` (default: all planes) is set."""
        names = planes or tuple(self.mask_planes.bits)
        return (self.mask & self.mask_planes.bitmask_if_present(*names)) != 0

    def to_xarray(self) -> xr.Dataset:
        """An ``xarray.Dataset`` with ``image``, ``mask``, ``variance`` on ``(y, x)``.

        Coordinates ``y``/``x`` are parent-pixel indices (xy0 applied). Units are in each
        variable's ``attrs["units"]``; the mask carries CF ``flag_masks``/``flag_meanings``; the
        WCS is the array-relative FITS header as a string in ``attrs["wcs_header"]`` (parent
        coordinates follow from ``attrs["xy0"]``); for an exact afw SkyWcs that header is its
        TAN-SIP approximation and ``attrs["wcs_exact"]`` holds the exact model's text
        (:meth:`warping.ast_wcs.AstSkyWcs.from_text`).
        """
        import xarray as xr

        from warping.skywcs import exact_wcs_text, fits_wcs, wcs_to_header

        h, w = self.image.shape
        coords = {
            "y": np.arange(self.xy0[1], self.xy0[1] + h),
            "x": np.arange(self.xy0[0], self.xy0[0] + w),
        }
        unit = self.unit
        names = sorted(self.mask_planes.bits, key=lambda n: self.mask_planes.bit(n))
        ds = xr.Dataset(
            {
                "image": (("y", "x"), self.image, {"units": unit}),
                "variance": (("y", "x"), self.variance, {"units": f"{unit}2"}),
                "mask": (
                    ("y", "x"),
                    self.mask,
                    {
                        "flag_masks": [1 << self.mask_planes.bit(n) for n in names],
                        "flag_meanings": " ".join(names),
                    },
                ),
            },
            coords=coords,
        )
        ds.attrs["xy0"] = list(self.xy0)
        if self.wcs is not None:
            header = wcs_to_header(fits_wcs(self.wcs, self.bbox), self.xy0)
            ds.attrs["wcs_header"] = header.tostring(sep="\n")
            exact = exact_wcs_text(self.wcs)
            if exact:
                ds.attrs["wcs_exact"] = exact
        if self.filter is not None:
            ds.attrs["filter"] = self.filter
        if self.id is not None:
            ds.attrs["id"] = int(self.id)
        return ds

    def to_ccddata(self, bad_planes: tuple[str, ...] | None = None) -> CCDData:
        """An :class:`astropy.nddata.CCDData` (data, boolean mask = any of ``bad_planes`` set
        (default all planes), :class:`~astropy.nddata.VarianceUncertainty`, WCS shifted to the
        array origin, unit). The integer mask and its plane names go to ``meta``. An exact afw
        SkyWcs becomes its TAN-SIP approximation (CCDData holds astropy WCSs)."""
        from astropy.nddata import CCDData, VarianceUncertainty

        meta: dict[str, Any] = {
            "XY0": list(self.xy0),
            "MASKBITS": self.mask.copy(),
            "MASKPLANES": dict(self.mask_planes.bits),
        }
        return CCDData(
            self.image.copy(),
            unit=self.unit,
            mask=self.bad_pixels(*(bad_planes or ())),
            uncertainty=VarianceUncertainty(self.variance.copy()),
            wcs=self.astropy_wcs,
            meta=meta,
        )

    @classmethod
    def from_ccddata(cls, ccd: CCDData, xy0: tuple[int, int] | None = None) -> Exposure:
        """Build an exposure from ``CCDData``: uncertainty converted to variance; a boolean mask
        becomes the ``BAD`` plane unless ``meta`` holds ``MASKBITS``/``MASKPLANES`` (as written by
        :meth:`to_ccddata`)."""
        from astropy.nddata import StdDevUncertainty, VarianceUncertainty

        from warping.skywcs import shift_wcs

        image = np.asarray(ccd.data, dtype=np.float32)
        unc = ccd.uncertainty
        if unc is None:
            variance = np.zeros_like(image)
        elif isinstance(unc, VarianceUncertainty):
            variance = np.asarray(unc.array, dtype=np.float32)
        elif isinstance(unc, StdDevUncertainty):
            variance = np.asarray(unc.array, dtype=np.float32) ** 2
        else:
            variance = np.asarray(unc.represent_as(VarianceUncertainty).array, dtype=np.float32)
        meta = dict(ccd.meta or {})
        if xy0 is None:
            xy0_list = meta.get("XY0", (0, 0))
            xy0 = (int(xy0_list[0]), int(xy0_list[1]))
        planes = MaskPlanes.default()
        if "MASKBITS" in meta and "MASKPLANES" in meta:
            mask = np.asarray(meta["MASKBITS"], dtype=np.int32)
            planes = MaskPlanes(dict(meta["MASKPLANES"]))
        elif ccd.mask is not None:
            mask = np.where(np.asarray(ccd.mask, dtype=bool), planes.bitmask("BAD"), 0).astype(
                np.int32
            )
        else:
            mask = np.zeros(image.shape, dtype=np.int32)
        wcs = None
        if ccd.wcs is not None and isinstance(ccd.wcs, WCS):
            wcs = shift_wcs(ccd.wcs, xy0[0], xy0[1])
        md = {k: v for k, v in meta.items() if k not in ("XY0", "MASKBITS", "MASKPLANES")}
        if ccd.unit is not None:
            md["BUNIT"] = ccd.unit.to_string("fits")
        return cls(image, mask, variance, mask_planes=planes, xy0=xy0, wcs=wcs, metadata=md)
