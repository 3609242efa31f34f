"""Real calexp files with simulated pixels: stars of known flux drawn with the file's own PSF.

Tests and benchmarks measure warps of real LSST calexps (their SkyWcs, PSF and calibration)
against a known truth by replacing the pixels and keeping every other HDU.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["restamp_calexp"]


def restamp_calexp(
    src: str | Path,
    dst: str | Path,
    stars: np.ndarray,
    counts: np.ndarray,
    psf: Any,
    *,
    variance: float,
    rng: np.random.Generator | None = None,
) -> None:
    """Write the afw calexp ``src`` uncompressed to ``dst`` with its image replaced.

    Parameters
    ----------
    src, dst
        The calexp (e.g. a tile-compressed ``.fz``) and the file to write.
    stars
        ``(n, 2)`` parent-pixel positions.
    counts
        Each star's total counts.
    psf
        Draws the stars (``compute_image(x, y)`` -> stamp and its bbox), normally the file's own.
    variance
        Value of the constant variance plane written.
    rng
        When given, Gaussian noise of that variance is added to the image (else noiseless).

    Every other HDU (mask, PSF, WCS and calibration tables) is copied as is.
    """
    from astropy.io import fits

    with fits.open(src) as hdul:
        shape = hdul[1].data.shape
        image = (
            np.zeros(shape, dtype=np.float64)
            if rng is None
            else rng.normal(0.0, np.sqrt(variance), shape)
        )
        for (x, y), n in zip(stars, counts, strict=True):
            stamp, bb = psf.compute_image(float(x), float(y))
            image[bb.y0 : bb.y0 + bb.height, bb.x0 : bb.x0 + bb.width] += n * stamp
        out = fits.HDUList([fits.PrimaryHDU(header=hdul[0].header)])
        planes = (image.astype(np.float32), hdul[2].data, np.full(shape, variance, np.float32))
        for hdu, data in zip(hdul[1:4], planes, strict=True):
            out.append(fits.ImageHDU(data, header=hdu.header))
        out.extend(fits.BinTableHDU(h.data, header=h.header) for h in hdul[4:])
        with warnings.catch_warnings():  # the CFHT primary has non-standard cards; kept as is
            warnings.simplefilter("ignore")
            out.writeto(dst)
