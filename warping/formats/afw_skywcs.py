"""afw ``SkyWcs`` objects in LSST afw FITS archives: read into :class:`~warping.ast_wcs.AstSkyWcs`
and written in the same layout.

Where they are found:

* standalone files (Gen2 ``jointcal_wcs``): an empty primary, the ``ARCHIVE_INDEX`` table and one
  data catalog with a ``wcs`` byte column;
* calexps: the archive after the image planes, the object id in the primary header's
  ``ARCHIVE_ID_SKYWCS`` / ``SKYWCS_ID``;
* visitSummary catalogs: the row's ``wcs`` archive id.

The persisted text is ``"1 SkyWcs <hasApprox> "`` followed by an AST Channel dump of the
FrameSet (``PIXELS`` -> ... -> ``SKY``). Old ``TanWcs`` objects (``WCS_ID``, 2016-era files) are
not read here: afw itself ignores them and uses the image header, and so do our readers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.io import fits

from warping.ast_wcs import AstSkyWcs
from warping.errors import FormatError

if TYPE_CHECKING:
    from warping.formats.lsst_afw import LsstArchive

logger = logging.getLogger(__name__)

__all__ = [
    "read_archived_skywcs",
    "read_single_skywcs",
    "skywcs_archive_hdulist",
    "skywcs_ids",
]

_AFW_TABLE_VERSION = 3


def read_archived_skywcs(archive: LsstArchive, obj_id: int) -> AstSkyWcs:
    """The afw ``SkyWcs`` with archive id ``obj_id``, evaluated with AST.

    Raises
    ------
    FormatError
        If the object is not a SkyWcs, its persistence version or text is not supported, or AST
        cannot read its FrameSet; the message names the file and the archive id.
    """
    where = f"{archive.source} (archive id {obj_id})"
    name = archive.name(obj_id)
    if name != "SkyWcs":
        raise FormatError(
            f"{where}: archive object is a {name!r}, not a 'SkyWcs'; afw SkyWcs objects "
            "(AST FrameSets) are the only WCS class read from archives"
        )
    rows = archive.catalogs(obj_id)[0]
    names = [n.lower() for n in rows.columns.names]
    if "wcs" not in names or len(rows) < 1:
        raise FormatError(
            f"{where}: SkyWcs catalog has no 'wcs' column (columns: {', '.join(names)}); "
            "the file is corrupt or from an afw version this reader does not know"
        )
    raw = rows[0][names.index("wcs")]
    try:
        text = np.asarray(raw, dtype=np.uint8).tobytes().decode("ascii")
    except (UnicodeDecodeError, ValueError, TypeError):
        raise FormatError(f"{where}: the SkyWcs 'wcs' bytes are not ASCII text (corrupt)") from None
    return AstSkyWcs.from_text(text.rstrip("\0"), source=where)


def skywcs_ids(archive: LsstArchive) -> list[int]:
    """Archive ids of the SkyWcs objects in ``archive``, sorted."""
    return archive.ids_of("SkyWcs")


def read_single_skywcs(archive: LsstArchive) -> AstSkyWcs:
    """The one SkyWcs of a standalone afw archive file (Gen2 ``jointcal_wcs``).

    Raises
    ------
    FormatError
        If the archive holds no SkyWcs or more than one (a catalog such as a visitSummary:
        read it with :func:`warping.formats.afw_visit_summary.read_visit_summary`).
    """
    return read_archived_skywcs(archive, archive.single_id("SkyWcs"))


def skywcs_archive_hdulist(wcs: AstSkyWcs) -> fits.HDUList:
    """``wcs`` as a standalone afw archive (the layout of a Gen2 ``jointcal_wcs`` file)."""
    text = wcs.to_text().encode("ascii")
    index = fits.BinTableHDU.from_columns(
        [
            fits.Column("id", "J", array=np.array([1], dtype=np.int32)),
            fits.Column("cat.archive", "J", array=np.array([1], dtype=np.int32)),
            fits.Column("cat.persistable", "J", array=np.array([0], dtype=np.int32)),
            fits.Column("row0", "J", array=np.array([0], dtype=np.int32)),
            fits.Column("nrows", "J", array=np.array([1], dtype=np.int32)),
            fits.Column("name", "64A", array=np.array(["SkyWcs"])),
            fits.Column("module", "64A", array=np.array(["lsst.afw.geom"])),
        ]
    )
    _archive_cards(index.header, "ARCHIVE_INDEX", 0)
    index.header["AR_NCAT"] = (2, "# of catalogs in this archive, including the index")
    data_col: Any = np.empty(1, dtype=object)
    data_col[0] = np.frombuffer(text, dtype=np.uint8)
    data = fits.BinTableHDU.from_columns([fits.Column("wcs", f"QB({len(text)})", array=data_col)])
    _archive_cards(data.header, "ARCHIVE_DATA", 1)
    data.header["AR_NAME"] = ("SkyWcs", "Class name for objects stored here")
    return fits.HDUList([fits.PrimaryHDU(), index, data])


def _archive_cards(header: fits.Header, exttype: str, catn: int) -> None:
    header["EXTTYPE"] = exttype
    header["AR_CATN"] = (catn, "# of this catalog relative to the start of this archive")
    header["HIERARCH AFW_TABLE_VERSION"] = _AFW_TABLE_VERSION
