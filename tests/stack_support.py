"""Synthetic warps with known pixels for the warp stack tests (``test_warp_stack``,
``test_stack_cli``): real exposure files written with ``butler.put``, each with a real
:class:`~warping.coadd_psf.CoaddPsf` over Gaussian CCD PSFs and an inputs table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from repo_butler import Butler
from warping.coadd_inputs import CcdRecord, CoaddInputs, VisitRecord
from warping.coadd_psf import CoaddPsf
from warping.exposure import Exposure, VisitInfo
from warping.formats.compression import CompressedExposure, get_recipe
from warping.geom import Box2I
from warping.masks import MaskPlanes
from warping.photocalib import PhotoCalib
from warping.psf.analytic import GaussianPsf
from warping.skywcs import shift_wcs

__all__ = ["PATCH", "SyntheticWarp", "write_synthetic_warps"]

PATCH = {"tract": 0, "patch": "5,4", "filter": "HSC-I"}
VISITS = (903986, 903988, 904010)
#: PSF sigma (pixels) of each visit's CCDs, and of the PSF-matched warps' model
SIGMAS = {903986: 1.6, 903988: 2.0, 904010: 2.4}
MATCHED_SIGMA = 3.0


@dataclass
class SyntheticWarp:
    """What was written for one visit (the truth the tests compare with)."""

    visit: int
    image: np.ndarray
    mask: np.ndarray
    variance: np.ndarray
    mjd: float
    goodpix: int
    ccds: list[int]
    sigma: float
    compressed: bool
    mask_planes: MaskPlanes = field(default_factory=MaskPlanes.default)


def _ccd_records(visit: int, ccds: list[int], box: Box2I, wcs: Any, sigma: float) -> list[Any]:
    """CCDs side by side in x over the warp, each with pixels aligned on tract pixels."""
    out = []
    width = box.width // len(ccds)
    for i, ccd in enumerate(ccds):
        x0 = box.x0 + i * width
        ccd_box = Box2I(0, 0, width if i < len(ccds) - 1 else box.width - i * width, box.height)
        out.append(
            CcdRecord(
                id=visit * 200 + ccd,
                ccd=ccd,
                visit=visit,
                goodpix=ccd_box.width * ccd_box.height,
                weight=1.0,
                filter=PATCH["filter"],
                bbox=ccd_box,
                wcs=shift_wcs(wcs, -x0, -box.y0),
                psf=GaussianPsf(sigma),
                photo_calib=PhotoCalib(1.0),
                data_id={"visit": visit, "ccd": ccd},
            )
        )
    return out


def write_synthetic_warps(
    butler: Butler,
    skymap: Any,
    *,
    visits: tuple[int, ...] = VISITS,
    matched: bool = True,
    compress: tuple[int, ...] = (903988,),
    seed: int = 7,
    record_goodpix: bool = True,
    mask_planes: MaskPlanes | None = None,
    bbox: Box2I | None = None,
) -> dict[int, SyntheticWarp]:
    """Write a direct warp (and a PSF-matched one) of :data:`PATCH` for each visit.

    Pixels are random with a NO_DATA band whose width differs per visit; visits in
    ``compress`` are written tile-compressed (lossless). ``record_goodpix=False`` leaves the
    visit table without its goodpix column; ``mask_planes`` and ``bbox`` replace the default
    mask planes and the patch's outer bbox. Returns the truth by visit.
    """
    rng = np.random.default_rng(seed)
    tract = skymap[PATCH["tract"]]
    box = bbox or tract.patch(PATCH["patch"]).outer_bbox
    planes = mask_planes or MaskPlanes.default()
    no_data = planes.bitmask("NO_DATA")
    truth = {}
    for k, visit in enumerate(visits):
        shape = box.shape
        image = rng.normal(100.0, 10.0, size=shape).astype(np.float32)
        variance = rng.uniform(50.0, 150.0, size=shape).astype(np.float32)
        mask = (rng.random(shape) < 0.02).astype(np.int32) * planes.bitmask("CR")
        cut = 10 + 25 * k  # columns without data at the left
        mask[:, :cut] |= no_data
        image[:, :cut] = np.nan
        variance[:, :cut] = np.inf
        goodpix = int(np.count_nonzero((mask & no_data) == 0))
        ccds = [16, 17, 23][: 2 + k % 2]
        sigma = SIGMAS.get(visit, 2.0)
        mjd = 56000.0 + 0.1 * k
        records = _ccd_records(visit, ccds, box, tract.wcs, sigma)
        inputs = CoaddInputs(
            [VisitRecord(visit, goodpix, filter=PATCH["filter"])],
            records,
            visit_goodpix=record_goodpix,
        )
        exp = Exposure(
            image, mask, variance, mask_planes=planes, xy0=(box.x0, box.y0), wcs=tract.wcs,
            psf=CoaddPsf(records, tract.wcs), photo_calib=PhotoCalib(1.0),
            visit_info=VisitInfo(exposure_time=30.0, mid_time_mjd=mjd), filter=PATCH["filter"],
            id=visit, metadata={"BUNIT": "nJy"},
        )  # fmt: skip
        exp.coadd_inputs = inputs
        compressed = visit in compress
        obj: Any = CompressedExposure(exp, get_recipe("lossless"), 1) if compressed else exp
        butler.put(obj, "deepCoadd_directWarp", {**PATCH, "visit": visit})
        if matched:
            exp.psf = GaussianPsf(MATCHED_SIGMA)
            butler.put(exp, "deepCoadd_psfMatchedWarp", {**PATCH, "visit": visit})
        truth[visit] = SyntheticWarp(
            visit, image, mask, variance, mjd, goodpix, ccds, sigma, compressed, planes
        )
    return truth
