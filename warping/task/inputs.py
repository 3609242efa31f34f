"""Typed inputs of :meth:`~warping.task.make_warp.MakeWarpTask.run`: one value per CCD.

A :class:`CcdInput` holds a CCD's validated :class:`~repo_butler.DataId` and lazy handles to its
calexp and to the calibration products the config asks for (background to add back, sky
correction, external WCS and photometric calibration, the visit's visitSummary). Nothing is read
until the task asks a handle for its dataset, so a plan of many CCDs costs no memory, and tests
drive the task with :class:`InMemoryHandle` values. The CCDs of one visit share one
:class:`SharedHandle` to its visitSummary, so that file is read once per unit.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from repo_butler import DataId, DatasetRef, WorkerIO

logger = logging.getLogger(__name__)

__all__ = [
    "PRODUCTS",
    "SHARED_PRODUCTS",
    "CcdInput",
    "DatasetHandle",
    "InMemoryHandle",
    "SharedHandle",
    "StoredHandle",
    "fmt_id",
]

#: The calibration products of a CCD, in the order they are read and recorded in provenance.
PRODUCTS = ("background", "sky_corr", "wcs", "photo_calib", "visit_summary")
#: Products stored once per visit (not per CCD): the CCDs of a unit share one handle to each.
SHARED_PRODUCTS = ("visit_summary",)


def fmt_id(data_id: Mapping[str, Any]) -> str:
    """``key=value`` text of a data ID (sorted keys), as messages and summaries show it."""
    return " ".join(f"{k}={v}" for k, v in sorted(dict(data_id).items()))


class DatasetHandle(Protocol):
    """A dataset that can be read when needed."""

    @property
    def ref(self) -> DatasetRef | None:
        """The stored dataset (None for an in-memory one)."""
        ...

    def get(self) -> Any:
        """Read (or return) the dataset.

        Raises
        ------
        FileNotFoundError
            When the stored file is missing.
        """
        ...


@dataclass(frozen=True)
class InMemoryHandle:
    """A handle to an object already in memory (tests, notebooks)."""

    obj: Any

    @property
    def ref(self) -> None:
        """No stored dataset."""
        return None

    def get(self) -> Any:
        """The object itself."""
        return self.obj


@dataclass(frozen=True)
class StoredHandle:
    """A handle to a stored dataset, read through a worker's IO (no butler, no registry).

    ``reads`` (shared by the handles of one unit) counts the full reads of each file. The
    checksum of the bytes read is checked against the registry's (``verify``), so provenance,
    which records that checksum, describes the bytes actually used.
    """

    ref: DatasetRef
    io: WorkerIO
    reads: collections.Counter[str] | None = None
    verify: bool = True
    fresh: ClassVar[bool] = True
    """Each :meth:`get` returns a new object the caller owns (it may modify it)."""

    def get(self) -> Any:
        """Read and decode the dataset.

        Raises
        ------
        FileNotFoundError
            When the file is missing.
        repo_butler.writes.ChecksumMismatchError
            When the bytes read are not those registered.
        """
        if self.reads is not None:
            self.reads[self.ref.path] += 1
        return self.io.read(self.ref, verify=self.verify)


@dataclass(frozen=True, eq=False)
class SharedHandle:
    """A handle read at most once, however many CCDs ask (a visit's visitSummary in a unit).

    The dataset stays in memory as long as the handle does (one unit's inputs); a failed read is
    not remembered, so the next CCD tries again and reports the same error.
    """

    inner: DatasetHandle
    _value: list[Any] = field(default_factory=list, repr=False)

    @property
    def ref(self) -> DatasetRef | None:
        """The inner handle's stored dataset."""
        return self.inner.ref

    def get(self) -> Any:
        """The dataset, read through the inner handle on the first call."""
        if not self._value:
            self._value.append(self.inner.get())
        return self._value[0]


@dataclass(frozen=True)
class CcdInput:
    """One CCD of a visit: its data ID and lazy handles to the calexp and its calibrations.

    Parameters
    ----------
    data_id
        The calexp's data ID (``ccd`` at least; recorded in the warp's inputs table).
    calexp
        The calexp (counts).
    background
        ``calexpBackground`` to add back (``bgSubtracted=False``), or None.
    sky_corr
        ``skyCorr`` to subtract (``doApplySkyCorr``), or None.
    wcs
        External WCS replacing the calexp's (``doApplyExternalSkyWcs``), or None.
    photo_calib
        External photometric calibration (``doApplyExternalPhotoCalib``); None uses the
        calexp's own.
    visit_summary
        The visit's :class:`~warping.visit_summary.VisitSummaryCatalog` (``useVisitSummary*``),
        or None; the task takes this CCD's row from it.
    missing
        Why the CCD cannot be used (a product the config needs does not exist); the task
        skips it with this reason without reading anything.
    """

    data_id: DataId
    calexp: DatasetHandle
    background: DatasetHandle | None = None
    sky_corr: DatasetHandle | None = None
    wcs: DatasetHandle | None = None
    photo_calib: DatasetHandle | None = None
    visit_summary: DatasetHandle | None = None
    missing: str | None = None

    @property
    def ccd(self) -> int:
        """The CCD (detector) number."""
        return int(self.data_id["ccd"])

    def products(self) -> dict[str, DatasetHandle]:
        """The calibration handles present, by name, in :data:`PRODUCTS` order."""
        found = {name: getattr(self, name) for name in PRODUCTS}
        return {name: h for name, h in found.items() if h is not None}

    def refs(self) -> list[DatasetRef]:
        """The stored datasets this CCD reads (calexp first), for provenance."""
        handles = [self.calexp, *self.products().values()]
        return [h.ref for h in handles if h.ref is not None]
