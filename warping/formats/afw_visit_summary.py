"""LSST ``visitSummary`` files (afw ``ExposureCatalog``) read into
:class:`warping.visit_summary.VisitSummaryCatalog`, and the butler formatter ``visit_summary``.

Layout (afw ``src/table/Exposure.cc``; see ``docs/real-lsst-inputs.md``): HDU 1 is the catalog, one
row per detector (``id``), with the parent bbox (``bbox_min/max_x/y``, inclusive), archive ids of
the row's components (``wcs``, ``psf``, ``photoCalib`` -- ``calib`` before ``EXPTABLE_VER`` 5 --,
``apCorrMap``, ``validPolygon``, ...; 0 = not stored; those five are read), the sky corners
(``raCorners``/``decCorners``) and scalar summary statistics; the afw archive follows
(``ARCHIVE_INDEX``). Components are read eagerly; one that is stored but cannot be read (an
unsupported PSF class, a corrupt SkyWcs) does not fail the catalog: it is None in its row with the
reason in ``VisitSummaryRow.unreadable``, so only a CCD that needs it is skipped.

Writing is refused: visitSummaries are pipeline outputs, ingest the files as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, BinaryIO, ClassVar

import numpy as np
from astropy.io import fits

from repo_butler.formatters.base import CodecFormatter, FileDataId
from warping.errors import FormatError, WarpingError
from warping.formats._common import open_fits_bytes, reading
from warping.formats.afw_inputs import read_archived_ap_corr_map, read_archived_polygon
from warping.formats.afw_psf import read_archived_psf
from warping.formats.afw_skywcs import read_archived_skywcs
from warping.formats.lsst_afw import LsstArchive, _read_photocalib_from_archive
from warping.geom import Box2I
from warping.visit_summary import VisitSummaryCatalog, VisitSummaryRow

logger = logging.getLogger(__name__)

__all__ = [
    "VisitSummaryFormatter",
    "read_visit_summary",
    "read_visit_summary_file",
    "visit_summary_from_bytes",
]

#: Columns that are not scalar summary statistics (archive ids, geometry, identity, corners).
_STRUCTURAL = {
    "wcs", "psf", "photocalib", "calib", "apcorrmap", "validpolygon", "visitinfo",
    "transmissioncurve", "detector", "id", "bbox_min_x", "bbox_min_y", "bbox_max_x",
    "bbox_max_y", "racorners", "deccorners",
}  # fmt: skip
_REQUIRED = ("id", "bbox_min_x", "bbox_min_y", "bbox_max_x", "bbox_max_y", "wcs")


def _scalar(value: Any) -> float | int | str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip()
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, np.integer | int):
        return int(value)
    return float(value)


def read_visit_summary(hdul: fits.HDUList, source: str) -> VisitSummaryCatalog:
    """Read an afw visitSummary (``ExposureCatalog``) with its archived components.

    Per row: detector id, bbox, the archived SkyWcs (:class:`~warping.ast_wcs.AstSkyWcs`),
    PhotoCalib and PSF (None when the archive id is 0), the corner sky positions and the
    scalar columns.

    Raises
    ------
    FormatError
        If the file is not an afw ExposureCatalog, lacks a required column, repeats a detector,
        or mixes visits.
    """
    if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU):
        raise FormatError(
            f"{source}: not an afw visitSummary (HDU 1 is not a binary table catalog)"
        )
    cat = hdul[1]
    afw_type = cat.header.get("AFW_TYPE")
    if afw_type not in (None, "EXPOSURE"):
        raise FormatError(
            f"{source}: afw catalog of type {afw_type!r}, not an ExposureCatalog (visitSummary)"
        )
    data = cat.data
    names = {n.lower(): n for n in (cat.columns.names or [])}
    missing = [c for c in _REQUIRED if c not in names]
    if missing:
        raise FormatError(
            f"{source}: not an afw visitSummary: the catalog lacks column(s) {', '.join(missing)}"
        )
    version = int(cat.header.get("EXPTABLE_VER", 0))
    pc_col = names.get("photocalib") if version >= 5 else names.get("calib")
    pc_col = pc_col or names.get("photocalib") or names.get("calib")
    archive = LsstArchive(hdul, source)
    if archive.index_hdu is None and len(data):
        raise FormatError(f"{source}: visitSummary has no afw archive (ARCHIVE_INDEX HDU)")
    rows: dict[int, VisitSummaryRow] = {}
    visits: set[int] = set()
    for r in data:
        detector = int(r[names["id"]])
        if detector in rows:
            raise FormatError(f"{source}: visitSummary has two rows for detector {detector}")
        where = f"{source} (detector {detector})"
        bbox = Box2I.from_minmax(
            int(r[names["bbox_min_x"]]),
            int(r[names["bbox_min_y"]]),
            int(r[names["bbox_max_x"]]),
            int(r[names["bbox_max_y"]]),
        )
        unreadable: dict[str, str] = {}
        components: dict[str, Any] = {}
        readers = (
            ("wcs", names["wcs"], read_archived_skywcs),
            ("photo_calib", pc_col, _read_photocalib_from_archive),
            ("psf", names.get("psf"), read_archived_psf),
            ("valid_polygon", names.get("validpolygon"), read_archived_polygon),
            ("ap_corr_map", names.get("apcorrmap"), read_archived_ap_corr_map),
        )
        for key, col, reader in readers:
            obj_id = int(r[col]) if col is not None else 0
            components[key] = None
            if obj_id <= 0:
                continue
            try:
                components[key] = reader(archive, obj_id)
            except (WarpingError, KeyError, ValueError, IndexError, TypeError) as err:
                unreadable[key] = (
                    f"{type(err).__name__}: {err}"
                    if not isinstance(err, WarpingError)
                    else str(err)
                )
                logger.warning("%s: %s is unreadable: %s", where, key, err)
        summary = {
            col: _scalar(r[col])
            for low, col in names.items()
            if low not in _STRUCTURAL and np.ndim(r[col]) == 0
        }
        if "visit" in names:
            visits.add(int(r[names["visit"]]))
        rows[detector] = VisitSummaryRow(
            detector=detector,
            bbox=bbox,
            wcs=components["wcs"],
            photo_calib=components["photo_calib"],
            psf=components["psf"],
            ra_corners=_corners(r, names.get("racorners")),
            dec_corners=_corners(r, names.get("deccorners")),
            summary=summary,
            unreadable=unreadable,
            valid_polygon=components["valid_polygon"],
            ap_corr_map=components["ap_corr_map"],
        )
    if len(visits) > 1:
        raise FormatError(f"{source}: visitSummary mixes visits {sorted(visits)}")
    visit = visits.pop() if visits else -1
    return VisitSummaryCatalog(visit=visit, rows=rows, source=source)


def _corners(row: Any, col: str | None) -> np.ndarray:
    if col is None:
        return np.full(4, np.nan)
    values = np.asarray(row[col], dtype=float).ravel()
    if values.size != 4:
        return np.full(4, np.nan)
    return values


def visit_summary_from_bytes(data: bytes, source: str) -> VisitSummaryCatalog:
    """Read a visitSummary file's bytes (:func:`read_visit_summary`)."""
    hdul = open_fits_bytes(data, source)
    with hdul, reading(source, "visitSummary"):
        return read_visit_summary(hdul, source)


