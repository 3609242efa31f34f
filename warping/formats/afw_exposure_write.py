"""Write an :class:`~warping.exposure.Exposure` (a warp) in afw's exposure layout.

Layout (``../shared/reference/lsst-real-products.md`` §0; compared field by field with the real
obs_base ``calexp.fits`` in ``tests/test_afw_warp_layout.py``):

=====  ==============  ==========================================================================
HDU    EXTNAME         content
=====  ==============  ==========================================================================
0      (primary)       ``EXPINFO_V = 2``, ``AR_HDU = 5`` (1-based), ``ARCHIVE_ID_<KEY>`` and
                       ``<KEY>_ID`` for SKYWCS, VALID_POLYGON, FILTER, PHOTOCALIB,
                       COADD_INPUTS, PSF, AP_CORR_MAP; ``EXPID``;
                       visit info (``EXPTIME``, ``DATE-AVG`` in TAI, ``BORE-*``); the metadata
1      IMAGE           float32; FITS-WCS of the array (TAN-SIP approximation of an AST model),
                       ``LTV1/2 = -xy0``, ``A`` WCS = xy0, ``INHERIT``, ``EXTTYPE``
2      MASK            int32; same cards plus ``MP_<PLANE> = bit``
3      VARIANCE        float32; same cards
4      ARCHIVE_INDEX   then one ``ARCHIVE_DATA`` HDU per schema (:mod:`.afw_archive_write`)
=====  ==============  ==========================================================================

Archive objects: the warp's ``SkyWcs`` (AST; an astropy WCS is converted), ``FilterLabel``,
``PhotoCalib`` (nJy: constant 1), ``CoaddInputs`` (afw ``ExposureCatalog`` s of visits and
CCDs with the CoaddInputRecorder columns) and the PSF (``CoaddPsf`` for direct warps: its
parameters, then an ``ExposureCatalog`` of the CCDs with ``goodpix`` and ``weight``; the model
PSF of PSF-matched warps). The CCD rows reference their SkyWcs, PSF, PhotoCalib, ApCorrMap and
Polygon by archive id; each object is stored once.

repo-butler additions afw readers ignore: the CCD catalog's ``valid_bbox_*`` and ``data_id``
(JSON) columns, and the primary cards ``RBAFWV`` (this layout's version), ``RBAFWMOD`` (the
module our reader imports for the CoaddInputs and CoaddPsf, :mod:`warping.formats.afw_coadd_read`)
and the metadata cards of :mod:`warping.formats.afw_metadata`, so that warps read back exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io import fits

from warping.exposure import Exposure
from warping.formats.afw_archive_write import ArchiveWriter, Catalog, Field
from warping.formats.afw_metadata import metadata_to_header
from warping.formats.exposure_layout import ExposureLayout

__all__ = [
    "AFW_LAYOUT_VERSION",
    "AfwLayoutExposure",
    "exposure_to_afw_hdulist",
    "put_any_psf",
    "put_coadd_inputs",
    "put_coadd_psf",
]

#: ``RBAFWV``: version of this writer's conventions on top of afw's layout.
AFW_LAYOUT_VERSION = 1
#: CoaddPsf warping-kernel cache size afw writes by default (``CoaddPsfControl``).
COADD_PSF_CACHE_SIZE = 10000


#: ``RBAFWMOD``: the module our reader imports to read the CoaddInputs and CoaddPsf back.
READER_MODULE = "warping.formats.afw_coadd_read"


@dataclass(frozen=True)
class AfwLayoutExposure(ExposureLayout):
    """An exposure the ``exposure`` formatter writes in afw's layout instead of ours."""

    exposure: Exposure

    def to_hdulist(self) -> fits.HDUList:
        """:func:`exposure_to_afw_hdulist` of the exposure."""
        return exposure_to_afw_hdulist(self.exposure)


# -- ExposureCatalog ------------------------------------------------------------------------------
_COMPONENTS = (
    ("wcs", "Wcs"),
    ("psf", "Psf"),
    ("photoCalib", "PhotoCalib"),
    ("apCorrMap", "ApCorrMap"),
    ("validPolygon", "Polygon"),
    ("visitInfo", "VisitInfo"),
    ("transmissionCurve", "TransmissionCurve"),
    ("detector", "Detector"),
)
_BASE_FIELDS = (
    *(Field(name, "J", f"archive ID for {cls} object") for name, cls in _COMPONENTS),
    Field("id", "K", "unique ID"),
    Field("bbox_min_x", "J", "bounding box (minimum)", "pixel"),
    Field("bbox_min_y", "J", "bounding box (minimum)", "pixel"),
    Field("bbox_max_x", "J", "bounding box (maximum)", "pixel"),
    Field("bbox_max_y", "J", "bounding box (maximum)", "pixel"),
)
_EMPTY_BOX = (0, 0, -1, -1)


def put_any_psf(aw: ArchiveWriter, psf: Any) -> int:
    """A ``CoaddPsf`` (:func:`put_coadd_psf`) or another PSF
    (:func:`~warping.formats.afw_objects_write.put_psf`)."""
    from warping.coadd_psf import CoaddPsf
    from warping.formats.afw_objects_write import put_psf

    return put_coadd_psf(aw, psf) if isinstance(psf, CoaddPsf) else put_psf(aw, psf)


