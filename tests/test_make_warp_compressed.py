"""rb make-warp with compressed outputs (#19): the CLI, the readers, provenance, reruns, errors."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from repo_copy import copy_repo
from typer.testing import CliRunner

from repo_butler import Butler
from warping.formats.compression import dither_seed
from warping.simulate.repo import write_simulation
from warping.task.demo import DEMO_PATCH, demo_simulation, demo_skymap

PATCH = dict(DEMO_PATCH)
VISIT = 903988
WARP = "deepCoadd/HSC-I/0/5,4/warp-HSC-I-0-5,4-903988.fits"
BASE = (
    "--id patch=5,4 tract=0 filter=HSC-I --selectId visit=903988 "
    "--config doApplyExternalPhotoCalib=False doApplyExternalSkyWcs=False"
)


@pytest.fixture(scope="module")
def small_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's 3 visits of 5 CCDs, shrunk to 256x512 px, around a 340x340-pixel patch."""
    root = tmp_path_factory.mktemp("zsim") / "repo"
    skymap = demo_skymap(patch_inner=300, patch_border=20, radius_deg=0.07)
    sim = demo_simulation(
        skymap, ccd_size=(256, 512), gap_pixels=8, cosmic_ray_rate=0.0,
        galaxy_density=5.0, bright_star_density=0.0,
    )  # fmt: skip
    with Butler.create(str(root)) as butler:
        write_simulation(butler, sim, tract=0, skymap=skymap)
    return root


def _make_warp(root: Path, rerun: str, extra: str = "", *flags: str) -> Any:
    from repo_butler_cli.main import app

    argv = f"make-warp {root} --rerun {rerun} {BASE} {extra}".split() + list(flags)
    return CliRunner().invoke(app, argv)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_lossy_warps_read_back_within_bound_with_seed_recorded(
    small_repo: Path, tmp_path: Path
) -> None:
    root = copy_repo(small_repo, tmp_path / "repo")
    plain = _make_warp(root, "plain")
    assert plain.exit_code == 0, plain.output
    lossy = _make_warp(root, "lossy", "outputCompression.recipe=lossy")
    assert lossy.exit_code == 0, lossy.output
    again = _make_warp(root, "again", "outputCompression.recipe=lossy")
    assert again.exit_code == 0, again.output
    f_plain, f_lossy = root / "rerun/plain" / WARP, root / "rerun/lossy" / WARP
    assert f_lossy.stat().st_size < f_plain.stat().st_size / 2
    # a rerun writes the same bytes: the dither seed derives from the data ID
    assert _sha(f_lossy) == _sha(root / "rerun/again" / WARP)
    data_id = {**PATCH, "visit": VISIT}
    ref = Butler(str(root), rerun="lossy").get_ref("deepCoadd_directWarp", data_id)
    seed = dither_seed(ref.data_id.to_dict())
    with fits.open(f_lossy) as h:
        assert h["IMAGE"].header["RBZSEED"] == seed and h["IMAGE"].header["RBZQLEV"] == 16.0
        step = h["IMAGE"].header["RBZSTEP"]
        assert h["MASK"].header["RBZQMETH"] == "NONE"
    prov = Butler(str(root), rerun="lossy").get_provenance("deepCoadd_directWarp", data_id)
    assert prov is not None
    oc = prov.config["outputCompression"]
    assert (oc["recipe"], oc["quantizeLevel"], oc["ditherSeed"]) == ("lossy", 16.0, seed)
    # Butler.get reads the compressed warp; pixels within half a step of the plain warp
    a = Butler(str(root), rerun="plain").get("deepCoadd_directWarp", data_id)
    b = Butler(str(root), rerun="lossy").get("deepCoadd_directWarp", data_id)
    np.testing.assert_array_equal(a.mask, b.mask)
    good = np.isfinite(a.image)
    assert good.sum() > 10_000
    np.testing.assert_array_equal(good, np.isfinite(b.image))
    err = np.abs(a.image[good].astype(np.float64) - b.image[good])
    assert 0.3 * step < err.max() <= 0.5 * step * 1.0001 + 1e-6 * np.abs(a.image[good]).max()
    # ... and the step is the sky noise the variance plane gives over the quantization level
    noise = float(np.sqrt(np.median(a.variance[good])))
    assert step == pytest.approx(noise / 16.0, rel=0.15)
    np.testing.assert_array_equal(np.isposinf(a.variance), np.isposinf(b.variance))
    # the warp's other parts come back unchanged: inputs table, PSF, WCS, metadata
    assert b.coadd_inputs is not None
    assert [r.id for r in b.coadd_inputs.ccds] == [r.id for r in a.coadd_inputs.ccds]
    assert b.metadata == a.metadata and b.xy0 == a.xy0
    assert b.psf is not None
    # quicklook renders it
    from warping.quicklook import render_quicklook

    png = render_quicklook(b, tmp_path / "q.png")
    assert png.stat().st_size > 1000


