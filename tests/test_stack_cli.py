"""``rb stack-info`` (issue 24, point 1): what a patch's warp stack holds, and its errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits
from cli_support import one_error_line, run_rb
from stack_support import PATCH, SIGMAS, write_synthetic_warps

from repo_butler import Butler

ID = ["--id", "tract=0", "patch=5,4", "filter=HSC-I"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, Any]]:
    from scale_support import small_skymap

    root = tmp_path_factory.mktemp("stack-cli") / "repo"
    skymap = small_skymap()
    with Butler.create(str(root)) as butler:
        butler.put(skymap, "deepCoadd_skyMap", {})
        truth = write_synthetic_warps(butler, skymap)
    return root, truth


def _plane_bytes(path: str) -> int:
    """Bytes of the IMAGE, MASK and VARIANCE data in a FITS file, as astropy lays it out
    (uncompressed: width x height x 4; compressed: the HDU's data span)."""
    total = 0
    with fits.open(path) as hdul:
        for hdu in hdul[1:]:
            if hdu.name in ("IMAGE", "MASK", "VARIANCE"):
                if isinstance(hdu, fits.CompImageHDU):
                    total += int(hdu.fileinfo()["datSpan"])
                else:
                    total += hdu.header["NAXIS1"] * hdu.header["NAXIS2"] * 4
    return total


def test_json_holds_shape_chunks_bytes_and_visits(repo: Any) -> None:
    root, truth = repo
    out = run_rb("stack-info", str(root), *ID, "--tile", "128", "-f", "json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["shape"] == {"visit": 3, "y": 340, "x": 340}
    assert (info["dataset_type"], info["tract"], info["patch"], info["filter"]) == (
        "deepCoadd_directWarp", 0, "5,4", "HSC-I",
    )  # fmt: skip
    for name, dtype in (("image", "float32"), ("variance", "float32"), ("mask", "int32")):
        var = info["variables"][name]
        assert var["dtype"] == dtype and var["chunks"] == [1, 128, 128]
        assert var["n_chunks"] == 3 * 3 * 3 and var["bytes_in_memory"] == 3 * 340 * 340 * 4
    with Butler(str(root), writeable=False) as butler:
        files = [butler.uri("deepCoadd_directWarp", {**PATCH, "visit": v}) for v in truth]
    assert info["bytes_to_read"] == sum(_plane_bytes(u.removeprefix("file://")) for u in files)
    assert [v["visit"] for v in info["visits"]] == sorted(truth)
    for row in info["visits"]:
        warp = truth[row["visit"]]
        assert row["n_good_pixels"] == warp.goodpix and row["ccds"] == warp.ccds
        assert row["n_ccds"] == len(warp.ccds) and row["mjd"] == warp.mjd
        assert row["psf_sigma"] == pytest.approx(SIGMAS[row["visit"]], rel=2e-3)
    alias = run_rb("stack-info", str(root), *ID, "--tile", "128", "--json")
    assert json.loads(alias.stdout) == info


def test_table_fits_80_columns(repo: Any) -> None:
    root, truth = repo
    out = run_rb("stack-info", str(root), *ID, "--where", "visit >= 903988")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "deepCoadd_directWarp tract=0 patch=5,4 filter=HSC-I (run (root))"
    assert "2 warps of 340x340 px" in lines[1]
    assert max(len(line) for line in lines) <= 80, out.stdout
    header = next(i for i, line in enumerate(lines) if line.startswith("visit"))
    assert lines[header].split() == [
        "visit", "mjd", "filter", "psf_sigma", "good_pixels", "n_ccds", "ccds",
    ]  # fmt: skip
    rows = [line.split() for line in lines[header + 1 :]]
    assert [int(r[0]) for r in rows] == [903988, 904010]
    for r in rows:
        warp = truth[int(r[0])]
        assert float(r[3]) == pytest.approx(warp.sigma, abs=2e-3)
        assert int(r[4]) == warp.goodpix and r[6] == ",".join(map(str, warp.ccds))


def test_psf_matched_warps(repo: Any) -> None:
    root, _ = repo
    out = run_rb("stack-info", str(root), *ID, "--dataset-type", "deepCoadd_psfMatchedWarp",
                 "-f", "json")  # fmt: skip
    info = json.loads(out.stdout)
    assert info["dataset_type"] == "deepCoadd_psfMatchedWarp"
    assert [v["psf_sigma"] for v in info["visits"]] == pytest.approx([3.0] * 3, rel=2e-3)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--id", "tract=0", "patch=5,5", "filter=HSC-I"],
            "error: no warp matches deepCoadd_directWarp tract=0 patch=5,5 filter=HSC-I in ",
        ),
        ([*ID, "-w", "visit = 7"], "where 'visit = 7' in "),
        ([*ID, "--dataset-type", "calexp"], "error: 'calexp' is not a warp dataset type of "),
        ([*ID, "--dataset-type", "deepWarpX"], "error: 'deepWarpX' is not a dataset type of "),
        (
            ["--id", "tract=0", "patch=5,4"],
            "--id needs exactly tract=, patch= and filter= (missing filter)",
        ),
        (["--id", "tract=0", "patch=5,4^5,5", "filter=HSC-I"], "give one patch with --id"),
        ([*ID, "visit=1"], "(unknown visit); select visits with --where"),
        ([*ID, "--rerun", "nope"], "rerun 'nope' does not exist"),
        ([*ID, "-w", "visit = = 1"], "error: where expression"),
    ],
)
def test_errors_are_one_line(repo: Any, argv: list[str], expected: str) -> None:
    root, _ = repo
    line = one_error_line(run_rb("stack-info", str(root), *argv))
    assert expected in line, line


