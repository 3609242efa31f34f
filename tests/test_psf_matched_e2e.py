"""The seed's PSF-matched example on a simulated repo: both warp types, model PSF, flux, shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from repo_copy import copy_repo
from typer.testing import CliRunner

from repo_butler import Butler
from repo_butler_cli.main import app
from warping.simulate.repo import write_simulation
from warping.task.demo import DEMO_PATCH, demo_simulation, demo_skymap

PATCH = dict(DEMO_PATCH)
MATCHING_CONFIG = """
config.warpAndPsfMatch.psfMatch.kernel['AL'].kernelSize=27
config.warpAndPsfMatch.psfMatch.kernel['AL'].alardSigGauss=[1.5, 3.0, 6.0]"""


@pytest.fixture(scope="module")
def psf_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Visit 903988's four seed CCDs (384x768 px), seeing 0.62", warps at 0.2"/px."""
    root = tmp_path_factory.mktemp("psfm") / "repo"
    skymap = demo_skymap(patch_inner=300, patch_border=20, pixel_scale_arcsec=0.2, radius_deg=0.07)
    sim = demo_simulation(
        skymap, ccd_size=(384, 768), gap_pixels=8, zero_point=34.0, cosmic_ray_rate=0.0,
        star_density=40.0, star_mag_range=(18.0, 21.0), galaxy_density=3.0,
        bright_star_density=0.0, saturation=1e8, bad_columns=0,
    )  # fmt: skip
    sim = sim.with_changes(visits=sim.visits[1:2], ccds=(16, 17, 23, 24))
    with Butler.create(str(root)) as butler:
        write_simulation(butler, sim, tract=0, skymap=skymap)
    return root


@pytest.mark.slow
def test_seed_psf_matched_example(psf_repo: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    copy_repo(psf_repo, root)
    cfg_file = tmp_path / "matchingConfig.py"
    cfg_file.write_text(MATCHING_CONFIG)
    argv = (
        f"make-warp {root} --rerun ci_hsc --id patch=5,4 tract=0 filter=HSC-I "
        "--selectId visit=903988 ccd=16 --selectId visit=903988 ccd=17 "
        "--selectId visit=903988 ccd=23 --selectId visit=903988 ccd=24 "
        "--config doApplyExternalPhotoCalib=False doApplyExternalSkyWcs=False "
        f"makePsfMatched=True modelPsf.defaultFwhm=11 --configfile {cfg_file}"
    ).split()
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    base = root / "rerun/ci_hsc/deepCoadd/HSC-I/0/5,4"
    assert (base / "warp-HSC-I-0-5,4-903988.fits").is_file()
    assert (base / "psfMatchedWarp-HSC-I-0-5,4-903988.fits").is_file()
    butler = Butler(str(root), rerun="ci_hsc")
    ids = {**PATCH, "visit": 903988}
    direct = butler.get("deepCoadd_directWarp", ids)
    matched = butler.get("deepCoadd_psfMatchedWarp", ids)
    # the matched warp carries the model PSF: a double Gaussian of FWHM 11 px (core)
    model = matched.psf.compute_kernel_image(0.0, 0.0)
    assert matched.psf.to_dict()["sigma1"] == pytest.approx(11.0 / 2.3548, rel=1e-3)
    # PSF matching erodes the valid area but conserves flux: compare star sums where both are valid
    truth = Butler(str(root)).get("truth_catalog", {})
    ra, dec = np.asarray(truth["ra"]), np.asarray(truth["dec"])
    flux, star = np.asarray(truth["flux_nJy"]), np.asarray(truth["is_star"])
    x, y = direct.wcs.world_to_pixel_values(ra, dec)
    half = 30
    checked = 0
    for xi, yi, f, s in zip(x, y, flux, star, strict=True):
        if not s or f < 5e4:
            continue
        dist = np.hypot(x - xi, y - yi)
        if np.any((dist > 0) & (dist < 1.5 * half) & (flux > 0.03 * f)):
            continue  # a neighbour above 3 % would bias the flux or the moments
        cx, cy = round(xi) - direct.xy0[0], round(yi) - direct.xy0[1]
        if cy - half < 0 or cx - half < 0:
            continue
        sl = (slice(cy - half, cy + half + 1), slice(cx - half, cx + half + 1))
        d, m = direct.image[sl].astype(float), matched.image[sl].astype(float)
        if d.shape != (2 * half + 1,) * 2 or not (np.isfinite(d).all() and np.isfinite(m).all()):
            continue
        assert m.sum() == pytest.approx(d.sum(), rel=2e-3)
        # Gaussian-weighted second moment of the matched star equals the model's (within 5 %)
        ox, oy = half + xi - round(xi), half + yi - round(yi)
        yy, xx = np.mgrid[0 : 2 * half + 1, 0 : 2 * half + 1]
        w = np.exp(-0.5 * ((xx - ox) ** 2 + (yy - oy) ** 2) / 8.0**2)
        star_xx = (w * m * (xx - ox) ** 2).sum() / (w * m).sum()
        h = model.shape[0] // 2
        ky, kx = np.mgrid[-h : h + 1, -h : h + 1]
        wk = np.exp(-0.5 * (kx**2 + ky**2) / 8.0**2)
        model_xx = (wk * model * kx**2).sum() / (wk * model).sum()
        assert star_xx == pytest.approx(model_xx, rel=0.05)
        checked += 1
    assert checked >= 1, "no isolated bright star fully inside both warps"
