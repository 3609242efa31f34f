"""What a warp file holds besides its pixels, read from its headers and tables only.

A warp in the exposure format (:mod:`warping.formats.exposure_fits`) has its IMAGE, MASK and
VARIANCE planes in image extensions, plain or tile-compressed, and its PSF (a ``CoaddPsf``),
photometric calibration, metadata, exact WCS and inputs table (``COADD_INPUTS_*``) in binary
tables; a warp in afw's layout (``warpFormat='afw'``) has the same planes and the rest in its afw
archive. :func:`read_warp_file` reads every header and table but never the planes' data: the
pixels are read later, by section (:mod:`warping.stack.planes`).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.io import fits

from repo_butler.formats import check_version
from warping.errors import FormatError
from warping.geom import Box2I
from warping.masks import MaskPlanes
from warping.skywcs import SkyWcs, read_xy0, wcs_from_header

__all__ = ["PLANES", "PlaneInfo", "WarpFile", "read_warp_file"]

logger = logging.getLogger(__name__)

#: The pixel planes of a warp: extension name and the dtype it must hold.
PLANES = {
    "IMAGE": np.dtype(np.float32),
    "MASK": np.dtype(np.int32),
    "VARIANCE": np.dtype(np.float32),
}


@dataclass(frozen=True)
class PlaneInfo:
    """Where one pixel plane lives in its file.

    Attributes
    ----------
    name : str
        ``IMAGE``, ``MASK`` or ``VARIANCE``.
    index : int
        HDU index in the file.
    compressed : bool
        Tile-compressed (a ``ZIMAGE`` HDU).
    blank_is_inf : bool
        Blank pixels stand for +inf (``RBZBLINF``, quantized planes).
    nbytes_on_disk : int
        Bytes of the plane's data in the file (compressed size for compressed planes).
    tile_rows : int
        Rows per compression tile (the plane's height when not compressed).
    data_offset : int
        Byte offset of the plane's data in the file.
    scaled : bool
        The plane has ``BSCALE``/``BZERO`` cards (read through astropy, not as raw bytes).
    """

    name: str
    index: int
    compressed: bool
    blank_is_inf: bool
    nbytes_on_disk: int
    tile_rows: int
    data_offset: int
    scaled: bool


@dataclass(frozen=True)
class WarpFile:
    """A warp file's layout and non-pixel content.

    Attributes
    ----------
    source : str
        File URL (for messages).
    bbox : Box2I
        Parent (tract) pixel box of the planes.
    planes : dict
        :class:`PlaneInfo` by plane name.
    mask_planes : MaskPlanes
        The mask's plane names and bits (``MP_*`` cards).
    unit : str
        The image's ``BUNIT``.
    mjd : float
        Mid-exposure MJD (``MJD-AVG``; NaN if absent).
    filter : str
        ``FILTER`` card ('' if absent).
    wcs : SkyWcs or None
        The warp's WCS in parent pixels (the exact SkyWcs when the file has one).
    psf, photo_calib, coadd_inputs
        The stored models (``None`` when absent).
    metadata : dict
        The free metadata table.
    primary : fits.Header
        The primary header.
    """

    source: str
    bbox: Box2I
    planes: dict[str, PlaneInfo]
    mask_planes: MaskPlanes
    unit: str
    mjd: float
    filter: str
    wcs: SkyWcs | None
    psf: Any = None
    photo_calib: Any = None
    coadd_inputs: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    primary: fits.Header = field(default_factory=fits.Header, repr=False)


def _plane_info(name: str, index: int, hdu: Any, source: str) -> tuple[PlaneInfo, tuple[int, int]]:
    header = hdu.header
    if int(header.get("NAXIS", 0)) != 2:
        raise FormatError(f"{source}: {name} is not a 2-D image")
    shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
    compressed = isinstance(hdu, fits.CompImageHDU)
    bitpix = int(header["BITPIX"])
    expected = -32 if PLANES[name].kind == "f" else 32
    if bitpix != expected:
        raise FormatError(
            f"{source}: {name} has BITPIX {bitpix}, expected {expected} ({PLANES[name]})"
        )
    fileinfo = hdu.fileinfo() or {}
    if compressed:
        bintable = getattr(hdu, "_bintable", None)
        tile_rows = int(bintable.header.get("ZTILE2", 1)) if bintable is not None else 1
        nbytes = int(fileinfo.get("datSpan", 0))
    else:
        tile_rows = shape[0]
        nbytes = shape[0] * shape[1] * 4
    scaled = not compressed and ("BSCALE" in header or "BZERO" in header)
    info = PlaneInfo(
        name=name,
        index=index,
        compressed=compressed,
        blank_is_inf=bool(header.get("RBZBLINF", False)),
        nbytes_on_disk=nbytes,
        tile_rows=tile_rows,
        data_offset=int(fileinfo.get("datLoc", 0)),
        scaled=scaled,
    )
    return info, shape


def read_warp_file(fileobj: Any, source: str) -> WarpFile:
    """Read a warp file's headers and tables (never its pixel data).

    Parameters
    ----------
    fileobj : binary file object
        The open file, seekable (local or an fsspec remote file).
    source : str
        Its URL, for messages.

    Raises
    ------
    FormatError
        If the file is not an exposure in the repo-butler format, or a plane is missing, not
        2-D, of the wrong type, or the planes differ in shape.
    """
    from warping.formats.exposure_fits import FORMAT_VERSION

    with (
        warnings.catch_warnings(),
        fits.open(fileobj, lazy_load_hdus=True, memmap=False) as hdul,
    ):
        warnings.simplefilter("ignore")  # header card warnings are the full reader's business
        primary = hdul[0].header
        if "RBFMTV" not in primary:
            from warping.formats.lsst_afw import is_lsst_exposure

            if is_lsst_exposure(hdul):  # afw's layout (warpFormat='afw', LSST's own warps)
                return _read_afw(hdul, source)
            raise FormatError(
                f"{source}: not a repo-butler exposure file (no RBFMTV card) and not an afw "
                "exposure; warp stacks read warps written by make-warp"
            )
        check_version(
            primary["RBFMTV"], FORMAT_VERSION, what="exposure", source=source, error=FormatError
        )
        return _read(hdul, source)


def _read(hdul: fits.HDUList, source: str) -> WarpFile:
    from warping.coadd_inputs import CoaddInputs
    from warping.formats.exposure_fits import _read_skywcs_hdu
    from warping.formats.fits_dict import bintable_to_dict
    from warping.photocalib import PhotoCalib
    from warping.psf.registry import psf_from_dict

    primary = hdul[0].header
    tables: dict[str, Any] = {}
    inputs_hdus: dict[str, Any] = {}
    for hdu in hdul[1:]:
        name = hdu.header.get("EXTNAME")
        if "RBEXT" in hdu.header:
            if hdu.header["RBEXT"] == "COADD_INPUTS":
                inputs_hdus[str(name)] = hdu
        elif name in ("PSF", "PHOTOCALIB", "METADATA", "SKYWCS"):
            tables[name] = hdu
    planes, headers, bbox = _planes(hdul, source)
    image_header = headers["IMAGE"]
    xy0 = (bbox.x0, bbox.y0)
    wcs: SkyWcs | None = wcs_from_header(image_header, xy0)
    if "SKYWCS" in tables:
        wcs = _read_skywcs_hdu(tables["SKYWCS"], source)
    mask_planes = MaskPlanes(
        {k[3:]: int(v) for k, v in headers["MASK"].items() if k.startswith("MP_")}
    )
    inputs = None
    if inputs_hdus:
        try:
            inputs = CoaddInputs.from_hdus(
                inputs_hdus["COADD_INPUTS_VISITS"], inputs_hdus["COADD_INPUTS_CCDS"]
            )
        except KeyError as err:
            raise FormatError(f"{source}: warp inputs table is missing {err.args[0]}") from None
    return WarpFile(
        source=source,
        bbox=bbox,
        planes=planes,
        mask_planes=mask_planes,
        unit=str(image_header.get("BUNIT", "")),
        mjd=float(primary["MJD-AVG"]) if "MJD-AVG" in primary else float("nan"),
        filter=str(primary.get("FILTER", "")),
        wcs=wcs,
        psf=psf_from_dict(bintable_to_dict(tables["PSF"])) if "PSF" in tables else None,
        photo_calib=(
            PhotoCalib.from_dict(bintable_to_dict(tables["PHOTOCALIB"]))
            if "PHOTOCALIB" in tables
            else None
        ),
        coadd_inputs=inputs,
        metadata=bintable_to_dict(tables["METADATA"]) if "METADATA" in tables else {},
        primary=primary.copy(),
    )


def _planes(
    hdul: fits.HDUList, source: str
) -> tuple[dict[str, PlaneInfo], dict[str, fits.Header], Box2I]:
    """The IMAGE, MASK and VARIANCE planes (first HDU of each name), their headers and bbox."""
    planes: dict[str, PlaneInfo] = {}
    shapes: dict[str, tuple[int, int]] = {}
    headers: dict[str, fits.Header] = {}
    for index, hdu in enumerate(hdul):
        name = hdu.header.get("EXTNAME")
        if index and name in PLANES and name not in planes and "RBEXT" not in hdu.header:
            planes[name], shapes[name] = _plane_info(name, index, hdu, source)
            headers[name] = hdu.header
    missing = [name for name in PLANES if name not in planes]
    if missing:
        raise FormatError(f"{source}: missing the {', '.join(missing)} extension(s) of a warp")
    if len(set(shapes.values())) != 1:
        raise FormatError(f"{source}: the planes differ in shape: {shapes}")
    xy0 = read_xy0(headers["IMAGE"])
    height, width = shapes["IMAGE"]
    return planes, headers, Box2I(xy0[0], xy0[1], width, height)


def _read_afw(hdul: fits.HDUList, source: str) -> WarpFile:
    """A warp in afw's layout: the planes as in ours, the rest from the afw archive
    (:func:`warping.formats.lsst_afw.read_lsst_components`), with the CoaddInputs and CoaddPsf
    readers registered (LSST's own warps do not name their module as ours do)."""
    import warping.formats.afw_coadd_read  # noqa: F401  (registers the CoaddInputs/CoaddPsf readers)
    from warping.formats.lsst_afw import read_lsst_components

    planes, headers, bbox = _planes(hdul, source)
    parts = read_lsst_components(hdul, headers["IMAGE"], (bbox.x0, bbox.y0), source)
    visit = parts["visit_info"]
    return WarpFile(
        source=source,
        bbox=bbox,
        planes=planes,
        mask_planes=MaskPlanes(
            {k[3:]: int(v) for k, v in headers["MASK"].items() if k.startswith("MP_")}
        ),
        unit=str(parts["metadata"].get("BUNIT", "")),
        mjd=visit.mid_time_mjd if visit is not None else float("nan"),
        filter=parts["filter"] or "",
        wcs=parts["wcs"],
        psf=parts["psf"],
        photo_calib=parts["photo_calib"],
        coadd_inputs=parts.get("coadd_inputs"),
        metadata=parts["metadata"],
        primary=hdul[0].header.copy(),
    )
