"""make-warp with afw calexps whose PSF cannot be used: the CCD is skipped with the reason in the
summary, the output is flagged incomplete, and the warp's CoaddPsf is defined at every pixel it
covers. A CCD with a readable PcaPsf is warped and its PSF survives the warp file."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from afw_archive import kernel_psf_objects, write_afw_calexp
from corrupt_inputs import reregister
from repo_copy import copy_repo
from test_psf_pca import CX, CY, _Tripwire, basis_images, piff_objects
from typer.testing import CliRunner

from repo_butler import Butler, DataId
from repo_butler_cli.main import app
from warping.coadd_psf import CoaddPsf
from warping.exposure import Exposure
from warping.geom import Box2I
from warping.psf import GaussianPsf, PcaPsf, PolynomialFunction2D
from warping.simulate.repo import write_simulation
from warping.task.config import MakeWarpConfig
from warping.task.demo import DEMO_PATCH, demo_simulation, demo_skymap
from warping.task.inputs import CcdInput, InMemoryHandle
from warping.task.make_warp import MakeWarpTask, SkyInfo
from warping.task.runner import run_make_warp
from warping.warp.testing import make_tan_wcs

PATCH = dict(DEMO_PATCH)
VISIT = 903988


@pytest.fixture(scope="module")
def sim_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Visit 903988's four CCDs around patch 5,4 (192x384 px, 0.168"/px)."""
    root = tmp_path_factory.mktemp("psfskip") / "repo"
    skymap = demo_skymap(
        patch_inner=300, patch_border=20, pixel_scale_arcsec=0.168, radius_deg=0.07
    )
    sim = demo_simulation(
        skymap,
        ccd_size=(192, 384),
        gap_pixels=8,
        zero_point=34.0,
        cosmic_ray_rate=0.0,
        star_density=20.0,
        galaxy_density=2.0,
        bright_star_density=0.0,
        saturation=1e8,
    )
    sim = sim.with_changes(visits=sim.visits[1:2], ccds=(16, 17, 23, 24))
    with Butler.create(str(root)) as butler:
        write_simulation(butler, sim, tract=0, skymap=skymap)
    return root


def _replace_calexp(root: Path, ccd: int, objects: list[Any], psf_id: int = 1) -> Exposure:
    """Rewrite CCD ``ccd``'s calexp file in the afw layout with ``objects`` as its archive."""
    butler = Butler(str(root))
    ids = {"visit": VISIT, "ccd": ccd}
    calexp: Exposure = butler.get("calexp", ids)
    path = Path(butler.get_ref("calexp", ids).uri.removeprefix("file://"))
    write_afw_calexp(path, calexp, objects, psf_id)
    reregister(str(root), "calexp", ids)  # make-warp checks the bytes read against the registry
    return calexp


