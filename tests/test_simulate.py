"""The simulator: determinism, physical consistency of the products, the repo writer and CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from astropy.wcs import WCS
from typer.testing import CliRunner

from warping.errors import SimulationError
from warping.exposure import Exposure
from warping.photocalib import PhotoCalib
from warping.psf import VariableGaussianPsf
from warping.simulate import (
    SimulatedCcd,
    SimulationConfig,
    make_truth_catalog,
    sersic_mixture,
    simulate_ccd,
    write_simulation,
)

CFG = SimulationConfig.small(seed=5).with_changes(star_density=40.0)


@pytest.fixture(scope="module")
def truth() -> Table:
    return make_truth_catalog(CFG)


@pytest.fixture(scope="module")
def sim(truth: Table) -> SimulatedCcd:
    return simulate_ccd(CFG, CFG.visits[1], 1, truth)


def isolated_stars(sim: SimulatedCcd, lo: float = 17.0, hi: float = 21.5) -> Table:
    s = sim.sources
    h, w = sim.calexp.image.shape
    keep = []
    for i, r in enumerate(s):
        if not (
            r["is_star"] and lo < r["mag_ab"] < hi and 15 < r["x"] < w - 16 and 15 < r["y"] < h - 16
        ):
            continue
        xi, yi = round(float(r["x"])), round(float(r["y"]))
        if sim.calexp.bad_pixels("BAD", "CR", "SAT")[yi - 15 : yi + 16, xi - 15 : xi + 16].any():
            continue
        d = np.hypot(s["x"] - r["x"], s["y"] - r["y"])
        d[i] = np.inf
        if (d[s["mag_ab"] < r["mag_ab"] + 3] > 15).all():
            keep.append(i)
    return s[keep]


def test_deterministic_for_a_seed(truth: Table, sim: SimulatedCcd) -> None:
    again = simulate_ccd(CFG, CFG.visits[1].visit, 1, truth)
    assert again.calexp.image.tobytes() == sim.calexp.image.tobytes()
    assert again.calexp.mask.tobytes() == sim.calexp.mask.tobytes()
    other = simulate_ccd(SimulationConfig.small(seed=6), CFG.visits[1], 1)
    assert other.calexp.image.tobytes() != sim.calexp.image.tobytes()


def test_truth_catalogue(truth: Table) -> None:
    assert {"ra", "dec", "mag_ab", "flux_nJy", "is_star", "sersic_n", "r_half_arcsec"} <= set(
        truth.colnames
    )
    assert truth["is_star"].any() and (~truth["is_star"]).any()
    np.testing.assert_allclose(
        -2.5 * np.log10(truth["flux_nJy"] / 3630.78e9), truth["mag_ab"], atol=1e-4
    )
    gal = truth[~truth["is_star"]]
    assert (gal["r_half_arcsec"] > 0).all() and set(gal["sersic_n"]) <= {0.5, 1.0, 2.0, 4.0}


def test_sersic_mixture_half_light_radius() -> None:
    for n, tol in ((0.5, 1e-12), (1.0, 0.002), (2.0, 0.002), (4.0, 0.01)):
        amps, var = sersic_mixture(n)
        assert amps.sum() == pytest.approx(1.0)
        # enclosed flux of a circular Gaussian mixture at r = 1 (the half-light radius)
        enclosed = float((amps * (1 - np.exp(-0.5 / var))).sum())
        assert enclosed == pytest.approx(0.5, abs=tol)


def test_products_and_masks(sim: SimulatedCcd) -> None:
    exp = sim.calexp
    assert isinstance(exp, Exposure) and exp.image.shape == (512, 256)
    assert isinstance(exp.psf, VariableGaussianPsf)
    assert exp.photo_calib.is_constant and not sim.true_photo_calib.is_constant
    assert exp.visit_info.exposure_time == CFG.visits[1].exposure_time
    for plane in ("SAT", "CR", "BAD", "DETECTED"):
        assert exp.bad_pixels(plane).any(), plane
    assert (exp.image[exp.bad_pixels("SAT")] > 0).all()
    # saturated stars bleed along columns: SAT regions are taller than wide
    from scipy import ndimage

    labels, _ = ndimage.label(exp.bad_pixels("SAT"))
    big = [r for r in ndimage.find_objects(labels) if (r[0].stop - r[0].start) > 5]
    assert big and all((r[0].stop - r[0].start) > (r[1].stop - r[1].start) for r in big)
    # calexp PhotoCalib is the imperfect SFM mean of the true field
    ratio = exp.photo_calib.calibration_mean / sim.true_photo_calib.calibration_mean
    assert abs(ratio - 1) < 5 * CFG.calib_error
    # the true calibration varies over the CCD by up to the configured amplitude
    c = sim.true_photo_calib.calibration_image(exp.bbox)
    assert 1e-4 < (c.max() - c.min()) / c.mean() < 4 * CFG.visits[1].zero_point_variation


def test_skycorr_replaces_the_background(sim: SimulatedCcd) -> None:
    bbox = sim.calexp.bbox
    bg = sim.background.get_image(bbox)
    corr = sim.sky_corr.get_image(bbox)
    new_sky = sim.true_sky.get_image(bbox)
    # skyCorr = -calexpBackground + newSky  =>  calexp - skyCorr = raw - newSky
    np.testing.assert_allclose(corr, new_sky - bg, atol=1e-3)
    # the residual background after skyCorr is ~0 on source-free pixels
    clean = sim.calexp.mask == 0
    resid = (sim.calexp.image - corr)[clean]
    sigma = math.sqrt(CFG.visits[1].sky_level / CFG.gain + CFG.read_noise**2)
    assert abs(np.median(resid)) < 0.1 * sigma
    assert np.std(resid) == pytest.approx(sigma, rel=0.15)


def test_star_photometry_uses_the_true_calibration(sim: SimulatedCcd) -> None:
    img = sim.calexp.image - sim.sky_corr.get_image(sim.calexp.bbox)
    stars = isolated_stars(sim)
    assert len(stars) >= 1
    for r in stars:
        xi, yi = round(r["x"]), round(r["y"])
        cut = img[yi - 14 : yi + 15, xi - 14 : xi + 15]
        flux = cut.sum() * sim.true_photo_calib.evaluate(r["x"], r["y"])
        noise = math.sqrt(cut.size * 200.0) * sim.true_photo_calib.calibration_mean
        assert flux == pytest.approx(r["flux_nJy"], abs=5 * noise + 0.01 * r["flux_nJy"])


def test_star_positions_and_shapes_follow_true_wcs_and_psf(sim: SimulatedCcd) -> None:
    img = sim.calexp.image - sim.sky_corr.get_image(sim.calexp.bbox)
    stars = isolated_stars(sim, 16.5, 19.5)
    assert len(stars) >= 1
    for r in stars:
        x, y = (float(v) for v in sim.true_wcs.world_to_pixel_values(r["ra"], r["dec"]))
        xi, yi = round(x), round(y)
        yy, xx = np.mgrid[yi - 10 : yi + 11, xi - 10 : xi + 11]
        cut = img[yi - 10 : yi + 11, xi - 10 : xi + 11]
        f = cut.sum()
        cx, cy = (cut * xx).sum() / f, (cut * yy).sum() / f
        assert math.hypot(cx - x, cy - y) < 0.05
        ixx = (cut * (xx - cx) ** 2).sum() / f
        assert ixx == pytest.approx(sim.calexp.psf.moments(x, y)[0], rel=0.1)
        # the calexp WCS is off by ~wcs_error_px, the true (jointcal) WCS is exact
        xc, yc = sim.calexp.wcs.world_to_pixel_values(r["ra"], r["dec"])
        err = math.hypot(xc - x, yc - y)
        assert 0.05 < err < 1.0


def test_distortion_grows_towards_the_edge() -> None:
    cfg = SimulationConfig.demo()
    v = cfg.visits[0]
    from warping.simulate import true_wcs

    w = true_wcs(cfg, v, 1)
    lin = w.deepcopy()
    lin.sip = None
    lin.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    lin.wcs.set()
    xs = np.array([0.0, 1023.0])
    ys = np.array([2087.0, 0.0])
    ra, dec = w.pixel_to_world_values(xs, ys)
    lx, ly = lin.world_to_pixel_values(ra, dec)
    shift = np.hypot(lx - xs, ly - ys)
    # CCD 1 sits in the bottom row: its outer corner (x=0, y=0) is farther from the boresight
    assert shift.max() > 1.0
    assert shift.max() <= cfg.distortion_px_at_edge + 1e-6


def test_invalid_configuration() -> None:
    with pytest.raises(SimulationError, match="outside"):
        SimulationConfig.small().with_changes(ccds=(0, 5))
    with pytest.raises(SimulationError, match="unknown simulation preset"):
        SimulationConfig.preset("huge")
    with pytest.raises(SimulationError, match="not in this simulation"):
        CFG.visit(1)


def test_write_simulation_through_the_butler(tmp_path: Path, truth: Table) -> None:
    from repo_butler.butler import Butler

    butler = Butler.create(tmp_path / "repo")
    lines: list[str] = []
    summary = write_simulation(butler, CFG, tract=3, progress=lines.append)
    assert summary.n_ccds == 4 and len(lines) == 4 and summary.n_sources == len(truth)
    v = CFG.visits[1]
    exp = butler.get("calexp", visit=v.visit, ccd=1)
    sim = simulate_ccd(CFG, v, 1, truth)
    assert exp.image.tobytes() == sim.calexp.image.tobytes()
    assert exp.psf == sim.calexp.psf and exp.photo_calib == sim.calexp.photo_calib
    jd = {"filter": v.filter, "tract": 3, "visit": v.visit, "ccd": 1}
    wcs = butler.get("jointcal_wcs", jd)
    assert isinstance(wcs, WCS)
    np.testing.assert_allclose(
        wcs.pixel_to_world_values(10.0, 500.0),
        sim.true_wcs.pixel_to_world_values(10.0, 500.0),
        atol=1e-10,
    )
    pc = butler.get("jointcal_photoCalib", jd)
    assert isinstance(pc, PhotoCalib) and pc == sim.true_photo_calib
    assert butler.get("fgcm_photoCalib", filter=v.filter, visit=v.visit, ccd=1) == pc
    assert butler.get("skyCorr", visit=v.visit, ccd=1) == sim.sky_corr
    assert butler.get("calexpBackground", visit=v.visit, ccd=1) == sim.background
    assert len(butler.get("truth_catalog", {})) == len(truth)


def test_cli_creates_the_repo(tmp_path: Path) -> None:
    from repo_butler_cli.main import app

    repo = tmp_path / "new-repo"
    result = CliRunner().invoke(app, ["simulate", str(repo), "--seed", "2", "--visits", "1"])
    assert result.exit_code == 0, result.output
    assert "simulated 2 CCD exposures (1 visits" in result.output
    assert (repo / "butler.yaml").exists()


def test_cli_names_a_url_repository_with_its_scheme() -> None:
    """Issue 20, point 8: a URL printed through Path lost a slash (``s3:/...``)."""
    from repo_butler_cli.main import app

    url = "memory://rb-sim-message/repo"
    result = CliRunner().invoke(app, ["simulate", url, "--seed", "2", "--visits", "1"])
    assert result.exit_code == 0, result.output
    line = result.output.splitlines()[-1]
    assert "into memory://" in line and "rb-sim-message/repo in " in line, line
