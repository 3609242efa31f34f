"""FITS adapters for ``rb warp-image``: read an image + WCS, a target header, write the result."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from warping.errors import FormatError

__all__ = ["read_image_and_wcs", "read_target_header", "warp_fits_file"]

logger = logging.getLogger(__name__)


def _celestial_wcs(header: Any, source: str) -> Any:
    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header)
        except Exception as err:  # astropy raises many types for malformed WCS cards
            raise FormatError(f"{source}: cannot build a WCS from the header ({err})") from None
    if not wcs.has_celestial:
        raise FormatError(f"{source}: the header has no celestial WCS (CTYPE RA---/DEC--)")
    return wcs.celestial


def read_image_and_wcs(path: str | Path) -> tuple[np.ndarray, Any]:
    """The first 2-D image HDU of ``path`` (primary or extension) and its celestial WCS."""
    from astropy.io import fits

    try:
        hdul = fits.open(path, memmap=False)
    except (OSError, ValueError) as err:
        raise FormatError(f"{path}: cannot open as FITS ({err})") from None
    with hdul:
        for hdu in hdul:
            if hdu.data is not None and getattr(hdu.data, "ndim", 0) == 2:
                data = np.asarray(hdu.data)
                if data.dtype.byteorder not in ("=", "|"):
                    data = data.astype(data.dtype.newbyteorder("="))
                if data.dtype not in (np.float32, np.float64):
                    data = data.astype(np.float32 if data.dtype.itemsize <= 2 else np.float64)
                return data, _celestial_wcs(hdu.header, f"{path}[{hdu.name}]")
    raise FormatError(f"{path}: no 2-D image HDU found; give a FITS file with an image")


def read_target_header(path: str | Path) -> tuple[Any, tuple[int, int], Any]:
    """Parse a text file of FITS cards (SWarp ``.head`` style): ``(header, (ny, nx), wcs)``."""
    from astropy.io import fits

    try:
        header = fits.Header.fromtextfile(str(path))
    except (OSError, ValueError) as err:
        raise FormatError(f"{path}: cannot read FITS cards ({err})") from None
    try:
        nx, ny = int(header["NAXIS1"]), int(header["NAXIS2"])
    except KeyError:
        raise FormatError(f"{path}: the target header must give NAXIS1 and NAXIS2") from None
    if nx <= 0 or ny <= 0:
        raise FormatError(f"{path}: NAXIS1/NAXIS2 must be positive, got {nx}x{ny}")
    return header, (ny, nx), _celestial_wcs(header, str(path))


def warp_fits_file(
    input_path: str | Path,
    target_header: str | Path,
    output_path: str | Path,
    *,
    control: Any = None,
) -> dict[str, Any]:
    """Warp ``input_path`` onto the grid of ``target_header`` and write ``output_path``.

    Plain FITS images with a zenithal (TAN, STG, SIN, ZEA, ARC; optionally SIP) WCS take the
    astropy-free path (:mod:`warping.warp.lite_io`: our FITS reader/writer and WCS, ~1 s less
    start-up); anything else is read and written with astropy. Returns a summary
    ``{"shape": (ny, nx), "covered": n_finite_pixels, "reader": "lite" | "astropy"}``.
    """
    from warping.warp._high_level import warp_image
    from warping.warp.lite_io import load_for_warp, write_warp

    lite = load_for_warp(input_path, target_header)
    if lite is not None:
        image, src_wcs, dest_wcs, shape, cards = lite
        out = warp_image(image, src_wcs, dest_wcs, shape, control=control)
        write_warp(output_path, out, cards)
        reader = "lite"
    else:
        from astropy.io import fits

        image, src_wcs = read_image_and_wcs(input_path)
        _header, shape, dest_wcs = read_target_header(target_header)
        out = warp_image(image, src_wcs, dest_wcs, shape, control=control)
        hdr = dest_wcs.to_header(relax=True)
        fits.PrimaryHDU(out, header=hdr).writeto(output_path, overwrite=True)
        reader = "astropy"
    covered = int(np.count_nonzero(~np.isnan(out)))
    logger.info(
        "wrote %s: %dx%d, %d covered pixels (%s reader)",
        output_path,
        shape[1],
        shape[0],
        covered,
        reader,
    )
    return {"shape": shape, "covered": covered, "reader": reader}
