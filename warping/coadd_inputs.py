"""The inputs table stored in every warp (LSST ``CoaddInputs``): one visit row, one row per CCD."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from warping.apcorr import ApCorrMap
from warping.geom import Box2I
from warping.polygon import ValidPolygon
from warping.skywcs import SkyWcs, exact_wcs_text

__all__ = [
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "CcdRecord",
    "CoaddInputs",
    "VisitRecord",
    "decode_json",
    "encode_json",
    "exact_wcs_text",
    "wcs_from_text",
    "wcs_to_text",
]

#: Header card holding the version of the two inputs tables (absent before version 1: version 0,
#: the same columns). Readers refuse newer versions.
FORMAT_KEY = "CIFMTV"
FORMAT_VERSION = 3
#: Version 3 (issue 22) adds the CCD table's ``valid_polygon`` (``QD``: flat vertex coordinates,
#: empty = none) and ``ap_corr_map`` (``QB`` JSON text, empty = none) columns and makes the visit
#: table's ``goodpix`` and the CCD table's ``weight`` columns optional
#: (``inputRecorder.saveVisitGoodPix`` / ``saveCcdWeights``); a version-2 table reads as a version-3
#: table without polygons or aperture corrections. Version 2 stores the CCD table's text cells (WCS,
#: PSF, PhotoCalib, data ID) as variable-length UTF-8 byte arrays (``QB``): astropy writes a
#: fixed-width ``A`` column of a PSFEx model (420 kB of text) in ~2 s, the same bytes as an array in
#: ~4 ms. Version 1 (``A`` columns) reads as is.
TEXT_COLUMNS = ("wcs", "psf", "photo_calib", "data_id", "wcs_exact")  # versions 1 -> 2


def text_column(name: str, values: list[str]) -> fits.Column:
    """A ``QB`` column holding each string of ``values`` as UTF-8 bytes."""
    cells = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        cells[i] = np.frombuffer(v.encode("utf-8"), dtype=np.uint8)
    return fits.Column(name, "QB()", array=cells)


def cell_text(value: Any) -> str:
    """A text cell of either version: a ``QB`` byte array (2) or an ``A`` string (1)."""
    if isinstance(value, np.ndarray):
        return value.tobytes().decode("utf-8")
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        return {
            "__ndarray__": base64.b64encode(arr.tobytes()).decode("ascii"),
            "dtype": arr.dtype.str,
            "shape": list(arr.shape),
        }
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Mapping):
        return {str(k): _encode(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_encode(v) for v in obj]
    return obj


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            data = base64.b64decode(obj["__ndarray__"])
            return np.frombuffer(data, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def encode_json(obj: Any) -> str:
    """JSON text of ``obj``; numpy arrays are stored exactly (base64 of their bytes)."""
    return json.dumps(_encode(obj), sort_keys=True, separators=(",", ":"))


def decode_json(text: str) -> Any:
    """Inverse of :func:`encode_json`."""
    return _decode(json.loads(text))


def wcs_to_text(wcs: SkyWcs | None, bbox: Box2I | None = None) -> str:
    """FITS header text of a WCS (parent-pixel convention kept as is). An exact model such as an
    :class:`~warping.ast_wcs.AstSkyWcs` gives its TAN-SIP approximation over ``bbox`` (required
    then); store :func:`exact_wcs_text` beside it."""
    if wcs is None:
        return ""
    if isinstance(wcs, WCS):
        header_wcs = wcs
    else:
        if bbox is None:
            raise ValueError(f"a {type(wcs).__name__} needs a pixel box for its FITS approximation")
        from warping.skywcs import fits_wcs

        header_wcs = fits_wcs(wcs, bbox)
    return str(header_wcs.to_header(relax=True).tostring(sep="\n"))


def wcs_from_text(text: str, exact: str = "") -> SkyWcs | None:
    """Inverse of :func:`wcs_to_text` and :func:`exact_wcs_text`: the exact model when ``exact``
    (or ``text`` itself) is afw SkyWcs text, else the FITS header WCS."""
    from warping.ast_wcs import AstSkyWcs, is_afw_skywcs_text

    for candidate in (exact, text):
        if candidate and is_afw_skywcs_text(candidate):
            return AstSkyWcs.from_text(candidate, source="warp inputs table")
    if not text:
        return None
    return WCS(fits.Header.fromstring(text, sep="\n"))


@dataclass
class CcdRecord:
    """One input CCD of a warp: identity, good-pixel count, weight and its calibrations."""

    id: int
    ccd: int
    visit: int
    goodpix: int
    weight: float
    filter: str
    bbox: Box2I
    wcs: SkyWcs | None
    psf: Any = None  # warping.psf.base.Psf of the calexp, in CCD pixels
    photo_calib: Any = None
    valid_bbox: Box2I | None = None  # valid region in CCD pixels (psfMatched: eroded)
    data_id: Mapping[str, Any] = field(default_factory=dict)
    valid_polygon: ValidPolygon | None = None  # the CCD's valid polygon, CCD parent pixels
    ap_corr_map: ApCorrMap | None = None  # the CCD's aperture corrections

    def contains_sky(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """True where the sky positions fall on this CCD's valid pixels: inside its (valid)
        bbox's pixel edges and, when it has one, its valid polygon (LSST
        ``ExposureRecord::contains``)."""
        if self.wcs is None:
            return np.zeros(np.shape(ra), dtype=bool)
        x, y = self.wcs.world_to_pixel_values(ra, dec)
        box = self.valid_bbox or self.bbox
        inside = (
            (x >= box.x0 - 0.5) & (x <= box.x1 + 0.5) & (y >= box.y0 - 0.5) & (y <= box.y1 + 0.5)
        )
        if self.valid_polygon is not None:
            inside &= self.valid_polygon.contains(x, y)
        return np.asarray(inside)


@dataclass
class VisitRecord:
    """The single visit row of a warp's inputs."""

    id: int
    goodpix: int | None  # None: not recorded (``inputRecorder.saveVisitGoodPix=False``)
    weight: float = float("nan")  # filled by coaddition, as in LSST
    filter: str = ""


