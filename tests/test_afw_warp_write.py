"""Warps written in afw's exposure layout (issue #26 point 2): exact round trips through our
reader, the SkyWcs as AST evaluates it, the CoaddPsf's kernels, bad files, and make-warp
``--warp-format afw`` end to end on a simulated repository."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import starlink.Ast as Ast
from afw_warp_support import assert_same_psf, assert_same_warp, grid, synthetic_warp
from astropy.io import fits
from test_make_warp_e2e import sim_repo  # noqa: F401  (a fixture, used by sim_runs)
from typer.testing import CliRunner

from repo_butler import Butler
from repo_butler.errors import ConfigError
from repo_butler_cli.main import app
from warping.errors import FormatError
from warping.formats.afw_exposure_write import AfwLayoutExposure, exposure_to_afw_hdulist
from warping.formats.exposure_fits import exposure_from_bytes, exposure_to_bytes, read_exposure
from warping.task.config import MakeWarpConfig, apply_overrides
from warping.task.demo import DEMO_PATCH


def _afw_bytes(warp: Any) -> bytes:
    return exposure_to_bytes(AfwLayoutExposure(warp))


def _ast_sky(hdul: fits.HDUList, obj_id: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """pyast's own evaluation of archive object ``obj_id`` (a SkyWcs): ICRS degrees."""
    index = hdul[int(hdul[0].header["AR_HDU"]) - 1]
    row = index.data[index.data["id"] == obj_id][0]
    assert row["name"] == "SkyWcs" and row["module"] == "lsst.afw.geom"
    data = hdul[index.header["AR_CATN"] + hdul.index_of(index) + int(row["cat.archive"])]
    text = bytes(data.data["wcs"][row["row0"]]).decode("ascii")
    version, cls, has_approx, dump = text.split(None, 3)
    assert (version, cls, has_approx) == ("1", "SkyWcs", "0")
    fs = Ast.Channel(dump.splitlines()).read()
    assert isinstance(fs, Ast.FrameSet)
    assert fs.getframe(Ast.BASE).Domain == "PIXELS" and fs.getframe(Ast.CURRENT).System == "ICRS"
    return np.degrees(fs.norm(fs.tran(np.array([xs, ys], dtype=float))))


def test_synthetic_warp_round_trips_exactly() -> None:
    warp = synthetic_warp()
    got = exposure_from_bytes(_afw_bytes(warp), "synthetic.fits")
    assert_same_warp(got, warp)
    points = [(1030.0, 2025.0), (1020.0, 2010.0), (1045.3, 2031.7), (1001.2, 2048.9)]
    assert_same_psf(got.psf, warp.psf, points)
    # the CoaddPsf's CCDs are the inputs table's (one object per archive id, as afw shares them)
    assert [c.id for c in got.psf.ccds] == [1000, 1001]
    assert got.psf.ccds[0].wcs is got.coadd_inputs.ccds[0].wcs
    assert got.psf.kernel == "lanczos3"


def test_written_skywcs_evaluates_as_in_memory_with_pyast() -> None:
    warp = synthetic_warp()
    hdul = fits.open(io.BytesIO(_afw_bytes(warp)))
    ph = hdul[0].header
    xs, ys = grid(warp.bbox, 11)
    sky = _ast_sky(hdul, int(ph["ARCHIVE_ID_SKYWCS"]), xs, ys)
    ra, dec = warp.wcs.pixel_to_world_values(xs, ys)
    assert np.abs(sky[0] - ra).max() < 1e-12 and np.abs(sky[1] - dec).max() < 1e-12
    # the CCDs' SkyWcs objects, found through the CoaddInputs CCD catalog's wcs column
    index = hdul[4].data
    ccd_cat = next(r for r in index if r["name"] == "CoaddInputs" and r["cat.persistable"] == 1)
    table = hdul[4 + int(ccd_cat["cat.archive"])].data
    for row, ccd in zip(table, warp.coadd_inputs.ccds, strict=True):
        cx, cy = grid(ccd.bbox, 7)
        sky = _ast_sky(hdul, int(row["wcs"]), cx, cy)
        ra, dec = ccd.wcs.pixel_to_world_values(cx, cy)
        assert np.abs(sky[0] - ra).max() < 1e-12 and np.abs(sky[1] - dec).max() < 1e-12


