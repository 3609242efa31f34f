"""afw background elements and BackgroundList files: both branches on the real CFHT files,
undersampling and NaN rules, round trips, skyCorr signs and bad input."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from numpy.polynomial import chebyshev as npcheb
from scipy.interpolate import Akima1DInterpolator, CubicSpline

from warping.background import BackgroundComponent, BackgroundList, sky_correction
from warping.background_afw import (
    AfwBackground,
    ApproxControl,
    BackgroundModelError,
)
from warping.background_interp import InterpStyle, UndersampleStyle
from warping.errors import FormatError, WarpingError
from warping.formats.calib_fits import BackgroundFormatter, background_from_bytes
from warping.geom import Box2I

FILES = ("bkgd-849375-12.fits", "bkgd-850587-12.fits")
FMT = BackgroundFormatter()


def real(shared_data: Path, name: str) -> BackgroundList:
    path = shared_data / "lsst-jointcal-extra" / name
    return background_from_bytes(path.read_bytes(), str(path))


def element(values, bbox=Box2I(0, 0, 300, 200), style=InterpStyle.AKIMA_SPLINE, **kw):  # type: ignore[no-untyped-def]
    v = np.asarray(values, dtype=np.float32)
    return AfwBackground(
        bbox, v, np.zeros(v.shape, np.uint16), np.full(v.shape, 0.3, np.float32), style, **kw
    )


# -- the real files ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", FILES)
def test_real_file_is_read_with_its_settings(shared_data: Path, name: str) -> None:
    bl = real(shared_data, name)
    assert len(bl) == 4
    for e in bl:
        assert isinstance(e, AfwBackground)
        assert e.bbox == Box2I(0, 0, 2048, 4612) and e.values.shape == (37, 17)
        assert e.interp_style == InterpStyle.NATURAL_SPLINE
        assert e.undersample_style == UndersampleStyle.REDUCE_INTERP_ORDER
        assert e.approx == ApproxControl(0, 6, 6, True)
    xc, yc = bl[0].bin_centres
    np.testing.assert_array_equal(xc[[0, 1, 2, -1]], [59.5, 180.0, 300.5, 1987.5])
    np.testing.assert_array_equal(yc[[0, 1, 2, -1]], [62.0, 186.5, 311.0, 4549.0])


@pytest.mark.parametrize("name", FILES)
def test_real_file_chebyshev_branch_is_numpys_weighted_fit(shared_data: Path, name: str) -> None:
    bl = real(shared_data, name)
    px = np.array([0.0, 511.0, 1023.0, 2047.0])
    py = np.array([0.0, 2305.0, 4611.0])
    for e in bl:
        xc, yc = e.local_centres
        sx, sy = (xc - 1023.5) * 2 / 2048, (yc - 2305.5) * 2 / 4612
        xx, yy = np.meshgrid(sx, sy)
        vander = npcheb.chebvander2d(xx.ravel(), yy.ravel(), [6, 6])
        keep = [p * 7 + q for p in range(7) for q in range(7) if p + q <= 6]
        # weight 1/error, the reciprocal taken in float32 as afw takes it of its float32 plane
        sw = np.sqrt((np.float32(1.0) / e.errors).astype(float).ravel())
        sol = np.linalg.lstsq(
            vander[:, keep] * sw[:, None], e.values.astype(float).ravel() * sw, rcond=None
        )[0]
        c = np.zeros((7, 7))
        for k, col in enumerate(keep):
            c[col // 7, col % 7] = sol[k]
        want = npcheb.chebgrid2d((px - 1023.5) * 2 / 2048, (py - 2305.5) * 2 / 4612, c).T
        np.testing.assert_allclose(e.evaluate(px, py), want, rtol=1e-9, atol=1e-9)
        img = e.get_image()
        np.testing.assert_allclose(
            img[np.ix_(py.astype(int), px.astype(int))], want, rtol=0, atol=3e-4
        )


def test_real_file_sum_and_the_wrong_branch(shared_data: Path) -> None:
    bl = real(shared_data, FILES[0])
    img = bl.get_image()
    assert img.dtype == np.float32 and img.shape == (4612, 2048)
    # the reference's independent reimplementation of the same fit (lsst-real-products.md §1)
    np.testing.assert_allclose(
        [img[0, 0], img[2305, 1023], img[4611, 2047]], [1216.00, 1222.55, 1244.72], atol=0.01
    )
    interp = dataclasses.replace(bl[0], approx=ApproxControl(-1, 6, 6, True))
    assert abs(interp.get_image()[4611, 2047] - bl[0].get_image()[4611, 2047]) > 20


@pytest.mark.parametrize("name", FILES)
def test_real_file_interpolation_branch_hits_the_bins_at_their_centres(
    shared_data: Path, name: str
) -> None:
    for e in real(shared_data, name):
        interp = dataclasses.replace(e, approx=ApproxControl(-1, 6, 6, True))
        xc, yc = interp.bin_centres  # half-integer positions: evaluated off the pixel grid
        np.testing.assert_allclose(interp.evaluate(xc, yc), e.values, rtol=1e-12, atol=1e-9)
        # and at integer pixels inside the centres it is the natural spline in y, then in x
        px = np.array([60.0, 700.0, 1987.0])
        py = np.array([62.0, 1000.0, 4549.0])
        cols = CubicSpline(yc, e.values.astype(float), axis=0, bc_type="natural")(py)
        want = CubicSpline(xc, cols, axis=1, bc_type="natural")(px)
        np.testing.assert_allclose(interp.evaluate(px, py), want, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("name", FILES)
def test_real_file_round_trip_is_exact(shared_data: Path, name: str) -> None:
    bl = real(shared_data, name)
    data = FMT.to_bytes(bl)
    back = FMT.from_bytes(data, source="mem://bkgd.fits")
    assert back == bl
    with fits.open(shared_data / "lsst-jointcal-extra" / name) as orig:
        again = fits.open(io.BytesIO(data))
        assert len(again) == len(orig) == 12
        for a, b in zip(orig, again, strict=True):
            np.testing.assert_array_equal(a.data, b.data)
            assert a.data.dtype == b.data.dtype
            for key in (
                "INTERPSTYLE",
                "UNDERSAMPLESTYLE",
                "APPROXSTYLE",
                "APPROXORDERX",
                "APPROXORDERY",
                "APPROXWEIGHTING",
                "BKGD_X0",
                "BKGD_WIDTH",
            ):
                assert a.header[key] == b.header[key]
        assert [k for k in again[1].header if k.startswith("MP_")] == [
            k for k in orig[1].header if k.startswith("MP_")
        ]
    np.testing.assert_array_equal(back.get_image(), bl.get_image())


# -- rules on synthetic grids ------------------------------------------------------------------
def test_interpolation_runs_along_y_then_x() -> None:
    rng = np.random.default_rng(5)
    e = element(500 + rng.normal(0, 4, (7, 9)))
    xc, yc = e.bin_centres
    px = np.linspace(xc[0], xc[-1], 13)
    py = np.linspace(yc[0], yc[-1], 11)
    cols = Akima1DInterpolator(yc, e.values.astype(float), axis=0)(py)
    want = Akima1DInterpolator(xc, cols, axis=1)(px)  # Akima is not linear: order matters
    np.testing.assert_allclose(e.evaluate(px, py), want, atol=1e-9)
    other_order = Akima1DInterpolator(
        yc, Akima1DInterpolator(xc, e.values.astype(float), axis=1)(px), axis=0
    )(py)
    assert np.abs(other_order - want).max() > 1e-6


def test_undersampled_grids_follow_the_undersample_style() -> None:
    vals = np.add.outer(np.linspace(0, 40, 20), [1.0, 5.0, 2.0, 7.0])  # 20 rows, 4 columns
    reduced = element(vals, style=InterpStyle.AKIMA_SPLINE)
    cubic = element(vals, style=InterpStyle.CUBIC_SPLINE)
    assert reduced.grid_style() == InterpStyle.CUBIC_SPLINE  # max_style(min(4, 20))
    np.testing.assert_array_equal(reduced.get_image(), cubic.get_image())
    # one column: afw reduces BOTH axes to CONSTANT (max_style of the smaller count). 20 bins of
    # 10 rows: centres 4.5, 14.5, ...; steps break at 9.5, 19.5, ...: rows 0-9 hold bin 0, rows
    # 10k .. 10k+9 (k >= 1) the mean of bins k-1 and k.
    col = vals[:, 0].astype(np.float32).astype(float)
    one = element(vals[:, :1], style=InterpStyle.LINEAR)
    assert one.grid_style() == InterpStyle.CONSTANT
    want = np.repeat(np.concatenate([[col[0]], 0.5 * (col[:-1] + col[1:])]), 10)
    img = one.get_image()
    np.testing.assert_allclose(img[:, 0], want, rtol=1e-7)
    assert np.all(img == img[:, :1])
    for us in (UndersampleStyle.THROW_EXCEPTION, UndersampleStyle.INCREASE_NXNYSAMPLE):
        bad = element(vals, style=InterpStyle.AKIMA_SPLINE, undersample_style=us)
        with pytest.raises(BackgroundModelError, match=f"UNDERSAMPLESTYLE.*{us.name}"):
            bad.get_image()
        # the check also guards the Chebyshev branch, as in afw
        with pytest.raises(BackgroundModelError):
            dataclasses.replace(bad, approx=ApproxControl(0, 1, 1, True)).get_image()


def test_nan_bins_are_dropped_and_empty_columns_skipped() -> None:
    rng = np.random.default_rng(9)
    vals = 100 + rng.normal(0, 2, (6, 5))
    vals[2, 1] = np.nan
    vals[:, 3] = np.nan
    e = element(vals, style=InterpStyle.NATURAL_SPLINE)
    xc, yc = e.bin_centres
    py = np.array([5.0, 77.0, 190.0])
    px = np.array([10.0, 150.0, 280.0])
    cols = np.empty((len(py), 5))
    for j in range(5):
        good = ~np.isnan(vals[:, j])
        if good.any():
            cols[:, j] = _afw_natural(yc[good], vals[good, j], py)
    keep = [0, 1, 2, 4]
    want = np.stack([_afw_natural(xc[keep], r[keep], px) for r in cols])
    np.testing.assert_allclose(e.evaluate(px, py), want, rtol=1e-6)
    throw = dataclasses.replace(e, undersample_style=UndersampleStyle.THROW_EXCEPTION)
    with pytest.raises(BackgroundModelError, match="non-NaN bins"):
        throw.get_image()


def _afw_natural(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """scipy's natural spline inside, afw's quadratic Taylor rule (linear here) outside."""
    cs = CubicSpline(x, y.astype(float), bc_type="natural")
    out = cs(np.clip(at, x[0], x[-1]))
    d = cs.derivative()
    lo, hi = at < x[0], at > x[-1]
    out[lo] = y[0] + (at[lo] - x[0]) * d(x[0])
    out[hi] = y[-1] + (at[hi] - x[-1]) * d(x[-1])
    return np.asarray(out)


def test_sub_box_is_a_cut_and_outside_boxes_are_refused() -> None:
    e = dataclasses.replace(element(np.arange(30.0).reshape(5, 6)), source="s3://b/bg.fits")
    full = e.get_image()
    sub = Box2I(40, 30, 100, 50)
    # the cut of the full image, up to float32 rounding of the image-sized product
    np.testing.assert_allclose(e.get_image(sub), full[sub.slices(e.bbox)], rtol=3e-7, atol=1e-6)
    with pytest.raises(BackgroundModelError, match=r"s3://b/bg\.fits.*BKGD_X0") as err:
        e.get_image(Box2I(-1, 0, 10, 10))
    assert isinstance(err.value, WarpingError) and isinstance(err.value, ValueError)
    with pytest.raises(BackgroundModelError, match="BKGD_WIDTH"):
        BackgroundList([e]).check_bbox(Box2I(0, 0, 300, 201))
    BackgroundList([e]).check_bbox(Box2I(0, 0, 300, 200))


def test_sky_correction_restores_the_old_background() -> None:
    rng = np.random.default_rng(2)
    old = BackgroundList(
        [element(1000 + rng.normal(0, 5, (5, 7))), element(rng.normal(0, 1, (3, 4)))]
    )
    new = element(990 + rng.normal(0, 5, (4, 6)), style=InterpStyle.NATURAL_SPLINE)
    raw = (1200 + rng.normal(0, 3, (200, 300))).astype(np.float32)
    calexp = raw - old.get_image()
    sky_corr = sky_correction(old, [new])
    assert len(sky_corr) == 3
    np.testing.assert_array_equal(sky_corr[0].values, -old[0].values)  # type: ignore[attr-defined]
    corrected = calexp - sky_corr.get_image()
    np.testing.assert_allclose(corrected, raw - new.get_image(), atol=2e-3)
    data = FMT.to_bytes(sky_corr)
    assert FMT.from_bytes(data, source="mem://skyCorr.fits") == sky_corr


# -- formats and bad input ---------------------------------------------------------------------
def _file(tmp_values=(4, 6), **keys) -> bytes:  # type: ignore[no-untyped-def]
    e = element(np.ones(tmp_values))
    data = FMT.to_bytes(BackgroundList([e, e.negated()]))
    with fits.open(io.BytesIO(data)) as hdul:
        for k, v in keys.items():
            for h in hdul:
                h.header[f"HIERARCH {k}" if len(k) > 8 else k] = v
        buf = io.BytesIO()
        hdul.writeto(buf)
        return buf.getvalue()


def test_unknown_style_values_name_the_file_and_key() -> None:
    for key, value in (("INTERPSTYLE", 9), ("UNDERSAMPLESTYLE", 5), ("APPROXSTYLE", 3)):
        with pytest.raises(FormatError, match=rf"s3://r/bkgd\.fits.*{key}={value}"):
            FMT.from_bytes(_file(**{key: value}), source="s3://r/bkgd.fits")
    with pytest.raises(FormatError, match="APPROXORDERY"):
        FMT.from_bytes(_file(APPROXSTYLE=0, APPROXORDERY=3), source="f.fits")


def test_mismatched_hdus_and_missing_keys_are_refused() -> None:
    data = _file()
    with fits.open(io.BytesIO(data)) as hdul:
        hdul[2].data = np.ones((4, 5), np.float32)  # variance of element 0
        buf = io.BytesIO()
        hdul.writeto(buf)
    with pytest.raises(FormatError, match=r"bk\.fits HDU 0.*shapes.*NAXIS1/NAXIS2"):
        FMT.from_bytes(buf.getvalue(), source="bk.fits")
    with fits.open(io.BytesIO(data)) as hdul:
        del hdul[3].header["BKGD_Y0"]
        buf = io.BytesIO()
        hdul.writeto(buf)
    with pytest.raises(FormatError, match=r"bk\.fits HDU 3: missing header key BKGD_Y0"):
        FMT.from_bytes(buf.getvalue(), source="bk.fits")
    with fits.open(io.BytesIO(data)) as hdul:
        buf = io.BytesIO()
        fits.HDUList(list(hdul)[:4]).writeto(buf)
    with pytest.raises(FormatError, match="4 HDUs; an afw BackgroundList has three per element"):
        FMT.from_bytes(buf.getvalue(), source="bk.fits")
    with pytest.raises(FormatError, match="neither a repo-butler background file"):
        buf = io.BytesIO()
        fits.HDUList([fits.PrimaryHDU(np.ones((2, 2), np.float32))]).writeto(buf)
        FMT.from_bytes(buf.getvalue(), source="x.fits")


def test_our_format_still_round_trips_and_mixed_lists_are_refused() -> None:
    ours = BackgroundList([BackgroundComponent(Box2I(0, 0, 300, 200), np.ones((3, 3)))])
    assert FMT.from_bytes(FMT.to_bytes(ours), source="m") == ours
    with pytest.raises(TypeError, match="either afw elements or BackgroundComponents"):
        FMT.to_bytes(ours + BackgroundList([element(np.ones((3, 3)))]))
