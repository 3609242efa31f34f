"""Where a stored calexp lies on the sky, from its FITS headers only (no pixels are read).

The one footprint reader of the package: :func:`read_wcs_and_bbox_of` opens a calexp through
any opener (``Butler.open_file`` in a driver, a worker's reader elsewhere) and
:func:`sky_footprints` turns a batch of calexps into sky polygons for patch selection, on the
driver or on Dask workers.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import numpy as np

from warping.geom import Box2I

if TYPE_CHECKING:
    from repo_butler import DatasetRef
    from warping.skymap.geometry import SkyPolygon
    from warping.skywcs import SkyWcs

logger = logging.getLogger(__name__)

__all__ = [
    "HEADER_BLOCK_SIZE",
    "UNREADABLE",
    "FootprintReader",
    "Opener",
    "read_wcs_and_bbox_of",
    "sky_footprints",
]

#: Prefix of the reason :func:`sky_footprints` gives for a calexp it cannot read.
UNREADABLE = "calexp headers cannot be read: "

HEADER_BLOCK_SIZE = 2**18
"""Read-ahead block for header-only reads of remote files (s3fs defaults to 50 MiB blocks)."""

#: Opens a dataset's file for reading: ``opener(ref)`` is a context manager of a binary file.
Opener = Callable[["DatasetRef"], AbstractContextManager[BinaryIO]]


class FootprintReader(Protocol):
    """What :func:`sky_footprints` needs of a storage reader (a butler's worker IO)."""

    def open(
        self, ref: DatasetRef, *, block_size: int | None = None
    ) -> AbstractContextManager[BinaryIO]:
        """Open the dataset's file for reading (lazily for remote files)."""
        ...

    def read(self, ref: DatasetRef) -> Any:
        """Read and decode the dataset."""
        ...


def read_wcs_and_bbox_of(opener: Opener, ref: DatasetRef) -> tuple[SkyWcs | None, Box2I]:
    """WCS and bbox of a stored calexp, reading only its headers (and, for LSST calexps, the
    archive tables holding the exact SkyWcs).

    Parameters
    ----------
    opener
        Opens ``ref``'s file (``Butler.open_file``, or a worker reader's ``open``).
    ref
        The calexp.

    Raises
    ------
    FileNotFoundError, LookupError
        When the file is missing (as the opener reports it).
    """
    from warping.formats.exposure_fits import read_wcs_and_bbox

    with opener(ref) as fh:
        return read_wcs_and_bbox(fh, source=ref.uri)


def sky_footprints(
    io: FootprintReader, items: Sequence[tuple[DatasetRef, DatasetRef | None]]
) -> list[SkyPolygon | str]:
    """Sky footprints of calexps from their headers only (runs in the driver or on a worker).

    Parameters
    ----------
    io
        Storage reader.
    items
        ``(calexp ref, external WCS ref or None)`` pairs.

    Returns
    -------
    list
        Per item a :class:`~warping.skymap.geometry.SkyPolygon`, ``"missing"`` when the calexp's
        file is missing, or :data:`UNREADABLE` followed by the reason (a corrupt file, a WCS
        giving non-finite coordinates).
    """
    from warping.skymap.geometry import SkyPolygon

    opener = functools.partial(io.open, block_size=HEADER_BLOCK_SIZE)
    out: list[SkyPolygon | str] = []
    for ref, ext in items:
        try:
            try:
                wcs, bbox = read_wcs_and_bbox_of(opener, ref)
            except (FileNotFoundError, LookupError):
                out.append("missing")
                continue
            if ext is not None:
                with contextlib.suppress(FileNotFoundError):
                    wcs = io.read(ext)
            if wcs is None:
                raise ValueError(f"{ref.uri} has no WCS")
            poly = SkyPolygon.from_wcs_bbox(wcs, bbox)
            if not (np.isfinite(poly.ra).all() and np.isfinite(poly.dec).all()):
                raise ValueError(
                    f"{ref.uri}: its WCS gives non-finite sky coordinates at the CCD's corners "
                    f"(RA {list(poly.ra)}, Dec {list(poly.dec)})"
                )
            out.append(poly)
        except Exception as err:  # the unit lists the CCD as skipped, with this reason
            logger.warning("Calexp %s cannot be read: %s", ref.data_id, err)
            out.append(f"{UNREADABLE}{err}")
    return out
