"""useVisitSummary* over a repository: planning, errors before any work, one read per unit,
provenance, skip reasons, and the CLI.

The simulated repository's visitSummaries are built from its own jointcal WCS and PhotoCalib
(rows without a PSF, as every real visitSummary) and stored with the test-only format of
:mod:`visit_summary_store` (LSST's afw files need the ``visit_summary`` reader; the tests on the
real files are in ``test_visit_summary_real_files.py``). Taking the WCS and PhotoCalib from them
must give exactly the warps that ``doApplyExternalSkyWcs`` / ``doApplyExternalPhotoCalib`` give.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import visit_summary_store
import yaml
from repo_copy import copy_repo
from typer.testing import CliRunner

from repo_butler import Butler
from repo_butler.errors import DatasetTypeError
from repo_butler_cli.main import app
from warping.errors import MissingExposureError
from warping.task.config import MakeWarpConfig, apply_overrides
from warping.task.demo import DEMO_PATCH, DEMO_VISITS
from warping.task.runner import BatchSummary, run_make_warps
from warping.visit_summary import VisitSummaryCatalog

PATCH = dict(DEMO_PATCH)
FIXTURE_V1 = Path(__file__).parent / "fixtures" / "repo-v1"
GEN2 = ["doApplyExternalSkyWcs=True", "doApplyExternalPhotoCalib=True"]
GEN3 = ["useVisitSummaryWcs=True", "useVisitSummaryPhotoCalib=True"]


def visit_summary_of(butler: Butler, visit: int, skip: tuple[int, ...] = ()) -> VisitSummaryCatalog:
    """The visit's catalog from the repository's jointcal products (rows without PSF)."""
    return visit_summary_store.jointcal_catalog(butler, visit, skip=skip)


@pytest.fixture(scope="module")
def sim_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 visits x 5 CCDs of 192x384 px around tract 0 patch 5,4, with a visitSummary each."""
    return visit_summary_store.write_small_repo(
        tmp_path_factory.mktemp("vsum") / "repo", visit_summary_of
    )


@pytest.fixture
def repo(sim_repo: Path, tmp_path: Path) -> Path:
    visit_summary_store.register()
    return copy_repo(sim_repo, tmp_path / "repo")


def run(root: Path, overrides: list[str], rerun: str) -> BatchSummary:
    return visit_summary_store.run_patch(root, overrides, rerun, PATCH)


def warps(root: Path, rerun: str) -> dict[int, Any]:
    with Butler(str(root), rerun=rerun) as butler:
        return {
            int(r.data_id["visit"]): butler.get(r)
            for r in butler.query_datasets("deepCoadd_directWarp")
            if r.run == rerun
        }


def test_rows_give_the_same_warps_as_the_gen2_products(repo: Path) -> None:
    gen2 = run(repo, GEN2, "gen2")
    gen3 = run(repo, GEN3, "gen3")
    assert gen2.n_written == gen3.n_written == 3 and not gen3.failures
    a, b = warps(repo, "gen2"), warps(repo, "gen3")
    assert sorted(b) == list(DEMO_VISITS)
    for visit in DEMO_VISITS:
        assert np.array_equal(a[visit].image, b[visit].image, equal_nan=True), visit
        assert np.array_equal(a[visit].variance, b[visit].variance, equal_nan=True)
    ua = {v.visit: v.ccds_used for v in gen2.patches[0].visits}
    assert ua == {v.visit: v.ccds_used for v in gen3.patches[0].visits}
    # each visitSummary was read once by its unit (not once per CCD)
    with Butler(str(repo)) as butler:
        paths = {v: butler.get_ref("visitSummary", filter="HSC-I", visit=v).path for v in ua}
    assert {v: gen3.reads.get(p) for v, p in paths.items()} == dict.fromkeys(ua, 1)
    # provenance lists it once, and no Gen2 product
    with Butler(str(repo), rerun="gen3") as butler:
        prov = butler.get_provenance("deepCoadd_directWarp", {**PATCH, "visit": 903988})
    assert prov is not None
    types = [i.dataset_type for i in prov.inputs]
    assert types.count("visitSummary") == 1 and types.count("calexp") == len(ua[903988])
    assert not {"jointcal_wcs", "jointcal_photoCalib"} & set(types)
    assert prov.config["useVisitSummaryWcs"] is True


def test_a_ccd_missing_from_its_visit_summary_is_skipped_with_the_reason(repo: Path) -> None:
    with Butler(str(repo)) as butler:
        cat = visit_summary_of(butler, 903988, skip=(17,))
        butler.put(cat, "visitSummary", filter="HSC-I", visit=903988, overwrite=True)
    batch = run(repo, ["useVisitSummaryWcs=True"], "r")
    v = next(v for v in batch.patches[0].visits if v.visit == 903988)
    assert v.status == "written" and 17 not in v.ccds_used and v.ccds_used
    assert "visit 903988 has no row for detector 17" in v.ccds_skipped[17]
    with Butler(str(repo), rerun="r") as butler:
        warp = butler.get("deepCoadd_directWarp", {**PATCH, "visit": 903988})
    assert 17 not in [r.ccd for r in warp.coadd_inputs.ccds]


