"""A visit's per-detector calibrations, as LSST's ``visitSummary`` (afw ExposureCatalog) holds them.

Pure values: the reader (:mod:`warping.formats.afw_visit_summary`) builds them from a file, the
task (``useVisitSummaryWcs/PhotoCalib/Psf``) takes one row per CCD. A component the pipeline did
not store (archive id 0, e.g. ``psf`` in every real Gen3 visitSummary seen so far) is ``None``;
a row the catalog lacks is a CCD the visitSummary does not cover.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from warping.errors import WarpingError
from warping.geom import Box2I

if TYPE_CHECKING:
    from warping.photocalib import PhotoCalib
    from warping.psf.base import Psf

__all__ = ["MissingVisitSummaryRowError", "VisitSummaryCatalog", "VisitSummaryRow"]


class MissingVisitSummaryRowError(WarpingError, LookupError):
    """The visitSummary has no row for a detector, or the row lacks a requested component."""


@dataclass(frozen=True, eq=False)
class VisitSummaryRow:
    """One detector's row of a visitSummary.

    Attributes
    ----------
    detector
        Detector (CCD) id: the catalog's ``id`` column.
    bbox
        The detector's parent-pixel bbox (``bbox_min/max``, inclusive maxima).
    wcs
        The archived afw SkyWcs (parent pixels to ICRS degrees), or None if not stored.
    photo_calib
        The archived PhotoCalib (nJy per count), or None if not stored.
    psf
        The archived PSF, or None if not stored.
    ra_corners, dec_corners
        Sky positions (degrees) the pipeline recorded at the bbox's four pixel-edge corners, in
        the order (x0-½, y0-½), (x1+½, y0-½), (x1+½, y1+½), (x0-½, y1+½); NaN if absent.
    summary
        Scalar summary columns (``psfSigma``, ``zeroPoint``, ``skyBg``, ...) by name.
    unreadable
        Components the file stores but the reader could not use, with the reason (e.g. a PSF
        class we do not know); that component is None and :meth:`component` reports the reason.
    valid_polygon
        The archived valid polygon (parent pixels), or None if not stored.
    ap_corr_map
        The archived aperture corrections (:class:`~warping.apcorr.ApCorrMap`), or None.
    """

    detector: int
    bbox: Box2I
    wcs: Any | None = None
    photo_calib: PhotoCalib | None = None
    psf: Psf | None = None
    ra_corners: np.ndarray = field(default_factory=lambda: np.full(4, np.nan), repr=False)
    dec_corners: np.ndarray = field(default_factory=lambda: np.full(4, np.nan), repr=False)
    summary: Mapping[str, float | int | str] = field(default_factory=dict, repr=False)
    unreadable: Mapping[str, str] = field(default_factory=dict, repr=False)
    valid_polygon: Any = None
    ap_corr_map: Any = None

    def component(self, name: str, source: str = "visitSummary") -> Any:
        """The ``wcs``, ``photo_calib`` or ``psf`` of this row.

        Raises
        ------
        MissingVisitSummaryRowError
            If the row does not store that component (archive id 0), or stores one that could
            not be read (:attr:`unreadable`).
        """
        if name not in ("wcs", "photo_calib", "psf"):
            raise ValueError(f"unknown visitSummary component {name!r}")
        value = getattr(self, name)
        if value is None and name in self.unreadable:
            raise MissingVisitSummaryRowError(
                f"{source}: the {name} of detector {self.detector} cannot be used: "
                f"{self.unreadable[name]}; turn off useVisitSummary{_FIELD[name]} to use the "
                "calexp's own"
            )
        if value is None:
            raise MissingVisitSummaryRowError(
                f"{source}: the row of detector {self.detector} stores no {name} (archive id 0); "
                f"turn off useVisitSummary{_FIELD[name]} to use the calexp's own"
            )
        return value


_FIELD = {"wcs": "Wcs", "photo_calib": "PhotoCalib", "psf": "Psf"}


@dataclass(frozen=True, eq=False)
class VisitSummaryCatalog:
    """All rows of one visit's visitSummary, by detector id.

    Attributes
    ----------
    visit
        The visit (``visit`` column; all rows agree).
    rows
        The rows, keyed by detector id.
    source
        Where it was read from (file or URI), for error messages.
    """

    visit: int
    rows: Mapping[int, VisitSummaryRow]
    source: str = "visitSummary"

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[VisitSummaryRow]:
        return iter(self.rows[k] for k in sorted(self.rows))

    def __contains__(self, detector: object) -> bool:
        return detector in self.rows

    def row(self, detector: int) -> VisitSummaryRow:
        """The row of ``detector``.

        Raises
        ------
        MissingVisitSummaryRowError
            If the catalog has no row for it (the message lists the detectors it has).
        """
        try:
            return self.rows[int(detector)]
        except KeyError:
            have = sorted(self.rows)
            shown = ", ".join(map(str, have[:12])) + (" ..." if len(have) > 12 else "")
            raise MissingVisitSummaryRowError(
                f"{self.source}: visit {self.visit} has no row for detector {detector} "
                f"(it has {len(have)} rows: {shown})"
            ) from None
