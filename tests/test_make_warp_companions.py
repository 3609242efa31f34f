"""The direct warp's companions (issue 22, points 1 and 2; Gen3 MakeDirectWarp): the
masked-fraction warp and the noise-realization warps, checked against independent truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_support import one_error_line, run_rb, write_small_cli_repo
from repo_copy import copy_repo
from scipy import ndimage

from repo_butler import Butler, DataId
from repo_butler.errors import ConfigError, DatasetTypeError
from warping.exposure import Exposure
from warping.geom import Box2I
from warping.photocalib import PhotoCalib
from warping.psf.analytic import GaussianPsf
from warping.task.companions import noise_seed
from warping.task.config import MakeWarpConfig, apply_overrides
from warping.task.inputs import CcdInput, InMemoryHandle
from warping.task.make_warp import MakeWarpTask, SkyInfo
from warping.task.planning import plan_units
from warping.task.runner import run_make_warps
from warping.warp.testing import make_tan_wcs

N = 1000  # CCD side: 10^6 pixels
SHIFT = (37.3, 21.6)  # warp pixel = CCD pixel + SHIFT (same TAN projection, CRPIX moved)
CALIB = 2.0  # nJy per count
BLOCK = (slice(200, 300), slice(400, 550))  # BAD block (rows, columns)
NEG_VAR = (slice(700, 710), slice(100, 130))  # negative variance: masked for Gen3 too
VISIT = 1228


def _calexp() -> Exposure:
    rng = np.random.default_rng(5)
    _yy, xx = np.mgrid[0:N, 0:N]
    variance = (50.0 + 150.0 * xx / N).astype(np.float32)  # counts^2, from 50 to 200
    image = rng.normal(0.0, np.sqrt(variance)).astype(np.float32) + 10.0
    mask = np.zeros((N, N), dtype=np.int32)
    exp = Exposure(image, mask, variance)
    exp.mask[BLOCK] |= exp.mask_planes.bitmask("BAD")
    exp.variance[NEG_VAR] = -1.0
    exp.wcs = make_tan_wcs(150.0, 2.0, (500.0, 500.0), 0.2)
    exp.psf = GaussianPsf(1.5)
    exp.photo_calib = PhotoCalib(CALIB)
    exp.filter = "HSC-I"
    return exp


@pytest.fixture(scope="module")
def calexp() -> Exposure:
    return _calexp()


@pytest.fixture(scope="module")
def sky() -> SkyInfo:
    wcs = make_tan_wcs(150.0, 2.0, (500.0 + SHIFT[0], 500.0 + SHIFT[1]), 0.2)
    return SkyInfo(0, "0,0", wcs, Box2I(0, 0, N + 80, N + 60))


def _run(calexp: Exposure, sky: SkyInfo, overrides: list[str], ccd: int = 3) -> dict:
    config = apply_overrides(MakeWarpConfig(), overrides)
    inp = CcdInput(DataId(visit=VISIT, ccd=ccd), InMemoryHandle(calexp))
    warps = MakeWarpTask(config).run([inp], sky, VISIT)
    assert all(not o.reasons and not o.skipped for o in warps.ccds)
    return warps.exposures


def _on_patch(exp: Exposure, sky: SkyInfo, plane: str = "image") -> np.ndarray:
    out = np.full(sky.bbox.shape, np.nan)
    out[exp.bbox.slices(sky.bbox)] = getattr(exp, plane)
    return out


def test_masked_fraction_is_the_bilinearly_warped_indicator(calexp: Exposure, sky: SkyInfo) -> None:
    """Against scipy's bilinear interpolation (map_coordinates, order 1) of the indicator at the
    source positions of the analytic shift."""
    out = _run(calexp, sky, ["doWarpMaskedFraction=True", "maskedFractionMaskPlanes=['BAD']"])
    frac = out["maskedFraction"]
    assert frac is not None and frac.bbox == sky.bbox
    indicator = np.zeros((N, N))
    indicator[BLOCK] = 1.0
    indicator[NEG_VAR] = 1.0  # Gen3 also counts negative (and infinite) variance as masked
    yd, xd = np.mgrid[0 : sky.bbox.height, 0 : sky.bbox.width].astype(float)
    sx, sy = xd - SHIFT[0], yd - SHIFT[1]
    expected = ndimage.map_coordinates(indicator, [sy, sx], order=1, mode="constant", cval=np.nan)
    inside = (sx >= 1) & (sx <= N - 2) & (sy >= 1) & (sy <= N - 2)  # bilinear footprint inside
    got = frac.image.astype(float)
    assert np.isfinite(got[inside]).all()
    np.testing.assert_allclose(got[inside], expected[inside], atol=2e-6)
    assert 0.0 < got[inside].max() <= 1.0 and got[inside].min() >= 0.0
    partial = inside & (got > 0) & (got < 1)  # the block's edges: fractional shift
    assert partial.sum() > 2 * (100 + 150)
    # off the CCD there is no data (NaN / NO_DATA); the bilinear footprint is narrower than the
    # direct warp's Lanczos-3 one, so it reaches 2 pixels nearer the CCD's edges (as in Gen3)
    outside = (sx < -0.5) | (sx > N - 0.5) | (sy < -0.5) | (sy > N - 0.5)
    assert np.isnan(got[outside]).all()
    direct = np.isfinite(_on_patch(out["direct"], sky))
    assert not (direct & ~np.isfinite(got)).any()
    assert frac.photo_calib is None and frac.psf is None


def test_masked_fraction_without_planes_counts_only_bad_variance(
    calexp: Exposure, sky: SkyInfo
) -> None:
    frac = _run(calexp, sky, ["doWarpMaskedFraction=True"])["maskedFraction"]
    sx0, sy0 = int(np.ceil(SHIFT[0])), int(np.ceil(SHIFT[1]))
    block = frac.image[BLOCK[0].start + sy0 + 5 : BLOCK[0].stop + sy0 - 5,
                       BLOCK[1].start + sx0 + 5 : BLOCK[1].stop + sx0 - 5]  # fmt: skip
    assert np.all(block == 0.0)  # BAD alone is not counted (Gen3 default)
    neg = frac.image[NEG_VAR[0].start + sy0 + 2 : NEG_VAR[0].stop + sy0 - 2,
                     NEG_VAR[1].start + sx0 + 2 : NEG_VAR[1].stop + sx0 - 2]  # fmt: skip
    assert np.all(neg == 1.0)


def _chi2(noise: Exposure, variance: np.ndarray) -> np.ndarray:
    ok = np.isfinite(noise.image) & np.isfinite(variance) & (variance > 0)
    return (noise.image[ok].astype(float) ** 2) / variance[ok]


def test_noise_variance_is_the_warped_variance_plane(calexp: Exposure, sky: SkyInfo) -> None:
    """Per-pixel mode: over ~10^6 pixels the noise warp's empirical variance equals the direct
    warp's (independently warped) variance plane, in both halves of the variance range."""
    out = _run(calexp, sky, ["numberOfNoiseRealizations=2", "useMedianVariance=False"])
    direct, noise = out["direct"], out["noise0"]
    assert noise is not None and noise.bbox == direct.bbox
    np.testing.assert_array_equal(noise.variance, direct.variance)
    np.testing.assert_array_equal(noise.mask, direct.mask)
    good = np.isfinite(noise.image) & (direct.variance > 0) & np.isfinite(direct.variance)
    assert good.sum() > 900_000
    chi2 = _chi2(noise, direct.variance)
    assert abs(chi2.mean() - 1.0) < 0.01  # sampling error ~0.003 (correlated neighbours)
    low = direct.variance < np.median(direct.variance[good])
    for half in (low, ~low):
        sel = good & half
        ratio = (noise.image[sel].astype(float) ** 2).mean() / direct.variance[sel].mean()
        assert abs(ratio - 1.0) < 0.015
    # calibrated: the variance is CALIB^2 x the counts variance (here 50..200 counts^2)
    assert 0.9 * 50 * CALIB**2 < np.median(direct.variance[good]) < 1.1 * 200 * CALIB**2
    # two realizations are independent
    both = good & np.isfinite(out["noise1"].image)
    r = np.corrcoef(noise.image[both], out["noise1"].image[both])[0, 1]
    assert abs(r) < 0.01


