"""FITS formats for calibration products: background lists, photometric calibrations and
standalone WCSs, with their butler formatters ``background``, ``photocalib`` and ``skywcs``.

Each file has a primary HDU with ``RBFMTV`` (format version) and ``RBKIND``:

* ``BACKGROUND``: one ``BKGD`` one-row table per component (bbox, bin grid, interpolation style);
  ``NCOMP`` in the primary header. LSST afw ``BackgroundList`` files (real ``calexpBackground`` and
  ``skyCorr``) are read too, and a list of afw elements is written in afw's own layout
  (:mod:`warping.formats.afw_background`).
* ``PHOTOCALIB``: one ``PHOTOCALIB`` one-row table (mean, error, optional Chebyshev field).
  Standalone LSST afw ``PhotoCalib`` archives are read too.
* ``SKYWCS``: the WCS cards in the primary header, parent pixel frame (``LTV1/2 = 0``). An
  :class:`~warping.ast_wcs.AstSkyWcs` (afw SkyWcs) is written in afw's own archive layout, as a
  Gen2 ``jointcal_wcs`` (:mod:`warping.formats.afw_skywcs`). Reading takes, in this order: our
  header; the archived afw SkyWcs of an LSST file (a ``jointcal_wcs``, or a calexp's
  ``SKYWCS``); the first celestial WCS header of any FITS file (TAN/TAN-SIP/TPV, xy0 from
  ``LTV1/2``).
"""

from __future__ import annotations

import logging
import os
from typing import Any, ClassVar

from astropy.io import fits
from astropy.wcs import WCS

from repo_butler.formats import check_version
from repo_butler.formatters.base import CodecFormatter
from warping.background import BackgroundComponent, BackgroundList
from warping.background_afw import AfwBackground
from warping.errors import FormatError
from warping.formats._common import hdulist_to_bytes, open_fits_bytes, reading
from warping.formats.afw_background import (
    afw_background_to_bytes,
    is_afw_background,
    read_afw_background,
)
from warping.formats.fits_dict import bintable_to_dict, dict_to_bintable
from warping.photocalib import PhotoCalib
from warping.skywcs import SkyWcs, wcs_from_header, wcs_to_header

logger = logging.getLogger(__name__)

__all__ = [
    "BackgroundFormatter",
    "PhotoCalibFormatter",
    "SkyWcsFormatter",
    "read_background",
    "read_photocalib",
    "read_skywcs",
    "write_background",
    "write_photocalib",
    "write_skywcs",
]

#: Version written in ``RBFMTV``; readers refuse newer versions.
FORMAT_VERSION = 1


def _primary(kind: str) -> fits.PrimaryHDU:
    p = fits.PrimaryHDU()
    p.header["RBFMTV"] = (FORMAT_VERSION, "repo-butler calibration format version")
    p.header["RBKIND"] = (kind, "repo-butler object kind")
    return p


def _check_kind(hdul: fits.HDUList, kind: str, source: str) -> bool:
    """True for our format of ``kind``; False for a foreign file; raise for our other kinds."""
    ph = hdul[0].header
    if "RBFMTV" not in ph:
        return False
    check_version(
        ph["RBFMTV"], FORMAT_VERSION, what="calibration FITS", source=source, error=FormatError
    )
    if ph.get("RBKIND") != kind:
        raise FormatError(f"{source}: holds a {ph.get('RBKIND')!r}, expected a {kind!r}")
    return True


# -- background -----------------------------------------------------------------------------
def background_to_bytes(bg: BackgroundList) -> bytes:
    """Serialise a :class:`BackgroundList`: afw elements in afw's layout, ours in ours."""
    kinds = {type(c) for c in bg}
    if kinds == {AfwBackground}:
        return afw_background_to_bytes(bg)
    if kinds - {BackgroundComponent}:
        raise TypeError(
            "a background file holds either afw elements or BackgroundComponents, got "
            f"{sorted(k.__name__ for k in kinds)}"
        )
    p = _primary("BACKGROUND")
    p.header["NCOMP"] = (len(bg), "number of background components")
    hdus: list[Any] = [p]
    for c in bg:
        assert isinstance(c, BackgroundComponent)
        hdu = dict_to_bintable(c.to_dict(), "BKGD")
        hdu.header["INTERP"] = c.interp_style
        hdus.append(hdu)
    return hdulist_to_bytes(fits.HDUList(hdus))


def background_from_bytes(data: bytes, source: str) -> BackgroundList:
    """Deserialise a :class:`BackgroundList` (ours or an afw ``BackgroundList``)."""
    hdul = open_fits_bytes(data, source)
    with hdul, reading(source, "background"):
        if not _check_kind(hdul, "BACKGROUND", source):
            if not is_afw_background(hdul):
                raise FormatError(
                    f"{source}: neither a repo-butler background file (no RBFMTV) nor an LSST "
                    "afw BackgroundList (no BKGD_WIDTH/INTERPSTYLE in the primary header)"
                )
            return read_afw_background(hdul, source)
        comps = [
            BackgroundComponent.from_dict(bintable_to_dict(h))
            for h in hdul[1:]
            if h.header.get("EXTNAME") == "BKGD"
        ]
        n = int(hdul[0].header.get("NCOMP", len(comps)))
        if n != len(comps):
            raise FormatError(f"{source}: header says {n} components, found {len(comps)}")
        return BackgroundList(comps)


