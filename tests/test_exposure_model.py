"""The Exposure model's interop: xarray, CCDData, copies and subsets."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.nddata import CCDData, StdDevUncertainty, VarianceUncertainty
from astropy.wcs import WCS

from warping.exposure import Exposure
from warping.geom import Box2I
from warping.masks import MaskPlanes
from warping.photocalib import PhotoCalib


def make_wcs() -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [500.0, 300.0]
    w.wcs.cd = np.array([[-5e-5, 0.0], [0.0, 5e-5]])
    w.wcs.set()
    return w


def make_exposure() -> Exposure:
    rng = np.random.default_rng(0)
    planes = MaskPlanes.default()
    mask = np.zeros((30, 40), dtype=np.int32)
    mask[3, 4] = planes.bitmask("SAT")
    mask[10, 11] = planes.bitmask("CR", "DETECTED")
    return Exposure(
        rng.normal(0, 1, (30, 40)),
        mask,
        np.full((30, 40), 2.0),
        mask_planes=planes,
        xy0=(100, 200),
        wcs=make_wcs(),
        photo_calib=PhotoCalib(1.5),
        filter="HSC-I",
        id=7,
    )


def test_to_xarray_uses_parent_coordinates() -> None:
    exp = make_exposure()
    ds = exp.to_xarray()
    assert ds["image"].dims == ("y", "x")
    assert int(ds.x[0]) == 100 and int(ds.y[0]) == 200
    assert float(ds["image"].sel(x=111, y=210)) == exp.image[10, 11]
    assert ds["image"].attrs["units"] == "count"
    assert ds["variance"].attrs["units"] == "count2"
    meanings = ds["mask"].attrs["flag_meanings"].split()
    masks = ds["mask"].attrs["flag_masks"]
    assert masks[meanings.index("SAT")] == 2
    hdr_text = ds.attrs["wcs_header"]
    assert "LTV1" in hdr_text and ds.attrs["xy0"] == [100, 200]


def test_unit_follows_calibration() -> None:
    exp = make_exposure()
    assert exp.unit == "count"
    exp.photo_calib = PhotoCalib(1.0)
    assert exp.unit == "nJy"


def test_ccddata_round_trip_keeps_bits_and_wcs() -> None:
    exp = make_exposure()
    ccd = exp.to_ccddata()
    assert isinstance(ccd.uncertainty, VarianceUncertainty)
    assert ccd.mask[3, 4] and ccd.mask[10, 11] and ccd.mask.sum() == 2
    only_cr = exp.to_ccddata(bad_planes=("CR",))
    assert only_cr.mask.sum() == 1
    # array pixel (0, 0) of the CCDData WCS is parent pixel xy0 of the exposure WCS
    a = ccd.wcs.pixel_to_world_values(0.0, 0.0)
    b = exp.wcs.pixel_to_world_values(100.0, 200.0)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    back = Exposure.from_ccddata(ccd)
    np.testing.assert_array_equal(back.image, exp.image)
    np.testing.assert_array_equal(back.mask, exp.mask)
    np.testing.assert_array_equal(back.variance, exp.variance)
    assert back.xy0 == exp.xy0
    assert back.mask_planes == exp.mask_planes
    np.testing.assert_allclose(
        back.wcs.pixel_to_world_values(110.0, 210.0),
        exp.wcs.pixel_to_world_values(110.0, 210.0),
        atol=1e-12,
    )


def test_from_plain_ccddata_with_stddev() -> None:
    ccd = CCDData(
        np.ones((4, 5)),
        unit="adu",
        uncertainty=StdDevUncertainty(np.full((4, 5), 3.0)),
        mask=np.eye(4, 5, dtype=bool),
    )
    exp = Exposure.from_ccddata(ccd, xy0=(2, 3))
    assert np.all(exp.variance == 9.0)
    assert exp.bad_pixels("BAD").sum() == 4
    assert exp.xy0 == (2, 3) and exp.unit == "adu"


def test_subset_and_copy() -> None:
    exp = make_exposure()
    sub = exp.subset(Box2I(110, 205, 10, 5))
    assert sub.xy0 == (110, 205) and sub.image.shape == (5, 10)
    np.testing.assert_array_equal(sub.image, exp.image[5:10, 10:20])
    sub.image[0, 0] = 99.0
    assert exp.image[5, 10] != 99.0
    with pytest.raises(ValueError, match="not inside"):
        exp.subset(Box2I(0, 0, 10, 10))
    cp = exp.copy()
    cp.mask[0, 0] = 1
    assert exp.mask[0, 0] == 0


def test_astropy_wcs_describes_the_arrays_and_wcs_the_parent_pixels() -> None:
    """The interop trap of issue 20 (point 10): ``wcs`` is in parent (tract) pixels, so with
    ``xy0 = (100, 200)`` ``image[0, 0]`` is parent pixel (100, 200); ``astropy_wcs`` puts it at
    (0, 0), and ``reproject`` with it lands every pixel where the parent WCS says."""
    exp = make_exposure()
    aw = exp.astropy_wcs
    assert aw is not None and aw.pixel_shape == (40, 30)
    for col, row in ((0, 0), (39, 29), (17.5, 3.25)):
        ra, dec = aw.pixel_to_world_values(col, row)
        pra, pdec = exp.wcs.pixel_to_world_values(col + 100, row + 200)
        assert (float(ra), float(dec)) == pytest.approx((float(pra), float(pdec)), abs=1e-12)
    reproject = pytest.importorskip("reproject")
    out, _footprint = reproject.reproject_interp(
        (exp.image.astype(float), aw), exp.wcs, shape_out=(230, 140), order="nearest-neighbor"
    )
    inside = out[200:230, 100:140]
    assert np.allclose(inside[1:-1, 1:-1], exp.image[1:-1, 1:-1])
    assert Exposure(exp.image, exp.mask, exp.variance).astropy_wcs is None


def test_repr_is_one_short_line() -> None:
    exp = make_exposure()
    text = repr(exp)
    assert "\n" not in text and len(text) < 250, text
    assert "40x30 px at xy0=(100, 200)" in text and "wcs=WCS" in text and "filter='HSC-I'" in text
    assert "array" not in text
