"""Where a CCD's valid polygon and aperture corrections come from (issue #22, items 5 and 6):
the visitSummary row's polygon whenever the visitSummary is used, its ApCorrMap with its PSF,
the calexp's own otherwise."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from repo_butler import DataId
from tests.test_make_warp_visit_summary import CALEXPS, SKY, VISIT, catalog, row_of
from warping.apcorr import ApCorrMap
from warping.exposure import Exposure
from warping.geom import Box2I
from warping.photocalib import ChebyshevBoundedField
from warping.polygon import ValidPolygon
from warping.task.config import MakeWarpConfig, apply_overrides
from warping.task.inputs import CcdInput, InMemoryHandle, SharedHandle
from warping.task.make_warp import MakeWarpTask

CALEXP_POLY = ValidPolygon([(-0.5, -0.5), (199.5, -0.5), (199.5, 219.5), (-0.5, 120.2)])
ROW_POLY = ValidPolygon([(-0.5, -0.5), (130.7, -0.5), (199.5, 219.5), (-0.5, 219.5)])
BOX = Box2I(0, 0, 200, 220)
CALEXP_APC = ApCorrMap({"base_PsfFlux_instFlux": ChebyshevBoundedField(BOX, np.array([[0.97]]))})
ROW_APC = ApCorrMap(
    {"base_PsfFlux_instFlux": ChebyshevBoundedField(BOX, np.array([[0.95, 0.01], [0.002, 0.0]]))}
)


def _row(overrides: list[str], *, row_poly: bool = True, row_apc: bool = True) -> object:
    calexp: Exposure = dataclasses.replace(
        CALEXPS[16], valid_polygon=CALEXP_POLY, ap_corr_map=CALEXP_APC
    )
    row = row_of(
        16,
        valid_polygon=ROW_POLY if row_poly else None,
        ap_corr_map=ROW_APC if row_apc else None,
    )
    inputs = [
        CcdInput(
            DataId({"visit": VISIT, "ccd": 16}),
            InMemoryHandle(calexp),
            visit_summary=SharedHandle(InMemoryHandle(catalog(row))),
        )
    ]
    config = apply_overrides(MakeWarpConfig(), overrides)
    warp = MakeWarpTask(config).run(inputs, SKY, VISIT).exposures["direct"]
    assert warp is not None
    (rec,) = warp.coadd_inputs.ccds
    return rec


@pytest.mark.parametrize(
    ("overrides", "poly", "apc"),
    [
        ([], CALEXP_POLY, CALEXP_APC),  # no visitSummary use: the calexp's own
        (["useVisitSummaryWcs=True"], ROW_POLY, CALEXP_APC),
        (["useVisitSummaryPhotoCalib=True"], ROW_POLY, CALEXP_APC),
        (["useVisitSummaryPsf=True"], ROW_POLY, ROW_APC),  # ApCorrMap comes with the PSF
    ],
)
def test_components_follow_the_visit_summary_flags(
    overrides: list[str], poly: ValidPolygon, apc: ApCorrMap
) -> None:
    rec = _row(overrides)
    assert rec.valid_polygon == poly and rec.ap_corr_map == apc


def test_a_row_without_them_keeps_the_calexps() -> None:
    rec = _row(["useVisitSummaryPsf=True"], row_poly=False, row_apc=False)
    assert rec.valid_polygon == CALEXP_POLY and rec.ap_corr_map == CALEXP_APC
