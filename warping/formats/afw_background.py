"""LSST afw ``BackgroundList`` FITS files (``calexpBackground``, ``skyCorr``): read and write.

Layout (afw ``BackgroundList.writeFits``): element ``k`` is three plain image HDUs, ``3k`` the
float32 bin values (element 0 in the primary HDU), ``3k+1`` the uint16 bin mask (stored as int16
with ``BZERO = 32768``, ``MP_<PLANE>`` cards naming its bits), ``3k+2`` the float32 "variance"
plane, which holds the standard error of each bin value. Each HDU repeats the element's keys:

=====================  ==========================================================================
``INTERPSTYLE``        afw ``Interpolate::Style`` (0 CONSTANT .. 6 AKIMA_SPLINE_PERIODIC), required
``UNDERSAMPLESTYLE``   0 THROW_EXCEPTION, 1 REDUCE_INTERP_ORDER, 2 INCREASE_NXNYSAMPLE, required
``APPROXSTYLE``        -1 interpolate, 0 Chebyshev fit (default -1)
``APPROXORDERX/Y``     Chebyshev order (defaults 1 and -1 = "same as X")
``APPROXWEIGHTING``    weight the fit by 1 / error (default True)
``BKGD_X0/Y0``         parent-pixel origin of the covered box, required
``BKGD_WIDTH/HEIGHT``  its size, required
=====================  ==========================================================================

Keys longer than eight characters are ``HIERARCH`` cards. A file whose HDU count is not a
multiple of three (e.g. tile-compressed) is refused, as afw refuses it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from astropy.io import fits

from warping.background import BackgroundList
from warping.background_afw import AfwBackground, ApproxControl, BackgroundModelError
from warping.errors import FormatError
from warping.formats._common import hdulist_to_bytes
from warping.geom import Box2I

logger = logging.getLogger(__name__)

__all__ = ["afw_background_to_bytes", "is_afw_background", "read_afw_background"]

_REQUIRED = ("BKGD_X0", "BKGD_Y0", "BKGD_WIDTH", "BKGD_HEIGHT", "INTERPSTYLE", "UNDERSAMPLESTYLE")


def is_afw_background(hdul: fits.HDUList) -> bool:
    """True when the primary header carries afw background keys."""
    h = hdul[0].header
    return "BKGD_WIDTH" in h and "INTERPSTYLE" in h


def _int_key(header: fits.Header, key: str, default: int | None, where: str) -> int:
    if key not in header:
        if default is None:
            raise FormatError(f"{where}: missing header key {key}; not an afw BackgroundList")
        return default
    value = header[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise FormatError(f"{where}: header key {key}={value!r} is not an integer")
    return int(value)


def _plane(hdu: Any, where: str, what: str) -> np.ndarray:
    data = hdu.data
    if data is None or np.ndim(data) != 2:
        raise FormatError(f"{where}: the {what} HDU holds no 2-D image")
    return np.asarray(data)


def read_afw_background(hdul: fits.HDUList, source: str) -> BackgroundList:
    """Read an afw ``BackgroundList`` from an open HDU list; :class:`FormatError` naming
    ``source``, the HDU and the key for bad input."""
    n = len(hdul)
    if n % 3 != 0:
        raise FormatError(
            f"{source}: {n} HDUs; an afw BackgroundList has three per element (statistics "
            "image, mask, variance), so it cannot be tile-compressed or truncated"
        )
    elements = []
    for k in range(0, n, 3):
        where = f"{source} HDU {k}"
        h = hdul[k].header
        for key in _REQUIRED:
            _int_key(h, key, None, where)
        values = _plane(hdul[k], where, "statistics image")
        mask = _plane(hdul[k + 1], f"{source} HDU {k + 1}", "mask")
        errors = _plane(hdul[k + 2], f"{source} HDU {k + 2}", "variance")
        if not values.shape == mask.shape == errors.shape:
            raise FormatError(
                f"{where}: element {k // 3} has statistics image, mask and variance shapes "
                f"{values.shape}, {mask.shape}, {errors.shape} (NAXIS1/NAXIS2 of HDUs "
                f"{k}-{k + 2} must agree)"
            )
        weighting = h.get("APPROXWEIGHTING", True)
        if not isinstance(weighting, (bool, np.bool_)):
            raise FormatError(f"{where}: header key APPROXWEIGHTING={weighting!r} is not T/F")
        approx = ApproxControl(
            style=_int_key(h, "APPROXSTYLE", -1, where),
            order_x=_int_key(h, "APPROXORDERX", 1, where),
            order_y=_int_key(h, "APPROXORDERY", -1, where),
            weighting=bool(weighting),
        )
        planes = tuple(
            (str(key)[3:], int(v))
            for key, v in hdul[k + 1].header.items()
            if str(key).startswith("MP_")
        )
        try:
            elements.append(
                AfwBackground(
                    bbox=Box2I(h["BKGD_X0"], h["BKGD_Y0"], h["BKGD_WIDTH"], h["BKGD_HEIGHT"]),
                    values=values.astype(np.float32),
                    mask=mask.astype(np.uint16),
                    errors=errors.astype(np.float32),
                    interp_style=h["INTERPSTYLE"],
                    undersample_style=h["UNDERSAMPLESTYLE"],
                    approx=approx,
                    mask_planes=planes,
                    source=where,
                )
            )
        except BackgroundModelError as err:
            raise FormatError(str(err)) from err
        except ValueError as err:  # Box2I: negative size
            raise FormatError(f"{where}: BKGD_WIDTH/BKGD_HEIGHT: {err}") from err
    logger.debug("%s: afw BackgroundList with %d elements", source, len(elements))
    return BackgroundList(elements)


def _header(e: AfwBackground) -> fits.Header:
    h = fits.Header()
    h["HIERARCH INTERPSTYLE"] = int(e.interp_style)
    h["HIERARCH UNDERSAMPLESTYLE"] = int(e.undersample_style)
    h["HIERARCH APPROXSTYLE"] = int(e.approx.style)
    h["HIERARCH APPROXORDERX"] = int(e.approx.order_x)
    h["HIERARCH APPROXORDERY"] = int(e.approx.order_y)
    h["HIERARCH APPROXWEIGHTING"] = bool(e.approx.weighting)
    h["BKGD_X0"] = e.bbox.x0
    h["BKGD_Y0"] = e.bbox.y0
    h["HIERARCH BKGD_WIDTH"] = e.bbox.width
    h["HIERARCH BKGD_HEIGHT"] = e.bbox.height
    return h


def afw_background_to_bytes(bg: BackgroundList) -> bytes:
    """Serialise a list of :class:`AfwBackground` elements in afw's layout."""
    if len(bg) == 0:
        raise ValueError("an afw BackgroundList file needs at least one element")
    hdus: list[Any] = []
    for e in bg:
        if not isinstance(e, AfwBackground):
            raise TypeError(
                f"afw BackgroundList files hold afw elements only, got {type(e).__name__}"
            )
        h = _header(e)
        img = fits.PrimaryHDU if not hdus else fits.ImageHDU
        hdus.append(img(data=np.asarray(e.values, dtype=np.float32), header=h.copy()))
        mh = h.copy()
        for name, bit in e.mask_planes:
            mh[f"HIERARCH MP_{name}" if len(name) > 5 else f"MP_{name}"] = bit
        hdus.append(fits.ImageHDU(data=np.asarray(e.mask, dtype=np.uint16), header=mh))
        hdus.append(fits.ImageHDU(data=np.asarray(e.errors, dtype=np.float32), header=h.copy()))
    return hdulist_to_bytes(fits.HDUList(hdus))
