"""MakeWarp end to end on simulated repositories: fluxes, astrometry, corrections, CLI, reuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from repo_copy import copy_repo

from repo_butler import Butler
from warping.exposure import Exposure
from warping.simulate.repo import write_simulation
from warping.task.config import MakeWarpConfig, apply_overrides
from warping.task.demo import DEMO_PATCH, demo_simulation, demo_skymap
from warping.task.runner import run_make_warp

PATCH = dict(DEMO_PATCH)
WARP_PATH = "rerun/ci_hsc/deepCoadd/HSC-I/0/5,4/warp-HSC-I-0-5,4-903988.fits"


def _small_skymap() -> Any:
    return demo_skymap(patch_inner=300, patch_border=20, pixel_scale_arcsec=0.168, radius_deg=0.07)


@pytest.fixture(scope="module")
def sim_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A small repo: 3 visits x 5 CCDs of 256x512 px around tract 0 patch 5,4 (HSC 0.168"/px).

    Deep exposures (zero point 35.5) of a dense, unsaturated star field with few galaxies, so
    that enough isolated, high-S/N stars fall on the 340x340-pixel patch.
    """
    root = tmp_path_factory.mktemp("sim") / "repo"
    skymap = _small_skymap()
    sim = demo_simulation(
        skymap, ccd_size=(256, 512), gap_pixels=8, zero_point=35.5, cosmic_ray_rate=0.0,
        star_density=60.0, star_mag_range=(18.0, 21.5), galaxy_density=5.0,
        bright_star_density=0.0, saturation=1e8,
    )  # fmt: skip
    with Butler.create(str(root)) as butler:
        write_simulation(butler, sim, tract=0, skymap=skymap)
    return root, sim