@dataclass
class CoaddInputs:
    """Visits and CCDs that contributed to a warp.

    ``visit_goodpix`` / ``ccd_weights``: whether the visit table has a ``goodpix`` column and
    the CCD table a ``weight`` column (``inputRecorder.saveVisitGoodPix`` / ``saveCcdWeights``);
    read back without them, the visits' goodpix is None and the CCDs' weight NaN.
    """

    visits: list[VisitRecord] = field(default_factory=list)
    ccds: list[CcdRecord] = field(default_factory=list)
    visit_goodpix: bool = True
    ccd_weights: bool = True

    # -- persistence --------------------------------------------------------------------------
    def to_hdus(self) -> list[fits.BinTableHDU]:
        """Two binary tables, ``COADD_INPUTS_VISITS`` and ``COADD_INPUTS_CCDS``."""

        visit_cols = [
            fits.Column("id", "K", array=np.array([v.id for v in self.visits], dtype=np.int64)),
            fits.Column(
                "goodpix", "K", array=np.array([v.goodpix for v in self.visits], dtype=np.int64)
            ),
            fits.Column("weight", "D", array=np.array([v.weight for v in self.visits])),
            fits.Column(
                "filter",
                f"{max([len(v.filter) for v in self.visits] + [1])}A",
                array=np.array([v.filter for v in self.visits]),
            ),
        ]
        if not self.visit_goodpix:
            del visit_cols[1]
        visits = fits.BinTableHDU.from_columns(visit_cols, name="COADD_INPUTS_VISITS")

        def text_col(name: str, values: list[str]) -> fits.Column:
            width = max([len(v) for v in values] + [1])
            return fits.Column(name, f"{width}A", array=np.array(values or [""])[: len(values)])

        from warping.psf import psf_to_dict

        rows = self.ccds
        psf_text = [encode_json(psf_to_dict(r.psf)) if r.psf is not None else "" for r in rows]
        pc_text = [
            encode_json(r.photo_calib.to_dict()) if r.photo_calib is not None else "" for r in rows
        ]
        valid = [r.valid_bbox or r.bbox for r in rows]
        cols = [
            fits.Column("id", "K", array=np.array([r.id for r in rows], dtype=np.int64)),
            fits.Column("ccd", "J", array=np.array([r.ccd for r in rows], dtype=np.int32)),
            fits.Column("visit", "K", array=np.array([r.visit for r in rows], dtype=np.int64)),
            fits.Column("goodpix", "K", array=np.array([r.goodpix for r in rows], dtype=np.int64)),
            fits.Column("weight", "D", array=np.array([r.weight for r in rows], dtype=float)),
            text_col("filter", [r.filter for r in rows]),
            fits.Column(
                "bbox", "4K", array=np.array([r.bbox.to_list() for r in rows]).reshape(-1, 4)
            ),
            fits.Column(
                "valid_bbox", "4K", array=np.array([b.to_list() for b in valid]).reshape(-1, 4)
            ),
            text_column("wcs", [wcs_to_text(r.wcs, r.bbox) for r in rows]),
            text_column("psf", psf_text),
            text_column("photo_calib", pc_text),
            text_column("data_id", [encode_json(dict(r.data_id)) for r in rows]),
            polygon_column([r.valid_polygon for r in rows]),
            text_column(
                "ap_corr_map",
                [
                    encode_json(r.ap_corr_map.to_dict()) if r.ap_corr_map is not None else ""
                    for r in rows
                ],
            ),
        ]
        if not self.ccd_weights:
            cols = [c for c in cols if c.name != "weight"]
        exact = [exact_wcs_text(r.wcs) for r in rows]
        if any(exact):  # only for AST models
            cols.append(text_column("wcs_exact", exact))
        ccds = fits.BinTableHDU.from_columns(cols, name="COADD_INPUTS_CCDS")
        for hdu in (visits, ccds):
            hdu.header[FORMAT_KEY] = (FORMAT_VERSION, "warp inputs table format version")
        return [visits, ccds]

    @classmethod
    def from_hdus(cls, visits_hdu: fits.BinTableHDU, ccds_hdu: fits.BinTableHDU) -> CoaddInputs:
        """Inverse of :meth:`to_hdus`."""
        from repo_butler.formats import check_version
        from warping.errors import FormatError
        from warping.photocalib import PhotoCalib
        from warping.psf import psf_from_dict

        for hdu in (visits_hdu, ccds_hdu):
            check_version(
                hdu.header.get(FORMAT_KEY), FORMAT_VERSION, what="warp inputs table",
                source=str(hdu.header.get("EXTNAME")), error=FormatError,
            )  # fmt: skip
        visit_goodpix = "goodpix" in visits_hdu.columns.names
        visits = [
            VisitRecord(
                int(r["id"]),
                int(r["goodpix"]) if visit_goodpix else None,
                float(r["weight"]),
                str(r["filter"]),
            )
            for r in visits_hdu.data
        ]
        ccds = []
        has_exact = "wcs_exact" in ccds_hdu.columns.names
        ccd_weights = "weight" in ccds_hdu.columns.names
        has_polygon = "valid_polygon" in ccds_hdu.columns.names  # version 3
        has_ap_corr = "ap_corr_map" in ccds_hdu.columns.names
        for r in ccds_hdu.data:
            psf_text = cell_text(r["psf"])
            pc_text = cell_text(r["photo_calib"])
            exact = cell_text(r["wcs_exact"]) if has_exact else ""
            ccds.append(
                CcdRecord(
                    id=int(r["id"]),
                    ccd=int(r["ccd"]),
                    visit=int(r["visit"]),
                    goodpix=int(r["goodpix"]),
                    weight=float(r["weight"]) if ccd_weights else float("nan"),
                    filter=str(r["filter"]),
                    bbox=Box2I(*(int(v) for v in r["bbox"])),
                    wcs=wcs_from_text(cell_text(r["wcs"]), exact),
                    psf=psf_from_dict(decode_json(psf_text)) if psf_text else None,
                    photo_calib=PhotoCalib.from_dict(decode_json(pc_text)) if pc_text else None,
                    valid_bbox=Box2I(*(int(v) for v in r["valid_bbox"])),
                    data_id=decode_json(cell_text(r["data_id"])),
                    valid_polygon=polygon_cell(r["valid_polygon"]) if has_polygon else None,
                    ap_corr_map=_ap_corr_cell(r["ap_corr_map"]) if has_ap_corr else None,
                )
            )
        return cls(visits, ccds, visit_goodpix=visit_goodpix, ccd_weights=ccd_weights)


