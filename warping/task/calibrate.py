"""Turn a CCD's calexp into a calibrated exposure in nJy.

:func:`load_calibrated` reads a :class:`~warping.task.inputs.CcdInput`'s handles (the only I/O)
and :func:`calibrate_exposure` does the arithmetic (pure compute).

Order of operations (LSST 2025 semantics, which fixed the Gen2 sky-correction ordering bug):

1. if the calexp is background-subtracted but ``bgSubtracted=False`` (Gen3:
   ``doRevertOldBackground``) was asked, add ``calexpBackground`` back (counts);
2. if ``doApplySkyCorr`` (Gen3: ``doApplyNewBackground``), subtract ``skyCorr`` (counts, *before*
   photometric calibration). The two are exclusive: a skyCorr list starts with the
   calexpBackground negated. Both our background format and afw ``BackgroundList`` files work;
   an afw list fitted on another bbox than the calexp's fails the unit, naming the file;
3. replace the WCS by the external one if given (``jointcal_wcs``, or the visitSummary row's);
4. multiply the image by ``c(x, y)`` and the variance by ``c(x, y)**2`` (nJy per count), so pixels
   are nJy; the result carries ``PhotoCalib(1.0)`` and ``BUNIT = 'nJy'``;
5. replace the PSF by the visitSummary row's if asked (``useVisitSummaryPsf``): the CoaddPsf and
   PSF matching then use it; the row's ApCorrMap comes with it (as in Gen3), and the row's valid
   polygon replaces the calexp's whenever any component comes from the visitSummary (a row
   without one keeps the calexp's).

With ``useVisitSummary*``, the CCD's row of the visit's visitSummary supplies the components asked
for (:mod:`warping.task.calib_sources`); a visitSummary without a row for the CCD, or a row that
does not store a component asked for, makes the CCD unusable with that reason.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.wcs import WCS

from repo_butler.errors import FormatterError
from repo_butler.writes import ChecksumMismatchError
from warping.errors import WarpingError
from warping.exposure import Exposure
from warping.task.inputs import fmt_id

if TYPE_CHECKING:
    from collections.abc import Sequence

    from warping.apcorr import ApCorrMap
    from warping.background import BackgroundList
    from warping.photocalib import PhotoCalib
    from warping.polygon import ValidPolygon
    from warping.psf.base import Psf
    from warping.task.inputs import CcdInput

logger = logging.getLogger(__name__)

__all__ = ["UnusableCcdError", "calibrate_exposure", "load_calibrated"]


class UnusableCcdError(WarpingError, LookupError):
    """A CCD cannot be used: its calexp or a calibration product is missing or incomplete."""


def load_calibrated(inp: CcdInput, visit_summary_components: Sequence[str] = ()) -> Exposure:
    """Read a CCD's calexp and calibration products and return it calibrated (nJy).

    Parameters
    ----------
    inp
        The CCD's data ID and handles.
    visit_summary_components
        Components (``wcs``, ``photo_calib``, ``psf``) to take from the CCD's row of
        ``inp.visit_summary`` instead of the calexp (``MakeWarpConfig.visit_summary_components``).

    Raises
    ------
    UnusableCcdError
        With the reason the CCD is skipped: a product is missing (``inp.missing``), a file is
        missing, there is no photometric calibration, or the visitSummary has no row for the CCD
        or its row does not store a component asked for.
    """
    did = fmt_id(inp.data_id)
    if inp.missing:
        logger.warning("Calexp %s not usable; skipping it: %s", did, inp.missing)
        raise UnusableCcdError(inp.missing)
    try:
        calexp = inp.calexp.get()
    except FileNotFoundError:
        uri = inp.calexp.ref.uri if inp.calexp.ref is not None else "<memory>"
        why = f"Exposure not found: calexp {did}: file {uri} is missing; run `rb verify`"
        logger.warning("Calexp %s not usable; skipping it: %s", did, why)
        raise UnusableCcdError(why) from None
    except FormatterError as err:  # corrupt, truncated or modified since registered
        why = f"calexp {did} cannot be read: {err}"
        logger.warning("Calexp %s not usable; skipping it: %s", did, err)
        raise UnusableCcdError(why) from None
    try:
        products = {name: h.get() for name, h in inp.products().items()}
    except FileNotFoundError as err:
        raise UnusableCcdError(
            f"{err}: a calibration product's file is missing; run `rb verify`"
        ) from None
    except ChecksumMismatchError as err:  # a product read is not the one registered
        logger.warning("Calexp %s not usable; skipping it: %s", did, err)
        raise UnusableCcdError(f"calexp {did}: a calibration product is corrupt: {err}") from None
    catalog = products.pop("visit_summary", None)
    if visit_summary_components:
        products.update(_from_visit_summary(inp, catalog, calexp, visit_summary_components))
    # A product that cannot be read, or an afw BackgroundList fitted on another box, raises: the
    # unit fails with that reason (other units are written; ``--reuse`` redoes it once fixed).
    for name in ("background", "sky_corr"):
        background = products.get(name)
        if background is not None:
            background.check_bbox(calexp.bbox)
    photo_calib = products.get("photo_calib", calexp.photo_calib)
    if photo_calib is None:
        raise UnusableCcdError(
            f"calexp {did} has no photometric calibration; set doApplyExternalPhotoCalib=True "
            "or useVisitSummaryPhotoCalib=True to use an external one."
        )
    return calibrate_exposure(  # a calexp read for this call only is calibrated in place
        calexp,
        photo_calib=photo_calib,
        background=products.get("background"),
        sky_corr=products.get("sky_corr"),
        wcs=products.get("wcs"),
        psf=products.get("psf"),
        in_place=getattr(inp.calexp, "fresh", False),
        valid_polygon=products.get("valid_polygon"),
        ap_corr_map=products.get("ap_corr_map"),
    )


def _from_visit_summary(
    inp: CcdInput, catalog: Any, calexp: Exposure, components: Sequence[str]
) -> dict[str, Any]:
    """The ``components`` of the CCD's row of its visit's visitSummary, by name.

    Raises
    ------
    UnusableCcdError
        If the catalog is of another visit, has no row for the CCD, its row's detector bbox does
        not contain the calexp's, or the row does not store a component asked for.
    """
    from warping.visit_summary import MissingVisitSummaryRowError, VisitSummaryCatalog

    did = fmt_id(inp.data_id)
    if not isinstance(catalog, VisitSummaryCatalog):
        raise TypeError(
            f"CCD {did}: useVisitSummary* needs its input's visit_summary handle to give a "
            f"VisitSummaryCatalog, got {type(catalog).__name__}"
        )
    visit = int(inp.data_id.get("visit", catalog.visit))
    try:
        if visit != catalog.visit:
            raise UnusableCcdError(
                f"{catalog.source} is the visitSummary of visit {catalog.visit}, not of {visit}"
            )
        row = catalog.row(inp.ccd)
        box = calexp.bbox
        if box.intersection(row.bbox) != box:
            raise UnusableCcdError(
                f"{catalog.source}: the row of visit {visit} detector {row.detector} has bbox "
                f"{row.bbox.to_list()} (x0, y0, width, height), which does not contain the "
                f"calexp's {box.to_list()}: a visitSummary of another camera?"
            )
        source = f"{catalog.source} (visit {visit})"
        out = {name: row.component(name, source=source) for name in components}
        # the row's valid polygon whenever the visitSummary is used, its ApCorrMap with its PSF
        # (Gen3 takes the two together); absent ones leave the calexp's own
        if row.valid_polygon is not None:
            out["valid_polygon"] = row.valid_polygon
        if "psf" in components and row.ap_corr_map is not None:
            out["ap_corr_map"] = row.ap_corr_map
        return out
    except (MissingVisitSummaryRowError, UnusableCcdError) as err:
        logger.warning("Calexp %s not usable; skipping it: %s", did, err)
        raise UnusableCcdError(str(err)) from None


def calibrate_exposure(
    calexp: Exposure,
    *,
    photo_calib: PhotoCalib | None,
    background: BackgroundList | None = None,
    sky_corr: BackgroundList | None = None,
    wcs: WCS | None = None,
    psf: Psf | None = None,
    in_place: bool = False,
    valid_polygon: ValidPolygon | None = None,
    ap_corr_map: ApCorrMap | None = None,
) -> Exposure:
    """Return a new exposure in nJy with the requested corrections applied.

    Parameters
    ----------
    calexp
        The calexp in counts. It is not modified unless ``in_place``.
    photo_calib
        ``warping.photocalib.PhotoCalib`` giving ``c(x, y)`` in nJy/count (the calexp's own or an
        external one).
    background
        A ``BackgroundList`` to add back (``bgSubtracted=False``), or None.
    sky_corr
        A ``BackgroundList`` to subtract (``doApplySkyCorr``), or None.
    wcs
        External WCS replacing the calexp's, or None.
    psf
        PSF replacing the calexp's (a visitSummary row's), or None.
    in_place
        Calibrate the calexp's own image and variance arrays (which the result then shares,
        like its mask) instead of copies: for a calexp read only to be warped.
    valid_polygon, ap_corr_map
        A visitSummary row's valid polygon and aperture corrections replacing the calexp's, or
        None (keep the calexp's own). Neither changes pixels here.

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
    image = calexp.image  # calibrate_image writes new arrays unless in_place
    bbox = calexp.bbox
    if not in_place and (background is not None or sky_corr is not None):
        image = np.array(calexp.image, dtype=np.float32, copy=True)
    if background is not None:
        image += background.get_image(bbox).astype(np.float32)
    if sky_corr is not None:
        image -= sky_corr.get_image(bbox).astype(np.float32)
    out_image, out_var = photo_calib.calibrate_image(
        image, calexp.variance, calexp.xy0, in_place=in_place
    )
    metadata = dict(calexp.metadata)
    metadata["BUNIT"] = "nJy"
    return dataclasses.replace(
        calexp,
        image=np.asarray(out_image, dtype=np.float32),
        mask=calexp.mask if in_place else calexp.mask.copy(),
        variance=np.asarray(out_var, dtype=np.float32),
        wcs=wcs if wcs is not None else calexp.wcs,
        psf=psf if psf is not None else calexp.psf,
        photo_calib=PhotoCalib(1.0),
        metadata=metadata,
        valid_polygon=valid_polygon if valid_polygon is not None else calexp.valid_polygon,
        ap_corr_map=ap_corr_map if ap_corr_map is not None else calexp.ap_corr_map,
    )
