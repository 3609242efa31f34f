"""``select.*`` (PSF-quality cuts, issue #22) over a simulated repository with visitSummaries.

Each visitSummary row carries summary statistics the test chose (stored with the test-only
format of :mod:`visit_summary_store`); the cuts must skip exactly the CCDs whose statistics are
above the thresholds, with the reason, mark their visit incomplete, never read their calexps,
and report the cuts whose statistic is absent (no ``psfTraceRadiusDelta`` column; a visit
without a visitSummary) as not evaluated. The CLI runs in a child process (``rb``), on visits
without visitSummaries (the child does not know the test format).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import visit_summary_store
from cli_support import run_rb
from repo_copy import copy_repo

from repo_butler import Butler
from warping.task.config import MakeWarpConfig, apply_overrides
from warping.task.demo import DEMO_PATCH, DEMO_VISITS
from warping.task.runner import BatchSummary, VisitSummary, run_make_warps
from warping.visit_summary import VisitSummaryCatalog, VisitSummaryRow

PATCH = dict(DEMO_PATCH)
#: Statistics of a good CCD: FWHM 2.0 px x 0.168"/px x 2.3548 = 0.79"; e residual 0.0014.
GOOD = {
    "psfSigma": 2.0,
    "psfStarDeltaE1Median": 0.001,
    "psfStarDeltaE2Median": -0.001,
    "psfStarDeltaSizeScatter": 0.01,
    "psfStarScaledDeltaSizeScatter": 0.005,
    "nPsfStar": 40,
}
#: Bad CCDs of visit 903988 (the others are GOOD): one cut each.
BAD = {
    16: {"psfStarScaledDeltaSizeScatter": 0.05},  # > 0.019
    17: {"psfStarDeltaE1Median": 0.006, "psfStarDeltaE2Median": 0.006},  # hypot 0.0085 > 0.007
    23: {"psfSigma": 3.0, "nPsfStar": 5},  # 5 < 30, and 3.0 x 0.168 x 2.3548 = 1.19" > 1.0
}
CUTS = [
    "select.maxEllipResidual=0.007",
    "select.maxScaledSizeScatter=0.019",
    "select.maxPsfFwhm=1.0",
    "select.maxPsfTraceRadiusDelta=0.7",  # no such column in these visitSummaries
    "select.minNPsfStarPerBand={'fallback': 30}",  # no band column: the fallback
]


def visit_summary_of(butler: Butler, visit: int) -> VisitSummaryCatalog:
    """The visit's catalog: each CCD's jointcal WCS and PhotoCalib, and GOOD or BAD statistics."""
    return visit_summary_store.jointcal_catalog(
        butler, visit,
        summary=lambda ccd: {**GOOD, **(BAD.get(ccd, {}) if visit == 903988 else {})},
    )  # fmt: skip


@pytest.fixture(scope="module")
def sim_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 visits x 5 CCDs of 192x384 px around tract 0 patch 5,4, with a visitSummary each."""
    return visit_summary_store.write_small_repo(
        tmp_path_factory.mktemp("select") / "repo", visit_summary_of
    )


@pytest.fixture
def repo(sim_repo: Path, tmp_path: Path) -> Path:
    visit_summary_store.register()
    return copy_repo(sim_repo, tmp_path / "repo")


def run(root: Path, overrides: list[str], rerun: str) -> BatchSummary:
    return visit_summary_store.run_patch(root, overrides, rerun, PATCH)


def by_visit(batch: BatchSummary) -> dict[int, VisitSummary]:
    assert not batch.failures, [f.error for f in batch.failures]
    return {v.visit: v for v in batch.patches[0].visits}


def paths(root: Path, dataset_type: str, **data_id: Any) -> dict[int, str]:
    with Butler(str(root)) as butler:
        return {
            int(r.data_id["ccd"]) if "ccd" in r.data_id else int(r.data_id["visit"]): r.path
            for r in butler.query_datasets(dataset_type, data_id=data_id)
        }


def pixel_scale(root: Path, visit: int, ccd: int) -> float:
    """sqrt(pixel solid angle) at the CCD centre under its jointcal WCS, arcsec, with astropy:
    the separations to the next pixel in x and y and the angle between those directions."""
    with Butler(str(root)) as butler:
        did = {"filter": "HSC-I", "tract": 0, "visit": visit, "ccd": ccd}
        wcs = butler.get("jointcal_wcs", did)
        box = butler.get("calexp", {k: v for k, v in did.items() if k != "tract"}).bbox
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    c0, cx1, cy1 = wcs.pixel_to_world([cx, cx + 1, cx], [cy, cy, cy + 1])
    angle = c0.position_angle(cx1) - c0.position_angle(cy1)
    area = c0.separation(cx1).arcsec * c0.separation(cy1).arcsec * abs(np.sin(angle.rad))
    return float(np.sqrt(area))


