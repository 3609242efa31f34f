"""Real visitSummary files (afw ExposureCatalog) read into VisitSummaryCatalog: the 103-row
drp_tasks file and the CFHT 1-row files, checked against the values the pipeline stored beside
each row (corners, centre, zero point) and against the calexps they summarise."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from repo_butler.formatters import get_formatter
from warping.ast_wcs import AstSkyWcs
from warping.errors import FormatError
from warping.formats._common import hdulist_to_bytes
from warping.formats.afw_visit_summary import read_visit_summary, read_visit_summary_file
from warping.formats.calib_fits import read_skywcs
from warping.geom import Box2I
from warping.photocalib import AB_REFERENCE_FLUX_NJY
from warping.visit_summary import MissingVisitSummaryRowError, VisitSummaryCatalog

pytestmark = pytest.mark.realdata

HSC = "lsst-drp_tasks/visitSummary_1176.fits"
CFHT = "lsst-jointcal-cfht_minimal"


@pytest.fixture(scope="module")
def hsc(shared_data: Path) -> VisitSummaryCatalog:
    data = (shared_data / HSC).read_bytes()
    return get_formatter("visit_summary").from_bytes(data, source=HSC)  # type: ignore[no-any-return]


def _edge_corners(box: Box2I) -> tuple[np.ndarray, np.ndarray]:
    """Box2D(bbox) corners in afw's order: pixel edges, counter-clockwise from (x0, y0)."""
    x0, x1, y0, y1 = box.x0 - 0.5, box.x1 + 0.5, box.y0 - 0.5, box.y1 + 0.5
    return np.array([x0, x1, x1, x0]), np.array([y0, y0, y1, y1])


def _sep_mas(ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray) -> np.ndarray:
    return np.hypot((ra1 - ra2) * np.cos(np.radians(dec1)), dec1 - dec2) * 3.6e6


def test_hsc_visit_summary_rows(hsc: VisitSummaryCatalog) -> None:
    assert len(hsc) == 103 and hsc.visit == 1176
    detectors = [row.detector for row in hsc]
    assert detectors[:10] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10] and 9 not in hsc
    with pytest.raises(MissingVisitSummaryRowError, match="no row for detector 9"):
        hsc.row(9)
    worst = 0.0
    for row in hsc:
        assert row.bbox == Box2I(0, 0, 2048, 4176)
        assert isinstance(row.wcs, AstSkyWcs)
        ra, dec = row.wcs.pixel_to_world_values(*_edge_corners(row.bbox))
        worst = max(worst, float(_sep_mas(ra, dec, row.ra_corners, row.dec_corners).max()))
        cx, cy = (row.bbox.x0 + row.bbox.x1) / 2, (row.bbox.y0 + row.bbox.y1) / 2
        rc, dc = row.wcs.pixel_to_world_values(cx, cy)
        assert _sep_mas(rc, dc, row.summary["ra"], row.summary["decl"]) < 1e-6
        # zeroPoint column (float32) = AB zero point of the PhotoCalib's mean
        zp = 2.5 * np.log10(AB_REFERENCE_FLUX_NJY / row.photo_calib.calibration_mean)
        assert zp == pytest.approx(row.summary["zeroPoint"], abs=1e-5)
        assert row.psf is None and row.summary["band"] == "z"
    assert worst < 1e-6  # reference: 2.8e-14 deg (1e-7 mas)
    row = hsc.row(0)
    assert row.photo_calib.calibration_mean == pytest.approx(
        AB_REFERENCE_FLUX_NJY / 10 ** (32.223064 / 2.5), rel=1e-6
    )
    with pytest.raises(MissingVisitSummaryRowError, match="stores no psf"):
        row.component("psf", source=HSC)
    assert row.component("wcs") is row.wcs


@pytest.mark.parametrize("visit", [849375, 850587])
def test_cfht_visit_summaries_match_their_calexps(shared_data: Path, visit: int) -> None:
    cat = read_visit_summary_file(str(shared_data / CFHT / f"visitSummary-{visit}.fits"))
    assert len(cat) == 1 and cat.visit == visit
    row = cat.row(12)
    assert row.bbox == Box2I(0, 0, 2048, 4612)
    ra, dec = row.wcs.pixel_to_world_values(*_edge_corners(row.bbox))
    assert _sep_mas(ra, dec, row.ra_corners, row.dec_corners).max() < 1e-6
    calexp_wcs = read_skywcs(shared_data / CFHT / f"calexp-{visit}-12.fits.fz")
    assert calexp_wcs == row.wcs  # the same AST model, bit for bit
    assert row.summary["zeroPoint"] == pytest.approx(
        2.5 * np.log10(AB_REFERENCE_FLUX_NJY / row.photo_calib.calibration_mean), abs=1e-5
    )
    if visit == 849375:
        assert row.photo_calib.calibration_mean == pytest.approx(0.5432242, rel=1e-7)


