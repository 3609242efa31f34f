"""The exposure FITS format (``RBFMTV = 1``, or 2 when it needs to be), and the ``exposure``
butler formatter.

Layout (documented in ``schemas/exposure-fits.schema.json``):

=====  ============  ==========================================================================
HDU    EXTNAME       content
=====  ============  ==========================================================================
0      (primary)     ``RBFMTV``, ``RBKIND='EXPOSURE'``, visit info (``EXPTIME``, ``MJD-AVG``,
                     ``DATE-AVG``, ``BORE-RA``, ``BORE-DEC``, ``BORE-ROTANG``, ``BORE-AIRMASS``),
                     ``FILTER``, ``EXPID``, ``WCSEXACT = 'SKYWCS'`` with a SKYWCS HDU; no data
1      IMAGE         float32 image; WCS relative to the array, ``LTV1/2 = -xy0``, ``A`` WCS with
                     xy0, ``BUNIT``, ``INHERIT = T``
2      MASK          int32 mask; same WCS cards; one ``MP_<NAME> = bit`` card per plane
3      VARIANCE      float32 variance; ``BUNIT = <unit>2``, ``UTYPE = 'VarianceUncertainty'``
opt.   PSF           one-row table: the PSF dict (:mod:`warping.formats.fits_dict`), ``PSFTYPE``
opt.   PHOTOCALIB    one-row table: the PhotoCalib dict
opt.   METADATA      one-row table: the free metadata dict (exact JSON round trip)
opt.   SKYWCS        one-row table, column ``wcs`` (bytes): the exact afw SkyWcs of an
                     :class:`~warping.ast_wcs.AstSkyWcs` (``"1 SkyWcs 0 "`` + AST dump); the
                     plane headers then hold its TAN-SIP approximation (``WCSAPPRX`` = its
                     largest error in pixels) for FITS-WCS readers. Readers before it ignore it.
opt.   <registered>  extensions added by :func:`register_extension`, each tagged ``RBEXT``
=====  ============  ==========================================================================

The IMAGE, MASK and VARIANCE planes may be tile-compressed (standard ``ZIMAGE`` HDUs with the same
EXTNAMEs and cards plus ``RBZ*`` cards, see :mod:`warping.formats.compression`): the butler writes
them so when handed a :class:`~warping.formats.compression.CompressedExposure`. Version 2 differs
from 1 only by ``RBZBLINF = T`` on a quantized plane (its blank pixels stand for +inf): files
without it are written as version 1, which older readers open unchanged.

Reading also accepts LSST afw exposures (detected by the absence of ``RBFMTV``), see
:mod:`warping.formats.lsst_afw`; their archived SkyWcs is preferred to the header WCS, by the
full reader and by the header-only footprint reader :func:`read_wcs_and_bbox` alike.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, ClassVar

import numpy as np
from astropy.io import fits
from astropy.time import Time

from repo_butler.formats import check_version
from repo_butler.formatters.base import CodecFormatter, FileDataId
from repo_butler.local_reads import ReadBuffer
from warping.errors import FormatError
from warping.exposure import Exposure, VisitInfo
from warping.formats._common import open_fits_bytes, reading, write_hdulist
from warping.formats.compression import (
    CompressedExposure,
    CompressionRecipe,
    gzip_settings,
    plane_hdu,
    restore_infinities,
)
from warping.formats.exposure_layout import ExposureLayout
from warping.formats.fits_dict import bintable_to_dict, dict_to_bintable
from warping.geom import Box2I
from warping.masks import MaskPlanes
from warping.photocalib import PhotoCalib
from warping.psf.registry import psf_from_dict, psf_to_dict
from warping.skywcs import (
    SkyWcs,
    exact_wcs_text,
    fits_wcs,
    read_xy0,
    wcs_from_header,
    wcs_to_header,
)

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT_VERSION",
    "ExposureFormatter",
    "exposure_from_bytes",
    "exposure_from_hdulist",
    "exposure_to_bytes",
    "exposure_to_hdulist",
    "read_exposure",
    "read_wcs_and_bbox",
    "register_extension",
    "registered_extensions",
    "unregister_extension",
    "write_exposure",
]

#: Newest version in ``RBFMTV`` (readers refuse newer versions); files that do not need version
#: 2 (a quantized plane with ``RBZBLINF``) are written as version 1.
FORMAT_VERSION = 2

ToHdus = Callable[[Any], Sequence[fits.ImageHDU | fits.BinTableHDU]]
FromHdus = Callable[[Sequence[fits.ImageHDU | fits.BinTableHDU]], Any]


@dataclass(frozen=True)
class _Extension:
    name: str
    attr: str
    to_hdus: ToHdus
    from_hdus: FromHdus
    module: str


_EXTENSIONS: dict[str, _Extension] = {}
_RESERVED = {"IMAGE", "MASK", "VARIANCE", "PSF", "PHOTOCALIB", "METADATA", "SKYWCS"}


def register_extension(
    name: str, attr: str, to_hdus: ToHdus, from_hdus: FromHdus, *, module: str | None = None
) -> None:
    """Persist ``exposure.<attr>`` in extra FITS extensions tagged ``RBEXT = name``.

    ``to_hdus(value)`` returns the HDUs (their ``EXTNAME`` is up to the caller) written after the
    standard ones when the attribute is not ``None``; ``from_hdus(hdus)`` receives the same HDUs
    in order and returns the value. A file naming an unregistered extension from a ``warping``
    module imports that module (``RBEXTMOD``) before giving up with a :class:`FormatError`.
    ``module`` is the name recorded in ``RBEXTMOD`` (default: the module of ``to_hdus``); a
    module that moved keeps recording the name its files already carry.
    """
    name = name.upper()
    if name in _RESERVED:
        raise ValueError(f"extension name {name!r} is reserved by the exposure format")
    if module is None:
        module = getattr(to_hdus, "__module__", "") or ""
    _EXTENSIONS[name] = _Extension(name, attr, to_hdus, from_hdus, module)


def unregister_extension(name: str) -> None:
    """Remove a registered extension (no-op if absent)."""
    _EXTENSIONS.pop(name.upper(), None)


def registered_extensions() -> dict[str, str]:
    """``{extension name: exposure attribute}`` of the registered extensions."""
    return {n: e.attr for n, e in _EXTENSIONS.items()}


# -- writing ---------------------------------------------------------------------------------
_VISIT_CARDS = (
    ("exposure_time", "EXPTIME", "exposure time [s]"),
    ("mid_time_mjd", "MJD-AVG", "MJD (TAI) at mid-exposure"),
    ("boresight_ra", "BORE-RA", "boresight RA [deg]"),
    ("boresight_dec", "BORE-DEC", "boresight Dec [deg]"),
    ("rotation_angle", "BORE-ROTANG", "rotation angle [deg]"),
    ("airmass", "BORE-AIRMASS", "airmass at boresight"),
)


def _set(header: fits.Header, key: str, value: Any, comment: str = "") -> None:
    card_key = key if len(key) <= 8 else f"HIERARCH {key}"
    header[card_key] = (value, comment)


def _wcs_header(exposure: Exposure) -> fits.Header:
    """The plane headers' WCS cards: the astropy WCS, or an exact model's TAN-SIP approximation
    over the exposure (with ``WCSAPPRX``); just xy0 without a WCS."""
    if exposure.wcs is not None:
        approx = fits_wcs(exposure.wcs, exposure.bbox)
        hdr = wcs_to_header(approx, exposure.xy0)
        if exact_wcs_text(exposure.wcs):
            from warping.sip_fit import max_separation_px

            err = max_separation_px(exposure.wcs, approx, exposure.bbox)
            hdr["WCSAPPRX"] = (float(f"{err:.3g}"), "[px] max error of this WCS vs SKYWCS HDU")
        return hdr
    hdr = fits.Header()
    hdr["LTV1"] = float(-exposure.xy0[0])
    hdr["LTV2"] = float(-exposure.xy0[1])
    hdr["CTYPE1A"] = "LINEAR"
    hdr["CTYPE2A"] = "LINEAR"
    hdr["CRPIX1A"] = 1.0
    hdr["CRPIX2A"] = 1.0
    hdr["CRVAL1A"] = float(exposure.xy0[0])
    hdr["CRVAL2A"] = float(exposure.xy0[1])
    hdr["CUNIT1A"] = "pixel"
    hdr["CUNIT2A"] = "pixel"
    return hdr


def _image_header(wcs_header: fits.Header, exttype: str) -> fits.Header:
    hdr = wcs_header.copy()
    hdr["INHERIT"] = True
    hdr["EXTTYPE"] = exttype
    hdr["EXTNAME"] = exttype
    return hdr


def exposure_to_hdulist(
    exposure: Exposure, compression: CompressionRecipe | None = None, seed: int = 0
) -> fits.HDUList:
    """Build the HDU list for ``exposure``, its planes tile-compressed by ``compression``.

    ``seed`` is the dither seed of quantized planes (see
    :func:`~warping.formats.compression.dither_seed`).
    """
    primary = fits.PrimaryHDU()
    ph = primary.header
    ph["RBFMTV"] = (1, "repo-butler exposure format version")
    if compression is not None:
        ph["RBZRECIP"] = (compression.name, "compression recipe of the image planes")
    ph["RBKIND"] = ("EXPOSURE", "repo-butler object kind")
    if exposure.filter is not None:
        ph["FILTER"] = (exposure.filter, "filter/band label")
    if exposure.id is not None:
        ph["EXPID"] = (int(exposure.id), "exposure id")
    vi = exposure.visit_info
    if vi is not None:
        ph["HASVISIT"] = (True, "visit info cards follow (absent card = NaN)")
        for attr, key, comment in _VISIT_CARDS:
            v = float(getattr(vi, attr))
            if math.isfinite(v):
                _set(ph, key, v, comment)
        if math.isfinite(vi.mid_time_mjd):
            ph["DATE-AVG"] = (Time(vi.mid_time_mjd, format="mjd", scale="tai").isot, "TAI")
            ph["TIMESYS"] = "TAI"
    unit = exposure.unit
    wcs_h = _wcs_header(exposure)
    img_h = _image_header(wcs_h, "IMAGE")
    img_h["BUNIT"] = unit
    mask_h = _image_header(wcs_h, "MASK")
    for name, bit in exposure.mask_planes.bits.items():
        _set(mask_h, f"MP_{name}", int(bit))
    var_h = _image_header(wcs_h, "VARIANCE")
    var_h["BUNIT"] = f"{unit}2"
    var_h["UTYPE"] = ("VarianceUncertainty", "astropy CCDData uncertainty class")
    hdus: list[Any] = [primary, *_plane_hdus(exposure, (img_h, mask_h, var_h), compression, seed)]
    if any(h.header.get("RBZBLINF", False) for h in hdus[1:]):
        ph["RBFMTV"] = (2, "repo-butler exposure format version")
    if exposure.psf is not None:
        d = psf_to_dict(exposure.psf)
        hdu = dict_to_bintable(d, "PSF")
        hdu.header["PSFTYPE"] = (str(d["type"]), "PSF class")
        hdus.append(hdu)
    if exposure.photo_calib is not None:
        hdus.append(dict_to_bintable(exposure.photo_calib.to_dict(), "PHOTOCALIB"))
    if exposure.metadata:
        hdus.append(dict_to_bintable(dict(exposure.metadata), "METADATA"))
    text = exact_wcs_text(exposure.wcs)
    if text:
        hdus.append(_skywcs_hdu(text))
        ph["WCSEXACT"] = ("SKYWCS", "HDU with the exact WCS (headers: its TAN-SIP fit)")
    for ext in _EXTENSIONS.values():
        value = getattr(exposure, ext.attr, None)
        if value is None:
            continue
        for hdu in ext.to_hdus(value):
            hdu.header["RBEXT"] = (ext.name, "repo-butler extension")
            hdu.header["RBEXTMOD"] = (ext.module, "module registering the extension")
            hdus.append(hdu)
    return fits.HDUList(hdus)


def _plane_hdus(
    exposure: Exposure,
    headers: tuple[fits.Header, fits.Header, fits.Header],
    compression: CompressionRecipe | None,
    seed: int,
) -> list[Any]:
    mask = np.asarray(exposure.mask, dtype=np.int32)
    planes = (
        ("IMAGE", np.asarray(exposure.image, dtype=np.float32)),
        ("MASK", mask),
        ("VARIANCE", np.asarray(exposure.variance, dtype=np.float32)),
    )
    if compression is None:
        return [fits.ImageHDU(data, hdr) for (_, data), hdr in zip(planes, headers, strict=True)]
    out = []
    for (name, data), hdr in zip(planes, headers, strict=True):
        plane = compression.plane(name)
        bad = None
        if plane is not None and plane.quantization is not None:
            bits = exposure.mask_planes.bitmask_if_present(*plane.quantization.mask_planes)
            bad = (mask & bits) != 0 if bits else None
        out.append(plane_hdu(data, hdr, plane, recipe=compression.name, seed=seed, bad=bad))
    return out


def _skywcs_hdu(text: str) -> fits.BinTableHDU:
    data = text.encode("ascii")
    col: Any = np.empty(1, dtype=object)
    col[0] = np.frombuffer(data, dtype=np.uint8)
    hdu = fits.BinTableHDU.from_columns([fits.Column("wcs", f"QB({len(data)})", array=col)])
    hdu.header["EXTNAME"] = "SKYWCS"
    hdu.header["WCSCLASS"] = ("AstSkyWcs", "afw SkyWcs: '1 SkyWcs 0 ' + AST Channel dump")
    return hdu


def _read_skywcs_hdu(hdu: Any, source: str) -> SkyWcs:
    from warping.ast_wcs import AstSkyWcs

    cls = hdu.header.get("WCSCLASS")
    if cls != "AstSkyWcs" or hdu.data is None or "wcs" not in hdu.columns.names:
        raise FormatError(
            f"{source}: SKYWCS extension holds {cls!r} without a 'wcs' column; this reader knows "
            "WCSCLASS = 'AstSkyWcs' (upgrade repo-butler)"
        )
    text = np.asarray(hdu.data["wcs"][0], dtype=np.uint8).tobytes().decode("ascii")
    return AstSkyWcs.from_text(text, source=f"{source}[SKYWCS]")


# -- reading ---------------------------------------------------------------------------------
def _find(hdul: fits.HDUList, name: str, source: str) -> Any:
    for hdu in hdul:
        if hdu.header.get("EXTNAME") == name:
            return hdu
    raise FormatError(f"{source}: missing the {name} extension required by the exposure format")


def _read_ours(hdul: fits.HDUList, source: str) -> Exposure:
    ph = hdul[0].header
    check_version(ph["RBFMTV"], FORMAT_VERSION, what="exposure", source=source, error=FormatError)
    if ph.get("RBKIND", "EXPOSURE") != "EXPOSURE":
        raise FormatError(f"{source}: holds a {ph.get('RBKIND')!r}, not an exposure")
    img = _find(hdul, "IMAGE", source)
    msk = _find(hdul, "MASK", source)
    var = _find(hdul, "VARIANCE", source)
    for hdu, dtype in ((img, np.float32), (msk, np.int32), (var, np.float32)):
        if hdu.data is None or hdu.data.ndim != 2:
            raise FormatError(f"{source}: {hdu.name} is not a 2-D image")
        if hdu.data.dtype.newbyteorder("=") != np.dtype(dtype):
            raise FormatError(f"{source}: {hdu.name} has dtype {hdu.data.dtype}, expected {dtype}")
    if not img.data.shape == msk.data.shape == var.data.shape:
        raise FormatError(
            f"{source}: IMAGE {img.data.shape}, MASK {msk.data.shape} and VARIANCE "
            f"{var.data.shape} differ in shape"
        )
    xy0 = read_xy0(img.header)
    wcs = wcs_from_header(img.header, xy0)
    planes = {k[3:]: int(v) for k, v in msk.header.items() if k.startswith("MP_")}
    visit = None
    if ph.get("HASVISIT", False):
        kw = {}
        for attr, key, _ in _VISIT_CARDS:
            kw[attr] = float(ph[key]) if key in ph else float("nan")
        visit = VisitInfo(**kw)
    psf = None
    photo_calib = None
    metadata: dict[str, Any] = {}
    ext_hdus: dict[str, list[Any]] = {}
    ext_modules: dict[str, str] = {}
    for hdu in hdul[1:]:
        name = hdu.header.get("EXTNAME")
        if "RBEXT" in hdu.header:
            ext_hdus.setdefault(hdu.header["RBEXT"], []).append(hdu)
            ext_modules[hdu.header["RBEXT"]] = str(hdu.header.get("RBEXTMOD", ""))
        elif name == "PSF":
            psf = psf_from_dict(bintable_to_dict(hdu))
        elif name == "PHOTOCALIB":
            photo_calib = PhotoCalib.from_dict(bintable_to_dict(hdu))
        elif name == "METADATA":
            metadata = bintable_to_dict(hdu)
        elif name == "SKYWCS":
            wcs = _read_skywcs_hdu(hdu, source)
    exposure = Exposure(  # no copy when the reader already made native arrays
        restore_infinities(np.asarray(img.data, dtype=np.float32), img.header),
        np.asarray(msk.data, dtype=np.int32),
        restore_infinities(np.asarray(var.data, dtype=np.float32), var.header),
        mask_planes=MaskPlanes(planes),
        xy0=xy0,
        wcs=wcs,
        psf=psf,
        photo_calib=photo_calib,
        visit_info=visit,
        filter=ph.get("FILTER"),
        id=int(ph["EXPID"]) if "EXPID" in ph else None,
        metadata=metadata,
    )
    for name, hdus in ext_hdus.items():
        if name not in _EXTENSIONS:
            module = ext_modules.get(name, "")
            if module.split(".")[0] == "warping":
                importlib.import_module(module)
        ext = _EXTENSIONS.get(name)
        if ext is None:
            raise FormatError(
                f"{source}: extension {name!r} is not registered "
                f"(module {ext_modules.get(name)!r}); import the module that calls "
                "register_extension()"
            )
        try:
            setattr(exposure, ext.attr, ext.from_hdus(hdus))
        except FormatError as err:
            raise FormatError(f"{source}: {err}") from None
    return exposure


def exposure_from_hdulist(hdul: fits.HDUList, source: str = "<memory>") -> Exposure:
    """Read our format or an LSST afw exposure (layout detected from the primary header)."""
    with reading(source, "exposure"):
        if len(hdul) == 0:
            raise FormatError(f"{source}: empty FITS file")
        if "RBFMTV" in hdul[0].header:
            return _read_ours(hdul, source)
        from warping.formats.lsst_afw import is_lsst_exposure, read_lsst_exposure

        if is_lsst_exposure(hdul):
            return read_lsst_exposure(hdul, source)
        raise FormatError(
            f"{source}: neither a repo-butler exposure (no RBFMTV keyword) nor an LSST afw "
            "exposure (no IMAGE/MASK/VARIANCE image extensions)"
        )


def write_exposure(exposure: Exposure | CompressedExposure, path: str | os.PathLike[str]) -> None:
    """Write ``exposure`` to a local FITS file (overwriting); tile-compressed when given a
    :class:`~warping.formats.compression.CompressedExposure`."""
    with open(path, "wb") as f:
        f.write(exposure_to_bytes(exposure))


def read_exposure(path: str | os.PathLike[str]) -> Exposure:
    """Read a local exposure file (ours, or an LSST afw calexp, incl. tile-compressed ``.fz``)."""
    with open(path, "rb") as f:
        data = f.read()
    return ExposureFormatter().from_bytes(data, source=str(path))


def read_wcs_and_bbox(
    f: str | os.PathLike[str] | bytes | IO[bytes], source: str | None = None
) -> tuple[SkyWcs | None, Box2I]:
    """Parent-pixel WCS and bbox of an exposure file (ours or afw), reading headers only (and
    the small tables holding an exact SkyWcs).

    ``f`` is a path, the file's bytes, or a binary file object (e.g. from fsspec). The WCS is
    the one :func:`read_exposure` gives: the SKYWCS HDU of our files, the archived SkyWcs of
    LSST calexps, else the image header's FITS-WCS.
    """
    with (
        _binary(f, source) as (obj, name),
        reading(name, "exposure headers"),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")  # astropy's per-card warnings: one log line per file
        try:
            return _wcs_and_bbox(obj, name)
        finally:
            if caught:
                logger.info(
                    "%s: %d FITS header warning(s) while reading the WCS, first: %s",
                    name, len(caught), str(caught[0].message).splitlines()[0],
                )  # fmt: skip


def read_psf_wcs_and_bbox(
    f: str | os.PathLike[str] | bytes | IO[bytes], source: str | None = None
) -> tuple[Any, SkyWcs | None, Box2I]:
    """PSF, WCS and bbox of an exposure file (ours or afw) without reading its pixels.

    Like :func:`read_wcs_and_bbox`, plus the PSF :func:`read_exposure` would give (our PSF
    table, or the afw archive's PSF; None when the file has none or it cannot be read).
    """
    with (
        _binary(f, source) as (obj, name),
        reading(name, "exposure PSF"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # header card warnings are logged by the full read
        return _wcs_and_bbox(obj, name, with_psf=True)


@contextlib.contextmanager
def _binary(
    f: str | os.PathLike[str] | bytes | IO[bytes], source: str | None
) -> Iterator[tuple[Any, str]]:
    """A binary file object for a path (opened here), bytes or a file object, and its name."""
    name = source or (str(f) if isinstance(f, str | os.PathLike) else "<file>")
    if isinstance(f, str | os.PathLike):
        with open(f, "rb") as fh:
            yield fh, name
    else:
        yield (io.BytesIO(f) if isinstance(f, bytes) else f), name


def _wcs_and_bbox(obj: Any, name: str, *, with_psf: bool = False) -> Any:
    """``(wcs, bbox)``, or ``(psf, wcs, bbox)`` with ``with_psf``, from headers and tables."""
    from warping.formats._common import check_headers

    # the headers astropy is about to parse are checked first (a junk header fails in ms)
    if check_headers(obj, name, max_hdus=2) == 0:
        raise FormatError(f"{name}: empty file; not an exposure file")
    with fits.open(obj, lazy_load_hdus=True, memmap=False) as hdul:
        wcs, bbox = _wcs_and_bbox_of(hdul, obj, name)
        return (_psf_of(hdul, name), wcs, bbox) if with_psf else (wcs, bbox)


def _psf_of(hdul: fits.HDUList, name: str) -> Any:
    """The PSF stored in an open exposure file (ours or afw), or None."""
    if "RBFMTV" in hdul[0].header:
        for h in hdul[1:]:
            if h.header.get("EXTNAME") == "PSF" and "RBEXT" not in h.header:
                return psf_from_dict(bintable_to_dict(h))
        return None
    from warping.formats.lsst_afw import read_lsst_psf

    return read_lsst_psf(hdul, name)


def _wcs_and_bbox_of(hdul: fits.HDUList, obj: Any, name: str) -> tuple[SkyWcs | None, Box2I]:
    from warping.formats._common import check_headers

    primary = hdul[0].header
    ours = "RBFMTV" in primary
    if not ours or primary.get("WCSEXACT") == "SKYWCS":  # the other HDUs are scanned too
        check_headers(obj, name)
    hdu = None
    for h in hdul[1:]:
        if h.header.get("EXTNAME") == "IMAGE":
            hdu = h
            break
    if hdu is None:
        if len(hdul) < 2:
            raise FormatError(f"{name}: no image extension; not an exposure file")
        hdu = hdul[1]
    hdr = hdu.header
    if int(hdr.get("NAXIS", 0)) != 2:
        raise FormatError(f"{name}: image extension is not 2-D")
    xy0 = read_xy0(hdr)
    bbox = Box2I(xy0[0], xy0[1], int(hdr["NAXIS1"]), int(hdr["NAXIS2"]))
    if ours:
        if primary.get("WCSEXACT") == "SKYWCS":  # else: no HDU headers to scan
            for h in hdul[1:]:
                if h.header.get("EXTNAME") == "SKYWCS":
                    return _read_skywcs_hdu(h, name), bbox
        return wcs_from_header(hdr, xy0), bbox
    from warping.formats.lsst_afw import read_lsst_wcs

    return read_lsst_wcs(hdul, hdr, xy0, name), bbox


def exposure_to_bytes(exposure: Exposure | CompressedExposure | ExposureLayout) -> bytes:
    """The FITS bytes of an :class:`Exposure` (our layout), tile-compressed when given a
    :class:`~warping.formats.compression.CompressedExposure`, in another layout (afw's) when
    given an :class:`~warping.formats.exposure_layout.ExposureLayout`."""
    buf = io.BytesIO()
    write_exposure_to(exposure, buf)
    return buf.getvalue()


def write_exposure_to(
    exposure: Exposure | CompressedExposure | ExposureLayout, fh: BinaryIO
) -> None:
    """Write an exposure (see :func:`exposure_to_bytes`) to an open binary file: the same bytes,
    without holding them in memory."""
    if isinstance(exposure, ExposureLayout):
        write_hdulist(exposure.to_hdulist(), fh)
        return
    if isinstance(exposure, CompressedExposure):
        hdul = exposure_to_hdulist(exposure.exposure, exposure.recipe, exposure.seed)
        with gzip_settings():  # tiles are compressed while the bytes are written
            write_hdulist(hdul, fh)
        return
    write_hdulist(exposure_to_hdulist(exposure), fh)


def exposure_from_bytes(data: ReadBuffer, source: str) -> Exposure:
    """Read an :class:`Exposure` (ours or an afw file); :class:`FormatError` naming ``source``."""
    with open_fits_bytes(data, source) as hdul:
        return exposure_from_hdulist(hdul, source)


class ExposureFormatter(CodecFormatter):
    """Butler formatter ``exposure``: :class:`~warping.exposure.Exposure` <-> FITS bytes.

    Also reads a calexp's data ID from its header for ``rb ingest`` (:mod:`warping.ingest_rules`).
    """

    name: ClassVar[str] = "exposure"
    extension: ClassVar[str] = ".fits"
    reads_buffers: ClassVar[bool] = True
    stores = (Exposure, CompressedExposure, ExposureLayout)
    encode = staticmethod(exposure_to_bytes)
    encode_to = staticmethod(write_exposure_to)
    decode = staticmethod(exposure_from_bytes)

    def from_buffer(self, data: ReadBuffer, *, source: str) -> Exposure:
        """Decode bytes or a memory map in place (the arrays are converted copies)."""
        return exposure_from_bytes(data, source)

    def data_id_from_file(
        self, fileobj: BinaryIO, *, source: str, dimensions: Sequence[str], known: Any
    ) -> FileDataId:
        """The data ID a calexp's header holds, by the instrument rule table."""
        from warping.ingest_rules import data_id_from_exposure_file

        return data_id_from_exposure_file(
            fileobj, source=source, dimensions=dimensions, known=known
        )