def _ccd_components(aw: ArchiveWriter, ccd: Any) -> tuple[int, ...]:
    """Archive ids of a CCD row's components, in :data:`_COMPONENTS` order (put in afw's
    ``writeRecord`` order: PSF, WCS, PhotoCalib, ApCorrMap, Polygon)."""
    from warping.formats.afw_objects_write import (
        put_ap_corr_map,
        put_photo_calib,
        put_polygon,
        put_skywcs,
    )

    psf = put_any_psf(aw, ccd.psf)
    wcs = put_skywcs(aw, ccd.wcs) if ccd.wcs is not None else 0
    pc = put_photo_calib(aw, ccd.photo_calib)
    ap = put_ap_corr_map(aw, ccd.ap_corr_map)
    poly = put_polygon(aw, ccd.valid_polygon)
    return (wcs, psf, pc, ap, poly, 0, 0, 0)


def _box(b: Any) -> tuple[int, int, int, int]:
    return (b.x0, b.y0, b.x1, b.y1)


def put_coadd_inputs(aw: ArchiveWriter, inputs: Any, warp: Exposure | None = None) -> int:
    """afw ``CoaddInputs``: the visits and the CCDs as two ``ExposureCatalog`` s.

    The visit rows point to ``warp``'s WCS and PhotoCalib and carry its bbox, as
    CoaddInputRecorder's visit record does (not its PSF: the CoaddPsf is the exposure's).
    """
    if inputs is None:
        return 0
    from warping.formats.afw_objects_write import put_photo_calib, put_skywcs

    def write(w: ArchiveWriter) -> list[Catalog]:
        v_fields: list[Field] = list(_BASE_FIELDS)
        if inputs.visit_goodpix:
            v_fields.append(Field("goodpix", "J", "Number of good pixels in the coaddTempExp"))
        v_fields += [
            Field("weight", "D", "Weight for this visit in the coadd"),
            Field("filter", "32A", "Physical filter associated with this visit."),
        ]
        visits = []
        wcs_id = put_skywcs(w, warp.wcs) if warp is not None and warp.wcs is not None else 0
        pc_id = put_photo_calib(w, warp.photo_calib) if warp is not None else 0
        box = _box(warp.bbox) if warp is not None else _EMPTY_BOX
        for v in inputs.visits:
            goodpix = (int(v.goodpix or 0),) if inputs.visit_goodpix else ()
            ids = (wcs_id, 0, pc_id, 0, 0, 0, 0, 0)
            visits.append((*ids, v.id, *box, *goodpix, v.weight, v.filter))
        c_fields: list[Field] = [
            *_BASE_FIELDS,
            Field("ccd", "J", "cameraGeom CCD serial number"),
            Field("visit", "K", "Foreign key for the visits (coaddTempExp) catalog"),
            Field("goodpix", "J", "Number of good pixels in this CCD"),
        ]
        if inputs.ccd_weights:
            c_fields.append(Field("weight", "D", "Weight for this visit in the coadd"))
        c_fields += [
            Field("filter", "32A", "Physical filter associated with this visit."),
            Field("valid_bbox_min_x", "J", "valid region (minimum), repo-butler", "pixel"),
            Field("valid_bbox_min_y", "J", "valid region (minimum), repo-butler", "pixel"),
            Field("valid_bbox_max_x", "J", "valid region (maximum), repo-butler", "pixel"),
            Field("valid_bbox_max_y", "J", "valid region (maximum), repo-butler", "pixel"),
            Field("data_id", "QA", "data ID of the calexp (JSON), repo-butler"),
        ]
        from warping.coadd_inputs import encode_json

        ccds = []
        for c in inputs.ccds:
            weight = (c.weight,) if inputs.ccd_weights else ()
            ccds.append(
                (
                    *_ccd_components(w, c),
                    *(c.id, *_box(c.bbox), c.ccd, c.visit, c.goodpix),
                    *weight,
                    *(c.filter, *_box(c.valid_bbox or c.bbox), encode_json(dict(c.data_id))),
                )
            )
        return [Catalog(v_fields, visits), Catalog(c_fields, ccds)]

    return aw.put(inputs, "CoaddInputs", "lsst.afw.image", write)


