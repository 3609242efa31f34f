"""Build one warp's inputs table as its CCDs are warped (LSST ``CoaddTempExpInputRecorder``).

One :class:`WarpInputsRecorder` per warp type of a visit. The task reports each CCD once: warped
(:meth:`WarpInputsRecorder.add_ccd`, with its good-pixel count, maybe 0) or failed
(:meth:`WarpInputsRecorder.add_error`); ``inputRecorder`` decides which become rows:

* a CCD with good pixels always does;
* a warped CCD without good pixels only with ``saveEmptyCcds``;
* a CCD that could not be read, calibrated, warped (or, for the psfMatched warp, matched) only
  with ``saveErrorCcds``: its row has goodpix 0, weight NaN, an empty bbox, no WCS, PSF,
  PhotoCalib, valid polygon or aperture corrections and no filter (as LSST's record of a
  ``None`` calexp).

``saveVisitGoodPix`` and ``saveCcdWeights`` decide whether the visit table's ``goodpix`` and
the CCD table's ``weight`` columns are written. The CoaddPsf of a direct warp is built from the
CCDs that contributed pixels (:meth:`WarpInputsRecorder.contributing`), each weighted 1.0,
whatever the knobs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from warping.coadd_inputs import CcdRecord, CoaddInputs, VisitRecord
from warping.geom import Box2I

if TYPE_CHECKING:
    from warping.exposure import Exposure
    from warping.task.config_inputs import InputRecorderConfig

__all__ = ["WarpInputsRecorder"]

#: Weight of a CCD in its warp: no weighting or overlap when warping (LSST's comment).
CCD_WEIGHT = 1.0


class WarpInputsRecorder:
    """The inputs table of one warp of one visit, filled CCD by CCD.

    Parameters
    ----------
    config
        ``MakeWarpConfig.inputRecorder``.
    visit
        The visit (the visit row's id and every CCD row's ``visit``).
    """

    def __init__(self, config: InputRecorderConfig, visit: int) -> None:
        self.config = config
        self.visit = int(visit)
        self.rows: list[CcdRecord] = []

    def add_ccd(
        self,
        calexp: Exposure,
        ccd_id: int,
        ccd: int,
        data_id: Mapping[str, Any],
        goodpix: int,
        **extra: Any,
    ) -> CcdRecord | None:
        """Record a warped CCD: the calibrated calexp (its own pixels' WCS, PSF, PhotoCalib and
        bbox, not the warp's) and the pixels it gave the warp. ``extra`` are further
        :class:`~warping.coadd_inputs.CcdRecord` fields (``valid_bbox`` ...).

        Returns the row, or None when it is not recorded (no good pixel, not ``saveEmptyCcds``).
        """
        if goodpix <= 0 and not self.config.saveEmptyCcds:
            return None
        row = CcdRecord(
            id=int(ccd_id),
            ccd=int(ccd),
            visit=self.visit,
            goodpix=int(goodpix),
            weight=CCD_WEIGHT if self.config.saveCcdWeights else float("nan"),
            filter=calexp.filter or "",
            bbox=calexp.bbox,
            wcs=calexp.wcs,
            psf=calexp.psf,
            photo_calib=calexp.photo_calib,
            data_id=dict(data_id),
            **extra,
        )
        self.rows.append(row)
        return row

    def add_error(self, ccd_id: int, ccd: int, data_id: Mapping[str, Any]) -> CcdRecord | None:
        """Record a CCD that could not be used (only with ``saveErrorCcds``)."""
        if not self.config.saveErrorCcds:
            return None
        row = CcdRecord(
            id=int(ccd_id),
            ccd=int(ccd),
            visit=self.visit,
            goodpix=0,
            weight=float("nan"),
            filter="",
            bbox=Box2I(0, 0, 0, 0),
            wcs=None,
            data_id=dict(data_id),
        )
        self.rows.append(row)
        return row

    def contributing(self) -> list[CcdRecord]:
        """The rows of CCDs that gave the warp pixels, weighted :data:`CCD_WEIGHT` (for the
        CoaddPsf)."""
        return [dataclasses.replace(r, weight=CCD_WEIGHT) for r in self.rows if r.goodpix > 0]

    def finish(self, goodpix: int, filter_name: str) -> CoaddInputs:
        """The warp's inputs table: the visit row (``goodpix`` of the whole warp) and the CCD
        rows in the order they were recorded."""
        return CoaddInputs(
            visits=[VisitRecord(self.visit, int(goodpix), filter=filter_name or "")],
            ccds=list(self.rows),
            visit_goodpix=self.config.saveVisitGoodPix,
            ccd_weights=self.config.saveCcdWeights,
        )
