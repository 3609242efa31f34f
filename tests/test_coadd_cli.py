"""``rb assemble-coadd``: success (summary, exit status, the coadd written) and user errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_support import run_rb
from scale_support import small_skymap
from stack_support import PATCH, write_synthetic_warps

from repo_butler import Butler

ID = ["--id", "tract=0", "patch=5,4", "filter=HSC-I"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("coadd-cli") / "repo"
    butler = Butler.create(root)
    write_synthetic_warps(butler, small_skymap(), matched=False)
    butler.close()
    return root


def test_assemble_coadd_writes_the_coadd_and_summarises(repo: Path) -> None:
    out = run_rb("assemble-coadd", str(repo), *ID, "--statistic", "MEAN", "--rerun", "c1",
                 "--tile", "100")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "deepCoadd tract=0 patch=5,4 filter=HSC-I: 3 warp(s), 7 CCD(s), MEAN" in out.stdout
    for visit in ("903986", "903988", "904010"):
        assert visit in out.stdout
    assert "written: " in out.stdout and "deepCoadd-HSC-I-0-5,4.fits" in out.stdout
    coadd = Butler(repo, rerun="c1").get("deepCoadd", PATCH)
    assert coadd.metadata["COADDSTA"] == "MEAN" and np.isfinite(coadd.image).any()


def test_assemble_coadd_on_a_local_dask_cluster_gives_the_same_pixels(repo: Path) -> None:
    out = run_rb("assemble-coadd", str(repo), *ID, "--rerun", "c2", "--tile", "128")
    assert out.returncode == 0, out.stderr
    out = run_rb("assemble-coadd", str(repo), *ID, "--rerun", "c3", "--tile", "128", "-j", "2")
    assert out.returncode == 0, out.stderr
    a = Butler(repo, rerun="c2").get("deepCoadd", PATCH)
    b = Butler(repo, rerun="c3").get("deepCoadd", PATCH)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--id", "tract=0", "patch=1,1", "filter=HSC-I"], "no warp matches"),
        (["--id", "tract=0", "patch=5,4"], "missing filter"),
        ([], "give the patch with --id"),
        ([*ID, "--warp-type", "noWarp"], "the warp types are deepCoadd_directWarp"),
    ],
)
def test_user_errors_are_one_line(repo: Path, argv: list[str], message: str) -> None:
    out = run_rb("assemble-coadd", str(repo), *argv, "--rerun", "e")
    assert out.returncode == 1, out.stdout
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_bad_statistic_is_a_usage_error(repo: Path) -> None:
    out = run_rb("assemble-coadd", str(repo), *ID, "--statistic", "MAX")
    assert out.returncode == 2 and "MEAN, MEANCLIP, MEDIAN" in out.stderr


def test_warps_on_another_grid_are_refused_in_one_line(repo: Path) -> None:
    from warping.exposure import Exposure
    from warping.geom import Box2I

    butler = Butler(repo, rerun="mismatch")
    good = butler.get("deepCoadd_directWarp", {**PATCH, "visit": 903986})
    small = good.subset(Box2I(good.xy0[0], good.xy0[1], 50, 40))
    odd = Exposure(small.image, small.mask, small.variance, xy0=small.xy0, wcs=good.wcs,
                   metadata={"BUNIT": "nJy"})  # fmt: skip
    butler.put(odd, "deepCoadd_directWarp", {**PATCH, "visit": 1})
    out = run_rb("assemble-coadd", str(repo), *ID, "--rerun", "mismatch")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "visit" in out.stderr, out.stderr
