"""``inputRecorder`` and ``idGenerator``: what a warp's inputs table records (issue #22).

Kept apart from :mod:`warping.task.config`, which holds the two fields of
:class:`~warping.task.config.MakeWarpConfig`. ``inputRecorder`` has the fields and defaults of
LSST's ``CoaddInputRecorderConfig`` (Gen2 and Gen3 alike); ``idGenerator`` replaces the fixed HSC
``visit * 200 + ccd`` by a data-ID packing given as data
(:class:`warping.id_packer.DataIdPacker`), whose default is that packing, so ids of earlier
outputs do not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from repo_butler.errors import ConfigError

__all__ = ["IdGeneratorConfig", "InputRecorderConfig"]


def _doc(text: str, **extra: Any) -> dict[str, Any]:
    return {"doc": text, **extra}


@dataclass(frozen=True)
class InputRecorderConfig:
    """Rows and columns of a warp's inputs table (LSST ``CoaddInputRecorderConfig``)."""

    saveEmptyCcds: bool = field(
        default=False,
        metadata=_doc(
            "Also record CCDs that were warped but landed no good pixel on the warp "
            "(goodpix 0); they stay out of the CoaddPsf."
        ),
    )
    saveErrorCcds: bool = field(
        default=False,
        metadata=_doc(
            "Also record CCDs skipped because they could not be read, calibrated or warped "
            "(goodpix 0, weight NaN, no calibrations or filter, empty bbox)."
        ),
    )
    saveVisitGoodPix: bool = field(
        default=True,
        metadata=_doc("Write the visit table's goodpix column (the warp's good-pixel count)."),
    )
    saveCcdWeights: bool = field(
        default=True,
        metadata=_doc(
            "Write the CCD table's weight column (1.0: no weighting when warping); the "
            "CoaddPsf weighs its inputs 1.0 either way."
        ),
    )


@dataclass(frozen=True)
class IdGeneratorConfig:
    """How the ``id`` of a CCD row is packed from its data ID (mixed radix, as data)."""

    dimensions: tuple[str, ...] = field(
        default=("visit", "ccd"),
        metadata=_doc(
            "Integer data-ID keys packed into a CCD's id, most significant first; the first "
            "is bounded only by the 63-bit id."
        ),
    )
    sizes: tuple[int, ...] = field(
        default=(200,),
        metadata=_doc(
            "Number of values (0..size-1) of each key after the first; 2**b is a b-bit field. "
            "Default: HSC's visit*200+ccd. A value out of range fails the visit naming its "
            "data ID."
        ),
    )

    def packer(self, prefix: str = "idGenerator.") -> Any:
        """The :class:`~warping.id_packer.DataIdPacker` of this layout.

        Raises
        ------
        ConfigError
            If the layout is malformed (the message names the field).
        """
        from warping.id_packer import DataIdPacker, IdPackingError

        try:
            return DataIdPacker(tuple(self.dimensions), tuple(self.sizes), prefix)
        except IdPackingError as err:
            raise ConfigError(str(err)) from None
