"""Issue #18 on a simulated repository: one model PSF per patch, chosen from the widest input PSF
(checked against the simulation's own PSF polynomials), the same for every visit and every
executor; CCDs that would deconvolve or whose kernel exceeds a bound are skipped for the
psfMatched warp with the reason, through the real CLI (exit 3, output incomplete)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from repo_copy import copy_repo
from typer.testing import CliRunner

from repo_butler import Butler
from repo_butler_cli.main import app
from warping.psf.analytic import SIGMA_PER_FWHM
from warping.simulate.render import make_visit_psf
from warping.simulate.repo import write_simulation
from warping.task.config import MakeWarpConfig
from warping.task.demo import DEMO_PATCH, demo_simulation, demo_skymap
from warping.task.runner import run_make_warps

PATCH = dict(DEMO_PATCH)
CCDS = (16, 24)
WARP_SCALE = 0.2  # arcsec per warp pixel


@pytest.fixture(scope="module")
def sim_and_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    """Two visits of different seeing, CCDs 16 and 24 (256x512 px) around patch 5,4's centre."""
    root = tmp_path_factory.mktemp("psfmodel") / "repo"
    skymap = demo_skymap(
        patch_inner=240, patch_border=20, pixel_scale_arcsec=WARP_SCALE, radius_deg=0.07
    )
    sim = demo_simulation(
        skymap, ccd_size=(256, 512), gap_pixels=8, zero_point=34.0, cosmic_ray_rate=0.0,
        star_density=40.0, star_mag_range=(18.0, 21.0), galaxy_density=3.0,
        bright_star_density=0.0, saturation=1e8, bad_columns=0,
    )  # fmt: skip
    sim = sim.with_changes(visits=sim.visits[:2], ccds=CCDS)
    with Butler.create(str(root)) as butler:
        write_simulation(butler, sim, tract=0, skymap=skymap)
    return sim, root


def _true_widest_fwhm(sim: object) -> float:
    """Major-axis FWHM in warp pixels of the simulation's PSF at each CCD centre: the widest."""
    widest = 0.0
    for visit in sim.visits:  # type: ignore[attr-defined]
        for ccd in CCDS:
            psf = make_visit_psf(sim, visit, ccd)  # type: ignore[arg-type]
            cx, cy = (sim.ccd_width - 1) / 2.0, (sim.ccd_height - 1) / 2.0  # type: ignore[attr-defined]
            ixx, iyy, ixy = psf.moments(cx, cy)
            major = np.linalg.eigvalsh(np.array([[ixx, ixy], [ixy, iyy]]))[1]
            scale = sim.pixel_scale_arcsec / WARP_SCALE  # type: ignore[attr-defined]
            widest = max(widest, math.sqrt(major) / SIGMA_PER_FWHM * scale)
    return widest


def _matched_metadata(root: Path, rerun: str, visits: list[int]) -> list[dict[str, object]]:
    butler = Butler(str(root), rerun=rerun)
    out = []
    for v in visits:
        warp = butler.get("deepCoadd_psfMatchedWarp", {**PATCH, "visit": v})
        out.append(  # the model's cards; the noise summary is per visit by nature
            {
                k: val
                for k, val in warp.metadata.items()
                if k.startswith("PSFMATCH_") and k != "PSFMATCH_NOISE"
            }
        )
    return out


