"""rb make-skymap / rb show-skymap on a simulated repository."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from repo_butler import Butler
from repo_butler_cli.main import app
from warping.simulate import SimulationConfig, write_simulation
from warping.skymap import SkyPolygon


def test_make_and_show_discrete_skymap(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write_simulation(Butler.create(str(root)), SimulationConfig.small())
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "make-skymap",
            str(root),
            "--pixel-scale",
            "0.2",
            "--patch-inner-dimensions",
            "200",
            "200",
            "--patch-border",
            "20",
        ],
    )
    assert res.exit_code == 0, res.output
    butler = Butler(str(root))
    sm = butler.get("deepCoadd_skyMap")
    tract = sm[0]
    # every calexp footprint lies inside the tract
    for ref in butler.query_datasets("calexp"):
        exp = butler.get("calexp", ref.data_id)
        poly = SkyPolygon.from_wcs_bbox(exp.wcs, exp.bbox)
        x, y = tract.wcs.world_to_pixel_values(list(poly.ra), list(poly.dec))
        assert all(0 <= v <= tract.bbox.width for v in x)
        assert all(0 <= v <= tract.bbox.height for v in y)
    res = runner.invoke(app, ["show-skymap", str(root), "--tract", "0", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert rows[0]["num_patches"] == list(tract.num_patches)
    assert rows[0]["patches"][0]["outer_bbox"] == tract.patch("0,0").outer_bbox.to_list()
    res = runner.invoke(app, ["make-skymap", str(root)])
    assert res.exit_code != 0  # exists already: needs --overwrite


def test_show_skymap_header_is_the_patch_grid(tmp_path: Path) -> None:
    """Issue 20, point 11: SWarp users can target a patch. The printed header puts pixel (0, 0)
    at the patch's outer-bbox corner, with the outer bbox's size, on the tract's projection."""
    from astropy.io import fits
    from astropy.wcs import WCS

    root = tmp_path / "repo"
    write_simulation(Butler.create(str(root)), SimulationConfig.small())
    runner = CliRunner()
    argv = ["make-skymap", str(root), "--pixel-scale", "0.2", "--patch-inner-dimensions",
            "200", "200", "--patch-border", "20"]  # fmt: skip
    assert runner.invoke(app, argv).exit_code == 0
    res = runner.invoke(
        app, ["show-skymap", str(root), "--tract", "0", "--patch", "1,1", "--header"]
    )
    assert res.exit_code == 0, res.output
    header = fits.Header.fromstring(res.stdout, sep="\n")
    tract = Butler(str(root)).get("deepCoadd_skyMap")[0]
    box = tract.patch("1,1").outer_bbox
    assert (header["NAXIS1"], header["NAXIS2"]) == (box.width, box.height)
    assert header["PATCH"] == "1,1" and header["LTV1"] == -box.x0
    wcs = WCS(header)
    for col, row in ((0, 0), (box.width - 1, box.height - 1), (17.5, 3.0)):
        ra, dec = wcs.pixel_to_world_values(col, row)
        tra, tdec = tract.wcs.pixel_to_world_values(col + box.x0, row + box.y0)
        assert abs(float(ra) - float(tra)) < 1e-10 and abs(float(dec) - float(tdec)) < 1e-10
    missing = runner.invoke(app, ["show-skymap", str(root), "--header"])
    assert missing.exit_code != 0 and "--tract and --patch" in str(missing.exception)