def _pca_like(psf: Any, x: float, y: float) -> list[Any]:
    """A PcaPsf whose first basis image is the simulated PSF's kernel at (x, y) and whose other
    two (zero-sum differences of Gaussians) vary linearly over the CCD."""
    k = psf.compute_kernel_image(x, y)
    n = k.shape[0]
    d = np.arange(n) - n // 2
    r2 = d[None, :] ** 2 + d[:, None] ** 2
    g = [np.exp(-0.5 * r2 / s**2) / (2 * np.pi * s**2) for s in (1.5, 2.0, 2.5)]
    basis = np.stack([k, g[0] - g[1], g[1] - g[2]])
    funcs = [
        PolynomialFunction2D((1.0,)),
        PolynomialFunction2D((1e-2, 1e-5, 0.0)),
        PolynomialFunction2D((0.0, 0.0, 2e-5)),
    ]
    return kernel_psf_objects(basis, (n // 2, n // 2), functions=funcs, average_position=(x, y))


def test_unusable_psfs_skip_their_ccds_and_flag_the_warp_incomplete(
    sim_repo: Path, tmp_path: Path
) -> None:
    root = copy_repo(sim_repo, tmp_path / "repo")
    marker = tmp_path / "unpickled"
    _replace_calexp(root, 17, piff_objects(pickle.dumps(_Tripwire(marker))))
    zero_sum = basis_images()
    sums = zero_sum.sum(axis=(1, 2))
    _replace_calexp(
        root,
        23,
        kernel_psf_objects(
            zero_sum, (CX, CY), amplitudes=[sums[1], -sums[0], 0.0], psf_class="KernelPsf"
        ),
    )
    orig24 = Butler(str(root)).get("calexp", {"visit": VISIT, "ccd": 24})
    _replace_calexp(root, 24, _pca_like(orig24.psf, 96.0, 192.0))

    summary = run_make_warp(Butler(str(root), rerun="r"), PATCH, config=MakeWarpConfig())
    (v,) = summary.visits
    assert v.status == "written" and sorted(v.ccds_used) == [16, 24]
    assert sorted(v.ccds_skipped) == [17, 23] and v.ccds_unusable == [17, 23]
    assert v.incomplete and summary.n_incomplete == 1
    why17, why23 = v.ccds_skipped[17], v.ccds_skipped[23]
    assert "ccd=17" in why17 and f"visit={VISIT}" in why17
    assert "PiffPsf" in why17 and "never unpickled" in why17
    assert "ccd=23" in why23 and "KernelPsf" in why23 and "cannot be evaluated" in why23
    assert not marker.exists()
    assert v.to_dict()["incomplete"] is True and v.to_dict()["ccds_unusable"] == [17, 23]
    # --reuse keeps complete warps but redoes this one (its cause may have been fixed), so the
    # rerun says "incomplete" again instead of exiting 0 with the old warp
    again = run_make_warp(Butler(str(root), rerun="r"), PATCH, config=MakeWarpConfig(), reuse=True)
    (w,) = again.visits
    assert w.status == "written" and w.incomplete and w.ccds_unusable == [17, 23]

    warp: Exposure = Butler(str(root), rerun="r").get(
        "deepCoadd_directWarp", {**PATCH, "visit": VISIT}
    )
    coadd_psf = warp.psf
    assert isinstance(coadd_psf, CoaddPsf)
    assert sorted(c.ccd for c in coadd_psf.ccds) == [16, 24]
    assert [type(c.psf) for c in coadd_psf.ccds if c.ccd == 24] == [PcaPsf]
    # every covered pixel is inside an input whose PSF the CoaddPsf can evaluate
    yy, xx = np.nonzero(np.isfinite(warp.image))
    assert xx.size > 10_000
    px, py = xx + warp.xy0[0], yy + warp.xy0[1]
    ra, dec = warp.wcs.pixel_to_world_values(px.astype(float), py.astype(float))
    covered = np.zeros(px.size, dtype=bool)
    from24 = np.zeros(px.size, dtype=bool)
    for c in coadd_psf.ccds:
        inside = np.asarray(c.contains_sky(ra, dec), dtype=bool)
        covered |= inside
        if c.ccd == 24:
            from24 |= inside
    assert covered.all() and from24.sum() > 1000
    rng = np.random.default_rng(5)
    picks = np.concatenate(
        [rng.choice(np.flatnonzero(~from24), 20), rng.choice(np.flatnonzero(from24), 20)]
    )
    for i in picks:
        k = coadd_psf.compute_kernel_image(float(px[i]), float(py[i]))
        assert np.isfinite(k).all() and k.sum() == pytest.approx(1.0, abs=1e-6)
    # on CCD 24 alone, the CoaddPsf is the PcaPsf warped: its size is the simulated PSF's
    i = int(np.flatnonzero(from24 & ~np.isin(np.arange(px.size), picks))[0])
    ixx, iyy, _ = coadd_psf.second_moments(float(px[i]), float(py[i]))
    sx, sy, _ = orig24.psf.second_moments(96.0, 192.0)
    assert np.sqrt(ixx * iyy) == pytest.approx(np.sqrt(sx * sy), rel=0.05)

    # the command line says the output is incomplete, exits 3 and keeps the reasons in --json
    argv = f"make-warp {root} --rerun cli --id tract=0 patch=5,4 filter=HSC-I --json".split()
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 3, result.output
    assert "Output incomplete" in result.output
    doc = json.loads(result.stdout[result.stdout.index("{") :])
    (jv,) = doc["patches"][0]["visits"]
    assert jv["incomplete"] and sorted(jv["ccds_skipped"]) == ["17", "23"]
    assert doc["incomplete"] == 1
    assert not marker.exists()


def _calexp(psf: Any, **metadata: Any) -> Exposure:
    exp = Exposure.empty(Box2I(0, 0, 40, 30), wcs=make_tan_wcs(150.0, 2.0, (20.0, 15.0), 0.2))
    exp.image[:] = 1.0
    exp.variance[:] = 1.0
    exp.mask[:] = 0
    exp.psf = psf
    exp.metadata.update(metadata)
    from warping.photocalib import PhotoCalib

    exp.photo_calib = PhotoCalib(1.0)
    return exp


@pytest.mark.parametrize(
    ("psf", "metadata", "expected"),
    [
        (None, {}, "has no PSF"),
        (
            None,
            {"LSST_UNSUPPORTED_PSF": "CoaddPsf", "LSST_UNSUPPORTED_PSF_REASON": "not supported"},
            "its PSF (CoaddPsf) cannot be used: not supported",
        ),
    ],
)
def test_task_skips_a_ccd_without_a_usable_psf(psf: Any, metadata: dict, expected: str) -> None:
    good = _calexp(GaussianPsf(1.5, 11))
    bad = _calexp(psf, **metadata)
    sky = SkyInfo(0, "0,0", make_tan_wcs(150.0, 2.0, (20.0, 15.0), 0.2), Box2I(0, 0, 40, 30))
    inputs = [
        CcdInput(DataId({"visit": 1, "ccd": 1}), InMemoryHandle(good)),
        CcdInput(DataId({"visit": 1, "ccd": 2}), InMemoryHandle(bad)),
    ]
    res = MakeWarpTask().run(inputs, sky, 1)
    ok, skipped = res.ccds
    assert ok.used and not ok.unusable
    assert skipped.unusable and not skipped.loaded and skipped.goodpix == {}
    assert skipped.skipped is not None and expected in skipped.skipped
    assert "calexp ccd=2 visit=1" in skipped.skipped
    assert [r.ccd for r in res.exposures["direct"].coadd_inputs.ccds] == [1]


def test_a_ccd_psf_matching_fails_for_is_reported_and_the_visit_incomplete(
    sim_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CCD that is in the direct warp but could not be PSF-matched is listed with the reason
    and makes the visit incomplete (it used to vanish from the psfMatched warp silently).
    The matcher fails for CCD 17 only (an injected fault; the others use the real one)."""
    import warping.task.make_warp as make_warp_module

    real = make_warp_module.default_psf_matcher()

    def failing_for_17(warped: Exposure, model: Any, config: MakeWarpConfig) -> Any:
        if warped.id is not None and warped.id % 200 == 17:
            raise ValueError("Insufficient area to match")
        return real(warped, model, config)

    monkeypatch.setattr(make_warp_module, "default_psf_matcher", lambda: failing_for_17)
    root = copy_repo(sim_repo, tmp_path / "repo")
    from warping.task.config import apply_overrides

    config = apply_overrides(MakeWarpConfig(), ["makePsfMatched=True"])
    summary = run_make_warp(Butler(str(root), rerun="m"), PATCH, config=config)
    (v,) = summary.visits
    assert 17 in v.ccds_used and v.ccds_unusable == [17] and v.incomplete
    assert v.ccds_skipped == {17: "not in the psfMatched warp: cannot PSF-match: "
                                  "Insufficient area to match"}  # fmt: skip
    butler = Butler(str(root), rerun="m")
    matched = butler.get("deepCoadd_psfMatchedWarp", {**PATCH, "visit": VISIT})
    direct = butler.get("deepCoadd_directWarp", {**PATCH, "visit": VISIT})
    assert 17 not in [c.ccd for c in matched.coadd_inputs.ccds]
    assert 17 in [c.ccd for c in direct.coadd_inputs.ccds]
