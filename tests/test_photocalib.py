"""Photometric calibration: AB conversions, Chebyshev fields, calibrate_image, persistence."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from warping.errors import FormatError
from warping.formats.calib_fits import PhotoCalibFormatter, read_photocalib
from warping.geom import Box2I
from warping.photocalib import (
    AB_REFERENCE_FLUX_NJY,
    ChebyshevBoundedField,
    PhotoCalib,
    ab_mag_to_njy,
    njy_to_ab_mag,
)


def test_ab_zero_points() -> None:
    assert pytest.approx(3630.78e9, rel=1e-5) == AB_REFERENCE_FLUX_NJY
    assert njy_to_ab_mag(1.0) == pytest.approx(31.4, abs=1e-4)
    assert njy_to_ab_mag(AB_REFERENCE_FLUX_NJY) == pytest.approx(0.0, abs=1e-12)
    mags = np.array([15.0, 22.5, 31.4])
    np.testing.assert_allclose(njy_to_ab_mag(ab_mag_to_njy(mags)), mags, rtol=1e-14)


def test_chebyshev_evaluates_the_documented_series() -> None:
    bbox = Box2I(10, 20, 101, 51)  # continuous extent x 9.5..110.5, y 19.5..70.5
    coeffs = np.array([[2.0, 0.5, 0.1], [0.3, 0.0, 0.0]])  # c[j, i]: T_j(y') T_i(x')
    f = ChebyshevBoundedField(bbox, coeffs)
    x = np.array([9.5, 60.0, 110.5, 33.3])
    y = np.array([19.5, 45.0, 70.5, 60.1])
    xs = (2 * x - (9.5 + 110.5)) / 101.0
    ys = (2 * y - (19.5 + 70.5)) / 51.0
    expect = 2.0 + 0.5 * xs + 0.1 * (2 * xs**2 - 1) + 0.3 * ys
    np.testing.assert_allclose(f.evaluate(x, y), expect, rtol=1e-14)
    grid = f.evaluate_grid(bbox)
    yy, xx = np.mgrid[20:71, 10:111]
    np.testing.assert_allclose(grid, f.evaluate(xx, yy), rtol=1e-14)


def test_chebyshev_mean_is_the_integral_mean() -> None:
    bbox = Box2I(0, 0, 400, 200)
    f = ChebyshevBoundedField(bbox, np.array([[1.0, 0.2, 0.3], [0.1, 0.05, 0.0], [0.2, 0.0, 0.0]]))
    # dense midpoint rule over the continuous extent
    n = 2000
    xs = -0.5 + (np.arange(n) + 0.5) * 400 / n
    ys = -0.5 + (np.arange(n) + 0.5) * 200 / n
    numeric = f.evaluate(xs[None, :], ys[:, None]).mean()
    assert f.mean() == pytest.approx(numeric, rel=1e-6)
    # T2 has mean -1/3 over [-1, 1]
    assert ChebyshevBoundedField(bbox, np.array([[0.0, 0.0, 1.0]])).mean() == pytest.approx(-1 / 3)


def test_calibrate_image_uses_parent_positions() -> None:
    bbox = Box2I(0, 0, 200, 100)
    field = ChebyshevBoundedField(bbox, np.array([[50.0, 5.0], [2.0, 0.0]]))
    pc = PhotoCalib(None, 0.1, field)
    assert pc.calibration_mean == pytest.approx(50.0)
    image = np.full((10, 20), 3.0, dtype=np.float32)
    variance = np.full((10, 20), 4.0, dtype=np.float32)
    xy0 = (150, 60)
    img2, var2 = pc.calibrate_image(image, variance, xy0)
    yy, xx = np.mgrid[60:70, 150:170]
    c = field.evaluate(xx, yy)
    np.testing.assert_allclose(img2, 3.0 * c, rtol=1e-6)
    np.testing.assert_allclose(var2, 4.0 * c * c, rtol=1e-6)
    assert img2.dtype == np.float32 and var2.dtype == np.float32
    assert np.all(image == 3.0)  # input unchanged


def test_constant_calibration_conversions() -> None:
    pc = PhotoCalib.from_zero_point(27.0)
    assert pc.zero_point == pytest.approx(27.0, abs=1e-12)
    assert pc.instflux_to_ab_mag(1.0) == pytest.approx(27.0, abs=1e-12)
    assert pc.instflux_to_njy(100.0) == pytest.approx(100.0 * pc.calibration_mean)
    assert pc.njy_to_instflux(pc.instflux_to_njy(123.0)) == pytest.approx(123.0)
    assert pc.instflux_at_zero_magnitude == pytest.approx(10 ** (0.4 * 27.0), rel=1e-12)
    assert np.all(pc.evaluate(np.arange(3), np.arange(3)) == pc.calibration_mean)


def test_inconsistent_mean_and_field_is_rejected() -> None:
    field = ChebyshevBoundedField(Box2I(0, 0, 10, 10), np.array([[2.0]]))
    with pytest.raises(ValueError, match="disagrees with the field mean"):
        PhotoCalib(3.0, 0.0, field)
    with pytest.raises(ValueError, match="> 0"):
        PhotoCalib(-1.0)
    assert PhotoCalib(2.0, 0.0, field).calibration_mean == 2.0


@pytest.mark.parametrize(
    "pc",
    [
        PhotoCalib(1.234567890123, 0.01),
        PhotoCalib(
            None, 0.02, ChebyshevBoundedField(Box2I(0, 0, 64, 32), np.array([[1.0 / 3, 0.01]]))
        ),
    ],
)
def test_fits_round_trip_is_exact(pc: PhotoCalib) -> None:
    fmt = PhotoCalibFormatter()
    back = fmt.from_bytes(fmt.to_bytes(pc), source="mem://pc.fits")
    assert back == pc
    assert back.calibration_mean == pc.calibration_mean


def test_reads_lsst_photocalib_archive(shared_data: Path) -> None:
    pc = read_photocalib(shared_data / "lsst-afw" / "photoCalib-version1.fits")
    assert pc.calibration_mean == 123.0
    assert pc.calibration_err == 45.0
    assert pc.is_constant


def test_catalog_of_many_photocalibs_is_refused(shared_data: Path) -> None:
    path = shared_data / "lsst-drp_tasks" / "visitSummary_1176.fits"
    match = r"visitSummary_1176\.fits: afw archive holds 103 PhotoCalib"
    with pytest.raises(FormatError, match=match):
        read_photocalib(path)
    one = read_photocalib(shared_data / "lsst-jointcal-cfht_minimal" / "visitSummary-849375.fits")
    assert one.calibration_mean == pytest.approx(0.54322421, rel=1e-6)


def test_garbage_is_a_format_error() -> None:
    with pytest.raises(FormatError, match=r"mem://x\.fits.*not a FITS file"):
        PhotoCalibFormatter().from_bytes(b"hello", source="mem://x.fits")
    assert math.isfinite(PhotoCalib(1.0).zero_point)
