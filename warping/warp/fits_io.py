"""FITS adapters for ``rb warp-image`` (astropy): read an image + WCS, a target header, write the
result."""

from __future__ import annotations

import logging
import os
import secrets
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from warping.errors import FormatError

__all__ = ["read_image_and_wcs", "read_target_header", "warp_fits_file", "write_warped"]

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


def write_warped(path: str | Path, image: np.ndarray, wcs: Any) -> None:
    """Write ``image`` with ``wcs`` as a one-HDU FITS file, atomically (temporary file + rename).

    Raises
    ------
    warping.errors.FormatError
        If the file cannot be written (the message names it).
    """
    from astropy.io import fits

    path = Path(path)
    hdu = fits.PrimaryHDU(image, header=wcs.to_header(relax=True))
    # a fresh name opened exclusively: the file gets the umask's permissions (mkstemp: 0600)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            hdu.writeto(fh)
        os.replace(tmp, path)
    except (OSError, ValueError) as err:  # astropy's header/data checks raise ValueErrors
        raise FormatError(f"{path}: cannot write ({err})") from None
    finally:
        tmp.unlink(missing_ok=True)


def warp_fits_file(
    input_path: str | Path,
    target_header: str | Path,
    output_path: str | Path,
    *,
    control: Any = None,
) -> dict[str, Any]:
    """Warp ``input_path`` onto the grid of ``target_header`` and write ``output_path``.

    FITS is read and written by :mod:`astropy.io.fits`, the WCSs are :class:`astropy.wcs.WCS`
    (any projection and distortion wcslib handles; celestial frames converted by
    :mod:`astropy.coordinates` when input and target differ). Returns a summary
    ``{"shape": (ny, nx), "covered": n_finite_pixels}``.
    """
    from warping.warp._high_level import warp_image

    image, src_wcs = read_image_and_wcs(input_path)
    _header, shape, dest_wcs = read_target_header(target_header)
    out = warp_image(image, src_wcs, dest_wcs, shape, control=control)
    write_warped(output_path, out, dest_wcs)
    covered = int(np.count_nonzero(~np.isnan(out)))
    logger.info("wrote %s: %dx%d, %d covered pixels", output_path, shape[1], shape[0], covered)
    return {"shape": shape, "covered": covered}