def test_median_variance_noise(calexp: Exposure, sky: SkyInfo) -> None:
    out = _run(calexp, sky, ["numberOfNoiseRealizations=1"])  # useMedianVariance: Gen3's True
    noise = out["noise0"]
    ok = np.isfinite(calexp.variance) & (calexp.variance >= 0)
    median = np.median(calexp.variance[ok]) * CALIB**2  # negative-variance block included
    core = noise.variance[np.isfinite(noise.variance)]
    # the warped constant variance: median x sum(w^2) of the Lanczos-3 weights (< 1, > 0.5)
    assert 0.5 * median < core.min() and core.max() <= median * 1.0001
    assert abs(_chi2(noise, noise.variance).mean() - 1.0) < 0.01


def test_noise_is_reproducible_and_depends_on_the_ccd_and_offset(
    calexp: Exposure, sky: SkyInfo
) -> None:
    base = ["numberOfNoiseRealizations=1", "useMedianVariance=False"]
    a = _run(calexp, sky, base)["noise0"].image
    again = _run(calexp, sky, base)["noise0"].image
    assert np.array_equal(a, again, equal_nan=True)  # bit-identical rerun
    other_ccd = _run(calexp, sky, base, ccd=4)["noise0"].image
    offset = _run(calexp, sky, [*base, "seedOffset=1"])["noise0"].image
    ok = np.isfinite(a)
    for b in (other_ccd, offset):
        assert abs(np.corrcoef(a[ok], b[ok])[0, 1]) < 0.01
    # the documented seed rule
    assert noise_seed({"visit": 5, "ccd": 7}, 2, -1) == [5, 7, 2, 2**64 - 1]
    with pytest.raises(ValueError, match="lacks 'ccd'"):
        noise_seed({"visit": 5}, 0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["numberOfNoiseRealizations=4"], r"numberOfNoiseRealizations must be 0 to 3"),
        (["numberOfNoiseRealizations=-1"], r"numberOfNoiseRealizations must be 0 to 3"),
        (["makeDirect=False", "makePsfMatched=True", "doWarpMaskedFraction=True"],
         r"accompany the direct warp: set makeDirect=True"),
        (["doWarpMaskedFraction=True", "maskedFractionWarper.maskWarpingKernelName=lanczos3"],
         r"maskedFractionWarper: mask_kernel 'lanczos3' .* is larger than kernel 'bilinear'"),
        (["maskedFractionWarper.warpingKernelName=cubic"], r"must be one of|choices|cubic"),
    ],
)  # fmt: skip
def test_bad_values_are_clear_config_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides(MakeWarpConfig(), overrides).validate()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_cli_repo(tmp_path_factory.mktemp("companions") / "repo")