def test_cuts_skip_exactly_the_ccds_above_the_thresholds(repo: Path) -> None:
    base = by_visit(run(repo, [], "base"))
    assert all(not v.ccds_skipped and not v.incomplete for v in base.values())
    assert set(BAD) <= set(base[903988].ccds_used)  # the bad CCDs overlap the patch
    with Butler(str(repo)) as butler:
        butler.remove("visitSummary", filter="HSC-I", visit=904010)
    batch = run(repo, CUTS, "cut")
    got = by_visit(batch)
    v = got[903988]
    assert v.status == "written" and v.incomplete
    assert sorted(v.ccds_skipped) == sorted(BAD) == sorted(v.ccds_unusable)
    assert v.ccds_used == [c for c in base[903988].ccds_used if c not in BAD]
    why = v.ccds_skipped
    assert why[16].startswith("rejected by select: psfStarScaledDeltaSizeScatter 0.05 > ")
    assert "select.maxScaledSizeScatter=0.019 (file://" in why[16]
    assert why[16].endswith("/visitSummary-0903988.fits (visit 903988))")
    assert "median ellipticity residual 0.008485 > select.maxEllipResidual=0.007" in why[17]
    fwhm = 3.0 * pixel_scale(repo, 903988, 23) * 2.0 * np.sqrt(2.0 * np.log(2.0))
    assert f"PSF FWHM {fwhm:.4g} arcsec > select.maxPsfFwhm=1 arcsec" in why[23]
    assert "; nPsfStar 5 < select.minNPsfStarPerBand['fallback']=30 (file://" in why[23]
    # the other visits keep every CCD; the cuts lacking a statistic are reported, per CCD
    for visit in (903986, 904010):
        assert got[visit].ccds_used == base[visit].ccds_used and not got[visit].incomplete
    for visit in (903986, 903988):
        missing = got[visit].cuts_not_evaluated
        assert list(missing) == ["maxPsfTraceRadiusDelta"]
        assert sorted(missing["maxPsfTraceRadiusDelta"]) == sorted(
            base[visit].ccds_used
        )  # the rejected CCDs too: it was not evaluated for them either
        assert all(
            "has no psfTraceRadiusDelta" in w for w in missing["maxPsfTraceRadiusDelta"].values()
        )
    lacking = got[904010].cuts_not_evaluated
    assert set(lacking) == {"maxEllipResidual", "maxScaledSizeScatter", "maxPsfFwhm",
                            "maxPsfTraceRadiusDelta", "minNPsfStarPerBand"}  # fmt: skip
    for ccds in lacking.values():
        assert ccds == dict.fromkeys(base[904010].ccds_used, "no visitSummary for visit 904010")
    # JSON form of the summary
    d = got[903988].to_dict()
    assert d["incomplete"] and set(d["ccds_skipped"]) == {"16", "17", "23"}
    assert set(d["cuts_not_evaluated"]["maxPsfTraceRadiusDelta"]) == {
        str(c) for c in base[903988].ccds_used
    }
    # rejected CCDs were never read; each visitSummary was read once by its unit
    calexps = paths(repo, "calexp", visit=903988)
    assert not {calexps[c] for c in BAD} & set(batch.reads)
    summaries = paths(repo, "visitSummary")
    assert {batch.reads.get(p) for p in summaries.values()} == {1}
    # the warp's inputs lack them; the other visits' warps are the same as without the cuts
    with Butler(str(repo), rerun="cut") as cut, Butler(str(repo), rerun="base") as ref:
        warp = cut.get("deepCoadd_directWarp", {**PATCH, "visit": 903988})
        assert sorted(r.ccd for r in warp.coadd_inputs.ccds) == v.ccds_used
        for visit in (903986, 904010):
            a = cut.get("deepCoadd_directWarp", {**PATCH, "visit": visit})
            b = ref.get("deepCoadd_directWarp", {**PATCH, "visit": visit})
            assert np.array_equal(a.image, b.image, equal_nan=True), visit
        prov = cut.get_provenance("deepCoadd_directWarp", {**PATCH, "visit": 903988})
    assert prov is not None and prov.config["select"]["maxPsfFwhm"] == 1.0
    assert [i.dataset_type for i in prov.inputs].count("visitSummary") == 1


def test_without_cuts_no_visit_summary_is_read(repo: Path) -> None:
    batch = run(repo, ["select.excludeDetectors=[16]"], "x")
    v = by_visit(batch)[903988]
    assert v.ccds_skipped == {16: "rejected by select: detector 16 is in select.excludeDetectors"}
    assert v.incomplete and not v.cuts_not_evaluated
    assert not set(paths(repo, "visitSummary").values()) & set(batch.reads)


