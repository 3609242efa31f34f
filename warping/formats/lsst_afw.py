"""Readers for files written by the LSST Science Pipelines (afw ``Exposure`` FITS).

Supported:

* image/mask/variance from ``IMAGE``/``MASK``/``VARIANCE`` extensions (modern layout, also
  tile-compressed) or HDUs 1-3 without ``EXTNAME`` (old layout, uint16 mask);
* xy0 from ``LTV1/LTV2``; the WCS: the archived afw ``SkyWcs`` (AST FrameSet, exact; see
  :mod:`warping.formats.afw_skywcs`), else (old files, e.g. only a ``WCS_ID`` TanWcs) the image
  header's FITS-WCS converted to parent pixels, as afw does; mask planes from the ``MP_*`` cards;
* visit info from primary keywords (``EXPTIME``, ``DATE-AVG``/``TIME-MID``, ``BORE-*``);
* the filter from the archive ``FilterLabel`` (physical, else band) or ``FILTER``;
* ``PhotoCalib`` from the archive (constant, or a ``ChebyshevBoundedField``), else ``FLUXMAG0``;
* PSF from the archive (:mod:`warping.formats.afw_psf`: Gaussian, double Gaussian, PSFEx, PCA
  and kernel PSFs). A PSF that cannot be read (another class, a pickled ``PiffPsf``, a malformed
  object) leaves the pixels readable: the PSF is ``None``, ``metadata["LSST_UNSUPPORTED_PSF"]``
  names the class and ``metadata["LSST_UNSUPPORTED_PSF_REASON"]`` says why (a warning is logged).

* components whose readers are registered by higher modules (:func:`register_component_reader`):
  a warp's ``COADD_INPUTS`` (:mod:`warping.formats.afw_coadd_read`, which also reads the
  ``CoaddPsf``); files naming that module in ``RBAFWMOD`` (our afw-layout warps) import it, and
  their metadata is read from the cards of :mod:`warping.formats.afw_metadata`;
* the valid polygon and the ApCorrMap (:mod:`warping.formats.afw_inputs`); one that cannot be
  read is None, with the reason in ``metadata["LSST_UNREADABLE_<COMPONENT>"]`` (a warning is
  logged), the pixels stay readable.

Not read: Detector, TransmissionCurve, summary stats.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.io import fits
from astropy.time import Time

from warping.errors import FormatError
from warping.exposure import Exposure, VisitInfo
from warping.formats.afw_inputs import (
    read_archived_ap_corr_map,
    read_archived_chebyshev,
    read_archived_polygon,
)
from warping.formats.afw_psf import (
    PSF_CLASS_KEY,
    PSF_REASON_KEY,
    UnsupportedPsfError,
    read_archived_psf,
)
from warping.masks import MaskPlanes
from warping.photocalib import AB_REFERENCE_FLUX_NJY, PhotoCalib
from warping.psf.base import Psf
from warping.skywcs import SkyWcs, read_xy0, wcs_from_header

if TYPE_CHECKING:
    from warping.ast_wcs import AstSkyWcs

logger = logging.getLogger(__name__)

__all__ = [
    "LsstArchive",
    "is_lsst_exposure",
    "read_lsst_components",
    "read_lsst_exposure",
    "read_lsst_photocalib",
    "read_lsst_skywcs",
    "read_lsst_wcs",
    "register_component_reader",
]

_STRUCTURAL = {
    "SIMPLE", "BITPIX", "NAXIS", "EXTEND", "COMMENT", "HISTORY", "", "AR_HDU", "EXPINFO_V",
}  # fmt: skip


class LsstArchive:
    """The afw ``InputArchive`` of a file: ``ARCHIVE_INDEX`` plus its data catalogs."""

    def __init__(self, hdul: fits.HDUList, source: str) -> None:
        self.source = source
        self.hdul = hdul
        ph = hdul[0].header
        self.index_hdu: int | None = None
        if "AR_HDU" in ph:
            self.index_hdu = int(ph["AR_HDU"]) - 1  # 1-indexed in the header
        else:
            for i, hdu in enumerate(hdul):
                if hdu.header.get("EXTTYPE") == "ARCHIVE_INDEX":
                    self.index_hdu = i
                    break
        self.entries: dict[int, list[tuple[int, int, int, int, str]]] = {}
        if self.index_hdu is None:
            return
        if self.index_hdu >= len(hdul):
            raise FormatError(f"{source}: AR_HDU points past the end of the file")
        index = hdul[self.index_hdu].data
        names = [n.lower() for n in index.columns.names]

        def col(*candidates: str) -> np.ndarray:
            for c in candidates:
                if c in names:
                    return np.asarray(index.field(names.index(c)))
            raise FormatError(f"{source}: archive index lacks column {candidates[0]!r}")

        ids = col("id")
        cat_archive = col("cat.archive", "cat_archive")
        cat_persistable = col("cat.persistable", "cat_persistable")
        row0 = col("row0")
        nrows = col("nrows")
        cls = col("name")
        for i in range(len(ids)):
            name = (cls[i].decode() if isinstance(cls[i], bytes) else str(cls[i])).strip()
            self.entries.setdefault(int(ids[i]), []).append(
                (int(cat_persistable[i]), int(cat_archive[i]), int(row0[i]), int(nrows[i]), name)
            )

    def ids_of(self, class_name: str) -> list[int]:
        """Archive ids of the objects of class ``class_name``, sorted."""
        return sorted(i for i, e in self.entries.items() if e[0][4] == class_name)

    def single_id(self, class_name: str) -> int:
        """The archive id of the one ``class_name`` object of a standalone archive file.

        Raises
        ------
        FormatError
            If there is none, or several (a catalog such as a visitSummary, whose rows the
            ``visit_summary`` formatter reads).
        """
        ids = self.ids_of(class_name)
        if not ids:
            raise FormatError(f"{self.source}: afw archive holds no {class_name}")
        if len(ids) > 1:
            raise FormatError(
                f"{self.source}: afw archive holds {len(ids)} {class_name} objects (a catalog such "
                f"as a visitSummary?), not one standalone {class_name}; read it with the "
                "visit_summary formatter"
            )
        return ids[0]

    def name(self, obj_id: int) -> str:
        """Class name of archive object ``obj_id``."""
        if obj_id not in self.entries:
            raise FormatError(f"{self.source}: archive has no object with id {obj_id}")
        return self.entries[obj_id][0][4]

    def catalogs(self, obj_id: int) -> list[Any]:
        """The rows (FITS_rec slices) of each catalog of object ``obj_id``, in persistable order."""
        if self.index_hdu is None:
            raise FormatError(f"{self.source}: file has no afw archive")
        out = []
        for _, cat, row0, nrows, _ in sorted(self.entries.get(obj_id, [])):
            hdu = self.hdul[self.index_hdu + cat]
            out.append(hdu.data[row0 : row0 + nrows])
        if not out:
            raise FormatError(f"{self.source}: archive has no object with id {obj_id}")
        return out


#: Exposure attribute and reader of archive components that need models above this module:
#: ``{component key: (attribute, reader(archive, obj_id))}``.
_COMPONENT_READERS: dict[str, tuple[str, Callable[[LsstArchive, int], Any]]] = {}


def register_component_reader(
    component: str, attr: str, reader: Callable[[LsstArchive, int], Any]
) -> None:
    """Read ``ARCHIVE_ID_<component>`` into ``exposure.<attr>`` with ``reader`` from now on."""
    _COMPONENT_READERS[component] = (attr, reader)


def _component_id(ph: fits.Header, component: str) -> int | None:
    for key in (f"ARCHIVE_ID_{component}", f"{component}_ID"):
        if key in ph and int(ph[key]) > 0:
            return int(ph[key])
    return None


def is_lsst_exposure(hdul: fits.HDUList) -> bool:
    """True when the file looks like an afw exposure (image HDUs 1-3, or IMAGE/MASK/VARIANCE)."""
    names = [h.header.get("EXTNAME") for h in hdul]
    if {"IMAGE", "MASK", "VARIANCE"} <= set(names):
        return True
    if len(hdul) >= 4 and all(
        isinstance(hdul[i], fits.ImageHDU | fits.CompImageHDU) for i in (1, 2, 3)
    ):
        return hdul[2].header.get("EXTTYPE") == "MASK" or any(
            k.startswith("MP_") for k in hdul[2].header
        )
    return False


def _image_hdus(hdul: fits.HDUList) -> tuple[Any, Any, Any]:
    by_name = {h.header.get("EXTNAME"): h for h in hdul}
    if {"IMAGE", "MASK", "VARIANCE"} <= set(by_name):
        return by_name["IMAGE"], by_name["MASK"], by_name["VARIANCE"]
    return hdul[1], hdul[2], hdul[3]


def _read_photocalib_from_archive(archive: LsstArchive, obj_id: int) -> PhotoCalib:
    rows = archive.catalogs(obj_id)[0]
    row = rows[0]
    names = [n.lower() for n in rows.columns.names]
    mean = float(row["calibrationMean"])
    err = float(row["calibrationErr"])
    is_constant = True
    if "flags" in names:
        flags = np.atleast_1d(row["flags"])
        is_constant = bool(flags[0]) if flags.size else True
    field_id = int(row["field"]) if "field" in names else 0
    if is_constant or field_id <= 0:
        return PhotoCalib(mean, err)
    bf_name = archive.name(field_id)
    if bf_name != "ChebyshevBoundedField":
        raise FormatError(
            f"{archive.source}: PhotoCalib uses an unsupported bounded field {bf_name!r}"
        )
    field = read_archived_chebyshev(archive, field_id)
    return PhotoCalib(None, err, field)


def _read_psf_or_reason(archive: LsstArchive, obj_id: int, metadata: dict[str, Any]) -> Psf | None:
    """The archived PSF, or None with the class and the reason recorded in ``metadata``."""
    try:
        return read_archived_psf(archive, obj_id)
    except UnsupportedPsfError as err:
        name, why = err.psf_class, err.reason
    except FormatError as err:
        try:
            name = archive.name(obj_id)
        except FormatError:
            name = "<missing>"
        why = str(err).removeprefix(f"{archive.source}: ")
    logger.warning("%s: cannot read the PSF (%s): %s; exposure.psf is None", archive.source,
                   name, why)  # fmt: skip
    metadata[PSF_CLASS_KEY] = name
    metadata[PSF_REASON_KEY] = why
    return None


def _visit_info(ph: fits.Header) -> VisitInfo | None:
    def num(*keys: str) -> float:
        for k in keys:
            if k in ph:
                try:
                    v = float(ph[k])
                except (TypeError, ValueError):
                    continue
                if math.isfinite(v):
                    return v
        return float("nan")

    mjd = float("nan")
    for key in ("DATE-AVG", "TIME-MID"):
        if key in ph and isinstance(ph[key], str) and ph[key].strip():
            try:
                text = ph[key].strip().rstrip("Z")
                scale = (
                    "utc" if key == "TIME-MID" else str(ph.get("TIMESYS", "TAI")).strip().lower()
                )
                mjd = float(Time(text, format="isot", scale=scale).tai.mjd)
                if mjd < 40588.0:  # afw writes the Unix epoch for "unknown"
                    mjd = float("nan")
                    continue
                break
            except ValueError:
                continue
    vi = VisitInfo(
        exposure_time=num("EXPTIME"),
        mid_time_mjd=mjd,
        boresight_ra=num("BORE-RA"),
        boresight_dec=num("BORE-DEC"),
        rotation_angle=num("BORE-ROTANG"),
        airmass=num("BORE-AIRMASS", "AIRMASS"),
    )
    if all(math.isnan(getattr(vi, f)) for f in vi.__dataclass_fields__):
        return None
    return vi


def read_lsst_skywcs(hdul: fits.HDUList, source: str) -> AstSkyWcs | None:
    """The archived afw SkyWcs of an afw exposure (``ARCHIVE_ID_SKYWCS``/``SKYWCS_ID``), or
    None when it stores none (old files, whose ``WCS_ID`` TanWcs afw itself ignores)."""
    from warping.formats.afw_skywcs import read_archived_skywcs

    sid = _component_id(hdul[0].header, "SKYWCS")
    if sid is None:
        return None
    return read_archived_skywcs(LsstArchive(hdul, source), sid)


def read_lsst_wcs(
    hdul: fits.HDUList, image_header: fits.Header, xy0: tuple[int, int], source: str
) -> SkyWcs | None:
    """An afw exposure's WCS: the archived SkyWcs (exact, AST), else the image header's
    FITS-WCS (files without ``SKYWCS`` in the archive), else None."""
    archived = read_lsst_skywcs(hdul, source)
    if archived is not None:
        return archived
    return wcs_from_header(image_header, xy0)


def read_lsst_psf(hdul: fits.HDUList, source: str) -> Psf | None:
    """The PSF of an afw exposure's archive (None when it has none or it cannot be read)."""
    pid = _component_id(hdul[0].header, "PSF")
    if pid is None:
        return None
    return _read_psf_or_reason(LsstArchive(hdul, source), pid, {})