def test_formatter_refuses_to_write(hsc: VisitSummaryCatalog) -> None:
    with pytest.raises(FormatError, match="only reads"):
        get_formatter("visit_summary").to_bytes(hsc)


def _edited(shared_data: Path, edit: object) -> fits.HDUList:
    hdul = fits.open(io.BytesIO((shared_data / HSC).read_bytes()))
    edit(hdul)  # type: ignore[operator]
    return fits.open(io.BytesIO(hdulist_to_bytes(hdul)))


def test_old_calib_column_name(shared_data: Path) -> None:
    def rename(hdul: fits.HDUList) -> None:
        hdul[1].columns.change_name("photoCalib", "calib")
        hdul[1].header["EXPTABLE_VER"] = 4

    cat = read_visit_summary(_edited(shared_data, rename), "v4")
    assert cat.row(0).photo_calib.calibration_mean == pytest.approx(0.46856985, rel=1e-7)


def test_an_unreadable_component_skips_only_its_row(shared_data: Path) -> None:
    def point_wcs_and_psf_at_photocalib(hdul: fits.HDUList) -> None:
        data = hdul[1].data
        data["wcs"][1] = data["photoCalib"][1]
        data["psf"][2] = data["photoCalib"][2]

    cat = read_visit_summary(_edited(shared_data, point_wcs_and_psf_at_photocalib), "edited")
    assert len(cat) == 103
    bad = cat.row(1)
    assert bad.wcs is None and "not a 'SkyWcs'" in bad.unreadable["wcs"]
    with pytest.raises(MissingVisitSummaryRowError, match="wcs of detector 1 cannot be used"):
        bad.component("wcs", source="edited")
    with pytest.raises(MissingVisitSummaryRowError, match="PSF class 'PhotoCalib'"):
        cat.row(2).component("psf")
    assert isinstance(cat.row(0).wcs, AstSkyWcs) and not cat.row(0).unreadable


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("lsst-jointcal-extra/jointcal_wcs-0023900-037.fits", "not an afw visitSummary"),
        ("lsst-obs_base/calexp.fits", "not an afw visitSummary"),
    ],
)
def test_other_files_are_refused(shared_data: Path, path: str, message: str) -> None:
    with pytest.raises(FormatError, match=message) as info:
        get_formatter("visit_summary").from_bytes((shared_data / path).read_bytes(), source=path)
    assert path in str(info.value)


def test_repeated_detector_is_refused(shared_data: Path) -> None:
    def duplicate(hdul: fits.HDUList) -> None:
        hdul[1].data["id"][1] = hdul[1].data["id"][0]

    with pytest.raises(FormatError, match="two rows for detector 0"):
        read_visit_summary(_edited(shared_data, duplicate), "dup")


def test_ingest_reads_visit_and_filter_from_the_catalog(shared_data: Path, tmp_path: Path) -> None:
    """``rb ingest REPO visitSummary FILES`` needs no -d: the rows' visit and physical_filter
    columns (read here independently with astropy) give the data ID; a -d contradicting them,
    or a file that is no catalog, is an error naming the file, and nothing is registered."""
    from repo_butler import Butler
    from repo_butler.errors import DataIdError

    files = [shared_data / HSC, *sorted((shared_data / CFHT).glob("visitSummary-*.fits"))]
    expected = []
    for f in files:
        rows = fits.getdata(f, 1)
        assert len(set(rows["visit"])) == 1 and len(set(rows["physical_filter"])) == 1
        expected.append((int(rows["visit"][0]), str(rows["physical_filter"][0]).strip()))
    repo = tmp_path / "repo"
    Butler.create(str(repo))
    with Butler(str(repo)) as butler:
        with pytest.raises(DataIdError, match=r"visitSummary_1176\.fits: the file says visit=1176"):
            butler.ingest("visitSummary", [files[0]], transfer="copy", data_id={"visit": 1177})
        with pytest.raises(FormatError, match=r"calexp-849375-12.*not a visitSummary"):
            butler.ingest(
                "visitSummary", [files[1], shared_data / CFHT / "calexp-849375-12.fits.fz"],
                transfer="copy",
            )  # fmt: skip
        assert butler.query_datasets("visitSummary") == []
        butler.ingest("visitSummary", files, transfer="copy")
        got = sorted(
            (r.data_id["visit"], r.data_id["filter"]) for r in butler.query_datasets("visitSummary")
        )
        assert (
            got == sorted(expected) == [(1176, "HSC-Z"), (849375, "r.MP9601"), (850587, "r.MP9601")]
        )
        assert butler.get("visitSummary", visit=1176, filter="HSC-Z").visit == 1176