def test_afw_layout_is_recognised_without_our_cards(tmp_path: Path) -> None:
    path = tmp_path / "warp.fits"
    path.write_bytes(_afw_bytes(synthetic_warp()))
    with fits.open(path) as hdul:
        assert "RBFMTV" not in hdul[0].header  # not our format: the afw reader takes it
        assert [h.name for h in hdul[:5]] == ["PRIMARY", "IMAGE", "MASK", "VARIANCE",
                                              "ARCHIVE_INDEX"]  # fmt: skip
    assert read_exposure(path).coadd_inputs is not None


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_afw_warp_names_the_file(tmp_path: Path, cut: float) -> None:
    data = _afw_bytes(synthetic_warp())
    path = tmp_path / "cut-warp.fits"
    path.write_bytes(data[: int(len(data) * cut) // 2880 * 2880 + 100])
    with pytest.raises(FormatError, match=r"cut-warp\.fits"):
        read_exposure(path)


def test_corrupt_coadd_psf_names_the_file(tmp_path: Path) -> None:
    hdul = exposure_to_afw_hdulist(synthetic_warp())
    for hdu in hdul[5:]:
        if hdu.header.get("EXTNAME") == "CoaddPsf" and "coaddwcs" in hdu.columns.names:
            hdu.data["coaddwcs"][0] = 9999  # a dangling archive id
    path = tmp_path / "bad-psf-warp.fits"
    hdul.writeto(path)
    exposure = read_exposure(path)  # the pixels stay readable; the PSF is left out, with why
    assert exposure.psf is None
    assert exposure.metadata["LSST_UNSUPPORTED_PSF"] == "CoaddPsf"
    assert "no object with id 9999" in exposure.metadata["LSST_UNSUPPORTED_PSF_REASON"]
    assert np.array_equal(exposure.image, synthetic_warp().image, equal_nan=True)


def test_corrupt_inputs_table_names_the_file(tmp_path: Path) -> None:
    hdul = exposure_to_afw_hdulist(synthetic_warp())
    for hdu in hdul[5:]:
        if hdu.header.get("EXTNAME") == "CoaddInputs" and "ccd" in hdu.columns.names:
            hdu.data["wcs"][0] = 4242
    path = tmp_path / "bad-inputs-warp.fits"
    hdul.writeto(path)
    with pytest.raises(FormatError, match=r"bad-inputs-warp\.fits.*4242"):
        read_exposure(path)


def test_unreadable_ccd_psf_is_left_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An input CCD whose PSF class we do not read (a pickled PiffPsf, as LSST warps may hold)
    has no PSF; the CoaddPsf uses the other CCD."""
    hdul = exposure_to_afw_hdulist(synthetic_warp())
    index = hdul[4].data
    index["name"][index["name"] == "RepoButlerPsf"] = "PiffPsf"
    path = tmp_path / "piff-warp.fits"
    hdul.writeto(path)
    got = read_exposure(path)
    assert [c.psf is None for c in got.coadd_inputs.ccds] == [False, True]
    assert [c.id for c in got.psf.ccds] == [1000]
    assert "piff-warp.fits: an input CCD's PSF is left out: PiffPsf" in caplog.text


def test_afw_format_refuses_compression() -> None:
    with pytest.raises(ConfigError, match="warpFormat='afw'"):
        apply_overrides(
            MakeWarpConfig(), ["warpFormat='afw'", "outputCompression.recipe='lossless'"]
        ).validate()


# -- make-warp end to end ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim_runs(request: pytest.FixtureRequest) -> Path:
    """The e2e tests' small simulated repo (their ``sim_repo`` fixture) warped twice: rerun
    ``native`` (default) and ``afw`` (``--warp-format afw``), direct and PSF-matched warps and
    the masked-fraction companions."""
    root = request.getfixturevalue("sim_repo")[0]
    patch = [f"{k}={v}" for k, v in DEMO_PATCH.items()]
    for rerun, extra in (("native", []), ("afw", ["--warp-format", "afw"])):
        result = CliRunner().invoke(
            app,
            ["make-warp", str(root), "--id", *patch, "--rerun", rerun, "-c",
             "makePsfMatched=True", "doWarpMaskedFraction=True", *extra],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    return root


def test_make_warp_afw_format_matches_native(sim_runs: Path) -> None:
    native, afw = Butler(str(sim_runs), rerun="native"), Butler(str(sim_runs), rerun="afw")
    for kind in ("direct", "psfMatched"):
        refs = afw.query_datasets(f"deepCoadd_{kind}Warp", runs=["afw"])
        assert len(refs) == 3
        for ref in refs:
            did = dict(ref.data_id)
            path = Path(ref.uri.removeprefix("file://"))
            with fits.open(path) as hdul:
                assert "RBFMTV" not in hdul[0].header and hdul[0].header["AR_HDU"] == 5
            assert path.with_name(path.name + ".provenance.json").is_file()
            got = afw.get(f"deepCoadd_{kind}Warp", did)
            want = native.get(f"deepCoadd_{kind}Warp", did)
            assert_same_warp(got, want, wcs_tol_deg=1e-11)
            points = [want.psf.average_position()]
            if kind == "direct":
                points += [(c.x, c.y) for c in _covered(want, 3)]
            assert_same_psf(got.psf, want.psf, points)
            prov = afw.get_provenance_dict(f"deepCoadd_{kind}Warp", did)
            assert prov is not None and prov["config"]["warpFormat"] == "afw"


def test_make_warp_afw_format_companions(sim_runs: Path) -> None:
    native, afw = Butler(str(sim_runs), rerun="native"), Butler(str(sim_runs), rerun="afw")
    refs = afw.query_datasets("deepCoadd_directWarp_maskedFraction", runs=["afw"])
    assert len(refs) == 3
    for ref in refs:
        with fits.open(ref.uri.removeprefix("file://")) as hdul:
            assert "RBFMTV" not in hdul[0].header and hdul[1].name == "IMAGE"
        got = afw.get("deepCoadd_directWarp_maskedFraction", dict(ref.data_id))
        want = native.get("deepCoadd_directWarp_maskedFraction", dict(ref.data_id))
        assert np.array_equal(got.image, want.image, equal_nan=True)
        assert np.array_equal(got.mask, want.mask) and got.xy0 == want.xy0
        assert got.metadata == want.metadata


def test_coadd_of_afw_warps_matches_native(sim_runs: Path) -> None:
    """assemble-coadd reads afw-layout warps (the warp stack's header reader included) and
    makes the same coadd as from the default format."""
    patch = [f"{k}={v}" for k, v in DEMO_PATCH.items()]
    coadds = {}
    for rerun in ("native", "afw"):
        result = CliRunner().invoke(
            app, ["assemble-coadd", str(sim_runs), "--rerun", rerun, "--id", *patch]
        )
        assert result.exit_code == 0, result.output
        coadds[rerun] = Butler(str(sim_runs), rerun=rerun).get("deepCoadd", dict(DEMO_PATCH))
    got, want = coadds["afw"], coadds["native"]
    for plane in ("image", "mask", "variance"):
        assert np.array_equal(getattr(got, plane), getattr(want, plane), equal_nan=True), plane
    assert len(got.coadd_inputs.ccds) == len(want.coadd_inputs.ccds) == 12
    assert_same_psf(got.psf, want.psf, [want.psf.average_position()])


def _covered(warp: Any, n: int) -> list[Any]:
    """``n`` pixels of the warp without NO_DATA (where the CoaddPsf is defined)."""
    from types import SimpleNamespace

    good = np.argwhere(~warp.bad_pixels("NO_DATA"))
    picks = good[np.linspace(0, len(good) - 1, n).astype(int)]
    return [SimpleNamespace(x=float(warp.xy0[0] + j), y=float(warp.xy0[1] + i)) for i, j in picks]
