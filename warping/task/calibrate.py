"""Turn a calexp into a calibrated exposure in nJy (pure compute; the butler reads live elsewhere).

Order of operations (LSST 2025 semantics, which fixed the Gen2 sky-correction ordering bug):

1. if the calexp is background-subtracted but ``bgSubtracted=False`` was asked, add
   ``calexpBackground`` back (counts);
2. if ``doApplySkyCorr``, subtract ``skyCorr`` (counts, *before* photometric calibration);
3. replace the WCS by the external one if given;
4. multiply the image by ``c(x, y)`` and the variance by ``c(x, y)**2`` (nJy per count), so pixels
   are nJy; the result carries ``PhotoCalib(1.0)`` and ``BUNIT = 'nJy'``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
from astropy.wcs import WCS

from warping.exposure import Exposure

logger = logging.getLogger(__name__)

__all__ = ["calibrate_exposure"]


def calibrate_exposure(
    calexp: Exposure,
    *,
    photo_calib: Any,
    background: Any = None,
    sky_corr: Any = None,
    wcs: WCS | None = None,
) -> Exposure:
    """Return a new exposure in nJy with the requested corrections applied.

    Parameters
    ----------
    calexp
        The calexp in counts. It is not modified.
    photo_calib
        ``warping.photocalib.PhotoCalib`` giving ``c(x, y)`` in nJy/count (the calexp's own or an
        external one).
    background
        A ``BackgroundList`` to add back (``bgSubtracted=False``), or None.
    sky_corr
        A ``BackgroundList`` to subtract (``doApplySkyCorr``), or None.
    wcs
        External WCS replacing the calexp's, or None.

    Returns
    -------
    Exposure
        Image and variance in nJy, ``photo_calib = PhotoCalib(1.0)``, ``metadata['BUNIT'] = 'nJy'``.
    """
    from warping.photocalib import PhotoCalib

    if photo_calib is None:
        raise ValueError(
            f"Exposure {calexp.id} has no photometric calibration; enable "
            "doApplyExternalPhotoCalib or provide a calexp with a PhotoCalib."
        )
    image = np.array(calexp.image, dtype=np.float32, copy=True)
    bbox = calexp.bbox
    if background is not None:
        image += background.get_image(bbox).astype(np.float32)
    if sky_corr is not None:
        image -= sky_corr.get_image(bbox).astype(np.float32)
    out_image, out_var = photo_calib.calibrate_image(image, calexp.variance, calexp.xy0)
    metadata = dict(calexp.metadata)
    metadata["BUNIT"] = "nJy"
    return dataclasses.replace(
        calexp,
        image=np.asarray(out_image, dtype=np.float32),
        mask=calexp.mask.copy(),
        variance=np.asarray(out_var, dtype=np.float32),
        wcs=wcs if wcs is not None else calexp.wcs,
        photo_calib=PhotoCalib(1.0),
        metadata=metadata,
    )
