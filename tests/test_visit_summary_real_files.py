"""useVisitSummary* with LSST's own visitSummary files (``../shared/data``): drp_tasks' HSC visit
1176 (103 rows) and jointcal's CFHT visits (1 row each).

These need the afw ExposureCatalog reader (:mod:`warping.formats.afw_visit_summary`, formatter
``visit_summary``) and skip without it or without the data. The calexps are synthetic: stars are
drawn on a patch of the real detector with the row's own (AST) WCS, in counts of the row's
PhotoCalib, while the calexp carries a WCS 2 px off and a wrong PhotoCalib; taking both from the
visitSummary must put every star where the row's WCS says, with the flux its PhotoCalib gives.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

import warping.formats.afw_visit_summary as reader
from repo_butler import Butler, DataId
from warping.exposure import Exposure
from warping.geom import Box2I
from warping.photocalib import PhotoCalib
from warping.psf import GaussianPsf
from warping.task.config import MakeWarpConfig, apply_overrides
from warping.task.inputs import CcdInput, InMemoryHandle, SharedHandle
from warping.task.make_warp import MakeWarpTask, SkyInfo, VisitWarps

# (directory, file, visit, detector, sub-image origin): a 240x240 patch of the real detector
CASES = {
    "hsc-1176": ("lsst-drp_tasks", "visitSummary_1176.fits", 1176, 10, (900, 2000)),
    "cfht-849375": (
        "lsst-jointcal-cfht_minimal",
        "visitSummary-849375.fits",
        849375,
        12,
        (900, 2200),
    ),
}
SIZE, SIGMA, WRONG_CALIB = 240, 2.5, 1.0


def read(shared_data: Path, case: str) -> Any:
    directory, name, _, _, _ = CASES[case]
    path = shared_data / directory / name
    with fits.open(path) as hdul:
        return reader.read_visit_summary(hdul, str(path))


def tract_sky(row_wcs: Any, x: float, y: float) -> SkyInfo:
    """A 400x400-pixel 0.2"/px TAN patch whose centre (200, 200) is the row WCS's (x, y)."""
    ra, dec = (float(v) for v in row_wcs.pixel_to_world_values(x, y))
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [201.0, 201.0]
    w.wcs.cd = 0.2 / 3600.0 * np.array([[-1.0, 0.0], [0.0, 1.0]])
    return SkyInfo(0, "0,0", w, Box2I(0, 0, 400, 400))


def local_tan(sky_wcs: Any, x: float, y: float) -> WCS:
    """A TAN WCS tangent at the row WCS's (x, y) with its local CD matrix."""
    ra, dec = (float(v) for v in sky_wcs.pixel_to_world_values(x, y))
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [x + 1.0, y + 1.0]
    h = 5.0
    cd = np.empty((2, 2))
    for j, (dx, dy) in enumerate(((h, 0.0), (0.0, h))):
        r1, d1 = sky_wcs.pixel_to_world_values(x + dx, y + dy)
        r0, d0 = sky_wcs.pixel_to_world_values(x - dx, y - dy)
        cd[0, j] = (float(r1) - float(r0)) * np.cos(np.radians(dec)) / (2 * h)
        cd[1, j] = (float(d1) - float(d0)) / (2 * h)
    w.wcs.cd = cd
    return w


def synthetic_calexp(
    row: Any, origin: tuple[int, int]
) -> tuple[Exposure, list[tuple[float, float, float]]]:
    """Stars at known parent pixels of the detector, in counts of the row's PhotoCalib."""
    x0, y0 = origin
    bbox = Box2I(x0, y0, SIZE, SIZE)
    stars = [(x0 + 60.3, y0 + 70.6, 5.0e4), (x0 + 170.8, y0 + 90.1, 8.0e4),
             (x0 + 110.4, y0 + 180.9, 3.0e4)]  # fmt: skip
    calib = float(row.photo_calib.evaluate(x0 + SIZE / 2, y0 + SIZE / 2))
    wrong = local_tan(row.wcs, x0 + SIZE / 2 + 2.0, y0 + SIZE / 2)  # 2 px off the row's
    exp = Exposure.empty(bbox, wcs=wrong, fill_no_data=False)
    exp.variance[:] = 1.0
    psf = GaussianPsf(SIGMA, 41)
    for x, y, flux in stars:
        img, box = psf.compute_image(x, y)
        inter = box.intersection(bbox)
        exp.image[inter.slices(bbox)] += flux / calib * img[inter.slices(box)]
    exp.psf, exp.photo_calib = psf, PhotoCalib(WRONG_CALIB)
    return exp, stars


