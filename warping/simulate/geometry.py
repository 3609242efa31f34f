"""Per-CCD WCSs of the simulated camera.

The true WCS of CCD ``c`` in a visit is TAN-SIP with ``CRVAL`` at the boresight, ``CRPIX`` at the
boresight's position in CCD pixels, a CD matrix of the pixel scale rotated by the visit's
rotation angle (east to the left at rotation 0), and a purely radial cubic distortion about the
boresight, ``d = k r² (u, v)`` with ``k = distortion_px_at_edge / R³`` (``R`` the focal-plane
corner radius), which is exactly the SIP terms ``A_3_0 = A_1_2 = B_2_1 = B_0_3 = k``.

The calexp ("single-frame") WCS is deliberately imperfect: ``CRPIX`` is off by
``wcs_error_px`` in a random direction (per CCD and visit) and the SIP distortion is 2% too weak.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from astropy.wcs import WCS, Sip

from warping.simulate.config import SimulationConfig, VisitSpec

logger = logging.getLogger(__name__)

__all__ = ["calexp_wcs", "tangent_wcs", "true_wcs"]


def _make_wcs(
    config: SimulationConfig,
    visit: VisitSpec,
    ccd: int,
    crpix_shift: tuple[float, float] = (0.0, 0.0),
    distortion_scale: float = 1.0,
) -> WCS:
    x_ll, y_ll = config.ccd_origin(ccd)
    scale = config.pixel_scale_arcsec / 3600.0
    th = math.radians(visit.rotation_deg)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    w.wcs.crval = [visit.ra_deg, visit.dec_deg]
    # parent pixel p (0-based) sits at focal-plane x_ll + p; FITS pixel = p + 1.
    crpix = [-x_ll + 1.0 + crpix_shift[0], -y_ll + 1.0 + crpix_shift[1]]
    w.wcs.crpix = crpix
    w.wcs.cd = scale * np.array([[-math.cos(th), math.sin(th)], [math.sin(th), math.cos(th)]])
    w.wcs.radesys = "ICRS"
    k = distortion_scale * config.distortion_px_at_edge / config.focal_plane_radius**3
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[3, 0] = a[1, 2] = k
    b[2, 1] = b[0, 3] = k
    w.sip = Sip(a, b, None, None, crpix)
    w.wcs.set()
    w.pixel_shape = (config.ccd_width, config.ccd_height)
    return w


def true_wcs(config: SimulationConfig, visit: VisitSpec, ccd: int) -> WCS:
    """The exact WCS used to render CCD ``ccd`` of ``visit`` (parent pixels, origin 0)."""
    return _make_wcs(config, visit, ccd)


def calexp_wcs(config: SimulationConfig, visit: VisitSpec, ccd: int) -> WCS:
    """The imperfect single-frame WCS stored in the calexp."""
    rng = np.random.default_rng([config.seed, visit.visit, ccd, 31])
    ang = rng.uniform(0, 2 * math.pi)
    mag = config.wcs_error_px
    shift = (mag * math.cos(ang), mag * math.sin(ang))
    return _make_wcs(config, visit, ccd, crpix_shift=shift, distortion_scale=0.98)


def tangent_wcs(ra: float, dec: float, scale_arcsec: float = 1.0) -> WCS:
    """A TAN projection centred on ``(ra, dec)``, ``scale_arcsec`` per pixel, east left."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [0.0, 0.0]
    w.wcs.cdelt = [-scale_arcsec / 3600.0, scale_arcsec / 3600.0]
    w.wcs.set()
    return w