def test_cli_reports_rejected_ccds_and_cuts_not_evaluated(repo: Path) -> None:
    with Butler(str(repo)) as butler:  # the child process does not know the test format
        for visit in DEMO_VISITS:
            butler.remove("visitSummary", filter="HSC-I", visit=visit)
    argv = ["make-warp", str(repo), "--rerun", "c", "--id", "tract=0", "patch=5,4",
            "filter=HSC-I", "--config", "select.maxPsfFwhm=1.0",
            "select.excludeDetectors=[16, 17]"]  # fmt: skip
    out = run_rb(*argv)
    text = " ".join((out.stdout + out.stderr).split())  # as printed, lines wrap at 80 columns
    assert out.returncode == 3, text  # some warps written, some lack CCDs: partial
    assert "Traceback" not in text
    assert (
        "visit 903988 ccd 16: rejected by select: detector 16 is in select.excludeDetectors" in text
    )
    assert "select cuts not evaluated (their statistic is absent):" in text
    for visit in DEMO_VISITS:
        line = f"visit {visit} select.maxPsfFwhm, ccd 16, 17, 23, 24: no visitSummary for visit"
        assert f"{line} {visit}" in text
    assert "Output incomplete" in text and "select.* rejected" in text
    js = run_rb(*[a if a != "c" else "j" for a in argv], "--format", "json")
    assert js.returncode == 3, js.stderr
    doc = json.loads(js.stdout)
    visits = {v["visit"]: v for v in doc["patches"][0]["visits"]}
    assert "16" in visits[903988]["ccds_skipped"] and visits[903988]["incomplete"]
    assert set(visits[903986]["cuts_not_evaluated"]) == {"maxPsfFwhm"}


def test_cli_refuses_a_bad_threshold_in_one_line(repo: Path) -> None:
    out = run_rb("make-warp", str(repo), "--id", "tract=0", "--config", "select.maxPsfFwhm=-1")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1
    assert "select.maxPsfFwhm must be a positive number, got -1.0" in out.stderr


def test_rejected_ccds_do_not_widen_the_patch_model_psf(repo: Path) -> None:
    """The automatic model FWHM of psfMatched warps is 1.15 x the widest input PSF of the
    patch: CCDs the cuts reject must not count, exactly as if they had not been selected."""
    with Butler(str(repo)) as butler:  # visit 903986 (the widest seeing, 0.78") fails maxPsfFwhm
        cat = visit_summary_of(butler, 903986)
        rows = {
            c: VisitSummaryRow(r.detector, r.bbox, r.wcs, r.photo_calib,
                               summary={**r.summary, "psfSigma": 10.0})
            for c, r in cat.rows.items()
        }  # fmt: skip
        butler.put(VisitSummaryCatalog(903986, rows, cat.source), "visitSummary",
                   filter="HSC-I", visit=903986, overwrite=True)  # fmt: skip
    matched = ["makeDirect=False", "makePsfMatched=True"]

    def model(
        overrides: list[str], rerun: str, select: list[dict[str, Any]] | None = None
    ) -> tuple[BatchSummary, dict[str, Any]]:
        config = apply_overrides(MakeWarpConfig(), matched + overrides)
        with Butler(str(repo), rerun=rerun) as butler:
            batch = run_make_warps(butler, [PATCH], select, config=config)
            assert not batch.failures, [f.error for f in batch.failures]
            warp = butler.get("deepCoadd_psfMatchedWarp", {**PATCH, "visit": 904010})
        keys = ("PSFMATCH_MODEL_FWHM", "PSFMATCH_WIDEST_INPUT", "PSFMATCH_N_INPUTS_SURVEYED")
        return batch, {k: warp.metadata[k] for k in keys}

    batch, cut = model(["select.maxPsfFwhm=1.5"], "cut")
    assert sorted(by_visit(batch)[903986].ccds_skipped) == [16, 17, 23, 24]
    _, truth = model([], "truth", [{"visit": 903988}, {"visit": 904010}])
    _, everything = model([], "all")
    assert cut == truth
    assert "visit=903986" in everything["PSFMATCH_WIDEST_INPUT"]
    assert everything["PSFMATCH_MODEL_FWHM"] > cut["PSFMATCH_MODEL_FWHM"]
    assert everything["PSFMATCH_N_INPUTS_SURVEYED"] == cut["PSFMATCH_N_INPUTS_SURVEYED"] + 4


def test_show_config_prints_the_select_fields_and_reads_back(tmp_path: Path) -> None:
    given = ["select.maxPsfFwhm=1.2", "select.minNPsfStarPerBand={'fallback': 6, 'z': 0}",
             "select.excludeDetectors=[9]"]  # fmt: skip
    out = run_rb("make-warp", "unused", "--show-config", "--config", *given)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "config.select.minNPsfStarPerBand = {'fallback': 6, 'z': 0}" in text
    assert "config.select.maxStarEPerBand = {}" in text
    assert "config.select.maxEllipResidual = None" in text
    again = apply_overrides(MakeWarpConfig(), files=[("shown.py", text)])
    assert again == apply_overrides(MakeWarpConfig(), given)
    assert again.select.thresholds == {"maxPsfFwhm": 1.2} and again.select.excludeDetectors == (9,)
