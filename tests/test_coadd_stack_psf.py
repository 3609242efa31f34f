"""The coadd's CoaddPsf and inputs table from the warps' (``warping.coadd.psf``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from astropy.wcs import WCS

from warping.coadd import coadd_inputs, coadd_psf
from warping.coadd_inputs import CcdRecord, CoaddInputs, VisitRecord
from warping.coadd_psf import CoaddPsf
from warping.geom import Box2I
from warping.psf.analytic import GaussianPsf
from warping.skywcs import shift_wcs


@dataclass(frozen=True)
class Warp:
    visit: int
    psf: Any
    coadd_inputs: Any


def _tract_wcs() -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [200.0, 100.0]
    wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    return wcs


#: visit -> (CCD origin in tract x, PSF sigma): CCDs of 200 x 200 pixels side by side
LAYOUT = {11: (0, 1.5), 12: (100, 2.1), 13: (150, 2.8)}


def _warps() -> tuple[list[Warp], WCS]:
    tract = _tract_wcs()
    warps = []
    for visit, (x0, sigma) in LAYOUT.items():
        ccd = CcdRecord(
            id=visit * 10, ccd=visit % 10, visit=visit, goodpix=40000, weight=1.0,
            filter="HSC-I", bbox=Box2I(0, 0, 200, 200), wcs=shift_wcs(tract, -x0, 0),
            psf=GaussianPsf(sigma, size=25),
        )  # fmt: skip
        inputs = CoaddInputs([VisitRecord(visit, 40000, filter="HSC-I")], [ccd])
        warps.append(Warp(visit, CoaddPsf([ccd], tract), inputs))
    return warps, tract


def _mix(kernels: list[np.ndarray], weights: list[float]) -> np.ndarray:
    size = max(k.shape[0] for k in kernels)
    out = np.zeros((size, size))
    for k, w in zip(kernels, weights, strict=True):
        pad = (size - k.shape[0]) // 2
        out[pad : pad + k.shape[0], pad : pad + k.shape[1]] += w * k
    return out / sum(weights)


def _centre(a: np.ndarray, size: int) -> np.ndarray:
    pad = (a.shape[0] - size) // 2
    return a[pad : pad + size, pad : pad + size]


@pytest.mark.parametrize(
    ("x", "covering"), [(180.0, (11, 12, 13)), (120.0, (11, 12)), (260.0, (12, 13))]
)
def test_coadd_psf_is_the_weighted_sum_of_the_covering_warps_psfs(
    x: float, covering: tuple[int, ...]
) -> None:
    warps, tract = _warps()
    weights = {11: 0.7, 12: 2.0, 13: 1.3}
    psf = coadd_psf(warps, weights, tract)
    assert isinstance(psf, CoaddPsf)
    y = 100.0
    by_visit = {w.visit: w for w in warps}
    expected = _mix(
        [by_visit[v].psf.compute_kernel_image(x, y) for v in covering],
        [weights[v] for v in covering],
    )
    got = psf.compute_kernel_image(x, y)
    assert got.shape[0] >= expected.shape[0]
    np.testing.assert_allclose(_centre(got, expected.shape[0]), expected, atol=1e-12)
    assert got.sum() == pytest.approx(1.0)


def test_inputs_list_every_combined_visit_and_ccd_with_its_weight() -> None:
    warps, tract = _warps()
    inputs = coadd_inputs(warps, {13: 0.5, 11: 2.0})  # visit 12 left out
    assert [(v.id, v.weight, v.goodpix) for v in inputs.visits] == [
        (11, 2.0, 40000),
        (13, 0.5, 40000),
    ]
    assert [(c.visit, c.weight) for c in inputs.ccds] == [(11, 2.0), (13, 0.5)]
    # the warps' own tables are unchanged
    assert all(w.coadd_inputs.ccds[0].weight == 1.0 for w in warps)
    psf = coadd_psf(warps, {13: 0.5, 11: 2.0}, tract)
    assert isinstance(psf, CoaddPsf) and len(psf.ccds) == 2


def test_psf_matched_warps_give_the_widest_model_psf() -> None:
    models = [Warp(1, GaussianPsf(2.0, size=21), None), Warp(2, GaussianPsf(3.0, size=31), None)]
    assert coadd_psf(models, {1: 1.0, 2: 1.0}, _tract_wcs()) is models[1].psf
    assert coadd_psf(models, {}, _tract_wcs()) is None