def read_lsst_exposure(hdul: fits.HDUList, source: str) -> Exposure:
    """Read an afw exposure (modern, old or tile-compressed layout) into an :class:`Exposure`."""
    img, msk, var = _image_hdus(hdul)
    image = np.asarray(img.data, dtype=np.float32)
    mask = np.asarray(msk.data).astype(np.int32)
    variance = np.asarray(var.data, dtype=np.float32)
    if image.ndim != 2 or not image.shape == mask.shape == variance.shape:
        raise FormatError(
            f"{source}: afw image/mask/variance shapes {image.shape}/{mask.shape}/{variance.shape} "
            "are not equal 2-D shapes"
        )
    xy0 = read_xy0(img.header)
    planes = MaskPlanes({k[3:]: int(v) for k, v in msk.header.items() if k.startswith("MP_")})
    components = read_lsst_components(hdul, img.header, xy0, source)
    return Exposure(image, mask, variance, mask_planes=planes, xy0=xy0, **components)


def read_lsst_components(
    hdul: fits.HDUList, image_header: fits.Header, xy0: tuple[int, int], source: str
) -> dict[str, Any]:
    """Everything of an afw exposure but its pixels and mask planes, as :class:`Exposure`
    keyword arguments (``wcs``, ``psf``, ``photo_calib``, ``visit_info``, ``filter``, ``id``,
    ``metadata``, ``valid_polygon``, ``ap_corr_map`` and registered components)."""
    ph = hdul[0].header
    module = str(ph.get("RBAFWMOD", ""))
    if module.split(".")[0] == "warping":  # our afw-layout warps name their reader's module
        importlib.import_module(module)
    archive = LsstArchive(hdul, source)
    wcs = read_lsst_wcs(hdul, image_header, xy0, source)
    metadata: dict[str, Any] = {}
    psf = None
    photo_calib = None
    filt: str | None = None
    pid = _component_id(ph, "PSF")
    if pid is not None:
        psf = _read_psf_or_reason(archive, pid, metadata)
    cid = _component_id(ph, "PHOTOCALIB")
    if cid is not None:
        photo_calib = _read_photocalib_from_archive(archive, cid)
    elif float(ph.get("FLUXMAG0", 0.0) or 0.0) > 0:
        fm0 = float(ph["FLUXMAG0"])
        fm0_err = float(ph.get("FLUXMAG0ERR", 0.0) or 0.0)
        mean = AB_REFERENCE_FLUX_NJY / fm0
        photo_calib = PhotoCalib(mean, mean * fm0_err / fm0)
    polygon, ap_corr = _read_inputs_components(ph, archive, metadata)
    fid = _component_id(ph, "FILTER")
    if fid is not None and archive.name(fid) == "FilterLabel":
        row = archive.catalogs(fid)[0][0]
        names = row.array.columns.names
        for col in ("physical", "band"):
            if col in names:
                val = row[col]
                val = val.decode() if isinstance(val, bytes) else str(val)
                if val.strip():
                    filt = val.strip()
                    break
    if filt is None and isinstance(ph.get("FILTER"), str):
        f = ph["FILTER"].strip()
        filt = f if f and f != "_unknown_" else None
    for key, value in ph.items():
        if key in _STRUCTURAL or key.endswith("_ID") or key.startswith("ARCHIVE_ID"):
            continue
        if isinstance(value, str | int | float | bool):
            metadata[key] = value
    if "RBAFWV" in ph:  # our afw-layout warps: the metadata as written, plus the notes above
        from warping.formats.afw_metadata import metadata_from_header

        notes = {k: v for k, v in metadata.items() if k.startswith("LSST_")}
        metadata = {**metadata_from_header(ph, source), **notes}
    exp_id = ph.get("EXPID")
    out: dict[str, Any] = {
        "wcs": wcs,
        "psf": psf,
        "photo_calib": photo_calib,
        "visit_info": _visit_info(ph),
        "filter": filt,
        "id": int(exp_id) if isinstance(exp_id, int) else None,
        "metadata": metadata,
        "valid_polygon": polygon,
        "ap_corr_map": ap_corr,
    }
    for key, (attr, reader) in _COMPONENT_READERS.items():
        obj_id = _component_id(ph, key)
        if obj_id is not None:
            out[attr] = reader(archive, obj_id)
    return out


def _read_inputs_components(
    ph: fits.Header, archive: LsstArchive, metadata: dict[str, Any]
) -> tuple[Any, Any]:
    """The valid polygon and ApCorrMap (None when absent or unreadable, with the reason in
    ``metadata``)."""
    out: list[Any] = []
    for key, reader in (
        ("VALID_POLYGON", read_archived_polygon),
        ("AP_CORR_MAP", read_archived_ap_corr_map),
    ):
        obj_id = _component_id(ph, key)
        value = None
        if obj_id is not None:
            try:
                value = reader(archive, obj_id)
            except (FormatError, KeyError, ValueError, IndexError, TypeError) as err:
                why = str(err).removeprefix(f"{archive.source}: ")
                logger.warning("%s: cannot read the %s: %s; left out", archive.source, key, why)
                metadata[f"LSST_UNREADABLE_{key}"] = why
        out.append(value)
    return out[0], out[1]


def read_lsst_photocalib(hdul: fits.HDUList, source: str) -> PhotoCalib:
    """Read a standalone afw ``PhotoCalib`` archive file (e.g. ``jointcal_photoCalib``)."""
    archive = LsstArchive(hdul, source)
    return _read_photocalib_from_archive(archive, archive.single_id("PhotoCalib"))