def polygon_column(polygons: list[ValidPolygon | None]) -> fits.Column:
    """A ``QD`` column ``valid_polygon``: each cell the flat ``x0, y0, x1, y1, ...`` of a
    polygon's vertices (exact doubles), empty for a CCD without one."""
    cells = np.empty(len(polygons), dtype=object)
    for i, p in enumerate(polygons):
        cells[i] = p.vertices.ravel().copy() if p is not None else np.zeros(0, dtype=np.float64)
    return fits.Column("valid_polygon", "QD()", array=cells)


def polygon_cell(value: Any) -> ValidPolygon | None:
    """Inverse of one :func:`polygon_column` cell."""
    arr = np.asarray(value, dtype=np.float64)
    return ValidPolygon(arr.reshape(-1, 2)) if arr.size else None


def _ap_corr_cell(value: Any) -> ApCorrMap | None:
    text = cell_text(value)
    return ApCorrMap.from_dict(decode_json(text)) if text else None


def _to_hdus(inputs: CoaddInputs) -> list[fits.BinTableHDU]:
    return inputs.to_hdus()


def _from_hdus(hdus: Any) -> CoaddInputs:
    by_name = {h.header.get("EXTNAME"): h for h in hdus}
    try:
        return CoaddInputs.from_hdus(by_name["COADD_INPUTS_VISITS"], by_name["COADD_INPUTS_CCDS"])
    except KeyError as err:
        raise ValueError(f"warp inputs table is incomplete: missing {err.args[0]}") from None


#: The module named in the ``RBEXTMOD`` card of warps (where this model lived until issue 14;
#: :mod:`warping.task.coadd_inputs` re-exports it), so warps keep their bytes and older ones read.
RECORDED_MODULE = "warping.task.coadd_inputs"


def _register() -> None:
    from warping.formats.exposure_fits import register_extension

    register_extension("COADD_INPUTS", "coadd_inputs", _to_hdus, _from_hdus, module=RECORDED_MODULE)


_register()
