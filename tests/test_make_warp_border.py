"""``border`` (Gen3 MakeDirectWarp): warps cover the patch's outer bbox grown by ``border``
pixels on each side, and the CCDs selected are those overlapping that grown box (issue 22, 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_support import write_small_cli_repo

from repo_butler import Butler
from repo_butler.errors import ConfigError
from warping.formats.exposure_fits import read_wcs_and_bbox
from warping.skymap.geometry import SkyPolygon, polygons_overlap
from warping.task.config import MakeWarpConfig, apply_overrides
from warping.task.make_warp import SkyInfo
from warping.task.planning import plan_units
from warping.task.runner import run_make_warps

PATCH = {"tract": 0, "patch": "1,1", "filter": "HSC-I"}  # only the border reaches its CCDs
WARPED = {"tract": 0, "patch": "3,3", "filter": "HSC-I"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_cli_repo(tmp_path_factory.mktemp("border") / "repo")


def _config(border: int) -> MakeWarpConfig:
    return apply_overrides(MakeWarpConfig(), [f"border={border}"])


def _skymap(repo: Path):  # type: ignore[no-untyped-def]
    with Butler(str(repo), writeable=False) as butler:
        return butler.get("deepCoadd_skyMap", {})


def test_border_grows_the_bbox_by_exactly_border_pixels(repo: Path) -> None:
    skymap = _skymap(repo)
    outer = skymap[0].patch("1,1").outer_bbox
    grown = SkyInfo.from_skymap(skymap, 0, "1,1", border=256).bbox
    assert (grown.x0, grown.y0) == (outer.x0 - 256, outer.y0 - 256)
    assert (grown.width, grown.height) == (outer.width + 512, outer.height + 512)
    assert SkyInfo.from_skymap(skymap, 0, "1,1").bbox == outer  # default: Gen2's outer bbox
    with pytest.raises(ConfigError, match="border must be >= 0"):
        _config(-1).validate()


def test_selection_is_the_calexps_overlapping_the_grown_box(repo: Path) -> None:
    """Against a brute-force test of every calexp's footprint (from its own header) on the sky
    polygon of the grown box."""
    skymap = _skymap(repo)
    tract = skymap[0]
    with Butler(str(repo), rerun="plan") as butler:
        refs = butler.query_datasets("calexp", where="filter = 'HSC-I'")
        footprints = {}
        for ref in refs:
            wcs, bbox = read_wcs_and_bbox(ref.uri.removeprefix("file://"))
            footprints[ref.data_id] = SkyPolygon.from_wcs_bbox(wcs, bbox)
        chosen = {}
        for border in (0, 60):
            box = tract.patch("1,1").outer_bbox.grow(border)
            grown = SkyPolygon.from_wcs_bbox(tract.wcs, box)
            expected = {d for d, poly in footprints.items() if polygons_overlap(grown, poly)}
            plan = plan_units(butler, [PATCH], config=_config(border))
            chosen[border] = {c.data_id for u in plan.units for c in u.ccds}
            assert chosen[border] == expected, border
    assert chosen[0] < chosen[60]  # the border reaches CCDs the outer bbox does not


def test_warps_with_a_border_agree_with_the_plain_ones_where_both_exist(
    repo: Path, tmp_path: Path
) -> None:
    with Butler(str(repo), rerun="b0") as plain, Butler(str(repo), rerun="b40") as wide:
        assert run_make_warps(plain, [WARPED], config=_config(0)).n_failed == 0
        assert run_make_warps(wide, [WARPED], config=_config(40)).n_failed == 0
        refs = plain.query_datasets("deepCoadd_directWarp", data_id=WARPED)
        assert refs
        for ref in refs:
            a = plain.get("deepCoadd_directWarp", ref.data_id)
            b = wide.get("deepCoadd_directWarp", ref.data_id)
            assert b.bbox == a.bbox.grow(40)
            inner = b.image[40:-40, 40:-40]
            assert np.array_equal(np.isnan(inner), np.isnan(a.image))
            # the same grid; only the WCS interpolation nodes (every 10 px from the bbox corner)
            # move, so pixels differ by far less than their noise
            # move: differences are a small fraction of the pixel noise, or of bright stars' values
            sky = a.image[np.isfinite(a.image)]
            sigma = 1.4826 * np.median(np.abs(sky - np.median(sky)))
            np.testing.assert_allclose(inner, a.image, rtol=2e-3, atol=0.05 * sigma)
            assert np.array_equal(b.mask[40:-40, 40:-40], a.mask)
