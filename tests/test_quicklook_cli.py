"""``rb quicklook`` on a small simulated demo-like repository (issue 20, point 9): the real
command line for direct and PSF-matched warps and calexps, local and in an S3 bucket; user
errors are one line naming the data ID."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import pytest

from repo_butler import Butler
from repo_butler_cli.main import main
from warping.quicklook_dataset import patch_coverage, quicklook_dataset
from warping.simulate.repo import write_simulation
from warping.task.config import MakeWarpConfig
from warping.task.config_overrides import apply_overrides
from warping.task.demo import DEMO_PATCH, demo_simulation, demo_skymap
from warping.task.runner import run_make_warp

WARP_ID = ["-d", "tract=0", "-d", "patch=5,4", "-d", "filter=HSC-I", "-d", "visit=903988"]
PSF_MATCHING = [
    "makePsfMatched=True",
    "modelPsf.defaultFwhm=11",
    "warpAndPsfMatch.psfMatch.kernel['AL'].kernelSize=27",
    "warpAndPsfMatch.psfMatch.kernel['AL'].alardSigGauss=[1.5, 3.0, 6.0]",
]
PATCH_SIDE = 300 + 2 * 20  # patch_inner + 2 * patch_border


def write_demo_like(root: str, *, storage_options: dict[str, Any] | None = None,
                    psf_matched: bool = True) -> None:  # fmt: skip
    """The demo's layout (tract 0 patch 5,4, visits 903986/903988/904010, CCDs 9/16/17/23/24)
    in miniature, with warps in rerun ci_hsc."""
    skymap = demo_skymap(patch_inner=300, patch_border=20, pixel_scale_arcsec=0.2, radius_deg=0.07)
    sim = demo_simulation(skymap, ccd_size=(192, 384), gap_pixels=8, zero_point=34.0,
                          cosmic_ray_rate=0.0)  # fmt: skip
    if not psf_matched:
        sim = sim.with_changes(visits=sim.visits[1:2])
    with Butler.create(root, storage_options=storage_options) as butler:
        write_simulation(butler, sim, tract=0, skymap=skymap)
    config = apply_overrides(MakeWarpConfig(), PSF_MATCHING if psf_matched else [])
    with Butler(root, rerun="ci_hsc", storage_options=storage_options) as out:
        summary = run_make_warp(out, DEMO_PATCH, None, config=config)
    assert all(v.status == "written" for v in summary.visits), summary


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("quicklook") / "repo"
    write_demo_like(str(root))
    return root


def _rb(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        *argv: str) -> tuple[int, str, str]:  # fmt: skip
    """Run the real ``rb`` entry point (with its error handling) in this process."""
    monkeypatch.setattr(sys, "argv", ["rb", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else (0 if code is None else 1)), out.out, out.err


def _png_shape(path: Path) -> tuple[int, int]:
    rgba = mpimg.imread(path)
    return int(rgba.shape[0]), int(rgba.shape[1])


def test_direct_warp_png(repo: Path, tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    png = tmp_path / "out" / "direct.png"
    code, out, err = _rb(capsys, monkeypatch, "quicklook", str(repo), "deepCoadd_directWarp",
                         *WARP_ID, "--rerun", "ci_hsc", "-o", str(png))  # fmt: skip
    assert code == 0, err
    assert out.strip() == (f"{png}: deepCoadd_directWarp tract=0 patch=5,4 filter=HSC-I "
                           "visit=903988 (rerun ci_hsc)")  # fmt: skip
    # a square patch: 7 in wide, 5.3 + 1.3 in high at 120 dpi
    assert _png_shape(png) == (round(6.6 * 120), 7 * 120)


def test_psf_matched_warp_png_default_name(repo: Path, tmp_path: Path, capsys: Any,
                                           monkeypatch: Any) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    code, out, err = _rb(capsys, monkeypatch, "quicklook", str(repo), "deepCoadd_psfMatchedWarp",
                         *WARP_ID[:-1], "visit=903986", "--rerun", "ci_hsc",
                         "--stretch", "linear")  # fmt: skip
    assert code == 0, err
    png = tmp_path / "deepCoadd_psfMatchedWarp-0-5,4-HSC-I-903986.png"
    assert png.is_file(), out
    assert _png_shape(png)[1] == 7 * 120


def test_calexp_png_from_a_partial_data_id(repo: Path, tmp_path: Path, capsys: Any,
                                           monkeypatch: Any) -> None:  # fmt: skip
    png = tmp_path / "calexp.png"
    code, out, err = _rb(capsys, monkeypatch, "quicklook", str(repo), "calexp", "-d",
                         "visit=903988", "-d", "ccd=16", "--output", str(png))  # fmt: skip
    assert code == 0, err
    # the full data ID (pointing, filter completed from the registry) is printed
    assert "calexp pointing=1116 filter=HSC-I visit=903988 ccd=16 (root run)" in out
    h, w = _png_shape(png)
    assert w == 7 * 120 and h > w  # a CCD is twice as tall as wide


def test_figures_carry_units_and_the_warps_no_data_fraction(repo: Path, tmp_path: Path) -> None:
    with Butler(str(repo), rerun="ci_hsc", writeable=False) as butler:
        ids = {"tract": 0, "patch": "5,4", "filter": "HSC-I", "visit": 903988}
        warp = butler.get("deepCoadd_directWarp", ids)
        q = quicklook_dataset(butler, "deepCoadd_directWarp", ids, tmp_path / "w.png")
        calexp = quicklook_dataset(butler, "calexp", {"visit": 903988, "ccd": 17},
                                   tmp_path / "c.png")  # fmt: skip
    ax = q.figure.axes[0]
    assert ax.images[0].colorbar.ax.get_ylabel().startswith("nJy  (asinh stretch")
    assert ax.get_xlabel() == "x (tract pixels)"
    no_data = (warp.mask & warp.mask_planes.bitmask("NO_DATA")) != 0
    assert 0.01 < no_data.mean() < 0.9  # chip gaps and edges
    legend = [t.get_text() for lg in q.figure.legends for t in lg.get_texts()]
    assert any(f"{no_data.mean():.1%} of the image" in t for t in legend), legend
    c_label = calexp.figure.axes[0].images[0].colorbar.ax.get_ylabel()
    assert c_label.startswith("count (photoCalib mean") and "nJy/count" in c_label
    assert calexp.figure.axes[0].get_xlabel() == "x (CCD pixels)"
    assert q.path.is_file() and calexp.path.is_file()


def test_coverage_map_of_the_patch(repo: Path, tmp_path: Path, capsys: Any,
                                   monkeypatch: Any) -> None:  # fmt: skip
    """Every calexp of the filter is drawn; the warps' inputs (CCDs 16/17/23/24 of each visit)
    in their visit's colour, the CCD 9s (off the patch, never selected) grey."""
    monkeypatch.chdir(tmp_path)
    code, out, err = _rb(capsys, monkeypatch, "quicklook", str(repo), "deepCoadd_directWarp",
                         *WARP_ID[:-2], "--rerun", "ci_hsc", "--coverage")  # fmt: skip
    assert code == 0, err
    png = tmp_path / "coverage-0-5,4-HSC-I.png"
    assert png.is_file() and _png_shape(png)[1] >= 7.5 * 110, out
    with Butler(str(repo), rerun="ci_hsc", writeable=False) as butler:
        ids = {"tract": 0, "patch": "5,4", "filter": "HSC-I"}
        fig = patch_coverage(butler, "deepCoadd_psfMatchedWarp", {**ids, "visit": 903988},
                             tmp_path / "one.png").figure  # fmt: skip
        every = patch_coverage(butler, "deepCoadd_directWarp", ids, tmp_path / "all.png").figure
    texts = [t.get_text() for lg in every.legends for t in lg.get_texts()]
    for visit in (903986, 903988, 904010):
        assert f"visit {visit} (4 CCDs used)" in texts, texts
    assert any(t.startswith("calexp not used (3;") for t in texts), texts
    legend = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert legend[0] == "visit 903988 (4 CCDs used)", legend
    assert not any(t.startswith("visit 903986") for t in legend)
    assert any(t.startswith("calexp not used (11;") for t in legend), legend


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["calexpo", "-d", "visit=903988"], r"unknown dataset type 'calexpo'; known: calexp"),
        (["calexp", "-d", "visit=903988"], r"data ID \{visit: 903988\} is ambiguous for calexp"),
        (["calexp", "-d", "visit=1", "-d", "ccd=16"],
         r"no calexp dataset with data ID \{visit: 1, ccd: 16\}"),
        (["deepCoadd_directWarp", *WARP_ID],  # no --rerun: the warps are not in the root run
         r"no deepCoadd_directWarp dataset with data ID .*visit: 903988.*found in rerun\(s\) "
         r"ci_hsc \(pass --rerun NAME\)"),
        (["deepCoadd_directWarp", "-d", "tract=0", "-d", "patch=5,4", "-d", "filter=HSC-I",
          "-d", "visit=1"],
         r"no deepCoadd_directWarp .*; none of the 1 other rerun\(s\) holds it either"),
        (["deepCoadd_skyMap"], r"deepCoadd_skyMap is not an image"),
        (["calexp", "-d", "visit"], r"--data-id 'visit': expected KEY=VALUE"),
        (["deepCoadd_directWarp", "-d", "tract=0", "-d", "patch=5,4", "--coverage"],
         r"coverage map needs tract, patch and filter; filter missing .*'tract=0 patch=5,4'"),
    ],
)  # fmt: skip
def test_user_errors_are_one_line(repo: Path, tmp_path: Path, capsys: Any, monkeypatch: Any,
                                  argv: list[str], message: str) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    code, out, err = _rb(capsys, monkeypatch, "quicklook", str(repo), *argv)
    assert code == 1, (out, err)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(message, lines[0]), lines[0]
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.s3
@pytest.mark.slow
def test_quicklook_of_a_warp_in_a_bucket(s3_root: Any, tmp_path: Path, capsys: Any,
                                         monkeypatch: Any) -> None:  # fmt: skip
    opts = s3_root.storage_options
    write_demo_like(s3_root.url, storage_options=opts, psf_matched=False)
    client = opts["client_kwargs"]
    s3_args = ["-S", f"key={opts['key']}", "-S", f"secret={opts['secret']}",
               "-S", f"client_kwargs.endpoint_url={client['endpoint_url']}",
               "-S", f"client_kwargs.region_name={client['region_name']}"]  # fmt: skip
    png = tmp_path / "s3.png"
    code, _out, err = _rb(capsys, monkeypatch, "quicklook", s3_root.url, "deepCoadd_directWarp",
                         *WARP_ID, "--rerun", "ci_hsc", "-o", str(png), *s3_args)  # fmt: skip
    assert code == 0, err
    assert _png_shape(png) == (round(6.6 * 120), 7 * 120)
    colours = mpimg.imread(png)[..., :3].reshape(-1, 3)
    assert np.any(np.all(np.abs(colours - np.array((0.13, 0.20, 0.45))) < 0.02, axis=1))
