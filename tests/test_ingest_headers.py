"""``rb ingest REPO calexp FILE...`` on real LSST calexps: data IDs derived from the files'
headers by the instrument rule table (warping.ingest_rules), checked against values read here
independently with astropy and against the files' provenance (Gen2 file names)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from repo_butler import Butler, DataId
from repo_butler.errors import DataIdError
from repo_butler_cli.main import app
from warping.errors import FormatError
from warping.exposure import Exposure
from warping.formats.exposure_fits import write_exposure
from warping.ingest_rules import HSC_POINTING_DAY0, data_id_from_exposure_file

pytestmark = pytest.mark.realdata
runner = CliRunner()
CALEXP_DIMS = ("pointing", "filter", "visit", "ccd")


@pytest.fixture
def cfht(shared_data: Path) -> list[Path]:
    folder = shared_data / "lsst-jointcal-cfht_minimal"
    return [folder / "calexp-849375-12.fits.fz", folder / "calexp-850587-12.fits.fz"]


@pytest.fixture
def repo(tmp_path: Path) -> str:
    root = str(tmp_path / "repo")
    Butler.create(root, preset="warping").close()
    return root


def archived(path: Path, kind: str) -> Any:
    """Row 0 of the first archive object named ``kind``, found here with astropy alone (the
    ARCHIVE_INDEX at AR_HDU, 1-based; data catalogs counted from the index)."""
    with fits.open(path, disable_image_compression=True) as hdul:
        first = hdul[0].header["AR_HDU"] - 1
        index = hdul[first].data
        row = index[(np.char.strip(index["name"]) == kind) & (index["cat.persistable"] == 0)][0]
        return hdul[first + int(row["cat.archive"])].data[int(row["row0"])]


def truth_cfht(path: Path) -> dict[str, Any]:
    """A CFHT calexp's data ID read independently: the visit from the IDNUM card (and the Gen2
    file name calexp-VISIT-CCD), the CCD from the archived Detector, the filter from the
    archived FilterLabel; pointing by the documented rule pointing = visit."""
    header = fits.getheader(path, 0)
    visit, ccd = (int(p) for p in path.name.split(".")[0].split("-")[1:])
    label, detector = archived(path, "FilterLabel"), archived(path, "Detector")
    assert header["IDNUM"] == visit and int(detector["id"]) == ccd
    return {"pointing": visit, "filter": label["physical"].strip(), "visit": visit, "ccd": ccd}


def _registered(root: str) -> dict[str, tuple[DataId, str]]:
    with Butler(root, writeable=False) as butler:
        return {
            r.data_id.key: (r.data_id, r.checksum)
            for name in butler.dataset_types
            for r in butler.query_datasets(name)
        }


def _repo_files(root: str) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*.fits*"))


# -- CFHT ------------------------------------------------------------------------------------
def test_cfht_pair_from_headers_with_no_data_id(repo: str, cfht: list[Path]) -> None:
    result = runner.invoke(app, ["ingest", repo, "calexp", *map(str, cfht)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("ingested calexp ") for line in lines)
    assert "pointing=849375 (rule: pointing = visit)" in lines[0]
    assert "visit=849375 (IDNUM = EXPNUM = EXPID 30577512//36)" in lines[0]
    assert "ccd=12 (DETNAME = EXPID 30577512%36)" in lines[0]
    assert "filter='r.MP9601' (FilterLabel physical)" in lines[0]
    assert lines[0].endswith(f"[CFHT MegaPrime] <- {cfht[0]}")
    assert "ingested 2 calexp dataset(s)" in result.stderr
    expected = [DataId(truth_cfht(p)) for p in cfht]
    assert sorted((d for d, _ in _registered(repo).values()), key=str) == expected
    assert _repo_files(repo) == [
        "849375/r.MP9601/corr/CORR-0849375-012.fits",
        "850587/r.MP9601/corr/CORR-0850587-012.fits",
    ]
    with Butler(repo, writeable=False) as butler:  # Gen3 names find it; the file reads back
        exp = butler.get("calexp", exposure=850587, detector=12)
        assert exp.filter == "r.MP9601" and exp.image.shape == (4612, 2048)


def test_rerun_skips_and_reports(repo: str, cfht: list[Path]) -> None:
    assert runner.invoke(app, ["ingest", repo, "calexp", str(cfht[0])]).exit_code == 0
    before = _registered(repo)
    result = runner.invoke(app, ["ingest", repo, "calexp", *map(str, cfht)])
    assert result.exit_code == 0, result.output
    first, second = result.stdout.splitlines()
    assert first.startswith("skipped  calexp ") and first.endswith(
        f"{cfht[0]}: already ingested in run (root)"
    )
    assert "pointing=849375 (registry)" in first  # the registered dataset's pointing
    assert second.startswith("ingested calexp ")
    assert "ingested 1 calexp dataset(s), skipped 1 already ingested" in result.stderr
    after = _registered(repo)
    assert len(after) == 2 and set(before) < set(after)


def test_contradicting_data_id_is_one_line_error(repo: str, cfht: list[Path]) -> None:
    result = runner.invoke(app, ["ingest", repo, "calexp", str(cfht[0]), "-d", "visit=2000"])
    assert result.exit_code != 0 and isinstance(result.exception, DataIdError)
    assert str(result.exception) == (
        f"{cfht[0]}: the file says visit=849375 (IDNUM = EXPNUM = EXPID 30577512//36) but the "
        "data ID given says visit=2000; check the file or drop -d visit"
    )
    proc = subprocess.run(
        [sys.executable, "-c", "from repo_butler_cli.main import main; main()", "ingest", repo,
         "calexp", str(cfht[0]), "-d", "detector=13"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {cfht[0]}: the file says ccd=12 (DETNAME = EXPID 30577512%36) but the data ID "
        "given says ccd=13; check the file or drop -d ccd"
    ]
    assert _registered(repo) == {}


def test_band_is_checked_against_the_filter_label(repo: str, cfht: list[Path]) -> None:
    with Butler(repo) as butler:
        with pytest.raises(DataIdError, match=r"says band='r' \(FilterLabel band\) .* band='g'"):
            butler.ingest("calexp", [cfht[0]], data_id={"band": "g"})
        (ref,) = butler.ingest("calexp", [cfht[0]], data_id={"band": "r", "detector": 12})
        assert ref.data_id == DataId(truth_cfht(cfht[0]))


def _edit_primary(src: Path, dest: Path, **cards: Any) -> Path:
    """Copy a calexp with primary cards changed (``None`` deletes); pixels stay compressed."""
    with fits.open(src, disable_image_compression=True) as hdul:
        for key, value in cards.items():
            if value is None:
                del hdul[0].header[key]
            else:
                hdul[0].header[key] = value
        hdul.writeto(dest)
    return dest


def test_generic_rule_reads_the_archived_detector(tmp_path: Path, cfht: list[Path]) -> None:
    stripped = _edit_primary(
        cfht[0], tmp_path / "anon.fits.fz",
        INSTRUME=None, INSTRUMENT=None, DETNAME=None, EXPID=None, EXPNUM=None, OBSID=None,
    )  # fmt: skip
    found = data_id_from_exposure_file(
        io.BytesIO(stripped.read_bytes()), source="anon", dimensions=CALEXP_DIMS, known={}
    )
    truth = truth_cfht(cfht[0])
    assert found.rule == "LSST afw"
    assert found.values == {k: truth[k] for k in ("visit", "ccd", "filter")} | {"band": "r"}
    assert found.origins["ccd"] == "Detector id" and found.origins["visit"] == "IDNUM"
    assert found.defaults == {"pointing": truth["visit"]}


def test_header_contradicting_itself(repo: str, tmp_path: Path, cfht: list[Path]) -> None:
    bad = _edit_primary(cfht[0], tmp_path / "bad.fits.fz", IDNUM=849376)
    with Butler(repo) as butler, pytest.raises(FormatError) as info:
        butler.ingest("calexp", [bad])
    assert str(info.value).startswith(
        f"{bad}: its header contradicts itself: visit=849376 (IDNUM) but visit=849375 (EXPNUM)"
    )


def test_background_takes_the_calexp_data_id_from_the_registry(
    repo: str, cfht: list[Path], shared_data: Path
) -> None:
    assert runner.invoke(app, ["ingest", repo, "calexp", str(cfht[0])]).exit_code == 0
    bkgd = shared_data / "lsst-jointcal-extra" / "bkgd-849375-12.fits"
    args = ["ingest", repo, "calexpBackground", str(bkgd), "-d", "exposure=849375"]
    result = runner.invoke(app, [*args, "-d", "detector=12", "-f", "json"])
    assert result.exit_code == 0, result.output
    import json

    (row,) = json.loads(result.stdout)
    assert row["data_id"] == truth_cfht(cfht[0])
    assert row["origins"] == {
        "pointing": "registry", "filter": "registry", "visit": "given", "ccd": "given"
    }  # fmt: skip


# -- HSC -------------------------------------------------------------------------------------
def test_hsc_calexp_from_headers(repo: str, shared_data: Path) -> None:
    path = shared_data / "lsst-obs_base" / "calexp.fits"
    header = fits.getheader(path, 0)
    # independent truth: PROVENANCE.md says visit 904010, detector 1_42 (id 4), HSC-I; the
    # cards agree: EXPID = visit * 200 + ccd, DET-ID, the archived FilterLabel's physical filter
    assert divmod(header["EXPID"], 200) == (904010, 4) and header["DET-ID"] == 4
    assert archived(path, "FilterLabel")["physical"].strip() == "HSC-I"
    assert "POINTING" not in header  # the Gen2 rule: days since 2012-01-01 from MJD
    pointing = int(header["MJD"]) - HSC_POINTING_DAY0
    assert pointing == 56598 - 55927 == 671
    with Butler(repo) as butler:
        report = butler.ingest("calexp", [path], dry_run=True)
        assert report.files[0].status == "planned" and not butler.query_datasets("calexp")
        (ref,) = report = butler.ingest("calexp", [path])
    assert ref.data_id == DataId(pointing=671, filter="HSC-I", visit=904010, ccd=4)
    assert report.files[0].derived.rule == "HSC"
    assert report.files[0].derived.origins == {
        "pointing": "rule: pointing = int(MJD) - 55927",
        "filter": "FilterLabel physical",
        "visit": "EXP-ID = EXPID 180802004//200",
        "ccd": "DET-ID = EXPID 180802004%200",
    }


def test_simulated_calexps_in_our_format(repo: str, tmp_path: Path) -> None:
    """The simulator writes EXPID = visit * 200 + ccd and an HSC filter: the HSC rule reads
    them; a Gen2 path still gives the pointing (a rule default yields to it)."""
    exp = Exposure(*(np.zeros((4, 5), np.float32),) * 3, filter="HSC-I", id=1000 * 200 + 1)
    loose = tmp_path / "sim.fits"
    write_exposure(exp, loose)
    gen2 = tmp_path / "in" / "01116" / "HSC-I" / "corr" / "CORR-0001000-001.fits"
    gen2.parent.mkdir(parents=True)
    exp.metadata["copy"] = 2  # other bytes, same data ID but for the pointing
    write_exposure(exp, gen2)
    with Butler(repo) as butler:
        with pytest.raises(DataIdError) as info:
            butler.ingest("calexp", [loose], data_id={"visit": 2000})
        assert str(info.value) == (
            f"{loose}: the file says visit=1000 (EXPID 200001//200) but the data ID given says "
            "visit=2000; check the file or drop -d visit"
        )
        (a,) = butler.ingest("calexp", [loose])
        (b,) = butler.ingest("calexp", [gen2])
    assert a.data_id == DataId(pointing=1000, filter="HSC-I", visit=1000, ccd=1)
    assert b.data_id == DataId(pointing=1116, filter="HSC-I", visit=1000, ccd=1)


# -- files that lack keys --------------------------------------------------------------------
def test_missing_keys_fail_the_whole_batch(repo: str, cfht: list[Path], shared_data: Path) -> None:
    small = shared_data / "lsst-afw" / "HSC-0908120-056-small.fits"
    assert fits.getheader(small, 0)["FILTER"] == "_unknown_"  # and no visit or detector card
    result = runner.invoke(app, ["ingest", repo, "calexp", str(cfht[0]), str(small), str(cfht[1])])
    assert result.exit_code != 0 and isinstance(result.exception, DataIdError)
    text = str(result.exception)
    assert text.startswith(f"{small}: cannot derive a full calexp data ID: ")
    assert "['pointing', 'filter', 'visit', 'ccd'] missing" in text
    assert "visit: looked for IDNUM card, OBSID card" in text
    assert "-d pointing=VALUE -d filter=VALUE -d visit=VALUE -d ccd=VALUE" in text
    assert _registered(repo) == {} and _repo_files(repo) == []  # nothing half-registered


def test_phosim_calexp_needs_only_the_ccd(repo: str, shared_data: Path) -> None:
    path = shared_data / "lsst-meas_modelfit" / "calexp.fits"
    header = fits.getheader(path, 0)
    assert header["OBSID"] == 100 and header["FILTER"].strip() == "i"
    with Butler(repo) as butler:
        with pytest.raises(DataIdError, match=r"\['ccd'\] missing; the file \(rule 'LSST afw'\)"):
            butler.ingest("calexp", [path])
        (ref,) = butler.ingest("calexp", [path], data_id={"detector": 22})
    assert ref.data_id == DataId(pointing=100, filter="i", visit=100, ccd=22)


def test_not_a_fits_file(repo: str, tmp_path: Path) -> None:
    junk = tmp_path / "junk.fits"
    junk.write_text("not fits at all" * 10)
    with Butler(repo) as butler, pytest.raises(FormatError, match=r"junk\.fits: not a FITS file"):
        butler.ingest("calexp", [junk])


def test_the_registry_never_supplies_a_key_the_given_ones_do_not_determine(
    repo: str, shared_data: Path
) -> None:
    """A registered visit fixes its filter and pointing (``determined_by``), never a CCD: a
    background given only its visit is refused, not filed under the registered calexp's CCD."""
    calexp = shared_data / "lsst-obs_base" / "calexp.fits"  # visit 904010, ccd 4
    assert runner.invoke(app, ["ingest", repo, "calexp", str(calexp)]).exit_code == 0
    bkgd = shared_data / "lsst-jointcal-extra" / "bkgd-849375-12.fits"
    result = runner.invoke(
        app, ["ingest", repo, "calexpBackground", str(bkgd), "-d", "visit=904010"]
    )
    assert result.exit_code == 1  # the console script prints this error as one line
    assert "['ccd'] missing" in str(result.exception) and "-d ccd=VALUE" in str(result.exception)
    with Butler(repo) as butler:
        assert butler.query_datasets("calexpBackground") == []


def test_cli_dry_run_records_nothing_not_even_a_new_rerun(repo: str, cfht: list[Path]) -> None:
    before = sorted(p.relative_to(repo) for p in Path(repo).rglob("*") if "registry" not in p.name)
    result = runner.invoke(
        app, ["ingest", repo, "calexp", *map(str, cfht), "--rerun", "trial", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "dry run: would ingest 2 calexp" in result.stderr
    assert "rerun 'trial' does not exist yet" in result.stderr
    after = sorted(p.relative_to(repo) for p in Path(repo).rglob("*") if "registry" not in p.name)
    assert after == before and not (Path(repo) / "rerun").exists()
    with Butler(repo, writeable=False) as butler:
        assert "trial" not in butler.registry.runs()
