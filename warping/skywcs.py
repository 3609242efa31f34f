"""Standalone celestial WCS helpers (``jointcal_wcs`` and the WCS inside exposure files).

Convention: every in-memory WCS in :mod:`warping` satisfies :class:`SkyWcs` and maps **parent**
pixel positions (0-based, ``origin=0`` in astropy calls) to the sky. It is either an
:class:`astropy.wcs.WCS` (FITS-WCS headers: TAN, TAN-SIP, TPV, whatever astropy/wcslib reads, in
the header's celestial frame) or an :class:`warping.ast_wcs.AstSkyWcs` (an afw SkyWcs evaluated
with AST, always ICRS). FITS headers store the WCS relative to the array, as afw does: ``CRPIX``
is shifted by ``-xy0`` and ``LTV1/LTV2 = -x0/-y0``; an ``A`` WCS (``CRVAL1A/2A = x0/y0``) records
xy0 too. Where only FITS-WCS can be written (headers), :func:`fits_wcs` gives an astropy WCS:
the WCS itself, or a TAN-SIP fit of an exact model over the pixel box.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from typing import Any, Protocol, runtime_checkable

from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from warping.geom import Box2I

logger = logging.getLogger(__name__)

__all__ = [
    "SkyWcs",
    "celestial_frame",
    "check_wcs_cards",
    "exact_wcs_text",
    "fits_wcs",
    "read_xy0",
    "shift_wcs",
    "wcs_from_header",
    "wcs_to_header",
]


@runtime_checkable
class SkyWcs(Protocol):
    """What the warper needs of a celestial WCS: parent pixels (0-based) <-> sky degrees.

    :class:`astropy.wcs.WCS` satisfies it (APE 14 low-level API); so does an afw SkyWcs read
    with AST (:class:`warping.ast_wcs.AstSkyWcs`). Positions are arrays; values outside the
    model's domain come back as NaN. The sky frame is the astropy WCS's own (``RADESYS``,
    ``EQUINOX``), or the object's ``celestial_frame`` attribute, else ICRS
    (:func:`celestial_frame`).
    """

    def pixel_to_world_values(self, x: Any, y: Any) -> Any:
        """``(ra, dec)`` in degrees at parent pixel positions ``(x, y)``."""

    def world_to_pixel_values(self, ra: Any, dec: Any) -> Any:
        """Parent pixel positions ``(x, y)`` of ``(ra, dec)`` in degrees."""


def celestial_frame(wcs: Any) -> Any:
    """The :mod:`astropy.coordinates` frame of ``wcs``'s sky coordinates.

    An astropy WCS: from its header cards (:func:`astropy.wcs.utils.wcs_to_celestial_frame`);
    an object with a ``celestial_frame`` attribute (:class:`~warping.ast_wcs.AstSkyWcs`): that;
    any other :class:`SkyWcs`: ICRS, the frame of every afw SkyWcs.
    """
    if isinstance(wcs, WCS):
        from astropy.wcs.utils import wcs_to_celestial_frame

        return wcs_to_celestial_frame(wcs)
    frame = getattr(wcs, "celestial_frame", None)
    if frame is not None:
        return frame
    from astropy.coordinates import ICRS

    return ICRS()


def fits_wcs(wcs: SkyWcs, bbox: Box2I) -> WCS:
    """An astropy WCS for FITS headers: ``wcs`` itself if it is one, else its TAN-SIP
    approximation over ``bbox`` (the model's ``fits_approximation``, or
    :func:`warping.sip_fit.fit_tan_sip`)."""
    if isinstance(wcs, WCS):
        return wcs
    approx = getattr(wcs, "fits_approximation", None)
    if approx is not None:
        return approx(bbox)
    from warping.sip_fit import fit_tan_sip

    return fit_tan_sip(wcs, bbox)[0]


def exact_wcs_text(wcs: SkyWcs | None) -> str:
    """afw's persisted SkyWcs text of an :class:`~warping.ast_wcs.AstSkyWcs` (``"1 SkyWcs 0 "``
    + AST dump), or ``""`` for an astropy WCS (its FITS header is exact) or None.

    Raises
    ------
    TypeError
        For another kind of WCS, which cannot be persisted exactly.
    """
    if wcs is None or isinstance(wcs, WCS):
        return ""
    from warping.ast_wcs import AstSkyWcs

    if isinstance(wcs, AstSkyWcs):
        return wcs.to_text()
    raise TypeError(
        f"cannot persist a {type(wcs).__name__} WCS exactly (astropy WCS and AstSkyWcs can be); "
        "convert it, e.g. with warping.sip_fit.fit_tan_sip"
    )


_XY0_CARDS = (
    "CRVAL1A",
    "CRVAL2A",
    "CRPIX1A",
    "CRPIX2A",
    "CTYPE1A",
    "CTYPE2A",
    "CUNIT1A",
    "CUNIT2A",
)


def read_xy0(header: fits.Header) -> tuple[int, int]:
    """xy0 from ``LTV1/LTV2`` (afw writes ``-x0``), else from ``CRVAL1A/2A``, else ``(0, 0)``."""
    if "LTV1" in header or "LTV2" in header:
        return (-round(float(header.get("LTV1", 0.0))), -round(float(header.get("LTV2", 0.0))))
    if "CRVAL1A" in header and str(header.get("CTYPE1A", "")).strip() == "LINEAR":
        return (round(float(header["CRVAL1A"])), round(float(header.get("CRVAL2A", 0.0))))
    return (0, 0)


def shift_wcs(wcs: WCS, dx: float, dy: float) -> WCS:
    """A copy ``w`` of ``wcs`` with ``w(p + (dx, dy)) == wcs(p)`` (CRPIX moved by ``(dx, dy)``)."""
    out = wcs.deepcopy()
    out.wcs.crpix = [out.wcs.crpix[0] + dx, out.wcs.crpix[1] + dy]
    if out.sip is not None:
        # astropy keeps its own copy of CRPIX for SIP; rebuild it so both agree.
        from astropy.wcs import Sip

        s = out.sip
        out.sip = Sip(s.a, s.b, s.ap, s.bp, out.wcs.crpix)
    out.wcs.set()
    return out


#: Numeric cards of the primary FITS-WCS and SIP: a value that is not a finite number would be
#: dropped or defaulted by wcslib (a PC1_1 of NaN silently became 1), so it is an error instead.
_WCS_NUMBER = re.compile(
    r"(CRVAL|CRPIX|CDELT|CROTA)\d|(CD|PC)\d_\d|(A|B|AP|BP)_(\d+_\d+|ORDER)|LONPOLE|LATPOLE"
)


def check_wcs_cards(header: fits.Header) -> None:
    """Raise ``ValueError`` naming the first primary WCS card whose value is not a finite number.

    Parameters
    ----------
    header
        An image header.
    """
    for card in header.cards:
        if not _WCS_NUMBER.fullmatch(card.keyword):
            continue
        try:
            value = card.value
        except Exception:  # astropy: unparsable card
            value = None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            text = card.image[10:].split("/")[0].strip(" '")
            raise ValueError(
                f"header card {card.keyword} = {text!r} is not a finite number: the WCS is unusable"
            )


def wcs_from_header(header: fits.Header, xy0: tuple[int, int] | None = None) -> WCS | None:
    """Parent-pixel WCS from an array-relative FITS header; ``None`` if it has no celestial WCS.

    ``xy0`` defaults to :func:`read_xy0` of the header.

    Raises
    ------
    ValueError
        If a numeric WCS card (``CRVAL1``, ``PC1_1``, SIP ``A_1_2`` ...) is not a finite number.
    """
    check_wcs_cards(header)
    hdr = header.copy()
    for k in _XY0_CARDS:
        hdr.remove(k, ignore_missing=True)
    if "CTYPE1" not in hdr:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(hdr, relax=True, naxis=2)
    if not wcs.has_celestial:
        return None
    x0, y0 = read_xy0(header) if xy0 is None else xy0
    if x0 or y0:
        wcs = shift_wcs(wcs, x0, y0)
    return wcs


def wcs_to_header(wcs: WCS, xy0: tuple[int, int] = (0, 0)) -> fits.Header:
    """Array-relative FITS header cards for ``wcs`` (parent-pixel) at ``xy0``, with ``LTV1/2``
    and the afw ``A`` WCS."""
    x0, y0 = int(xy0[0]), int(xy0[1])
    local = shift_wcs(wcs, -x0, -y0) if (x0 or y0) else wcs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdr = local.to_header(relax=True)
    hdr["LTV1"] = float(-x0)
    hdr["LTV2"] = float(-y0)
    hdr["CTYPE1A"] = ("LINEAR", "xy0 of the array in parent pixels")
    hdr["CTYPE2A"] = "LINEAR"
    hdr["CRPIX1A"] = 1.0
    hdr["CRPIX2A"] = 1.0
    hdr["CRVAL1A"] = float(x0)
    hdr["CRVAL2A"] = float(y0)
    hdr["CUNIT1A"] = "pixel"
    hdr["CUNIT2A"] = "pixel"
    return hdr
