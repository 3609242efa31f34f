"""Valid polygons and aperture corrections of real LSST files, carried into a warp's inputs table
(issue #22, items 5 and 6).

Truth comes from the files themselves, read here with astropy alone: the archive index, the
``Polygon`` vertex rows, the ``ApCorrMap`` rows and each ``ChebyshevBoundedField`` evaluated with
numpy's ``chebval2d`` after the formula of ``lsst-real-products.md`` §4. Skips cleanly without
``../shared/data``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from numpy.polynomial import chebyshev

from repo_butler import DataId
from warping.apcorr import ApCorrMap
from warping.coadd_inputs import CcdRecord, CoaddInputs, VisitRecord
from warping.exposure import Exposure
from warping.formats.afw_inputs import read_archived_ap_corr_map
from warping.formats.exposure_fits import ExposureFormatter
from warping.formats.lsst_afw import LsstArchive, read_lsst_exposure
from warping.geom import Box2I
from warping.photocalib import ChebyshevBoundedField
from warping.polygon import ValidPolygon
from warping.task.inputs import CcdInput, InMemoryHandle
from warping.task.make_warp import MakeWarpTask, SkyInfo

OBS_BASE = "lsst-obs_base/calexp.fits"
CFHT = "lsst-jointcal-cfht_minimal/calexp-849375-12.fits.fz"
VISIT_SUMMARY = "lsst-drp_tasks/visitSummary_1176.fits"


def _text(v: Any) -> str:
    return (v.decode() if isinstance(v, bytes) else str(v)).strip()


class RawArchive:
    """An afw archive read with astropy only (index rows by id; data HDU = index + cat.archive)."""

    def __init__(self, hdul: fits.HDUList) -> None:
        self.hdul = hdul
        self.index = next(
            i for i, h in enumerate(hdul) if h.header.get("EXTTYPE") == "ARCHIVE_INDEX"
        )
        self.rows = hdul[self.index].data

    def rows_of(self, obj_id: int) -> Any:
        (r,) = [r for r in self.rows if int(r["id"]) == obj_id]  # one catalog per object here
        data = self.hdul[self.index + int(r["cat.archive"])].data
        return data[int(r["row0"]) : int(r["row0"]) + int(r["nrows"])]

    def evaluate_field(self, obj_id: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        (row,) = self.rows_of(obj_id)
        nx = int(row["order_x"]) + 1
        c = np.atleast_1d(np.asarray(row["coefficients"], dtype=float)).reshape(-1, nx)
        x0, y0, x1, y1 = (
            int(row[k]) for k in ("bbox_min_x", "bbox_min_y", "bbox_max_x", "bbox_max_y")
        )
        xp = 2.0 * (x - (x0 + x1) / 2.0) / (x1 - x0 + 1)
        yp = 2.0 * (y - (y0 + y1) / 2.0) / (y1 - y0 + 1)
        return np.asarray(chebyshev.chebval2d(yp, xp, c))

    def ap_corr_truth(self, obj_id: int, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        return {
            _text(r["name"]): self.evaluate_field(int(r["field"]), x, y)
            for r in self.rows_of(obj_id)
        }


POINTS_X = np.array([0.0, 17.3, 1023.5, 2047.0, 600.25])
POINTS_Y = np.array([0.0, 4000.0, 2087.5, 11.0, 3333.75])


def _round_trip_inputs(inputs: CoaddInputs) -> CoaddInputs:
    warp = Exposure.empty(Box2I(0, 0, 4, 4))
    warp.coadd_inputs = inputs
    fmt = ExposureFormatter()
    return fmt.from_bytes(fmt.to_bytes(warp), source="memory").coadd_inputs


@pytest.mark.parametrize("name", [OBS_BASE, CFHT])
def test_ap_corr_map_round_trips_and_matches_the_file(shared_data: Path, name: str) -> None:
    path = shared_data / name
    with fits.open(path) as hdul:
        ap_id = int(hdul[0].header["ARCHIVE_ID_AP_CORR_MAP"])
        raw = RawArchive(hdul)
        truth = raw.ap_corr_truth(ap_id, POINTS_X, POINTS_Y)
        apc = read_archived_ap_corr_map(LsstArchive(hdul, str(path)), ap_id)
    assert list(apc) == list(truth)  # every name, in the file's order
    for key, values in truth.items():
        np.testing.assert_allclose(
            apc.evaluate(key, POINTS_X, POINTS_Y), values, rtol=1e-14, atol=0
        )
    row = CcdRecord(1, 12, 1, 5, 1.0, "r", Box2I(0, 0, 2048, 4612), None, ap_corr_map=apc)
    back = _round_trip_inputs(CoaddInputs([VisitRecord(1, 5)], [row])).ccds[0].ap_corr_map
    assert isinstance(back, ApCorrMap) and back == apc
    for key in truth:  # bit-exact after the round trip
        assert np.array_equal(
            back.evaluate(key, POINTS_X, POINTS_Y), apc.evaluate(key, POINTS_X, POINTS_Y)
        )


def test_visit_summary_polygons_match_the_rows(shared_data: Path) -> None:
    from warping.formats.afw_visit_summary import read_visit_summary_file

    path = shared_data / VISIT_SUMMARY
    catalog = read_visit_summary_file(str(path))
    with fits.open(path) as hdul:
        raw = RawArchive(hdul)
        table = hdul[1].data
        for r in table[:5]:
            rows = raw.rows_of(int(r["validPolygon"]))
            expected = np.column_stack([rows["vertices_x"], rows["vertices_y"]])
            got = catalog.row(int(r["id"])).valid_polygon
            assert got is not None and np.array_equal(got.vertices, expected)
    assert all(row.ap_corr_map is None for row in catalog)  # apCorrMap id 0 in every row


def _sky_over(calexp: Exposure) -> SkyInfo:
    """A 0.2"-pixel TAN tract WCS and a box over the calexp's centre."""
    box = calexp.bbox
    ra, dec = calexp.wcs.pixel_to_world_values(
        np.array([box.x0 + box.width / 2]), np.array([box.y0 + box.height / 2])
    )
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [float(ra[0]), float(dec[0])]
    w.wcs.crpix = [61.0, 61.0]
    w.wcs.cd = np.array([[-0.2, 0.0], [0.0, 0.2]]) / 3600.0
    return SkyInfo(0, "0,0", w, Box2I(0, 0, 120, 120))


