"""Pixel-to-pixel transforms between two WCSs and their coarse-grid approximation.

A ``DestToSrc`` callable maps **parent** destination pixel positions ``(x, y)`` (arrays, LSST
convention: pixel index ``i`` is centred on position ``i``) to parent source positions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from warping.errors import FormatError

if TYPE_CHECKING:
    from warping.skywcs import SkyWcs

__all__ = [
    "DestToSrc",
    "frame_change",
    "grid_nodes",
    "interpolate_grid",
    "pixel_to_world",
    "wcs_pair_transform",
    "world_to_pixel",
]

logger = logging.getLogger(__name__)

DestToSrc = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

#: Convergence tolerance (pixels) for inverting distorted (SIP) WCSs. astropy's default is 1e-4 px,
#: too loose for milli-pixel astrometry.
INVERSE_TOLERANCE = 1e-9


def pixel_to_world(wcs: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parent pixel (origin 0) to ``(ra, dec)`` degrees, including all distortions."""
    if hasattr(wcs, "all_pix2world"):
        ra, dec = wcs.all_pix2world(x, y, 0)
    else:
        ra, dec = wcs.pixel_to_world_values(x, y)
    return np.asarray(ra, dtype=float), np.asarray(dec, dtype=float)


def _has_distortion(wcs: Any) -> bool:
    return any(
        getattr(wcs, name, None) is not None
        for name in ("sip", "cpdis1", "cpdis2", "det2im1", "det2im2")
    )


def world_to_pixel(wcs: Any, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ra, dec)`` degrees to parent pixel (origin 0), inverting distortions to 1e-9 px.

    Points where the inversion diverges or the projection is undefined come back as NaN-free
    best guesses (astropy ``quiet=True``) or NaN; callers treat positions outside the source as
    off-image, so either is harmless.
    """
    if hasattr(wcs, "all_world2pix"):
        if _has_distortion(wcs):
            x, y = wcs.all_world2pix(
                ra, dec, 0, tolerance=INVERSE_TOLERANCE, maxiter=50, quiet=True
            )
        else:  # TAN/STG/TPV...: wcslib inverts exactly
            x, y = wcs.wcs_world2pix(ra, dec, 0)
    else:
        x, y = wcs.world_to_pixel_values(ra, dec)
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def _frame_cards(wcs: Any) -> tuple[Any, ...]:
    """What fixes the celestial frame of a WCS: an astropy WCS's axis types, RADESYS, EQUINOX
    (DATE-OBS for FK4); for any other :class:`~warping.skywcs.SkyWcs` its frame
    (:func:`warping.skywcs.celestial_frame`: an AstSkyWcs is ICRS)."""
    inner = getattr(wcs, "wcs", None)
    if inner is None or not hasattr(inner, "radesys"):
        from warping.skywcs import celestial_frame

        return ("frame", repr(celestial_frame(wcs)))
    equinox = float(inner.equinox)
    radesys = str(inner.radesys)
    return (
        tuple(str(c)[:4] for c in inner.ctype),
        radesys,
        None if np.isnan(equinox) else equinox,
        str(inner.dateobs) if radesys.startswith("FK4") else "",  # FK4 frames carry an epoch
    )


def frame_change(src_wcs: Any, dest_wcs: Any) -> Callable[[np.ndarray, np.ndarray], Any] | None:
    """Map from ``dest_wcs``'s celestial frame to ``src_wcs``'s (degrees), or None if they are
    the same frame.

    Identical frame cards (axis types, RADESYS, EQUINOX; DATE-OBS for FK4) mean the same frame;
    otherwise both frames come from :func:`warping.skywcs.celestial_frame` (astropy's
    :func:`~astropy.wcs.utils.wcs_to_celestial_frame`; ICRS for an AST afw SkyWcs) and the
    coordinates are transformed by :mod:`astropy.coordinates` (FK5 J2000 and ICRS differ by up to
    ~25 mas).
    """
    if _frame_cards(src_wcs) == _frame_cards(dest_wcs):
        return None
    import astropy.units as u
    from astropy.coordinates import UnitSphericalRepresentation

    from warping.skywcs import celestial_frame

    try:
        src_frame = celestial_frame(src_wcs)
        dest_frame = celestial_frame(dest_wcs)
    except ValueError as err:  # a RADESYS astropy cannot map (e.g. GAPPT)
        raise FormatError(
            f"cannot relate the celestial frames of the input and the target "
            f"({_frame_cards(src_wcs)} vs {_frame_cards(dest_wcs)}): {err}; give both WCSs a "
            "RADESYS of ICRS, FK5 or FK4"
        ) from None
    if src_frame.is_equivalent_frame(dest_frame):
        return None

    def change(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        coords = dest_frame.realize_frame(UnitSphericalRepresentation(lon * u.deg, lat * u.deg))
        moved = coords.transform_to(src_frame).represent_as(UnitSphericalRepresentation)
        return moved.lon.to_value(u.deg), moved.lat.to_value(u.deg)

    logger.debug("transforming coordinates from %s to %s", dest_frame.name, src_frame.name)
    return change


def wcs_pair_transform(src_wcs: SkyWcs, dest_wcs: SkyWcs) -> DestToSrc:
    """The exact destination-to-source parent pixel map ``src ∘ sky ∘ dest⁻¹``.

    Sky coordinates in the destination's celestial frame are transformed to the source's by
    :mod:`astropy.coordinates` when the frames differ (:func:`frame_change`).
    """
    change = frame_change(src_wcs, dest_wcs)

    def dest_to_src(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            ra, dec = pixel_to_world(dest_wcs, x, y)
            if change is not None:
                ra, dec = change(ra, dec)
            return world_to_pixel(src_wcs, ra, dec)

    return dest_to_src


def grid_nodes(n: int, step: int, origin: int = -1) -> np.ndarray:
    """Node positions ``origin, origin+step, ...`` with the last node clipped to ``n - 1``.

    ``n`` is the number of destination pixels along the axis; the nodes cover ``origin .. n-1``
    (``origin = -1`` provides the extra column/row the relative-area term needs).
    """
    if step < 1:
        raise ValueError(f"grid step must be >= 1, got {step}")
    if n - 1 <= origin:
        raise ValueError(f"grid needs at least one pixel after the origin, got n={n}")
    nodes = list(range(origin, n - 1, step))
    nodes.append(n - 1)
    return np.asarray(nodes, dtype=np.float64)


def interpolate_grid(
    gx: np.ndarray,
    gy: np.ndarray,
    nodes_x: np.ndarray,
    nodes_y: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear interpolation of grid positions at destination-local pixels (numpy reference).

    Mirrors the compiled core; used to measure the ``interpLength`` position error.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    kx = np.clip(np.searchsorted(nodes_x, x, side="right") - 1, 0, len(nodes_x) - 2)
    ky = np.clip(np.searchsorted(nodes_y, y, side="right") - 1, 0, len(nodes_y) - 2)
    tx = (x - nodes_x[kx]) / (nodes_x[kx + 1] - nodes_x[kx])
    ty = (y - nodes_y[ky]) / (nodes_y[ky + 1] - nodes_y[ky])

    def interp(g: np.ndarray) -> np.ndarray:
        top = g[ky, kx] + tx * (g[ky, kx + 1] - g[ky, kx])
        bot = g[ky + 1, kx] + tx * (g[ky + 1, kx + 1] - g[ky + 1, kx])
        return top + ty * (bot - top)

    return interp(gx), interp(gy)