@pytest.mark.slow
def test_one_model_per_patch_from_the_widest_input(
    sim_and_repo: tuple[object, Path], tmp_path: Path
) -> None:
    sim, repo = sim_and_repo
    root = copy_repo(repo, tmp_path / "repo")
    butler = Butler(str(root), rerun="auto")
    batch = run_make_warps(butler, [PATCH], config=MakeWarpConfig(makePsfMatched=True))
    assert batch.n_failed == 0 and batch.n_incomplete == 0, batch.to_dict()
    visits = [v.visit for v in batch.patches[0].visits]
    assert len(visits) == 2
    metas = _matched_metadata(root, "auto", visits)
    assert metas[0] == metas[1]  # the same model for every visit of the patch
    meta = metas[0]
    truth = _true_widest_fwhm(sim)
    # measured on the warped PSF stamp (lanczos3-resampled, pixelated) vs the analytic moments
    assert meta["PSFMATCH_WIDEST_INPUT_FWHM"] == pytest.approx(truth, rel=0.02)
    assert meta["PSFMATCH_MODEL_FWHM"] == pytest.approx(1.15 * meta["PSFMATCH_WIDEST_INPUT_FWHM"])
    assert meta["PSFMATCH_MODEL_FWHM_SOURCE"] == "auto"
    assert meta["PSFMATCH_N_INPUTS_SURVEYED"] == 4
    # the warp declares the model: LSST's double Gaussian of that FWHM
    warp = butler.get("deepCoadd_psfMatchedWarp", {**PATCH, "visit": visits[0]})
    assert warp.psf.sigma1 * 2 * math.sqrt(2 * math.log(2)) == pytest.approx(
        meta["PSFMATCH_MODEL_FWHM"]
    )
    # provenance records the effective values
    prov = butler.get_provenance_dict("deepCoadd_psfMatchedWarp", {**PATCH, "visit": visits[0]})
    cfg = prov["config"]
    assert cfg["modelPsf"]["defaultFwhm"] == pytest.approx(meta["PSFMATCH_MODEL_FWHM"])
    assert (
        cfg["warpAndPsfMatch"]["psfMatch"]["kernel"]["AL"]["kernelSize"]
        == (meta["PSFMATCH_KERNEL_SIZE"])
    )


@pytest.mark.slow
def test_a_visit_redone_with_reuse_gets_the_patch_model(
    sim_and_repo: tuple[object, Path], tmp_path: Path
) -> None:
    _, repo = sim_and_repo
    root = copy_repo(repo, tmp_path / "repo")
    cfg = MakeWarpConfig(makePsfMatched=True, makeDirect=False)
    batch = run_make_warps(Butler(str(root), rerun="r"), [PATCH], config=cfg)
    visits = [v.visit for v in batch.patches[0].visits]
    before = _matched_metadata(root, "r", visits)
    # the widest input belongs to one visit; redo the *other* one alone with --reuse
    widest_visit = int(str(before[0]["PSFMATCH_WIDEST_INPUT"]).split("visit=")[1])
    other = next(v for v in visits if v != widest_visit)
    Butler(str(root), rerun="r").remove("deepCoadd_psfMatchedWarp", {**PATCH, "visit": other})
    again = run_make_warps(Butler(str(root), rerun="r"), [PATCH], config=cfg, reuse=True)
    assert again.n_units == 1 and again.n_reused == 1
    assert _matched_metadata(root, "r", visits) == before


@pytest.mark.slow
def test_dask_workers_get_the_same_patch_model(
    sim_and_repo: tuple[object, Path], tmp_path: Path
) -> None:
    from distributed import LocalCluster

    from warping.task.dask_plugin import WORKER_ENV

    _, repo = sim_and_repo
    serial = copy_repo(repo, tmp_path / "serial")
    dask = copy_repo(repo, tmp_path / "dask")
    cfg = MakeWarpConfig(makePsfMatched=True, makeDirect=False)
    run_make_warps(Butler(str(serial), rerun="r"), [PATCH], config=cfg)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        env=dict(WORKER_ENV), silence_logs=logging.WARNING, host="127.0.0.1",
    ) as cluster:  # fmt: skip
        batch = run_make_warps(
            Butler(str(dask), rerun="r"), [PATCH], config=cfg, scheduler=cluster.scheduler_address
        )
    assert batch.executor == "DaskExecutor"
    visits = [v.visit for v in batch.patches[0].visits]
    a = _matched_metadata(serial, "r", visits)
    b = _matched_metadata(dask, "r", visits)
    assert a == b and a[0] == a[1]
    for v in visits:
        wa = Butler(str(serial), rerun="r").get("deepCoadd_psfMatchedWarp", {**PATCH, "visit": v})
        wb = Butler(str(dask), rerun="r").get("deepCoadd_psfMatchedWarp", {**PATCH, "visit": v})
        # same model, same kernel; pixels differ only by float32 FFT rounding (the tiling
        # follows the thread count, one per Dask worker)
        ok = np.isfinite(wa.image)
        assert np.array_equal(ok, np.isfinite(wb.image))
        peak = np.abs(wa.image[ok]).max()
        assert np.abs(wa.image[ok] - wb.image[ok]).max() < 1e-5 * peak