# -- photocalib -----------------------------------------------------------------------------
def photocalib_to_bytes(pc: PhotoCalib) -> bytes:
    """Serialise a :class:`PhotoCalib`."""
    p = _primary("PHOTOCALIB")
    p.header["CALMEAN"] = (pc.calibration_mean, "mean calibration [nJy/count]")
    p.header["CALERR"] = (pc.calibration_err, "error of CALMEAN [nJy/count]")
    return hdulist_to_bytes(fits.HDUList([p, dict_to_bintable(pc.to_dict(), "PHOTOCALIB")]))


def photocalib_from_bytes(data: bytes, source: str) -> PhotoCalib:
    """Deserialise a :class:`PhotoCalib` (ours or an afw archive)."""
    hdul = open_fits_bytes(data, source)
    with hdul, reading(source, "photometric calibration"):
        if _check_kind(hdul, "PHOTOCALIB", source):
            for h in hdul[1:]:
                if h.header.get("EXTNAME") == "PHOTOCALIB":
                    return PhotoCalib.from_dict(bintable_to_dict(h))
            raise FormatError(f"{source}: no PHOTOCALIB extension")
        from warping.formats.lsst_afw import read_lsst_photocalib

        return read_lsst_photocalib(hdul, source)


# -- skywcs ---------------------------------------------------------------------------------
def skywcs_to_bytes(wcs: SkyWcs) -> bytes:
    """Serialise a parent-pixel WCS: an astropy :class:`~astropy.wcs.WCS` (xy0 = 0) in our
    header layout, an :class:`~warping.ast_wcs.AstSkyWcs` as an afw SkyWcs archive."""
    from warping.ast_wcs import AstSkyWcs

    if isinstance(wcs, AstSkyWcs):
        from warping.formats.afw_skywcs import skywcs_archive_hdulist

        return hdulist_to_bytes(skywcs_archive_hdulist(wcs))
    if not isinstance(wcs, WCS) or not wcs.has_celestial:
        raise TypeError(
            f"SkyWcsFormatter writes celestial astropy WCS and AstSkyWcs objects, got {wcs!r}"
        )
    p = _primary("SKYWCS")
    p.header.extend(wcs_to_header(wcs, (0, 0)), update=True)
    return hdulist_to_bytes(fits.HDUList([p]))


def skywcs_from_bytes(data: bytes, source: str) -> SkyWcs:
    """Deserialise a WCS: ours, an afw SkyWcs archive (``jointcal_wcs``, or a calexp's archived
    SkyWcs), or the first celestial WCS header of any FITS file."""
    hdul = open_fits_bytes(data, source)
    with hdul, reading(source, "WCS"):
        ours = _check_kind(hdul, "SKYWCS", source)
        if not ours:
            from warping.formats.afw_skywcs import read_single_skywcs, skywcs_ids
            from warping.formats.lsst_afw import LsstArchive, read_lsst_skywcs

            exposure_wcs = read_lsst_skywcs(hdul, source)
            if exposure_wcs is not None:
                return exposure_wcs
            archive = LsstArchive(hdul, source)
            if skywcs_ids(archive):
                return read_single_skywcs(archive)
        for hdu in hdul[:1] if ours else hdul:
            wcs = wcs_from_header(hdu.header)
            if wcs is not None:
                return wcs
        raise FormatError(
            f"{source}: no celestial WCS found in any header, and no afw SkyWcs archive"
        )


# -- local-file helpers ---------------------------------------------------------------------
def _write(path: str | os.PathLike[str], data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _read(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def write_background(bg: BackgroundList, path: str | os.PathLike[str]) -> None:
    """Write a background list to a local file."""
    _write(path, background_to_bytes(bg))


def read_background(path: str | os.PathLike[str]) -> BackgroundList:
    """Read a background list from a local file."""
    return background_from_bytes(_read(path), str(path))


def write_photocalib(pc: PhotoCalib, path: str | os.PathLike[str]) -> None:
    """Write a photometric calibration to a local file."""
    _write(path, photocalib_to_bytes(pc))


def read_photocalib(path: str | os.PathLike[str]) -> PhotoCalib:
    """Read a photometric calibration (ours or afw) from a local file."""
    return photocalib_from_bytes(_read(path), str(path))


def write_skywcs(wcs: SkyWcs, path: str | os.PathLike[str]) -> None:
    """Write a standalone WCS to a local file."""
    _write(path, skywcs_to_bytes(wcs))


def read_skywcs(path: str | os.PathLike[str]) -> SkyWcs:
    """Read a standalone WCS (or the WCS of any FITS image) from a local file."""
    return skywcs_from_bytes(_read(path), str(path))


# -- formatters -----------------------------------------------------------------------------
class BackgroundFormatter(CodecFormatter):
    """Butler formatter ``background``: :class:`BackgroundList` <-> FITS bytes."""

    name: ClassVar[str] = "background"
    extension: ClassVar[str] = ".fits"
    stores = BackgroundList
    encode = staticmethod(background_to_bytes)
    decode = staticmethod(background_from_bytes)


class PhotoCalibFormatter(CodecFormatter):
    """Butler formatter ``photocalib``: :class:`PhotoCalib` <-> FITS bytes."""

    name: ClassVar[str] = "photocalib"
    extension: ClassVar[str] = ".fits"
    stores = PhotoCalib
    encode = staticmethod(photocalib_to_bytes)
    decode = staticmethod(photocalib_from_bytes)


class SkyWcsFormatter(CodecFormatter):
    """Butler formatter ``skywcs``: parent-pixel :class:`astropy.wcs.WCS` or
    :class:`~warping.ast_wcs.AstSkyWcs` <-> FITS bytes (the encoder checks that an astropy WCS is
    celestial)."""

    name: ClassVar[str] = "skywcs"
    extension: ClassVar[str] = ".fits"
    encode = staticmethod(skywcs_to_bytes)
    decode = staticmethod(skywcs_from_bytes)
