"""useVisitSummaryWcs/PhotoCalib/Psf in MakeWarpTask.run, on in-memory calexps and catalogs.

Each flag must replace exactly its component with the CCD's visitSummary row's: a row WCS
shifted by a known pixel offset moves the stars to where that WCS puts them, a row PhotoCalib
scaled by a known factor scales the warp by it, a wider row PSF changes the CoaddPsf to the
warped row PSF, and the other components stay the calexp's. A row that is missing, stores no
requested component or belongs to another detector or visit skips that CCD with the reason.
Repository-level behaviour (planning, errors before work, one read per unit) is in
``test_make_warp_visit_summary_repo.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from astropy.wcs import WCS

from repo_butler import DataId
from repo_butler.errors import ConfigError
from warping.exposure import Exposure
from warping.geom import Box2I
from warping.photocalib import PhotoCalib
from warping.psf import GaussianPsf
from warping.skywcs import shift_wcs
from warping.task.config import MakeWarpConfig, apply_overrides
from warping.task.inputs import CcdInput, InMemoryHandle, SharedHandle
from warping.task.make_warp import MakeWarpTask, SkyInfo, VisitWarps, ccd_exposure_id
from warping.visit_summary import VisitSummaryCatalog, VisitSummaryRow

RA0, DEC0 = 150.0, 2.0
VISIT = 1176
CALIB = 0.5  # nJy per count of the calexps
SIGMA = 2.5  # calexp PSF sigma, calexp pixels (lanczos3 keeps its flux to 1e-3)
SCALE_IN, SCALE_OUT = 0.168, 0.2  # arcsec per pixel of the calexps and of the tract
STARS = [(-9.0, -8.0, 6.0e4), (7.0, 9.0, 9.0e4), (-6.0, 10.0, 4.0e4)]  # (dRA", dDec", nJy)


def tan(crval: tuple[float, float], scale: float, crpix: tuple[float, float]) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = crval
    w.wcs.crpix = crpix
    w.wcs.cd = scale / 3600.0 * np.array([[-1.0, 0.0], [0.0, 1.0]])
    return w


SKY = SkyInfo(0, "0,0", tan((RA0, DEC0), SCALE_OUT, (151.0, 151.0)), Box2I(0, 0, 300, 300))


def star_radec(dra: float, ddec: float) -> tuple[float, float]:
    return RA0 + dra / 3600.0 / np.cos(np.radians(DEC0)), DEC0 + ddec / 3600.0


def calexp_wcs(ccd: int) -> WCS:
    wcs = CALEXPS[ccd].wcs
    assert wcs is not None
    return wcs


def make_calexp(ccd: int, crpix: tuple[float, float]) -> Exposure:
    """A 200x220 calexp (counts, PhotoCalib CALIB) of STARS drawn with its own WCS and PSF."""
    wcs = tan((RA0, DEC0), SCALE_IN, crpix)
    exp = Exposure.empty(Box2I(0, 0, 200, 220), wcs=wcs, fill_no_data=False)
    exp.variance[:] = 1.0
    psf = GaussianPsf(SIGMA, 41)
    for dra, ddec, flux in STARS:
        x, y = wcs.world_to_pixel_values(*star_radec(dra, ddec))
        img, box = psf.compute_image(float(x), float(y))
        inter = box.intersection(exp.bbox)
        exp.image[inter.slices(exp.bbox)] += flux / CALIB * img[inter.slices(box)]
    exp.psf, exp.photo_calib, exp.filter = psf, PhotoCalib(CALIB), "HSC-Z"
    exp.id = ccd_exposure_id(VISIT, ccd)
    return exp


CALEXPS = {16: make_calexp(16, (100.0, 110.0)), 17: make_calexp(17, (60.0, 150.0))}


def row_of(ccd: int, **changes: Any) -> VisitSummaryRow:
    """The row a pipeline would write for ``ccd`` from its calexp, with ``changes``."""
    exp = CALEXPS[ccd]
    row = VisitSummaryRow(ccd, exp.bbox, exp.wcs, exp.photo_calib, exp.psf)
    return dataclasses.replace(row, **changes)


def catalog(*rows: VisitSummaryRow, visit: int = VISIT) -> VisitSummaryCatalog:
    return VisitSummaryCatalog(visit, {r.detector: r for r in rows}, source="visitSummary-test")


def run(
    overrides: list[str], cat: VisitSummaryCatalog | None = None, ccds: tuple[int, ...] = (16,)
) -> VisitWarps:
    shared = None if cat is None else SharedHandle(InMemoryHandle(cat))
    inputs = [
        CcdInput(DataId({"visit": VISIT, "ccd": c}), InMemoryHandle(CALEXPS[c]),
                 visit_summary=shared)
        for c in ccds
    ]  # fmt: skip
    return MakeWarpTask(apply_overrides(MakeWarpConfig(), overrides)).run(inputs, SKY, VISIT)


def direct(res: VisitWarps) -> Exposure:
    warp = res.exposures["direct"]
    assert warp is not None
    return warp


def measure(warp: Exposure, x: float, y: float, half: int = 10) -> tuple[float, float, float]:
    """Flux and centroid of the star near warp pixel (x, y) (no background)."""
    xi, yi = round(x), round(y)
    cut = warp.image[yi - half : yi + half + 1, xi - half : xi + half + 1].astype(float)
    assert np.isfinite(cut).all()
    yy, xx = np.mgrid[yi - half : yi + half + 1, xi - half : xi + half + 1]
    s = cut.sum()
    return float(s), float((cut * xx).sum() / s), float((cut * yy).sum() / s)


def warp_position(wcs: object, x: float, y: float) -> tuple[float, float]:
    """Where calexp pixel (x, y) lands in the tract under ``wcs`` (the analytic truth)."""
    ra, dec = wcs.pixel_to_world_values(x, y)  # type: ignore[attr-defined]
    px, py = SKY.wcs.world_to_pixel_values(ra, dec)
    return float(px), float(py)


BASE = run([])


def test_visit_summary_wcs_moves_the_stars_by_the_rows_wcs_only() -> None:
    dx, dy = 3.0, -2.0  # row WCS: w_row(p + d) = w_calexp(p), i.e. the sky moves by -d pixels
    row_wcs = shift_wcs(calexp_wcs(16), dx, dy)
    res = run(["useVisitSummaryWcs=True"], catalog(row_of(16, wcs=row_wcs, psf=None)))
    warp, base = direct(res), direct(BASE)
    cwcs = calexp_wcs(16)
    for ra_dec in (star_radec(*s[:2]) for s in STARS):
        x, y = (float(v) for v in cwcs.world_to_pixel_values(*ra_dec))
        ex, ey = warp_position(row_wcs, x, y)  # where the row's WCS puts the star
        bx, by = warp_position(cwcs, x, y)
        assert np.hypot(ex - bx, ey - by) == pytest.approx(np.hypot(dx, dy) * SCALE_IN / SCALE_OUT)
        flux, cx, cy = measure(warp, ex, ey)
        bflux, bcx, bcy = measure(base, bx, by)
        assert (cx, cy) == pytest.approx((ex, ey), abs=0.01)
        assert (bcx, bcy) == pytest.approx((bx, by), abs=0.01)
        assert flux == pytest.approx(bflux, rel=2e-3)  # PhotoCalib unchanged
    rec = warp.coadd_inputs.ccds[0]
    assert rec.wcs is row_wcs and rec.psf is CALEXPS[16].psf  # the null row PSF is not asked for


def test_visit_summary_photo_calib_scales_the_warp_and_nothing_else() -> None:
    factor = 1.37
    row = row_of(16, photo_calib=PhotoCalib(CALIB * factor), wcs=None, psf=None)
    warp, base = direct(run(["useVisitSummaryPhotoCalib=True"], catalog(row))), direct(BASE)
    good = np.isfinite(base.image)
    assert good.sum() > 10_000 and np.array_equal(good, np.isfinite(warp.image))
    np.testing.assert_allclose(warp.image[good], factor * base.image[good], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(warp.variance[good], factor**2 * base.variance[good], rtol=1e-6)
    assert np.array_equal(warp.mask, base.mask)
    rec = warp.coadd_inputs.ccds[0]
    assert rec.wcs is CALEXPS[16].wcs and rec.psf is CALEXPS[16].psf


def test_visit_summary_psf_changes_the_coadd_psf_not_the_pixels() -> None:
    wide = GaussianPsf(3.5, 41)
    res = run(["useVisitSummaryPsf=True"], catalog(row_of(16, psf=wide, wcs=None)))
    warp, base = direct(res), direct(BASE)
    assert np.array_equal(warp.image, base.image, equal_nan=True)
    assert warp.coadd_inputs.ccds[0].psf is wide
    x, y = warp_position(calexp_wcs(16), 100.0, 110.0)
    # the CoaddPsf is the CCD's PSF warped by J = diag(SCALE_IN / SCALE_OUT): M' = J M J^T
    j = SCALE_IN / SCALE_OUT
    for coadd_psf, ccd_psf in ((warp.psf, wide), (base.psf, CALEXPS[16].psf)):
        assert coadd_psf is not None and ccd_psf is not None
        mxx, myy, _ = ccd_psf.second_moments(100.0, 110.0)
        ixx, iyy, ixy = coadd_psf.second_moments(x, y)
        assert (ixx, iyy) == pytest.approx((j * j * mxx, j * j * myy), rel=1e-3)  # lanczos3
        assert abs(ixy) < 1e-6 * ixx
    assert warp.psf is not None and base.psf is not None
    assert warp.psf.second_moments(x, y)[0] > 1.9 * base.psf.second_moments(x, y)[0]


def star_moments(img: np.ndarray, x: float, y: float, half: int = 16) -> tuple[float, float]:
    xi, yi = round(x), round(y)
    cut = img[yi - half : yi + half + 1, xi - half : xi + half + 1].astype(float)
    yy, xx = np.mgrid[yi - half : yi + half + 1, xi - half : xi + half + 1]
    s = cut.sum()
    cx, cy = (cut * xx).sum() / s, (cut * yy).sum() / s
    return float((cut * (xx - cx) ** 2).sum() / s), float((cut * (yy - cy) ** 2).sum() / s)


def test_psf_matching_matches_from_the_rows_psf() -> None:
    """The matching kernel is built from the row's PSF: with a row PSF wider than the stars'
    true one, stars come out narrower than the model by the difference (Gaussian moments add:
    M_star = M_true + M_model - M_row, all warped by J)."""
    flags = ["makePsfMatched=True", "makeDirect=False", "modelPsf.defaultFwhm=8",
             "modelPsf.addWing=False"]  # fmt: skip
    row_psf = GaussianPsf(3.2, 41)
    j, model = SCALE_IN / SCALE_OUT, (8.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))) ** 2
    for extra, cat, expected in (
        ([], None, model),
        (["useVisitSummaryPsf=True"], catalog(row_of(16, psf=row_psf)),
         (j * SIGMA) ** 2 + model - (j * 3.2) ** 2),
    ):  # fmt: skip
        res = run(flags + extra, cat)
        warp = res.exposures["psfMatched"]
        assert warp is not None and res.ccds[0].notes == []
        for dra, ddec, _ in STARS:
            x, y = (float(v) for v in calexp_wcs(16).world_to_pixel_values(*star_radec(dra, ddec)))
            ixx, iyy = star_moments(warp.image, *warp_position(calexp_wcs(16), x, y))
            assert (ixx, iyy) == pytest.approx((expected, expected), rel=2e-3)


def test_all_three_components_from_one_row() -> None:
    factor, wide = 0.8, GaussianPsf(3.2, 41)
    row_wcs = shift_wcs(calexp_wcs(16), -1.5, 2.5)
    row = row_of(16, wcs=row_wcs, photo_calib=PhotoCalib(CALIB * factor), psf=wide)
    flags = ["useVisitSummaryWcs=True", "useVisitSummaryPhotoCalib=True", "useVisitSummaryPsf=True"]
    warp = direct(run(flags, catalog(row)))
    rec = warp.coadd_inputs.ccds[0]
    assert rec.wcs is row_wcs and rec.psf is wide
    dra, ddec, flux = STARS[1]
    x, y = (float(v) for v in calexp_wcs(16).world_to_pixel_values(*star_radec(dra, ddec)))
    ex, ey = warp_position(row_wcs, x, y)
    f, cx, cy = measure(warp, ex, ey)
    assert f == pytest.approx(factor * flux, rel=3e-3)
    assert (cx, cy) == pytest.approx((ex, ey), abs=0.01)


def test_a_ccd_without_a_row_is_skipped_with_the_reason() -> None:
    res = run(["useVisitSummaryWcs=True"], catalog(row_of(16)), ccds=(16, 17))
    out = {o.ccd: o for o in res.ccds}
    assert out[16].used and not out[17].loaded
    why = out[17].skipped or ""
    assert "visit 1176 has no row for detector 17" in why and "visitSummary-test" in why
    assert [r.ccd for r in direct(res).coadd_inputs.ccds] == [16]


@pytest.mark.parametrize(
    ("flag", "component"),
    [("useVisitSummaryPsf", "psf"), ("useVisitSummaryWcs", "wcs"),
     ("useVisitSummaryPhotoCalib", "photo_calib")],
)  # fmt: skip
def test_a_row_without_the_component_skips_the_ccd(flag: str, component: str) -> None:
    cat = catalog(row_of(16, **{component: None}), row_of(17))
    res = run([f"{flag}=True"], cat, ccds=(16, 17))
    out = {o.ccd: o for o in res.ccds}
    assert out[17].used and not out[16].loaded
    why = out[16].skipped or ""
    assert f"detector 16 stores no {component}" in why and "visit 1176" in why and flag in why


def test_null_components_not_asked_for_do_not_matter() -> None:
    # like every real visitSummary: no PSF; only the WCS and PhotoCalib are taken
    cat = catalog(row_of(16, psf=None), row_of(17, psf=None))
    res = run(["useVisitSummaryWcs=True", "useVisitSummaryPhotoCalib=True"], cat, ccds=(16, 17))
    assert [o.used for o in res.ccds] == [True, True]
    # the same WCS and PhotoCalib as the calexps': the same warp as without the flags
    base = direct(run([], None, ccds=(16, 17)))
    assert np.array_equal(direct(res).image, base.image, equal_nan=True)


def test_a_row_of_another_detector_shape_or_visit_is_refused() -> None:
    small = row_of(16, bbox=Box2I(0, 0, 100, 100))
    res = run(["useVisitSummaryWcs=True"], catalog(small))
    why = res.ccds[0].skipped or ""
    assert not res.ccds[0].loaded and "does not contain the calexp's [0, 0, 200, 220]" in why
    res = run(["useVisitSummaryWcs=True"], catalog(row_of(16), visit=903988))
    why = res.ccds[0].skipped or ""
    assert not res.ccds[0].loaded and "visitSummary of visit 903988, not of 1176" in why


def test_the_shared_handle_reads_once_for_all_ccds() -> None:
    reads: list[int] = []

    @dataclasses.dataclass(frozen=True)
    class Counting:  # a DatasetHandle counting its reads
        obj: VisitSummaryCatalog
        ref = None

        def get(self) -> VisitSummaryCatalog:
            reads.append(1)
            return self.obj

    handle = SharedHandle(Counting(catalog(row_of(16), row_of(17))))
    inputs = [
        CcdInput(DataId({"visit": VISIT, "ccd": c}), InMemoryHandle(CALEXPS[c]),
                 visit_summary=handle)
        for c in (16, 17)
    ]  # fmt: skip
    config = apply_overrides(MakeWarpConfig(), ["useVisitSummaryWcs=True"])
    res = MakeWarpTask(config).run(inputs, SKY, VISIT)
    assert [o.used for o in res.ccds] == [True, True] and len(reads) == 1


# -- configuration --------------------------------------------------------------------------------
def test_defaults_are_off_and_components_follow_the_flags() -> None:
    c = MakeWarpConfig()
    assert (c.useVisitSummaryWcs, c.useVisitSummaryPhotoCalib, c.useVisitSummaryPsf) == (
        False,
        False,
        False,
    )
    assert c.visit_summary_components == ()
    on = apply_overrides(c, ["useVisitSummaryPsf=True", "useVisitSummaryWcs=True"])
    assert on.visit_summary_components == ("wcs", "psf")


@pytest.mark.parametrize(
    ("gen2", "gen3", "product"),
    [
        ("doApplyExternalSkyWcs", "useVisitSummaryWcs", "jointcal_wcs"),
        ("doApplyExternalPhotoCalib", "useVisitSummaryPhotoCalib", "jointcal_photoCalib"),
    ],
)
def test_one_component_from_two_sources_is_refused(gen2: str, gen3: str, product: str) -> None:
    with pytest.raises(ConfigError) as err:
        apply_overrides(MakeWarpConfig(), [f"{gen2}=True", f"{gen3}=True"])
    msg = str(err.value)
    assert f"drop {gen3}=True to use {product}" in msg and f"drop {gen2}=True" in msg
    assert "\n" not in msg


def test_different_components_from_different_sources_are_fine() -> None:
    c = apply_overrides(
        MakeWarpConfig(),
        ["doApplyExternalSkyWcs=True", "useVisitSummaryPhotoCalib=True", "useVisitSummaryPsf=True"],
    )
    assert c.visit_summary_components == ("photo_calib", "psf") and c.doApplyExternalSkyWcs
    c = apply_overrides(
        MakeWarpConfig(),
        [
            "externalPhotoCalibName=fgcm",
            "doApplyExternalPhotoCalib=True",
            "useVisitSummaryWcs=True",
        ],
    )
    assert c.visit_summary_components == ("wcs",)
    with pytest.raises(ConfigError, match="fgcm_photoCalib vs the visitSummary row"):
        apply_overrides(c, ["useVisitSummaryPhotoCalib=True"])