def _cli(root: Path, *config: str) -> tuple[int, str, dict[str, object]]:
    argv = [
        "make-warp", str(root), "--rerun", "skip", "--json",
        "--id", "tract=0", "patch=5,4", "filter=HSC-I", "--config", "makePsfMatched=True", *config,
    ]  # fmt: skip
    result = CliRunner().invoke(app, argv)
    summary = json.loads(result.stdout[result.stdout.index("{") :]) if "{" in result.stdout else {}
    return result.exit_code, result.output, summary


@pytest.mark.slow
def test_cli_skips_ccds_that_would_deconvolve(
    sim_and_repo: tuple[object, Path], tmp_path: Path
) -> None:
    _, repo = sim_and_repo
    root = copy_repo(repo, tmp_path / "repo")
    # a 2-px Gaussian is narrower than every input (2.9-4.8 px): every CCD would deconvolve
    code, output, summary = _cli(root, "modelPsf.defaultFwhm=2.0", "modelPsf.addWing=False")
    assert code == 3, output  # direct warps made, psfMatched incomplete
    visits = summary["patches"][0]["visits"]
    assert len(visits) == 2
    for v in visits:
        assert v["incomplete"] and "psfMatched" in v["outputs_missing"]
        assert "direct" in v["outputs"] and "psfMatched" not in v["outputs"]
        assert set(v["ccds_skipped"]) == {str(c) for c in CCDS}
        for why in v["ccds_skipped"].values():
            assert "not in the psfMatched warp" in why and "would deconvolve" in why
    assert "would deconvolve" in " ".join(output.split())  # the human summary lists the reason
    butler = Butler(str(root), rerun="skip")
    assert butler.exists("deepCoadd_directWarp", {**PATCH, "visit": visits[0]["visit"]})
    assert not butler.exists("deepCoadd_psfMatchedWarp", {**PATCH, "visit": visits[0]["visit"]})
    # With LSST's wing the model's unweighted moments exceed the inputs', but its 2-px core
    # cannot be reached without deconvolving: the kernel oscillates and the bounds reject it.
    code, output, summary = _cli(copy_repo(repo, tmp_path / "wing"), "modelPsf.defaultFwhm=2.0")
    assert code == 3, output
    for v in summary["patches"][0]["visits"]:
        assert set(v["ccds_skipped"]) == {str(c) for c in CCDS}
        for why in v["ccds_skipped"].values():
            assert "would deconvolve" in why or "maxKernelAbsSum" in why


@pytest.mark.slow
def test_cli_skips_ccds_whose_kernel_exceeds_the_noise_bound(
    sim_and_repo: tuple[object, Path], tmp_path: Path
) -> None:
    _, repo = sim_and_repo
    root = copy_repo(repo, tmp_path / "repo")
    # A Gaussian kernel of sigma s has noise gain 1/sqrt(4 pi s^2) >= 0.05 for s <= 5.6 px:
    # a bound of 0.01 rejects every kernel of these inputs.
    code, output, summary = _cli(root, "warpAndPsfMatch.psfMatch.maxNoiseGain=0.01")
    assert code == 3, output
    for v in summary["patches"][0]["visits"]:
        assert "psfMatched" in v["outputs_missing"]
        for why in v["ccds_skipped"].values():
            assert "maxNoiseGain=0.01" in why
    # with the default bounds the same run is complete
    code, output, summary = _cli(copy_repo(repo, tmp_path / "ok"))
    assert code == 0, output
    for v in summary["patches"][0]["visits"]:
        assert not v["ccds_skipped"] and set(v["outputs"]) == {"direct", "psfMatched"}
