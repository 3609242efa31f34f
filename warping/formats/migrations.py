"""``rb migrate`` steps for warping's file formats (registered with :mod:`repo_butler.migrate`).

- ``warp inputs table``: the ``COADD_INPUTS_*`` tables inside warps (``CIFMTV``; version 0 had
  no card). Step 0 -> 1 adds the card to both tables; step 1 -> 2 stores the CCD table's text
  cells as UTF-8 byte arrays instead of fixed-width strings (same text); step 2 -> 3 only
  changes the card (version 3 adds optional columns: every version-2 table is a version-3 one).
  Every pixel and every other table cell is kept as is.
  The same pass checks the exposure format (``RBFMTV``) of every ``exposure`` dataset.
- ``calibration FITS``: background, photoCalib and skyWcs files (``RBFMTV``).
- ``skymap``: skymap YAML (``format_version``).

Files written by other software (LSST afw calexps, ingested without ``RBFMTV``) are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import ClassVar

from repo_butler.formats import check_version
from repo_butler.migrate import FileFormat, MigrationContext, Step, register_migration
from warping.errors import FormatError

__all__ = ["CalibFitsFormat", "SkyMapFormat", "WarpInputsFormat", "register"]

logger = logging.getLogger(__name__)

_INPUTS_EXTENSION = "COADD_INPUTS"


def _set_inputs_version(data: bytes, source: str, version: int) -> bytes:
    """``data`` with the inputs tables' version card set to ``version``, nothing else."""
    from warping.coadd_inputs import FORMAT_KEY
    from warping.formats._common import hdulist_to_bytes, open_fits_bytes

    with open_fits_bytes(data, source) as hdul:
        for hdu in hdul[1:]:
            if hdu.header.get("RBEXT") == _INPUTS_EXTENSION:
                hdu.header[FORMAT_KEY] = (version, "warp inputs table format version")
        return hdulist_to_bytes(hdul)


def _warp_inputs_step_0(data: bytes, source: str) -> bytes:
    """Version 0 -> 1: add ``CIFMTV = 1`` to the inputs tables, nothing else."""
    return _set_inputs_version(data, source, 1)


def _warp_inputs_step_1(data: bytes, source: str) -> bytes:
    """Version 1 -> 2: the CCD table's text columns (``A``) become UTF-8 byte arrays (``QB``)."""
    from astropy.io import fits

    from warping.coadd_inputs import FORMAT_KEY, TEXT_COLUMNS, cell_text, text_column
    from warping.formats._common import hdulist_to_bytes, open_fits_bytes

    with open_fits_bytes(data, source) as hdul:
        for i, hdu in enumerate(hdul):
            if i == 0 or hdu.header.get("RBEXT") != _INPUTS_EXTENSION:
                continue
            if hdu.header.get("EXTNAME") == "COADD_INPUTS_CCDS":
                columns = [
                    text_column(c.name, [cell_text(v) for v in hdu.data[c.name]])
                    if c.name in TEXT_COLUMNS
                    else fits.Column(c.name, c.format, array=hdu.data[c.name])
                    for c in hdu.columns
                ]
                header = hdu.header.copy()
                new = fits.BinTableHDU.from_columns(columns, name="COADD_INPUTS_CCDS")
                for card in header.cards:  # RBEXT, RBEXTMOD, CIFMTV ... (not the table layout)
                    if card.keyword not in new.header and not card.keyword.startswith(
                        ("TTYPE", "TFORM", "TDIM", "TUNIT", "NAXIS", "PCOUNT", "GCOUNT", "THEAP")
                    ):
                        new.header.append(card)
                hdul[i] = new
                hdu = new
            hdu.header[FORMAT_KEY] = (2, "warp inputs table format version")
        return hdulist_to_bytes(hdul)


def _warp_inputs_step_2(data: bytes, source: str) -> bytes:
    """Version 2 -> 3: the card only (version 3's new columns are optional)."""
    return _set_inputs_version(data, source, 3)


class WarpInputsFormat(FileFormat):
    """The inputs tables of warps; also checks each ``exposure`` dataset's ``RBFMTV``."""

    format = "warp inputs table"
    current = 3
    steps: ClassVar[Mapping[int, Step]] = {
        0: _warp_inputs_step_0,
        1: _warp_inputs_step_1,
        2: _warp_inputs_step_2,
    }

    def candidates(self, ctx: MigrationContext) -> Iterable[str]:
        return ctx.paths_with_formatter("exposure")

    def version(self, data: bytes, source: str) -> int | None:
        from warping.coadd_inputs import FORMAT_KEY
        from warping.formats._common import open_fits_bytes
        from warping.formats.exposure_fits import FORMAT_VERSION

        with open_fits_bytes(data, source) as hdul:
            primary = hdul[0].header
            if "RBFMTV" not in primary:
                return None  # not our layout (e.g. an LSST afw calexp): nothing to upgrade
            check_version(primary["RBFMTV"], FORMAT_VERSION, what="exposure", source=source,
                          error=FormatError)  # fmt: skip
            tables = [h for h in hdul[1:] if h.header.get("RBEXT") == _INPUTS_EXTENSION]
            if not tables:
                return None
            found = {check_version(h.header.get(FORMAT_KEY), self.current, what=self.format,
                                   source=source, error=FormatError) for h in tables}  # fmt: skip
            return min(found)


class CalibFitsFormat(FileFormat):
    """Background, photoCalib and skyWcs FITS files (``RBFMTV``)."""

    format = "calibration FITS"
    current = 1

    def candidates(self, ctx: MigrationContext) -> Iterable[str]:
        return ctx.paths_with_formatter("background", "photocalib", "skywcs")

    def version(self, data: bytes, source: str) -> int | None:
        from warping.formats._common import open_fits_bytes

        with open_fits_bytes(data, source) as hdul:
            value = hdul[0].header.get("RBFMTV")
            return None if value is None else int(value)


class SkyMapFormat(FileFormat):
    """Skymap YAML (``format_version``)."""

    format = "skymap"
    current = 1

    def candidates(self, ctx: MigrationContext) -> Iterable[str]:
        return ctx.paths_with_formatter("skymap")

    def version(self, data: bytes, source: str) -> int | None:
        import yaml

        doc = yaml.safe_load(data)
        return doc.get("format_version") if isinstance(doc, dict) else None


def register() -> None:
    """Register warping's formats with :mod:`repo_butler.migrate` (entry point target)."""
    from warping.coadd_inputs import FORMAT_VERSION as INPUTS_VERSION
    from warping.formats.calib_fits import FORMAT_VERSION as CALIB_VERSION
    from warping.skymap.io import FORMAT_VERSION as SKYMAP_VERSION

    for fmt, version in (
        (WarpInputsFormat(), INPUTS_VERSION),
        (CalibFitsFormat(), CALIB_VERSION),
        (SkyMapFormat(), SKYMAP_VERSION),
    ):
        if fmt.current != version:
            raise FormatError(
                f"{fmt.format}: the migration knows version {fmt.current}, the writer writes "
                f"{version}; add the upgrade step to warping/formats/migrations.py"
            )
        register_migration(fmt)
