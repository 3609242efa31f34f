"""The values a MakeWarp run passes around: planned units, their results and the plan.

A :class:`WarpUnit` is one visit's warps on one patch, resolved by the driver
(:mod:`warping.task.planning`) down to dataset refs and planned output paths, so a worker runs it
(:mod:`warping.task.execution`) with no butler and no registry. Every value carries the
validated :class:`~repo_butler.DataId` of its warps; everything here is small and picklable.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from warping.task.inputs import (
    SHARED_PRODUCTS,
    CcdInput,
    DatasetHandle,
    SharedHandle,
    StoredHandle,
)

if TYPE_CHECKING:
    from repo_butler import DataId, DatasetRef, PlannedPut, WorkerIO, WrittenDataset
    from warping.task.psf_model import PatchPsfModel

logger = logging.getLogger(__name__)

__all__ = [
    "PATCH_KEYS",
    "WARP_KEYS",
    "PlannedCcd",
    "PlannedWarp",
    "UnitResult",
    "WarpPlan",
    "WarpUnit",
    "patch_of",
]

#: Keys of a patch's data ID, in the order summaries show them.
PATCH_KEYS = ("tract", "patch", "filter")
#: Keys of a warp's data ID, in the order summaries show them.
WARP_KEYS = (*PATCH_KEYS, "visit")


def patch_of(data_id: DataId) -> DataId:
    """The patch part (``tract``, ``patch``, ``filter``) of a warp's data ID."""
    return data_id.subset(PATCH_KEYS)


@dataclass(frozen=True)
class PlannedCcd:
    """One CCD of a unit as the driver resolved it: the calexp and its calibration products.

    Parameters
    ----------
    calexp
        The calexp's ref (its data ID is the CCD's).
    products
        Refs of the calibration products the config asks for, by
        :data:`~warping.task.inputs.PRODUCTS` name.
    missing
        A product the config needs does not exist: the CCD is skipped with this reason.
    """

    calexp: DatasetRef
    products: Mapping[str, DatasetRef] = field(default_factory=dict)
    missing: str | None = None

    @property
    def data_id(self) -> DataId:
        """The calexp's data ID."""
        return self.calexp.data_id

    @property
    def ccd(self) -> int:
        """The CCD number."""
        return int(self.calexp.data_id["ccd"])

    def bind(
        self,
        io: WorkerIO,
        reads: collections.Counter[str] | None = None,
        shared: dict[str, DatasetHandle] | None = None,
    ) -> CcdInput:
        """The task's input for this CCD: handles reading through ``io`` (counting ``reads``).

        Handles to per-visit products (:data:`~warping.task.inputs.SHARED_PRODUCTS`) are taken
        from ``shared`` (by storage path) when given, so the CCDs of a unit read them once.
        """
        handles: dict[str, DatasetHandle] = {}
        for name, ref in self.products.items():
            handle: DatasetHandle = StoredHandle(ref, io, reads)
            if shared is not None and name in SHARED_PRODUCTS:
                handle = shared.setdefault(ref.path, SharedHandle(handle))
            handles[name] = handle
        return CcdInput(
            self.calexp.data_id, StoredHandle(self.calexp, io, reads), missing=self.missing,
            **handles,
        )  # fmt: skip


@dataclass(frozen=True)
class PlannedWarp:
    """One warp a unit makes: its type (``direct``/``psfMatched``, or a companion of the direct
    warp: ``maskedFraction``, ``noise0`` ...) and where it goes."""

    warp_type: str
    put: PlannedPut


@dataclass(frozen=True)
class WarpUnit:
    """One visit's warps on one patch: everything a worker needs, resolved by the driver.

    Parameters
    ----------
    data_id
        The warps' data ID (``tract``, ``patch``, ``filter``, ``visit``).
    skymap
        The skymap's ref: workers rebuild the patch geometry from its file (and it is recorded
        in provenance).
    ccds
        The visit's CCDs overlapping the patch, sorted by CCD.
    outputs
        The warps to write, in ``output_types`` order (warps, then the direct warp's
        companions).
    psf_model
        The patch's model PSF for psfMatched warps, decided once per patch by the driver
        (:func:`warping.task.psf_model.survey_patch_models`); None: the task decides it.
    """

    data_id: DataId
    skymap: DatasetRef
    ccds: tuple[PlannedCcd, ...]
    outputs: tuple[PlannedWarp, ...]
    psf_model: PatchPsfModel | None = None

    @property
    def key(self) -> str:
        """A readable, unique task key (``warp-0-5,4-HSC-I-903988``); no secrets in it."""
        d = self.data_id
        return f"warp-{d['tract']}-{d['patch']}-{d['filter']}-{d['visit']}"

    @property
    def tract(self) -> int:
        """The tract."""
        return int(self.data_id["tract"])

    @property
    def patch(self) -> str:
        """The patch name (``x,y``)."""
        return str(self.data_id["patch"])

    @property
    def filter(self) -> str:
        """The filter."""
        return str(self.data_id["filter"])

    @property
    def visit(self) -> int:
        """The visit."""
        return int(self.data_id["visit"])


@dataclass
class UnitResult:
    """What a worker returns for one unit (small and picklable)."""

    key: str
    data_id: DataId  # the warps' data ID
    status: str  # "written", "empty", "failed", "cancelled", "reused"
    ccds_used: list[int] = field(default_factory=list)
    ccds_skipped: dict[int, str] = field(default_factory=dict)
    ccds_unusable: list[int] = field(default_factory=list)  # skipped for bad data: incomplete
    #: warp types asked for but not made while another was (warp type -> why): incomplete
    outputs_missing: dict[str, str] = field(default_factory=dict)
    #: ``select`` cuts that could not be evaluated: field name -> {CCD: why}
    cuts_not_evaluated: dict[str, dict[int, str]] = field(default_factory=dict)
    goodpix: dict[str, int] = field(default_factory=dict)
    written: list[WrittenDataset] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)  # warp type -> uri
    seconds: float = 0.0
    error: str | None = None
    traceback: str | None = None
    reads: dict[str, int] = field(default_factory=dict)  # storage path -> full reads
    peak_rss_mb: float = 0.0
    worker: str = ""
    interrupted: bool = False  # Ctrl-C arrived while the outputs were being written

    @property
    def visit(self) -> int:
        """The visit."""
        return int(self.data_id["visit"])

    @classmethod
    def for_unit(cls, unit: WarpUnit, status: str, **kw: Any) -> UnitResult:
        """A result of ``unit`` with ``status``."""
        return cls(unit.key, unit.data_id, status, **kw)


@dataclass
class WarpPlan:
    """Units to run, units reused, and per patch the calexps that were not selected."""

    units: list[WarpUnit] = field(default_factory=list)
    reused: list[UnitResult] = field(default_factory=list)
    patches: list[DataId] = field(default_factory=list)
    not_selected: dict[DataId, dict[str, str]] = field(default_factory=dict)
    #: tract-wide runs: calexps that could not be read and belong to no unit (data ID -> reason)
    unplaced: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    #: every planned unit, reused ones included: a patch's model PSF is decided over all of them
    all_units: list[WarpUnit] = field(default_factory=list)