def read_visit_summary_file(path: str) -> VisitSummaryCatalog:
    """Read a local visitSummary file."""
    with open(path, "rb") as f:
        return visit_summary_from_bytes(f.read(), str(path))


def _refuse_write(obj: Any) -> bytes:
    raise FormatError(
        "the visit_summary formatter only reads: visitSummary catalogs are written by the LSST "
        "pipeline (drp_tasks); ingest the pipeline's file with `rb ingest` instead of putting one"
    )


def data_id_from_visit_summary(fileobj: BinaryIO, source: str) -> FileDataId:
    """The visit and filter a visitSummary's rows hold (``visit``, ``physical_filter`` and
    ``band`` columns of its catalog HDU; every row must agree). Only that table is read."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    missing: dict[str, str] = {}
    with reading(source, "a visitSummary"), fits.open(fileobj, memmap=False) as hdul:
        if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU):
            raise FormatError(f"{source}: not a visitSummary (HDU 1 is not a catalog)")
        table = hdul[1].data
        names = {n.lower(): n for n in table.columns.names}
        for key, col in (("visit", "visit"), ("filter", "physical_filter"), ("band", "band")):
            if col not in names:
                missing[key] = f"a {col!r} column"
                continue
            found = {_scalar(v) for v in np.asarray(table[names[col]]).tolist()}
            found.discard("")
            if len(found) > 1:
                raise FormatError(
                    f"{source}: the rows disagree on {col} ({sorted(map(str, found))}); a "
                    "visitSummary holds one visit"
                )
            if found:
                values[key] = found.pop()
                origins[key] = f"{col} column"
            else:
                missing[key] = f"a non-empty {col!r} column"
    return FileDataId(values, {}, origins, missing, "visitSummary")


class VisitSummaryFormatter(CodecFormatter):
    """Butler formatter ``visit_summary``: afw visitSummary FITS -> :class:`VisitSummaryCatalog`
    (read only; writing raises :class:`~warping.errors.FormatError`). Its data ID (visit and
    filter) is read from the file at ingest."""

    name: ClassVar[str] = "visit_summary"
    extension: ClassVar[str] = ".fits"
    stores = VisitSummaryCatalog
    encode = staticmethod(_refuse_write)
    decode = staticmethod(visit_summary_from_bytes)

    def data_id_from_file(
        self, fileobj: BinaryIO, *, source: str, dimensions: Sequence[str], known: Any
    ) -> FileDataId:
        """The visit and filter the catalog's rows hold."""
        return data_id_from_visit_summary(fileobj, source)