def test_warp_of_the_real_calexp_carries_its_polygon_and_ap_corr_map(shared_data: Path) -> None:
    path = shared_data / OBS_BASE
    with fits.open(path) as hdul:
        calexp = read_lsst_exposure(hdul, str(path))
        raw = RawArchive(hdul)
        poly_rows = raw.rows_of(int(hdul[0].header["ARCHIVE_ID_VALID_POLYGON"]))
        truth = raw.ap_corr_truth(int(hdul[0].header["ARCHIVE_ID_AP_CORR_MAP"]), POINTS_X, POINTS_Y)
    expected_poly = np.column_stack([poly_rows["vertices_x"], poly_rows["vertices_y"]])
    inputs = [CcdInput(DataId({"visit": 903334, "ccd": 22}), InMemoryHandle(calexp))]
    res = MakeWarpTask().run(inputs, _sky_over(calexp), 903334)
    warp = res.exposures["direct"]
    assert warp is not None, [o.skipped for o in res.ccds]
    fmt = ExposureFormatter()
    back = fmt.from_bytes(fmt.to_bytes(warp), source="memory")
    (row,) = back.coadd_inputs.ccds
    assert row.id == 903334 * 200 + 22
    assert row.valid_polygon == ValidPolygon(expected_poly)
    assert row.ap_corr_map is not None and list(row.ap_corr_map) == list(truth)
    for key, values in truth.items():
        np.testing.assert_allclose(
            row.ap_corr_map.evaluate(key, POINTS_X, POINTS_Y), values, rtol=1e-14, atol=0
        )


def _ap_corr_maps() -> object:
    from hypothesis import strategies as st

    coeffs = st.builds(
        lambda ny, nx, seed: np.random.default_rng(seed).normal(size=(ny, nx)),
        st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**32 - 1),
    )  # fmt: skip
    boxes = st.builds(
        lambda x0, y0, w, h: Box2I(x0, y0, w, h),
        st.integers(-50, 50), st.integers(-50, 50), st.integers(1, 5000), st.integers(1, 5000),
    )  # fmt: skip
    names = st.text("abcdefghijklmnopqrstuvwxyz_ABCXYZ0123456789", min_size=1, max_size=60)
    fields = st.dictionaries(names, st.builds(ChebyshevBoundedField, boxes, coeffs), max_size=6)
    return st.one_of(st.none(), st.builds(ApCorrMap, fields))


def test_inputs_table_round_trips_random_ap_corr_maps_exactly() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=30, deadline=None)
    @given(maps=st.lists(_ap_corr_maps(), max_size=4))
    def check(maps: list[ApCorrMap | None]) -> None:
        rows = [
            CcdRecord(i, i, 1, 3, 1.0, "r", Box2I(0, 0, 10, 10), None, ap_corr_map=m)
            for i, m in enumerate(maps)
        ]
        back = _round_trip_inputs(CoaddInputs([VisitRecord(1, 3)], rows)).ccds
        assert [r.ap_corr_map for r in back] == maps
        for r, m in zip(back, maps, strict=True):
            for name in m or {}:  # coefficients bit-exact, names in order
                assert r.ap_corr_map[name].coefficients.tobytes() == m[name].coefficients.tobytes()

    check()