def test_without_dask(repo: Any) -> None:
    root, _ = repo
    line = one_error_line(run_rb("stack-info", str(root), *ID, missing=("dask",)))
    assert "needs dask, which is not installed: pip install 'repo-butler[dask]'" in line


def test_no_patch_given(repo: Any) -> None:
    root, _ = repo
    line = one_error_line(run_rb("stack-info", str(root)))
    assert "give one patch with --id tract=T patch=X,Y filter=F" in line


def test_mismatched_bboxes(tmp_path: Path) -> None:
    from scale_support import small_skymap

    from warping.geom import Box2I

    skymap = small_skymap()
    with Butler.create(str(tmp_path / "repo")) as butler:
        write_synthetic_warps(butler, skymap, visits=(1,), matched=False)
        box = skymap[0].patch("5,4").outer_bbox
        other = Box2I(box.x0, box.y0, box.width, box.height - 20)
        write_synthetic_warps(butler, skymap, visits=(2,), matched=False, bbox=other)
    line = one_error_line(run_rb("stack-info", str(tmp_path / "repo"), *ID))
    assert "have different bounding boxes" in line and "visits 2" in line


@pytest.mark.s3
def test_stack_info_on_s3(s3_root: Any) -> None:
    from scale_support import small_skymap

    with Butler.create(s3_root.url, storage_options=s3_root.storage_options) as butler:
        truth = write_synthetic_warps(butler, small_skymap(), matched=False)
    opts = s3_root.storage_options
    flat = {"key": opts["key"], "secret": opts["secret"]}
    flat.update({f"client_kwargs.{k}": v for k, v in opts.get("client_kwargs", {}).items()})
    storage = [arg for k, v in flat.items() for arg in ("-S", f"{k}={v}")]
    out = run_rb("stack-info", s3_root.url, *ID, *storage, "-f", "json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert [v["n_good_pixels"] for v in info["visits"]] == [w.goodpix for w in truth.values()]
    assert all(v["uri"].startswith("s3://") for v in info["visits"])
    assert opts["secret"] not in out.stdout + out.stderr
