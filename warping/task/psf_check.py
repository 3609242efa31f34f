"""Is a CCD's PSF usable? Checked before warping, so no warp is written whose PSF fails.

A direct warp's :class:`~warping.coadd_psf.CoaddPsf` evaluates each input CCD's PSF wherever that
CCD landed, and PSF matching needs the PSF too. A CCD whose PSF is missing (e.g. a class the
reader does not evaluate, recorded by :mod:`warping.formats.afw_psf` in the calexp's metadata) or
cannot be evaluated is therefore skipped before warping, with the reason in the run summary.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from warping.exposure import Exposure
from warping.formats.afw_psf import PSF_CLASS_KEY, PSF_REASON_KEY

logger = logging.getLogger(__name__)

__all__ = ["psf_problem"]

#: A PSF image must sum to 1 within this (every Psf of this package normalises its images).
SUM_TOLERANCE = 1e-3


def psf_problem(calexp: Exposure, what: str) -> str | None:
    """Why ``calexp``'s PSF cannot be used, or None when it evaluates at the CCD centre.

    Parameters
    ----------
    calexp
        The (calibrated) calexp, with the PSF the warps would use.
    what
        How to name the CCD in the reason, e.g. ``"calexp visit=1, ccd=2"``.

    Returns
    -------
    str or None
        A one-line reason naming the CCD and the PSF class, or None.
    """
    psf = calexp.psf
    if psf is None:
        cls = calexp.metadata.get(PSF_CLASS_KEY)
        if cls:
            why = calexp.metadata.get(PSF_REASON_KEY) or "it could not be read"
            return f"{what}: its PSF ({cls}) cannot be used: {why}"
        return (
            f"{what} has no PSF, so neither a CoaddPsf nor PSF matching is possible on its pixels"
        )
    bbox = calexp.bbox
    x = bbox.x0 + 0.5 * (bbox.width - 1)
    y = bbox.y0 + 0.5 * (bbox.height - 1)
    name = type(psf).__name__
    try:
        image, box = psf.compute_image(x, y)
        image = np.asarray(image, dtype=float)
        total = float(image.sum())
    except Exception as err:  # any failure of a PSF model makes the CCD unusable
        return f"{what}: its PSF ({name}) cannot be evaluated at ({x:.1f}, {y:.1f}): {err}"
    if image.shape != (box.height, box.width) or not np.isfinite(image).all():
        return f"{what}: its PSF ({name}) gives a non-finite or mis-shaped image at the centre"
    if not math.isfinite(total) or abs(total - 1.0) > SUM_TOLERANCE:
        return f"{what}: its PSF ({name}) image at the centre sums to {total}, not 1"
    return None