def _fresh_copy(sim_repo: tuple[Path, Any], tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    return copy_repo(sim_repo[0], dest)


def _run(root: Path, overrides: list[str], rerun: str, **kw: Any) -> Any:
    config = apply_overrides(MakeWarpConfig(), overrides)
    return run_make_warp(Butler(str(root), rerun=rerun), PATCH, config=config, **kw)


def _warp(root: Path, rerun: str, visit: int, kind: str = "direct") -> Exposure:
    butler = Butler(str(root), rerun=rerun)
    return butler.get(f"deepCoadd_{kind}Warp", {**PATCH, "visit": visit})  # type: ignore[no-any-return]


def _isolated_stars(root: Path, warp: Exposure, *, min_flux: float, sep_arcsec: float = 4.0) -> Any:
    truth = Butler(str(root)).get("truth_catalog", {})
    ra = np.asarray(truth["ra"], dtype=float)
    dec = np.asarray(truth["dec"], dtype=float)
    flux = np.asarray(truth["flux_nJy"], dtype=float)
    star = np.asarray(truth["is_star"], dtype=bool)
    cosd = np.cos(np.radians(dec.mean()))
    dx = (ra[:, None] - ra[None, :]) * cosd * 3600.0
    dy = (dec[:, None] - dec[None, :]) * 3600.0
    dist = np.hypot(dx, dy) + np.eye(len(ra)) * 1e9
    # isolated from anything that could contribute more than ~1e-4 of the star's flux
    near = (dist < sep_arcsec) & (flux[None, :] > 1e-3 * flux[:, None])
    ok = star & ~near.any(axis=1) & (flux > min_flux) & (flux < 3e6)
    x, y = warp.wcs.world_to_pixel_values(ra[ok], dec[ok])
    return np.column_stack([x, y, flux[ok]])


def _cutout(
    warp: Exposure, x: float, y: float, half: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Image and variance around (x, y); empty when off the warp or touching flagged pixels."""
    xi, yi = round(x), round(y)
    x0, y0 = xi - half - warp.xy0[0], yi - half - warp.xy0[1]
    empty = np.empty((0, 0))
    if x0 < 0 or y0 < 0 or x0 + 2 * half + 1 > warp.width or y0 + 2 * half + 1 > warp.height:
        return empty, empty, 0, 0
    sl = (slice(y0, y0 + 2 * half + 1), slice(x0, x0 + 2 * half + 1))
    flagged = warp.mask_planes.bitmask_if_present("BAD", "SAT", "CR", "INTRP", "NO_DATA", "EDGE")
    if np.any(warp.mask[sl] & flagged):
        return empty, empty, 0, 0
    return warp.image[sl].astype(float), warp.variance[sl].astype(float), xi - half, yi - half


def _centroid(
    img: np.ndarray, x: float, y: float, ox: int, oy: int, sigma: float
) -> tuple[float, float]:
    """Iterated Gaussian-weighted centroid (unbiased for symmetric profiles)."""
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    cx, cy = x - ox, y - oy
    for _ in range(30):
        w = np.exp(-0.5 * ((xx - cx) ** 2 + (yy - cy) ** 2) / sigma**2) * img
        nx, ny = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
        # the weighted centroid of a symmetric profile converges to its centre
        done = abs(nx - cx) < 1e-7 and abs(ny - cy) < 1e-7
        cx, cy = nx, ny
        if done:
            break
    return cx + ox, cy + oy


def test_direct_warps_and_star_fluxes(sim_repo: tuple[Path, Any], tmp_path: Path) -> None:
    root = _fresh_copy(sim_repo, tmp_path)
    summary = _run(root, ["doApplyExternalPhotoCalib=True", "doApplyExternalSkyWcs=True"], "ci_hsc")
    assert [v.visit for v in summary.visits] == [903986, 903988, 904010]
    assert all(v.status == "written" for v in summary.visits)
    v988 = summary.visits[1]
    assert sorted(v988.ccds_used) == [16, 17, 23, 24]
    assert any("ccd=9" in k for k in summary.not_selected)  # CCD 9 is off the patch
    assert (root / WARP_PATH).is_file()
    warp = _warp(root, "ci_hsc", 903988)
    assert warp.metadata.get("BUNIT") == "nJy"
    assert warp.photo_calib.calibration_mean == 1.0
    stars = _isolated_stars(root, warp, min_flux=2e4)
    ratios, pulls = [], []
    for x, y, flux in stars:
        img, var, ox, oy = _cutout(warp, x, y, 12)
        if img.size == 0 or not np.isfinite(img).all():
            continue
        yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
        r = np.hypot(xx - (x - ox), yy - (y - oy))
        ap = r < 10.0
        # calexps are background-subtracted: no local sky estimate (it would dominate the noise)
        measured = img[ap].sum()
        sigma = np.sqrt(var[ap].sum())
        ratios.append(measured / flux)
        pulls.append((measured - flux) / sigma)
    assert len(ratios) >= 5, "too few isolated stars on the patch to test"
    # the aperture (10 px = 2") holds all but a small fraction of the PSF; the PSF model is known
    assert np.median(ratios) == pytest.approx(1.0, abs=0.02)
    assert np.median(np.abs(pulls)) < 3.0


def test_external_wcs_puts_stars_on_true_positions(
    sim_repo: tuple[Path, Any], tmp_path: Path
) -> None:
    root = _fresh_copy(sim_repo, tmp_path)
    # HSC's production kernel: at the native scale and a ~0 rotation every star of a visit has
    # the same sub-pixel phase, so Lanczos-3's phase error (~7 mpx here) does not average out;
    # Lanczos-5 brings it to ~2 mpx (see README, "Accuracy").
    _run(root, ["doApplyExternalSkyWcs=True", "warpAndPsfMatch.warp.warpingKernelName=lanczos5"],
         "ext")  # fmt: skip
    _run(root, ["doApplyExternalSkyWcs=False", "warpAndPsfMatch.warp.warpingKernelName=lanczos5"],
         "sfm")  # fmt: skip
    offsets = {}
    for rerun in ("ext", "sfm"):
        d = []
        for visit in (903986, 903988, 904010):
            warp = _warp(root, rerun, visit)
            for x, y, _flux in _isolated_stars(root, warp, min_flux=6.0e4):
                img, _var, ox, oy = _cutout(warp, x, y, 10)
                if img.size == 0 or not np.isfinite(img).all():
                    continue
                cx, cy = _centroid(img, x, y, ox, oy, sigma=2.5)
                d.append((cx - x, cy - y))
        assert len(d) >= 6
        offsets[rerun] = float(np.sqrt(np.mean(np.square(d))))  # rms per axis, warp pixels
    assert offsets["ext"] <= 5e-3, offsets
    assert offsets["sfm"] > 5 * offsets["ext"], offsets


def _expected_correction(root: Path, rerun: str, dataset_type: str, sign: float) -> np.ndarray:
    """Warp of ``sign * dataset`` (calibrated) assembled like the task: the expected delta."""
    from warping.task.assemble import copy_good_pixels
    from warping.task.make_warp import MakeWarpTask, SkyInfo

    butler = Butler(str(root), rerun=rerun)
    warp = _warp(root, rerun, 903988)
    skymap = butler.get("deepCoadd_skyMap", {})
    sky = SkyInfo.from_skymap(skymap, 0, "5,4")
    task = MakeWarpTask()
    total = Exposure.empty(sky.bbox, wcs=sky.wcs)
    for row in sorted(warp.coadd_inputs.ccds, key=lambda r: r.ccd):
        did = dict(row.data_id)
        calexp = butler.get("calexp", did)
        bg = butler.get(dataset_type, did)
        img = Exposure(sign * bg.get_image(calexp.bbox), np.zeros(calexp.image.shape, np.int32),
                       calexp.variance, mask_planes=calexp.mask_planes, xy0=calexp.xy0,
                       wcs=calexp.wcs)  # fmt: skip
        calibrated_img, calibrated_var = calexp.photo_calib.calibrate_image(
            img.image, img.variance, img.xy0
        )
        img.image, img.variance = calibrated_img, calibrated_var
        img.mask = calexp.mask.copy()
        warped = task.warp_ccd(img, sky, None)["direct"]
        assert warped is not None
        copy_good_pixels(total, warped, ("NO_DATA",))
    return total.image


@pytest.mark.parametrize(
    ("override", "dataset_type", "sign"),
    [("bgSubtracted=False", "calexpBackground", 1.0), ("doApplySkyCorr=True", "skyCorr", -1.0)],
)
def test_background_and_skycorr_change_warp_by_expected_image(
    sim_repo: tuple[Path, Any], tmp_path: Path, override: str, dataset_type: str, sign: float
) -> None:
    root = _fresh_copy(sim_repo, tmp_path)
    _run(root, [], "base")
    _run(root, [override], "corr")
    base = _warp(root, "base", 903988).image.astype(float)
    corr = _warp(root, "corr", 903988).image.astype(float)
    expected = _expected_correction(root, "base", dataset_type, sign)
    good = np.isfinite(base) & np.isfinite(corr) & np.isfinite(expected)
    assert good.sum() > 0.5 * base.size
    delta = corr[good] - base[good]
    scale = np.abs(expected[good]).max()
    assert scale > 0
    # exact up to float32 rounding of the stored warps (pixel values up to ~1e5 nJy on stars)
    # (float32 rounding of source pixels is spread over the kernel footprint: use the local max)
    from scipy.ndimage import maximum_filter

    eps32 = float(np.finfo(np.float32).eps)
    local = maximum_filter(np.nan_to_num(np.abs(base) + np.abs(corr)), size=9)[good]
    assert np.all(np.abs(delta - expected[good]) <= 4 * eps32 * local + 1e-6 * scale)


def test_reuse_empty_patch_and_missing_calexp(sim_repo: tuple[Path, Any], tmp_path: Path) -> None:
    root = _fresh_copy(sim_repo, tmp_path)
    first = _run(root, [], "r")
    assert first.n_written == 3
    warp_file = root / "rerun/r/deepCoadd/HSC-I/0/5,4/warp-HSC-I-0-5,4-903988.fits"
    mtime = warp_file.stat().st_mtime_ns
    second = _run(root, [], "r", reuse=True)
    assert [v.status for v in second.visits] == ["reused"] * 3
    assert warp_file.stat().st_mtime_ns == mtime
    # an empty patch: far corner of the tract
    butler = Butler(str(root), rerun="e")
    empty = run_make_warp(butler, {"tract": 0, "patch": "0,0", "filter": "HSC-I"})
    assert empty.visits == [] and empty.n_written == 0
    assert not (root / "rerun/e/deepCoadd/HSC-I/0/0,0").exists()
    # a calexp removed from storage behind the registry's back is skipped and reported
    ref = Butler(str(root)).get_ref("calexp", {"visit": 903988, "ccd": 17})
    Path(ref.uri.removeprefix("file://")).unlink()
    third = _run(root, [], "m")
    v = next(v for v in third.visits if v.visit == 903988)
    assert 17 in v.ccds_skipped and "calexp" in v.ccds_skipped[17]
    assert 17 not in v.ccds_used and v.status == "written"


def test_coadd_psf_matches_star_profile(sim_repo: tuple[Path, Any], tmp_path: Path) -> None:
    root = _fresh_copy(sim_repo, tmp_path)
    _run(root, ["doApplyExternalSkyWcs=True", "doApplyExternalPhotoCalib=True"], "psf")
    warp = _warp(root, "psf", 903988)
    stars = _isolated_stars(root, warp, min_flux=6.0e4)
    checked = 0
    for x, y, _ in stars:
        img, _var, ox, oy = _cutout(warp, x, y, 10)
        if img.size == 0 or not np.isfinite(img).all():
            continue
        kernel = warp.psf.compute_kernel_image(x, y)
        h = kernel.shape[0] // 2
        img, _, ox, oy = _cutout(warp, x, y, h)

        def moments(a: np.ndarray, cx: float, cy: float) -> tuple[float, float, float]:
            yy, xx = np.mgrid[0 : a.shape[0], 0 : a.shape[1]]
            w = np.exp(-0.5 * ((xx - cx) ** 2 + (yy - cy) ** 2) / 4.0**2) * a
            s = w.sum()
            return ((w * (xx - cx) ** 2).sum() / s, (w * (yy - cy) ** 2).sum() / s,
                    (w * (xx - cx) * (yy - cy)).sum() / s)  # fmt: skip

        mk = moments(kernel, h, h)
        ms = moments(img, x - ox, y - oy)
        assert ms[0] == pytest.approx(mk[0], rel=0.02)
        assert ms[1] == pytest.approx(mk[1], rel=0.02)
        checked += 1
    assert checked >= 2


def test_seed_command_line_verbatim(sim_repo: tuple[Path, Any], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from repo_butler_cli.main import app

    root = _fresh_copy(sim_repo, tmp_path)
    argv = (
        f"make-warp {root} --rerun ci_hsc --id patch=5,4 tract=0 filter=HSC-I "
        "--selectId visit=903988 ccd=16 --selectId visit=903988 ccd=17 "
        "--selectId visit=903988 ccd=23 --selectId visit=903988 ccd=24 "
        "--config doApplyExternalPhotoCalib=False doApplyExternalSkyWcs=False --json"
    ).split()
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert (root / WARP_PATH).is_file()
    written = sorted(p.relative_to(root).as_posix() for p in (root / "rerun").rglob("*.fits"))
    assert written == [WARP_PATH]
    prov = Butler(str(root), rerun="ci_hsc").get_provenance(
        "deepCoadd_directWarp", {**PATCH, "visit": 903988}
    )
    assert prov is not None and prov.task == "makeWarp"
    types = sorted({i.dataset_type for i in prov.inputs})
    assert types == ["calexp", "deepCoadd_skyMap"]
    assert all(i.checksum.startswith(("blake3:", "sha256:")) for i in prov.inputs)
    assert prov.config["doApplyExternalSkyWcs"] is False
    assert "numpy" in prov.software and prov.host


def test_cli_reports_empty_patch_with_nonzero_exit(sim_repo: tuple[Path, Any]) -> None:
    from typer.testing import CliRunner

    from repo_butler_cli.main import app

    argv = f"make-warp {sim_repo[0]} --rerun x --id tract=0 patch=0,0 filter=HSC-I".split()
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 1
    assert "nothing written" in result.output


def test_show_config_round_trips_as_config_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from repo_butler_cli.main import app

    argv = ["make-warp", "unused", "--show-config", "--config", "makePsfMatched=True",
            "modelPsf.defaultFwhm=11"]  # fmt: skip
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "config.modelPsf.defaultFwhm = 11.0" in text
    assert "config.warpAndPsfMatch.psfMatch.kernel['AL'].kernelSize = None" in text  # automatic
    f = tmp_path / "c.py"
    f.write_text(text)
    again = apply_overrides(MakeWarpConfig(), files=[(str(f), text)])
    assert again == apply_overrides(
        MakeWarpConfig(), ["makePsfMatched=True", "modelPsf.defaultFwhm=11"]
    )


def test_missing_calibration_product_is_reported_by_type_and_data_id(
    sim_repo: tuple[Path, Any], tmp_path: Path
) -> None:
    root = _fresh_copy(sim_repo, tmp_path)
    ids = {"filter": "HSC-I", "tract": 0, "visit": 903988, "ccd": 17}
    Butler(str(root)).remove("jointcal_photoCalib", ids)
    summary = _run(root, ["doApplyExternalPhotoCalib=True"], "pc")
    v = next(v for v in summary.visits if v.visit == 903988)
    assert 17 not in v.ccds_used
    why = v.ccds_skipped[17]
    assert "jointcal_photoCalib not found for" in why and "ccd=17" in why and "visit=903988" in why
    assert sorted(v.ccds_used) == [16, 23, 24]
