"""Read a warp's ``CoaddInputs`` and ``CoaddPsf`` from an afw archive, and the ``RepoButlerPsf``
objects of :mod:`warping.formats.afw_exposure_write`. Importing this module registers the
readers with :mod:`warping.formats.lsst_afw` and :mod:`warping.formats.afw_psf` (afw-layout warps
name it in ``RBAFWMOD``, so reading one imports it).

* ``CoaddInputs``: two ``ExposureCatalog`` s (visits, CCDs). A CCD row's ``wcs``, ``psf``,
  ``photoCalib``, ``apCorrMap`` and ``validPolygon`` archive ids are resolved with the existing
  readers (:mod:`.afw_skywcs`, :mod:`.afw_psf`, :mod:`.afw_inputs`); CoaddInputRecorder columns
  (``ccd``, ``visit``, ``goodpix``, ``weight``, ``filter``) are optional, as in afw; our
  ``valid_bbox_*`` and ``data_id`` columns are read when present.
* ``CoaddPsf``: catalog 0 holds the coadd WCS id and the warping kernel name, catalog 1 the CCDs
  with ``weight``. A CCD also in the archive's CoaddInputs takes that record's identity columns
  (``ccd``, ``visit``, ``filter``, valid bbox) with the CoaddPsf's weight.

Objects are read once per archive (a CCD's WCS and PSF are shared by both catalogs).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import weakref
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from warping.errors import FormatError
from warping.formats.afw_objects_write import FALLBACK_PSF_CLASS
from warping.geom import Box2I

if TYPE_CHECKING:
    from warping.coadd_inputs import CcdRecord, CoaddInputs
    from warping.coadd_psf import CoaddPsf
    from warping.formats.lsst_afw import LsstArchive
    from warping.psf.base import Psf

logger = logging.getLogger(__name__)

__all__ = [
    "read_archived_coadd_inputs",
    "read_archived_coadd_psf",
    "read_fallback_psf",
]

_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple[str, int], Any]] = weakref.WeakKeyDictionary()


def _cached(archive: LsstArchive, kind: str, obj_id: int, read: Callable[[], Any]) -> Any:
    store = _CACHE.setdefault(archive, {})
    if (kind, obj_id) not in store:
        store[(kind, obj_id)] = read()
    return store[(kind, obj_id)]


def _text(value: Any) -> str:
    """A string cell: fixed-width (``A``) or variable (``QA``: an array of characters)."""
    if isinstance(value, bytes):
        return value.decode("ascii").strip()
    if isinstance(value, str):
        return value.strip()
    return "".join(str(c) for c in np.asarray(value).ravel())


def _box(row: Any, prefix: str) -> Box2I:
    return Box2I.from_minmax(
        int(row[f"{prefix}_min_x"]),
        int(row[f"{prefix}_min_y"]),
        int(row[f"{prefix}_max_x"]),
        int(row[f"{prefix}_max_y"]),
    )


def _components(archive: LsstArchive, row: Any, names: list[str]) -> dict[str, Any]:
    """The CCD row's WCS, PSF, PhotoCalib, ApCorrMap and valid polygon (None for id 0)."""
    from warping.formats.afw_inputs import read_archived_ap_corr_map, read_archived_polygon
    from warping.formats.afw_skywcs import read_archived_skywcs
    from warping.formats.lsst_afw import _read_photocalib_from_archive

    readers: dict[str, tuple[str, Callable[[LsstArchive, int], Any]]] = {
        "wcs": ("wcs", read_archived_skywcs),
        "psf": ("psf", _psf_or_none),
        "photo_calib": ("photoCalib", _read_photocalib_from_archive),
        "ap_corr_map": ("apCorrMap", read_archived_ap_corr_map),
        "valid_polygon": ("validPolygon", read_archived_polygon),
    }
    out: dict[str, Any] = {}
    for attr, (column, reader) in readers.items():
        obj_id = int(row[column]) if column in names else 0
        out[attr] = (
            _cached(archive, attr, obj_id, partial(reader, archive, obj_id)) if obj_id > 0 else None
        )
    return out


def _psf_or_none(archive: LsstArchive, obj_id: int) -> Psf | None:
    """A CCD's PSF; None (with a warning) for a class this package does not read (a Piff PSF of
    an LSST warp): that CCD then has no PSF, as in afw, and the CoaddPsf leaves it out."""
    from warping.formats.afw_psf import UnsupportedPsfError, read_archived_psf

    try:
        return read_archived_psf(archive, obj_id)
    except UnsupportedPsfError as err:
        logger.warning("%s: an input CCD's PSF is left out: %s", archive.source, err.reason)
        return None


def _catalogs(archive: LsstArchive, obj_id: int, n: int, what: str) -> list[Any]:
    cats = archive.catalogs(obj_id)
    if len(cats) != n:
        raise FormatError(
            f"{archive.source}: {what} (archive id {obj_id}) has {len(cats)} catalogs, not {n}"
        )
    return cats


def read_archived_coadd_inputs(archive: LsstArchive, obj_id: int) -> CoaddInputs:
    """The ``CoaddInputs`` of archive id ``obj_id``.

    Raises
    ------
    FormatError
        If the object is not a CoaddInputs of two catalogs, or a row lacks afw's columns.
    """
    return _cached(archive, "inputs", obj_id, lambda: _read_inputs(archive, obj_id))