def test_selection_uses_the_rows_wcs(repo: Path) -> None:
    """Gen3 selects on the final WCS: a row WCS putting CCD 16 far off the patch deselects it,
    though its calexp's own WCS overlaps the patch."""
    from warping.skywcs import shift_wcs

    with Butler(str(repo)) as butler:
        cat = visit_summary_of(butler, 903988)
        row = cat.rows[16]
        moved = {**cat.rows, 16: dataclasses.replace(row, wcs=shift_wcs(row.wcs, 5000.0, 0.0))}
        cat = VisitSummaryCatalog(903988, moved, cat.source)
        butler.put(cat, "visitSummary", filter="HSC-I", visit=903988, overwrite=True)
    for flags, selected in ((GEN2, True), (["useVisitSummaryWcs=True"], False)):
        batch = run(repo, flags, f"s{int(selected)}")
        v = next(v for v in batch.patches[0].visits if v.visit == 903988)
        assert (16 in v.ccds_used) is selected and 16 not in v.ccds_skipped
        not_selected = batch.patches[0].not_selected.items()
        why = [w for k, w in not_selected if k.startswith("ccd=16 ") and "visit=903988" in k]
        assert why == ([] if selected else ["does not overlap the patch"])


def test_rows_without_a_psf_skip_every_ccd_for_use_visit_summary_psf(repo: Path) -> None:
    argv = f"make-warp {repo} --rerun p --id tract=0 patch=5,4 filter=HSC-I".split()
    result = CliRunner().invoke(app, [*argv, "--config", "useVisitSummaryPsf=True"])
    assert result.exit_code == 1, result.output
    assert "stores no psf" in result.output and "useVisitSummaryPsf" in result.output
    assert not (repo / "rerun" / "p" / "deepCoadd").exists()


def test_a_visit_without_visit_summary_stops_the_run_before_any_work(repo: Path) -> None:
    with Butler(str(repo)) as butler:
        butler.remove("visitSummary", filter="HSC-I", visit=904010)
    with pytest.raises(MissingExposureError) as err:
        run(repo, ["useVisitSummaryWcs=True"], "m")
    msg = str(err.value)
    assert "no visitSummary" in msg and "visit=904010 filter=HSC-I" in msg
    assert "903988" not in msg and "rb ingest" in msg and "\n" not in msg
    assert not (repo / "rerun" / "m" / "deepCoadd").exists()


def _console(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from repo_butler_cli.main import main; main()", *argv],
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_error_for_a_missing_visit_summary_is_one_line(repo: Path) -> None:
    with Butler(str(repo)) as butler:
        butler.remove("visitSummary", filter="HSC-I", visit=903986)
    proc = _console("make-warp", str(repo), "--rerun", "c", "--id", "tract=0", "patch=5,4",
                    "filter=HSC-I", "--config", "useVisitSummaryPhotoCalib=True")  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == proc.stderr.splitlines()[-1:] and "visit=903986" in errors[0]
    assert not (repo / "rerun" / "c" / "deepCoadd").exists()


def test_cli_refuses_both_sources_in_one_line() -> None:
    proc = _console("make-warp", "unused-repo", "--id", "tract=0", "--config",
                    "doApplyExternalSkyWcs=True", "useVisitSummaryWcs=True")  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "drop useVisitSummaryWcs=True to use jointcal_wcs" in proc.stderr


def test_a_repository_made_before_the_dataset_type_says_how_to_add_it(tmp_path: Path) -> None:
    root = copy_repo(FIXTURE_V1, tmp_path / "v1")
    config = apply_overrides(MakeWarpConfig(), ["useVisitSummaryWcs=True"])
    with Butler(str(root), rerun="x") as butler, pytest.raises(DatasetTypeError) as err:
        run_make_warps(butler, [PATCH], config=config)
    msg = str(err.value)
    assert "useVisitSummaryWcs=True needs the dataset type 'visitSummary'" in msg
    assert str(root) in msg and "\n" not in msg
    # doing what it says: the butler.yaml lines it quotes define the preset's dataset type
    found = re.search(
        r"add under dataset_types in its butler\.yaml  (visitSummary: \{.*?\})  ", msg
    )
    assert found is not None
    doc = yaml.safe_load((root / "butler.yaml").read_text())
    doc["dataset_types"].update(yaml.safe_load(found.group(1)))
    (root / "butler.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    with Butler(str(root), rerun="x") as butler:
        dt = butler.dataset_type("visitSummary")
        assert (dt.dimensions, dt.formatter) == (("filter", "visit"), "visit_summary")
        with pytest.raises(MissingExposureError, match="visit=903986 filter=HSC-I, visit=903988"):
            run_make_warps(butler, [PATCH], config=config)
    assert not list((root / "rerun" / "x").rglob("*.fits"))


def test_a_row_whose_wcs_gives_non_finite_corners_is_skipped_with_the_reason(repo: Path) -> None:
    """A visitSummary row whose WCS evaluates to NaN at the CCD's corners is never taken for
    "does not overlap": the CCD is skipped with the reason and the visit marked incomplete."""
    with Butler(str(repo)) as butler:
        cat = visit_summary_of(butler, 903988)
        bad = cat.rows[17].wcs
        assert hasattr(bad, "wcs"), "the simulated jointcal WCS is an astropy WCS"
        bad = type(bad)(naxis=2)  # SIN with 1 deg/px: the corners lie outside the projection
        bad.wcs.ctype = ["RA---SIN", "DEC--SIN"]
        bad.wcs.crval = cat.rows[17].wcs.wcs.crval
        bad.wcs.crpix = [1.0, 1.0]
        bad.wcs.cdelt = [1.0, 1.0]
        rows = {**cat.rows, 17: dataclasses.replace(cat.rows[17], wcs=bad)}
        cat = VisitSummaryCatalog(903988, rows, source="visitSummary with a NaN WCS")
        butler.put(cat, "visitSummary", filter="HSC-I", visit=903988, overwrite=True)
    batch = run(repo, GEN3, "nan")
    v = next(v for v in batch.patches[0].visits if v.visit == 903988)
    assert 17 not in v.ccds_used and v.ccds_used
    assert "non-finite sky coordinates at its corners" in v.ccds_skipped[17]
    assert v.incomplete