def test_reuse_reads_compressed_warps(small_repo: Path, tmp_path: Path) -> None:
    root = copy_repo(small_repo, tmp_path / "repo")
    first = _make_warp(root, "z", "outputCompression.recipe=lossless")
    assert first.exit_code == 0, first.output
    path = root / "rerun/z" / WARP
    mtime = path.stat().st_mtime_ns
    with fits.open(path, disable_image_compression=True) as raw:
        assert raw["IMAGE"].header["ZIMAGE"] is True
    second = _make_warp(root, "z", "outputCompression.recipe=lossless", "--reuse", "--json")
    assert second.exit_code == 0, second.output
    assert '"reused"' in second.output
    assert path.stat().st_mtime_ns == mtime


def _rb(*argv: str) -> subprocess.CompletedProcess[str]:
    """The console script (``rb``) in a subprocess: what a user sees on stderr."""
    code = "from repo_butler_cli.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "outputCompression.recipe=gzip",
            "error: outputCompression.recipe must be one of ['none', 'lossless', 'lossy'], "
            "got 'gzip'.",
        ),
        (
            "outputCompression.quantizeLevel=0",
            "error: outputCompression.quantizeLevel = 0.0 is out of range; allowed: 1 to 1000",
        ),
        ("outputCompression.quantizeLevel=5000", "allowed: 1 to 1000"),
    ],
)
def test_bad_compression_config_is_an_error_before_any_work(
    small_repo: Path, override: str, expected: str
) -> None:
    argv = f"make-warp {small_repo} --rerun never {BASE} {override}".split()
    proc = _rb(*argv)
    assert proc.returncode == 1
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (small_repo / "rerun/never").exists()


def test_bad_compression_config_file_names_the_line(small_repo: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.py"
    cfg.write_text(
        "config.outputCompression.recipe = 'lossy'\nconfig.outputCompression.quantizeLevel = -1\n"
    )
    proc = _rb(*f"make-warp {small_repo} --rerun never {BASE} --configfile {cfg}".split())
    assert proc.returncode == 1
    assert "outputCompression.quantizeLevel = -1.0 is out of range; allowed: 1 to 1000" in (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert not (small_repo / "rerun/never").exists()


def test_psf_matched_warps_are_compressed_too(small_repo: Path, tmp_path: Path) -> None:
    root = copy_repo(small_repo, tmp_path / "repo")
    result = _make_warp(
        root,
        "pm",
        "makePsfMatched=True outputCompression.recipe=lossy outputCompression.ditherSeed=42",
    )
    assert result.exit_code == 0, result.output
    butler = Butler(str(root), rerun="pm")
    data_id = {**PATCH, "visit": VISIT}
    for kind in ("direct", "psfMatched"):
        ref = butler.get_ref(f"deepCoadd_{kind}Warp", data_id)
        path = Path(ref.uri.removeprefix("file://"))
        with fits.open(path, disable_image_compression=True) as raw:
            assert raw["IMAGE"].header["ZIMAGE"] is True
            assert raw["IMAGE"].header["ZDITHER0"] == 42  # an explicit seed is used as given
        warp = butler.get(f"deepCoadd_{kind}Warp", data_id)
        assert np.isfinite(warp.image).sum() > 10_000
        prov = butler.get_provenance(f"deepCoadd_{kind}Warp", data_id)
        assert prov is not None and prov.config["outputCompression"]["ditherSeed"] == 42
