"""``assemble_coadd`` over a repository: synthetic warps in, a ``deepCoadd`` with provenance out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scale_support import small_skymap
from stack_support import PATCH, write_synthetic_warps

from repo_butler import Butler
from repo_butler.errors import DatasetExistsError
from warping.coadd import CoaddConfig, NoWarpsError
from warping.coadd.task import assemble_coadd
from warping.coadd_psf import CoaddPsf
from warping.stack import WarpStackError

BAD = ("NO_DATA", "BAD", "SAT", "EDGE")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, Any]]:
    root = tmp_path_factory.mktemp("coadd") / "repo"
    butler = Butler.create(root)
    truth = write_synthetic_warps(butler, small_skymap())
    butler.close()
    return root, truth


def _reference(truth: dict[int, Any]) -> tuple[dict[int, float], np.ndarray, np.ndarray]:
    """LSST weights (the variance is uniform in [50, 150]: clipping keeps every pixel) and the
    weighted mean, by numpy."""
    weights, num, den, var = {}, 0.0, 0.0, 0.0
    for visit, t in truth.items():
        good = np.isfinite(t.image) & ((t.mask & t.mask_planes.bitmask(*BAD)) == 0)
        weights[visit] = 1.0 / float(np.mean(t.variance[good].astype(np.float64)))
    for visit, t in truth.items():
        good = np.isfinite(t.image) & ((t.mask & t.mask_planes.bitmask(*BAD)) == 0)
        w = np.where(good, weights[visit], 0.0)
        num = num + w * np.where(good, t.image, 0.0)
        den = den + w
        var = var + w * w * np.where(good, t.variance, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return weights, num / den, var / den**2


def test_deep_coadd_round_trip_with_provenance_of_every_warp(repo: Any) -> None:
    root, truth = repo
    butler = Butler(root)
    summary = assemble_coadd(butler, **PATCH, config=CoaddConfig("MEAN", tile=128))
    assert summary.dataset_type == "deepCoadd" and not summary.incomplete
    weights, ref_image, ref_var = _reference(truth)
    assert summary.weights == pytest.approx(weights, rel=1e-9)
    coadd = butler.get("deepCoadd", PATCH)
    defined = np.isfinite(ref_image)
    np.testing.assert_allclose(
        coadd.image[defined], ref_image[defined].astype(np.float32), rtol=2e-7
    )
    np.testing.assert_allclose(
        coadd.variance[defined], ref_var[defined].astype(np.float32), rtol=2e-7
    )
    no_data = coadd.mask_planes.bitmask("NO_DATA")
    assert np.array_equal((coadd.mask & no_data) != 0, ~defined)
    warp = butler.get("deepCoadd_directWarp", {**PATCH, "visit": 903986})
    assert coadd.xy0 == warp.xy0 and coadd.image.shape == warp.image.shape
    assert coadd.unit == "nJy" and coadd.photo_calib.calibration_mean == 1.0
    xs, ys = np.array([400.0, 520.5]), np.array([500.0, 610.0])
    np.testing.assert_allclose(
        np.array(coadd.wcs.pixel_to_world_values(xs, ys)),
        np.array(warp.wcs.pixel_to_world_values(xs, ys)),
        rtol=0,
        atol=1e-10,
    )
    # inputs table: every visit and CCD, with the warp's weight
    inputs = coadd.coadd_inputs
    assert [v.id for v in inputs.visits] == sorted(truth)
    assert {v.id: v.weight for v in inputs.visits} == pytest.approx(weights, rel=1e-9)
    assert sorted((c.visit, c.ccd) for c in inputs.ccds) == sorted(
        (v, c) for v, t in truth.items() for c in t.ccds
    )
    assert all(c.weight == pytest.approx(weights[c.visit]) for c in inputs.ccds)
    assert summary.n_ccds == len(inputs.ccds)
    # provenance: each warp by data ID, run and checksum; the weights in the config
    prov = butler.get_provenance_dict("deepCoadd", PATCH)
    assert prov["task"] == "assembleCoadd"
    refs = {int(r.data_id["visit"]): r for r in butler.query_datasets("deepCoadd_directWarp")}
    got = {int(i["data_id"]["visit"]): i for i in prov["inputs"]}
    assert set(got) == set(truth)
    for visit, item in got.items():
        assert item["dataset_type"] == "deepCoadd_directWarp"
        assert item["checksum"] == refs[visit].checksum
        assert prov["config"]["warps"][str(visit)] == refs[visit].uri
    assert {int(k): v for k, v in prov["config"]["weights"].items()} == pytest.approx(weights)
    assert prov["config"]["statistic"] == "MEAN"
    with pytest.raises(DatasetExistsError):
        assemble_coadd(butler, **PATCH, config=CoaddConfig("MEAN", tile=128))
    again = assemble_coadd(butler, **PATCH, config=CoaddConfig("MEDIAN"), overwrite=True)
    assert again.statistic == "MEDIAN"


def test_coadd_psf_is_the_weighted_sum_of_the_warps_psfs(repo: Any) -> None:
    root, _ = repo
    butler = Butler(root)
    summary = assemble_coadd(
        butler, **PATCH, config=CoaddConfig("MEAN"), overwrite=True,
        weights={903986: 1.0, 903988: 3.0, 904010: 0.5},
    )  # fmt: skip
    coadd = butler.get("deepCoadd", PATCH)
    assert isinstance(coadd.psf, CoaddPsf)
    x, y = 300.0 + coadd.xy0[0], 170.0 + coadd.xy0[1]
    kernels, ws = [], []
    for visit, w in summary.weights.items():
        kernels.append(butler.get("deepCoadd_directWarp", {**PATCH, "visit": visit}).psf
                       .compute_kernel_image(x, y))  # fmt: skip
        ws.append(w)
    size = max(k.shape[0] for k in kernels)
    total = np.zeros((size, size))
    for k, w in zip(kernels, ws, strict=True):
        pad = (size - k.shape[0]) // 2
        total[pad : pad + k.shape[0], pad : pad + k.shape[0]] += w * k
    total /= sum(ws)
    got = coadd.psf.compute_kernel_image(x, y)
    pad = (got.shape[0] - size) // 2
    assert got.shape[0] >= size
    np.testing.assert_allclose(got[pad : pad + size, pad : pad + size], total, atol=1e-12)
    assert got.sum() == pytest.approx(1.0)


def test_psf_matched_warps_give_the_psf_matched_coadd(repo: Any) -> None:
    root, _ = repo
    butler = Butler(root)
    summary = assemble_coadd(
        butler, **PATCH, config=CoaddConfig("MEANCLIP"), dataset_type="deepCoadd_psfMatchedWarp"
    )
    assert summary.dataset_type == "deepCoadd_psfMatched"
    coadd = butler.get("deepCoadd_psfMatched", PATCH)
    warp = butler.get("deepCoadd_psfMatchedWarp", {**PATCH, "visit": 903988})
    x, y = coadd.xy0[0] + 100.0, coadd.xy0[1] + 100.0
    np.testing.assert_allclose(
        coadd.psf.compute_kernel_image(x, y), warp.psf.compute_kernel_image(x, y), atol=1e-12
    )


def test_a_patch_without_warps_is_a_clear_error(repo: Any) -> None:
    root, _ = repo
    butler = Butler(root)
    with pytest.raises(WarpStackError, match="no warp matches"):
        assemble_coadd(butler, tract=0, patch="1,1", filter="HSC-I")
    with pytest.raises(NoWarpsError, match="none of the 3 warps"):
        assemble_coadd(butler, **PATCH, weights={}, overwrite=True)
