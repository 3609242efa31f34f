"""Synthetic inputs with known truth for warp tests and benchmarks (WCSs, smooth skies, stars)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "SmoothSky",
    "gaussian_stars",
    "make_sip_wcs",
    "make_tan_wcs",
    "relative_area",
]


def make_tan_wcs(
    ra_deg: float,
    dec_deg: float,
    crpix0: tuple[float, float],
    scale_arcsec: float,
    rotation_deg: float = 0.0,
) -> Any:
    """A TAN WCS (LSST ``makeCdMatrix`` orientation) with 0-based reference pixel ``crpix0``."""
    from astropy.wcs import WCS

    s = scale_arcsec / 3600.0
    th = math.radians(rotation_deg)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra_deg, dec_deg]
    w.wcs.crpix = [crpix0[0] + 1.0, crpix0[1] + 1.0]
    w.wcs.cd = s * np.array([[-math.cos(th), math.sin(th)], [math.sin(th), math.cos(th)]])
    w.wcs.set()
    return w


def make_sip_wcs(
    ra_deg: float,
    dec_deg: float,
    shape: tuple[int, int],
    scale_arcsec: float,
    corner_distortion_px: float,
    rotation_deg: float = 0.0,
) -> Any:
    """A TAN-SIP WCS centred on a ``(ny, nx)`` CCD with ~``corner_distortion_px`` at the corners.

    Quadratic and cubic SIP terms (forward only; astropy inverts iteratively).
    """
    from astropy.wcs import WCS, Sip

    ny, nx = shape
    crpix0 = ((nx - 1) / 2.0, (ny - 1) / 2.0)
    base = make_tan_wcs(ra_deg, dec_deg, crpix0, scale_arcsec, rotation_deg)
    r = math.hypot(nx / 2.0, ny / 2.0)
    d = corner_distortion_px
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    # radial-ish cubic (pincushion) plus a small quadratic asymmetry
    a[3, 0] = a[1, 2] = 0.8 * d / r**3
    b[0, 3] = b[2, 1] = 0.8 * d / r**3
    a[2, 0] = 0.2 * d / r**2
    b[1, 1] = 0.15 * d / r**2
    a[0, 2] = -0.1 * d / r**2
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    w.wcs.crval = base.wcs.crval
    w.wcs.crpix = base.wcs.crpix
    w.wcs.cd = base.wcs.cd
    w.sip = Sip(a, b, None, None, w.wcs.crpix)
    w.wcs.set()
    return w


class SmoothSky:
    """A band-limited analytic sky: a sum of plane waves on the tangent plane at ``(ra0, dec0)``.

    ``value(ra, dec)`` is a surface brightness; wavelengths (arcsec) are drawn from
    ``[min_wavelength, 4 * min_wavelength]``.
    """

    def __init__(
        self,
        ra0: float,
        dec0: float,
        *,
        n_waves: int = 8,
        min_wavelength_arcsec: float = 3.0,
        seed: int = 1,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.ra0, self.dec0 = ra0, dec0
        lam = rng.uniform(min_wavelength_arcsec, 4 * min_wavelength_arcsec, n_waves)
        ang = rng.uniform(0, 2 * math.pi, n_waves)
        self.kx = 2 * math.pi / lam * np.cos(ang)
        self.ky = 2 * math.pi / lam * np.sin(ang)
        self.phase = rng.uniform(0, 2 * math.pi, n_waves)
        self.amp = rng.uniform(0.5, 1.0, n_waves)
        self.offset = 10.0

    def value(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """Surface brightness at ``(ra, dec)`` degrees."""
        ra = np.radians(np.asarray(ra, dtype=float))
        dec = np.radians(np.asarray(dec, dtype=float))
        a0, d0 = math.radians(self.ra0), math.radians(self.dec0)
        cosc = math.sin(d0) * np.sin(dec) + math.cos(d0) * np.cos(dec) * np.cos(ra - a0)
        xi = np.cos(dec) * np.sin(ra - a0) / cosc
        eta = (math.cos(d0) * np.sin(dec) - math.sin(d0) * np.cos(dec) * np.cos(ra - a0)) / cosc
        xi = np.degrees(xi) * 3600.0
        eta = np.degrees(eta) * 3600.0
        out = np.full(xi.shape, self.offset)
        for kx, ky, ph, am in zip(self.kx, self.ky, self.phase, self.amp, strict=True):
            out += am * np.cos(kx * xi + ky * eta + ph)
        return out

    def render(self, wcs: Any, shape: tuple[int, int]) -> np.ndarray:
        """Point-sample the sky at every pixel centre of ``wcs`` (surface brightness)."""
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
        ra, dec = wcs.all_pix2world(xx.ravel(), yy.ravel(), 0)
        return self.value(ra, dec).reshape(shape)


def gaussian_stars(
    shape: tuple[int, int],
    positions: Sequence[tuple[float, float]],
    fluxes: Sequence[float],
    sigma_px: float,
) -> np.ndarray:
    """Circular Gaussians (point-sampled, each summing to its flux) at ``(x, y)`` positions."""
    img = np.zeros(shape)
    half = math.ceil(8 * sigma_px)
    norm = 1.0 / (2 * math.pi * sigma_px**2)
    for (x, y), f in zip(positions, fluxes, strict=True):
        x0, x1 = max(int(x) - half, 0), min(int(x) + half + 1, shape[1])
        y0, y1 = max(int(y) - half, 0), min(int(y) + half + 1, shape[0])
        yy, xx = np.mgrid[y0:y1, x0:x1]
        img[y0:y1, x0:x1] += f * norm * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma_px**2))
    return img


def relative_area(src_wcs: Any, dest_wcs: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Exact source-pixel area per destination pixel at destination positions (finite diff.)."""
    from warping.warp._transform import wcs_pair_transform

    t = wcs_pair_transform(src_wcs, dest_wcs)
    h = 0.5
    xp, yp = t(x + h, y)
    xm, ym = t(x - h, y)
    xq, yq = t(x, y + h)
    xr, yr = t(x, y - h)
    return np.abs((xp - xm) * (yq - yr) - (yp - ym) * (xq - xr)) / (4 * h * h)