def _read_inputs(archive: LsstArchive, obj_id: int) -> CoaddInputs:
    from warping.coadd_inputs import CcdRecord, CoaddInputs, VisitRecord, decode_json

    name = archive.name(obj_id)
    if name != "CoaddInputs":
        raise FormatError(f"{archive.source}: archive object {obj_id} is a {name}, not CoaddInputs")
    visits_cat, ccds_cat = _catalogs(archive, obj_id, 2, "CoaddInputs")
    vnames = list(visits_cat.columns.names)
    cnames = list(ccds_cat.columns.names)
    try:
        visits = [
            VisitRecord(
                int(r["id"]),
                int(r["goodpix"]) if "goodpix" in vnames else None,
                float(r["weight"]) if "weight" in vnames else float("nan"),
                _text(r["filter"]) if "filter" in vnames else "",
            )
            for r in visits_cat
        ]
        ccds = []
        for r in ccds_cat:
            bbox = _box(r, "bbox")
            ccds.append(
                CcdRecord(
                    id=int(r["id"]),
                    ccd=int(r["ccd"]) if "ccd" in cnames else -1,
                    visit=int(r["visit"]) if "visit" in cnames else 0,
                    goodpix=int(r["goodpix"]) if "goodpix" in cnames else 0,
                    weight=float(r["weight"]) if "weight" in cnames else float("nan"),
                    filter=_text(r["filter"]) if "filter" in cnames else "",
                    bbox=bbox,
                    valid_bbox=_box(r, "valid_bbox") if "valid_bbox_min_x" in cnames else bbox,
                    data_id=decode_json(_text(r["data_id"])) if "data_id" in cnames else {},
                    **_components(archive, r, cnames),
                )
            )
    except KeyError as err:
        raise FormatError(
            f"{archive.source}: CoaddInputs (archive id {obj_id}) lacks column {err}"
        ) from None
    return CoaddInputs(
        visits, ccds, visit_goodpix="goodpix" in vnames, ccd_weights="weight" in cnames
    )


def read_archived_coadd_psf(archive: LsstArchive, obj_id: int) -> CoaddPsf:
    """The ``CoaddPsf`` of archive id ``obj_id`` (its CCDs' PSFs must be readable).

    Raises
    ------
    FormatError
        If it is an old one-catalog CoaddPsf, or its rows or coadd WCS are malformed.
    """
    from warping.coadd_psf import CoaddPsf
    from warping.formats.afw_skywcs import read_archived_skywcs

    cats = archive.catalogs(obj_id)
    if len(cats) != 2:
        raise FormatError(
            f"{archive.source}: CoaddPsf (archive id {obj_id}) has {len(cats)} catalog(s); only "
            "the two-catalog layout (meas_algorithms since 2013) is read"
        )
    head, rows = cats
    try:
        coadd_wcs = _cached(
            archive, "wcs", int(head[0]["coaddwcs"]),
            lambda: read_archived_skywcs(archive, int(head[0]["coaddwcs"])),
        )  # fmt: skip
        kernel = _text(head[0]["warpingkernelname"])
        known = _inputs_by_id(archive)
        names = list(rows.columns.names)
        ccds: list[CcdRecord] = []
        for r in rows:
            parts = _components(archive, r, names)
            weight = float(r["weight"])
            base = known.get(int(r["id"]))
            if base is not None:
                ccds.append(dataclasses.replace(base, weight=weight, psf=parts["psf"],
                                                wcs=parts["wcs"]))  # fmt: skip
                continue
            from warping.coadd_inputs import CcdRecord

            ccds.append(
                CcdRecord(
                    id=int(r["id"]),
                    ccd=-1,
                    visit=0,
                    goodpix=int(r["goodpix"]) if "goodpix" in names else 0,
                    weight=weight,
                    filter="",
                    bbox=_box(r, "bbox"),
                    **parts,
                )
            )
    except (KeyError, IndexError) as err:
        raise FormatError(
            f"{archive.source}: CoaddPsf (archive id {obj_id}) lacks column or row {err}"
        ) from None
    return CoaddPsf(ccds, coadd_wcs, kernel=kernel)


def _inputs_by_id(archive: LsstArchive) -> dict[int, CcdRecord]:
    ids = archive.ids_of("CoaddInputs")
    if len(ids) != 1:
        return {}
    return {c.id: c for c in read_archived_coadd_inputs(archive, ids[0]).ccds}


def read_fallback_psf(archive: LsstArchive, obj_id: int) -> Psf:
    """A ``RepoButlerPsf``: our PSF dict (JSON, no code is run) in a ``bytes`` column."""
    from warping.coadd_inputs import decode_json
    from warping.psf import psf_from_dict

    rows = archive.catalogs(obj_id)[0]
    if "bytes" not in rows.columns.names or len(rows) != 1:
        raise FormatError(f"{archive.source}: RepoButlerPsf {obj_id} has no 'bytes' row")
    try:
        text = np.asarray(rows[0]["bytes"], dtype=np.uint8).tobytes().decode("utf-8")
        return psf_from_dict(decode_json(text))
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, TypeError) as err:
        raise FormatError(
            f"{archive.source}: RepoButlerPsf {obj_id} is not a readable PSF dict: {err}"
        ) from None


def _coadd_inputs_or_none(archive: LsstArchive, obj_id: int) -> CoaddInputs | None:
    """A warp's CoaddInputs; None when empty (calexps hold an empty one)."""
    inputs = read_archived_coadd_inputs(archive, obj_id)
    return inputs if inputs.visits or inputs.ccds else None


def _register() -> None:
    from warping.formats.afw_psf import register_psf_reader
    from warping.formats.lsst_afw import register_component_reader

    register_psf_reader("CoaddPsf", read_archived_coadd_psf)
    register_psf_reader(FALLBACK_PSF_CLASS, read_fallback_psf)
    register_component_reader("COADD_INPUTS", "coadd_inputs", _coadd_inputs_or_none)


_register()