PATCH = ["tract=0", "patch=3,3", "filter=HSC-I"]
OPTS = ["--config", "doWarpMaskedFraction=True", "numberOfNoiseRealizations=2"]


def test_cli_writes_companions_with_provenance_and_reuses_them(repo: Path) -> None:
    out = run_rb("make-warp", str(repo), "--rerun", "comp", "--id", *PATCH, *OPTS)
    assert out.returncode == 0, out.stderr
    types = ["deepCoadd_directWarp_maskedFraction", "deepCoadd_directWarp_noise0",
             "deepCoadd_directWarp_noise1"]  # fmt: skip
    with Butler(str(repo), rerun="comp", writeable=False) as butler:
        warps = butler.query_datasets("deepCoadd_directWarp")
        assert warps
        for ref in warps:
            direct = butler.get_provenance_dict("deepCoadd_directWarp", ref.data_id)
            for name in types:
                stored = butler.get_ref(name, ref.data_id)
                assert f"deepCoadd/HSC-I/0/3,3/warp_{name.split('_')[-1]}-" in stored.path
                prov = butler.get_provenance_dict(name, ref.data_id)
                assert prov["task"] == "makeWarp"
                assert prov["inputs"] == direct["inputs"]
                assert prov["config"]["numberOfNoiseRealizations"] == 2
            n0 = butler.get("deepCoadd_directWarp_noise0", ref.data_id)
            assert n0.bbox == butler.get("deepCoadd_directWarp", ref.data_id).bbox
    # the Python API writes the same bits (same seeds)
    config = apply_overrides(MakeWarpConfig(), OPTS[1:])
    with Butler(str(repo), rerun="api") as api:
        patch = dict(p.split("=") for p in PATCH)
        assert run_make_warps(api, [patch], config=config).n_failed == 0
        with Butler(str(repo), rerun="comp", writeable=False) as cli:
            for ref in warps:
                a = cli.get("deepCoadd_directWarp_noise1", ref.data_id).image
                b = api.get("deepCoadd_directWarp_noise1", ref.data_id).image
                assert np.array_equal(a, b, equal_nan=True)
    again = run_rb("make-warp", str(repo), "--rerun", "comp", "--id", *PATCH, *OPTS, "--reuse",
                   "--format", "json")  # fmt: skip
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    visits = [v for p in summary["patches"] for v in p["visits"]]
    assert visits and all(v["status"] == "reused" for v in visits)
    assert all(
        set(v["outputs"]) == {"direct", "maskedFraction", "noise0", "noise1"} for v in visits
    )


