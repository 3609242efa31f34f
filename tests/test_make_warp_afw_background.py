"""make-warp with real LSST backgrounds: the CFHT calexp of visit 849375 CCD 12 with its real
afw ``calexpBackground`` (``../shared/data``), and the config rules of the background options."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from repo_butler import DataId
from repo_butler.errors import ConfigError
from warping.background import BackgroundList
from warping.background_afw import BackgroundModelError
from warping.exposure import Exposure
from warping.formats.calib_fits import read_background
from warping.formats.exposure_fits import read_exposure
from warping.geom import Box2I
from warping.task.config import MakeWarpConfig, apply_overrides
from warping.task.inputs import CcdInput, InMemoryHandle
from warping.task.make_warp import MakeWarpTask, SkyInfo
from warping.warp import warp_exposure
from warping.warp.testing import make_tan_wcs


@pytest.mark.parametrize(
    "overrides",
    [
        ["bgSubtracted=False", "doApplySkyCorr=True"],
        ["doRevertOldBackground=True", "doApplySkyCorr=True"],
        ["bgSubtracted=False", "doApplyNewBackground=True"],
        ["doRevertOldBackground=True", "doApplyNewBackground=True"],
    ],
)
def test_adding_back_and_subtracting_skycorr_together_is_refused(overrides: list[str]) -> None:
    with pytest.raises(ConfigError, match="counts the background twice"):
        apply_overrides(MakeWarpConfig(), overrides).validate()


def test_gen3_names_mean_the_gen2_operations() -> None:
    revert = apply_overrides(MakeWarpConfig(), ["doRevertOldBackground=True"])
    apply = apply_overrides(MakeWarpConfig(), ["doApplyNewBackground=True"])
    assert (revert.revert_background, revert.apply_sky_corr) == (True, False)
    assert (apply.revert_background, apply.apply_sky_corr) == (False, True)
    assert not MakeWarpConfig().revert_background and not MakeWarpConfig().apply_sky_corr


@pytest.fixture(scope="module")
def cfht(shared_data: Path) -> tuple[Exposure, BackgroundList]:
    calexp_path = shared_data / "lsst-jointcal-cfht_minimal" / "calexp-849375-12.fits.fz"
    bkgd_path = shared_data / "lsst-jointcal-extra" / "bkgd-849375-12.fits"
    if not calexp_path.exists() or not bkgd_path.exists():
        pytest.skip("the CFHT calexp and background are not in ../shared/data")
    return read_exposure(calexp_path), read_background(bkgd_path)


def _sky_over(calexp: Exposure) -> SkyInfo:
    exp = calexp
    bbox = exp.bbox
    ra, dec = exp.wcs.pixel_to_world_values(bbox.x0 + bbox.width / 2, bbox.y0 + bbox.height / 2)
    wcs = make_tan_wcs(float(ra), float(dec), (1500.0, 2600.0), 0.2)
    return SkyInfo(0, "0,0", wcs, Box2I(0, 0, 3000, 5200))


def test_real_background_added_back_moves_the_warp_by_its_warped_image(
    cfht: tuple[Exposure, BackgroundList],
) -> None:
    calexp, background = cfht
    exp = calexp
    sky = _sky_over(exp)
    did = DataId(visit=849375, ccd=12)

    def run(config: MakeWarpConfig, bg: BackgroundList | None) -> np.ndarray:
        handle = None if bg is None else InMemoryHandle(bg)
        inp = CcdInput(did, InMemoryHandle(exp), background=handle)
        warps = MakeWarpTask(config).run([inp], sky, 849375)
        out = warps.exposures["direct"]
        assert out is not None
        return np.asarray(out.image, dtype=float)

    base = run(MakeWarpConfig(), None)
    added = run(apply_overrides(MakeWarpConfig(), ["doRevertOldBackground=True"]), background)
    # independent expectation: the background image itself, calibrated and warped alone
    bg_image = background.get_image(exp.bbox)
    bg_exp = dataclasses.replace(
        exp,
        image=bg_image.astype(np.float32),
        variance=np.ones_like(bg_image, dtype=np.float32),
    )
    scale, _ = exp.photo_calib.calibrate_image(
        np.ones_like(bg_image, dtype=np.float32), bg_exp.variance, exp.xy0
    )
    bg_exp = dataclasses.replace(bg_exp, image=(bg_image * scale).astype(np.float32))
    warped_bg = warp_exposure(bg_exp, sky.wcs, max_bbox=sky.bbox)  # the bbox the task warps to
    expected = np.full(base.shape, np.nan)
    expected[warped_bg.bbox.slices(sky.bbox)] = warped_bg.image
    good = np.isfinite(base) & np.isfinite(added) & np.isfinite(expected)
    assert good.sum() > 1_000_000  # most of the CCD lands on the patch
    level = np.median(np.abs(expected[good]))
    assert level > 0
    delta = added[good] - base[good]
    assert np.median(np.abs(delta - expected[good])) <= 1e-4 * level
    assert np.max(np.abs(delta - expected[good])) <= 1e-3 * np.max(np.abs(expected[good]))


def test_a_background_of_another_ccd_size_fails_with_the_reason(
    cfht: tuple[Exposure, BackgroundList],
) -> None:
    calexp, background = cfht
    exp = calexp
    small = dataclasses.replace(
        exp,
        image=exp.image[:100, :100].copy(),
        mask=exp.mask[:100, :100].copy(),
        variance=exp.variance[:100, :100].copy(),
    )
    config = apply_overrides(MakeWarpConfig(), ["bgSubtracted=False"])
    inp = CcdInput(DataId(visit=849375, ccd=12), InMemoryHandle(small), InMemoryHandle(background))
    with pytest.raises(BackgroundModelError, match="BKGD_") as info:
        MakeWarpTask(config).run([inp], _sky_over(exp), 849375)
    assert "use the background made for this exposure" in str(info.value)