def run(exp: Exposure, catalog: Any, ccd: int, sky: SkyInfo, flags: list[str]) -> VisitWarps:
    inp = CcdInput(DataId({"visit": catalog.visit, "ccd": ccd}), InMemoryHandle(exp),
                   visit_summary=SharedHandle(InMemoryHandle(catalog)))  # fmt: skip
    task = MakeWarpTask(apply_overrides(MakeWarpConfig(), flags))
    return task.run([inp], sky, catalog.visit)


@pytest.mark.parametrize("case", sorted(CASES))
def test_real_rows_place_and_calibrate_the_stars(shared_data: Path, case: str) -> None:
    catalog = read(shared_data, case)
    _, _, visit, detector, origin = CASES[case]
    assert catalog.visit == visit
    row = catalog.row(detector)
    exp, stars = synthetic_calexp(row, origin)
    sky = tract_sky(row.wcs, origin[0] + SIZE / 2, origin[1] + SIZE / 2)
    flags = ["useVisitSummaryWcs=True", "useVisitSummaryPhotoCalib=True"]
    res = run(exp, catalog, detector, sky, flags)
    warp = res.exposures["direct"]
    assert warp is not None and res.ccds[0].used
    assert warp.coadd_inputs.ccds[0].wcs is row.wcs
    # exactly the warp of a calexp that carried the row's WCS and PhotoCalib itself
    own = dataclasses.replace(exp, wcs=row.wcs, photo_calib=row.photo_calib)
    ref = run(own, catalog, detector, sky, []).exposures["direct"]
    assert ref is not None and np.array_equal(warp.image, ref.image, equal_nan=True)
    for x, y, flux in stars:
        ra, dec = row.wcs.pixel_to_world_values(x, y)
        ex, ey = (float(v) for v in sky.wcs.world_to_pixel_values(ra, dec))
        f, mx, my = _measure(warp.image, ex, ey)
        assert (mx, my) == pytest.approx((ex, ey), abs=0.01)  # 2 mas at 0.2"/px
        # lanczos3 keeps a sigma-2.5 px star's flux to 0.6 % at CFHT's 0.187 -> 0.2 "/px
        assert f == pytest.approx(flux, rel=1e-2)


def _measure(img: np.ndarray, x: float, y: float, half: int = 12) -> tuple[float, float, float]:
    xi, yi = round(x), round(y)
    cut = img[yi - half : yi + half + 1, xi - half : xi + half + 1].astype(float)
    assert np.isfinite(cut).all()
    yy, xx = np.mgrid[yi - half : yi + half + 1, xi - half : xi + half + 1]
    s = cut.sum()
    return float(s), float((cut * xx).sum() / s), float((cut * yy).sum() / s)


@pytest.mark.parametrize("case", sorted(CASES))
def test_real_rows_without_psf_or_detector_skip_the_ccd(shared_data: Path, case: str) -> None:
    catalog = read(shared_data, case)
    _, _, visit, detector, origin = CASES[case]
    row = catalog.row(detector)
    exp, _ = synthetic_calexp(row, origin)
    sky = tract_sky(row.wcs, origin[0] + SIZE / 2, origin[1] + SIZE / 2)
    res = run(exp, catalog, detector, sky, ["useVisitSummaryPsf=True"])  # every real row: psf 0
    why = res.ccds[0].skipped or ""
    assert not res.ccds[0].loaded and f"detector {detector} stores no psf" in why
    absent = next(d for d in range(200) if d not in catalog)  # HSC 1176 lacks 9, CFHT all but 12
    res = run(exp, catalog, absent, sky, ["useVisitSummaryWcs=True"])
    why = res.ccds[0].skipped or ""
    assert f"visit {visit} has no row for detector {absent}" in why
    assert f"it has {len(catalog)} rows" in why


def test_ingested_real_visit_summary_reads_through_the_repository(
    shared_data: Path, tmp_path: Path
) -> None:
    path = shared_data / "lsst-drp_tasks" / "visitSummary_1176.fits"
    with Butler.create(str(tmp_path / "repo")) as butler:
        butler.ingest("visitSummary", [str(path)], data_id={"visit": 1176, "filter": "HSC-Z"},
                      transfer="copy")  # fmt: skip
        catalog = butler.get("visitSummary", visit=1176, filter="HSC-Z")
    assert catalog.visit == 1176 and len(catalog) == 103 and 9 not in catalog