def test_an_older_repository_gets_the_lines_to_add(tmp_path: Path) -> None:
    """The repository of release 4b1deb4 (tests/fixtures/repo-v1) predates the dataset types."""
    root = copy_repo(Path(__file__).parent / "fixtures" / "repo-v1", tmp_path / "v1")
    config = apply_overrides(MakeWarpConfig(), ["numberOfNoiseRealizations=1"])
    with Butler(str(root), rerun="x") as butler, pytest.raises(DatasetTypeError) as info:
        plan_units(butler, [{"tract": 0, "patch": "5,4", "filter": "HSC-I"}], config=config)
    text = str(info.value)
    assert (
        "numberOfNoiseRealizations=1 needs the dataset type(s) deepCoadd_directWarp_noise0" in text
    )
    assert "warp_noise0-{filter}-{tract:d}-{patch}-{visit:d}.fits" in text
    out = run_rb("make-warp", str(root), "--rerun", "x", "--id", "tract=0", "patch=5,4",
                 "filter=HSC-I", "--config", "doWarpMaskedFraction=True")  # fmt: skip
    assert "deepCoadd_directWarp_maskedFraction" in one_error_line(out)


def test_the_preset_holds_every_noise_dataset_type() -> None:
    from warping.repo_preset import butler_preset
    from warping.task.config import MAX_NUMBER_OF_NOISE_REALIZATIONS

    names = set(butler_preset()["dataset_types"])
    config = MakeWarpConfig(
        doWarpMaskedFraction=True, numberOfNoiseRealizations=MAX_NUMBER_OF_NOISE_REALIZATIONS
    )
    assert {config.dataset_type(t) for t in config.companion_types} <= names
    assert not any(n.startswith(f"deepCoadd_directWarp_noise{MAX_NUMBER_OF_NOISE_REALIZATIONS}")
                   for n in names)  # fmt: skip


@pytest.mark.parametrize("median", [False, True])
def test_noise_warp_equals_the_full_warp_of_the_noise_image(
    calexp: Exposure, sky: SkyInfo, median: bool
) -> None:
    """The task warps only the noise image and takes the direct warp's mask (and per-pixel
    variance); warping the whole noise exposure gives the same bits."""
    from warping.task.calibrate import calibrate_exposure
    from warping.task.companions import noise_exposure, noise_generator
    from warping.warp import warp_exposure

    out = _run(calexp, sky, ["numberOfNoiseRealizations=1", f"useMedianVariance={median}"])
    calibrated = calibrate_exposure(calexp, photo_calib=calexp.photo_calib)
    noise = noise_exposure(
        calibrated, noise_generator({"visit": VISIT, "ccd": 3}, 0), use_median_variance=median
    )
    full = warp_exposure(noise, sky.wcs, max_bbox=sky.bbox)
    got = out["noise0"].subset(full.bbox)  # the visit's warp, on the CCD's footprint
    good = (full.mask & full.mask_planes.bitmask("NO_DATA")) == 0
    assert good.sum() > 900_000
    np.testing.assert_array_equal(got.mask[good], full.mask[good])
    np.testing.assert_array_equal(got.image[good], full.image[good])
    np.testing.assert_array_equal(got.variance[good], full.variance[good])


def test_run_config_compares_companion_settings_only_when_they_act() -> None:
    from warping.task.run_config import differences, normalised

    def diff(a: list[str], b: list[str]) -> list[str]:
        ca, cb = (apply_overrides(MakeWarpConfig(), o) for o in (a, b))
        return [d.field for d in differences(normalised(ca), normalised(cb))]

    assert diff([], ["seedOffset=5", "useMedianVariance=False"]) == []  # no noise asked
    assert diff([], ["maskedFractionWarper.warpingKernelName=lanczos3"]) == []
    on = ["numberOfNoiseRealizations=1"]
    assert diff(on, [*on, "seedOffset=5"]) == ["seedOffset"]
    assert diff([], on) == ["numberOfNoiseRealizations"]
    frac = ["doWarpMaskedFraction=True"]
    assert diff(frac, [*frac, "maskedFractionMaskPlanes=['BAD']"]) == ["maskedFractionMaskPlanes"]


def test_a_ccd_whose_companions_fail_is_reported_and_they_are_not_written(
    calexp: Exposure, sky: SkyInfo
) -> None:
    """Noise needs the CCD's visit and ccd: an input without a visit key warps directly but
    not into the noise warp, which is then missing with the reason (not written all-NaN)."""
    config = apply_overrides(MakeWarpConfig(), ["numberOfNoiseRealizations=1"])
    inp = CcdInput(DataId(ccd=3), InMemoryHandle(calexp))
    warps = MakeWarpTask(config).run([inp], sky, VISIT)
    assert warps.exposures["direct"] is not None
    assert warps.exposures["noise0"] is None
    (outcome,) = warps.ccds
    assert outcome.unusable and outcome.used
    assert "lacks 'visit'" in outcome.reasons["noise0"]