def put_coadd_psf(aw: ArchiveWriter, psf: Any) -> int:
    """meas_algorithms ``CoaddPsf``: (coadd WCS id, cache size, average position, kernel name),
    then the ``ExposureCatalog`` of its CCDs with ``goodpix`` and ``weight``."""
    from warping.formats.afw_objects_write import put_skywcs
    from warping.psf.base import PsfError

    def write(w: ArchiveWriter) -> list[Catalog]:
        wcs_id = put_skywcs(w, psf.coadd_wcs)
        try:
            avg = psf.average_position()
        except PsfError:
            avg = (math.nan, math.nan)
        head = Catalog(
            [
                Field("coaddwcs", "J", "archive ID of the coadd's WCS"),
                Field("cachesize", "J", "size of the warping cache"),
                Field("avgpos_x", "D", "PSF accessors default position", "pixel"),
                Field("avgpos_y", "D", "PSF accessors default position", "pixel"),
                Field("warpingkernelname", "32A", "warping kernel name"),
            ],
            [(wcs_id, COADD_PSF_CACHE_SIZE, float(avg[0]), float(avg[1]), psf.kernel)],
        )
        fields = [
            *_BASE_FIELDS,
            Field("goodpix", "J", "Number of good pixels in this CCD"),
            Field("weight", "D", "Coadd weight"),
        ]
        rows = [
            (*_ccd_components(w, c), c.id, *_box(c.bbox), c.goodpix, c.weight) for c in psf.ccds
        ]
        return [head, Catalog(fields, rows)]

    return aw.put(psf, "CoaddPsf", "lsst.meas.algorithms", write)


# -- the exposure ---------------------------------------------------------------------------------
_VISIT_CARDS = (
    ("exposure_time", "EXPTIME"),
    ("boresight_ra", "BORE-RA"),
    ("boresight_dec", "BORE-DEC"),
    ("rotation_angle", "BORE-ROTANG"),
    ("airmass", "BORE-AIRMASS"),
)


def _primary(exposure: Exposure, ids: dict[str, int]) -> fits.PrimaryHDU:
    from astropy.time import Time

    from warping.formats.exposure_fits import _set

    ph = fits.PrimaryHDU().header
    ph["RBAFWV"] = (AFW_LAYOUT_VERSION, "repo-butler afw-layout writer version")
    ph["RBAFWMOD"] = (READER_MODULE, "reader of the CoaddInputs/CoaddPsf")
    _set(ph, "EXPINFO_V", 2)
    ph["AR_HDU"] = (5, "HDU (1-indexed) containing the archive used to ")
    for key, obj_id in ids.items():
        if obj_id:
            _set(ph, f"{key}_ID", obj_id)
            _set(ph, f"ARCHIVE_ID_{key}", obj_id)
    if exposure.id is not None:
        ph["EXPID"] = (int(exposure.id), "exposure id")
    vi = exposure.visit_info
    if vi is not None:
        for attr, key in _VISIT_CARDS:
            value = float(getattr(vi, attr))
            if math.isfinite(value):
                _set(ph, key, value)
        if math.isfinite(vi.mid_time_mjd):
            t = Time(vi.mid_time_mjd, format="mjd", scale="tai")
            t.precision = 9
            ph["DATE-AVG"] = (t.isot, "TAI date at middle of observation")
            ph["TIMESYS"] = "TAI"
    metadata_to_header(ph, exposure.metadata)
    return fits.PrimaryHDU(header=ph)


def _plane_hdus(exposure: Exposure) -> list[fits.ImageHDU]:
    from warping.formats.exposure_fits import _set, _wcs_header

    wcs_cards = _wcs_header(exposure)
    xy0_keys = [k for k in wcs_cards if k.endswith("A") and k[:5] in ("CTYPE", "CRPIX", "CRVAL",
                                                                     "CUNIT")]  # fmt: skip
    out = []
    for name, data in (
        ("IMAGE", np.asarray(exposure.image, dtype=np.float32)),
        ("MASK", np.asarray(exposure.mask, dtype=np.int32)),
        ("VARIANCE", np.asarray(exposure.variance, dtype=np.float32)),
    ):
        hdr = fits.Header([c for c in wcs_cards.cards if c.keyword not in xy0_keys])
        hdr["INHERIT"] = True
        hdr["EXTTYPE"] = name
        hdr["EXTNAME"] = name
        if name == "MASK":
            for plane, bit in exposure.mask_planes.bits.items():
                _set(hdr, f"MP_{plane}", int(bit))
        for key in xy0_keys:  # afw writes the xy0 'A' WCS last
            hdr[key] = wcs_cards[key]
        out.append(fits.ImageHDU(data, hdr))
    return out


def exposure_to_afw_hdulist(exposure: Exposure) -> fits.HDUList:
    """``exposure`` in afw's layout (see the module docstring)."""
    from warping.formats.afw_objects_write import (
        put_ap_corr_map,
        put_filter_label,
        put_photo_calib,
        put_polygon,
        put_skywcs,
    )

    aw = ArchiveWriter()
    ids = {
        "SKYWCS": put_skywcs(aw, exposure.wcs) if exposure.wcs is not None else 0,
        "VALID_POLYGON": put_polygon(aw, exposure.valid_polygon),
        "FILTER": put_filter_label(aw, exposure.filter),
        "PHOTOCALIB": put_photo_calib(aw, exposure.photo_calib),
        "COADD_INPUTS": put_coadd_inputs(aw, exposure.coadd_inputs, exposure),
        "PSF": put_any_psf(aw, exposure.psf),
        "AP_CORR_MAP": put_ap_corr_map(aw, exposure.ap_corr_map),
    }
    hdus: Sequence[Any] = [_primary(exposure, ids), *_plane_hdus(exposure), *aw.hdus()]
    return fits.HDUList(list(hdus))
