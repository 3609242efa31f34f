"""Our exposure FITS format: exact round trips, layout (JSON Schema), extensions, errors."""

from __future__ import annotations

import dataclasses
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, VarianceUncertainty
from astropy.wcs import WCS, Sip

from warping.errors import FormatError
from warping.exposure import Exposure, VisitInfo
from warping.formats import exposure_fits
from warping.formats.exposure_fits import (
    ExposureFormatter,
    read_exposure,
    read_wcs_and_bbox,
    register_extension,
    registered_extensions,
    unregister_extension,
    write_exposure,
)
from warping.formats.fits_dict import dict_to_bintable, hdulist_layout
from warping.geom import Box2I
from warping.masks import MaskPlanes
from warping.photocalib import ChebyshevBoundedField, PhotoCalib
from warping.psf import DoubleGaussianPsf, VariableGaussianPsf

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "schemas" / "exposure-fits.schema.json").read_text()
)


def sip_wcs() -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    w.wcs.crval = [214.9, 52.7]
    w.wcs.crpix = [1000.5, 2000.25]
    w.wcs.cd = np.array([[-4.6e-5, 1e-7], [2e-7, 4.6e-5]])
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[3, 0] = a[1, 2] = 1e-10
    b[2, 1] = b[0, 3] = 1e-10
    a[2, 0] = 3e-7
    w.sip = Sip(a, b, None, None, w.wcs.crpix)
    w.wcs.set()
    return w


def full_exposure(wcs: WCS | None = None) -> Exposure:
    rng = np.random.default_rng(42)
    planes = MaskPlanes.default().with_plane("MY_PLANE")
    mask = rng.integers(0, 2**12, (40, 60)).astype(np.int32)
    field = ChebyshevBoundedField(Box2I(0, 0, 2000, 4000), np.array([[1.7, 0.01], [-0.02, 0.0]]))
    return Exposure(
        rng.normal(0, 10, (40, 60)).astype(np.float32),
        mask,
        rng.uniform(1, 5, (40, 60)).astype(np.float32),
        mask_planes=planes,
        xy0=(1234, -56),
        wcs=wcs if wcs is not None else sip_wcs(),
        psf=VariableGaussianPsf((2.0, 0.1), (0.02,), (0.01, 0.003), 21, 10.0, 20.0, 1000.0),
        photo_calib=PhotoCalib(None, 0.003, field),
        visit_info=VisitInfo(200.0, 57000.123456789, 214.87, 52.65, 33.3, 1.2345),
        filter="HSC-R2",
        id=903334 * 200 + 22,
        metadata={"OBSERVER": "me", "nested": {"a": [1, 2.5, None]}, "arr": np.arange(4)},
    )


def round_trip(exp: Exposure) -> Exposure:
    fmt = ExposureFormatter()
    return fmt.from_bytes(fmt.to_bytes(exp), source="mem://exp.fits")


def assert_same_wcs(a: WCS, b: WCS, xy0: tuple[int, int], shape: tuple[int, int]) -> None:
    ys, xs = np.mgrid[0 : shape[0] : 7, 0 : shape[1] : 7]
    xs = xs + xy0[0]
    ys = ys + xy0[1]
    pa = np.array(a.pixel_to_world_values(xs, ys))
    pb = np.array(b.pixel_to_world_values(xs, ys))
    assert np.abs(pa - pb).max() < 1e-10  # degrees, i.e. < 1e-6 pixel


def test_round_trip_is_exact() -> None:
    exp = full_exposure()
    back = round_trip(exp)
    for name in ("image", "mask", "variance"):
        a, b = getattr(exp, name), getattr(back, name)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert back.xy0 == exp.xy0
    assert back.mask_planes == exp.mask_planes
    assert back.psf == exp.psf
    assert back.photo_calib == exp.photo_calib
    assert back.visit_info == exp.visit_info
    assert back.filter == exp.filter and back.id == exp.id
    assert back.metadata.keys() == exp.metadata.keys()
    assert back.metadata["nested"] == exp.metadata["nested"]
    np.testing.assert_array_equal(back.metadata["arr"], exp.metadata["arr"])
    assert_same_wcs(exp.wcs, back.wcs, exp.xy0, exp.image.shape)


def test_round_trip_minimal_and_double_gaussian() -> None:
    exp = Exposure(np.zeros((3, 4)), np.zeros((3, 4)), np.ones((3, 4)))
    back = round_trip(exp)
    assert back.wcs is None and back.psf is None and back.photo_calib is None
    assert back.visit_info is None and back.metadata == {} and back.xy0 == (0, 0)
    exp.psf = DoubleGaussianPsf(9, 1.27, 3.18, 0.1)
    exp.visit_info = VisitInfo(exposure_time=30.0)
    back = round_trip(exp)
    assert back.psf == exp.psf
    got = np.array(dataclasses.astuple(back.visit_info))
    want = np.array(dataclasses.astuple(exp.visit_info))
    np.testing.assert_array_equal(got, want)  # NaNs survive as absent cards (equal_nan)


def test_tpv_wcs_round_trip(shared_data: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdr = fits.getheader(shared_data / "galsim-tests" / "tpv.fits.gz")
        tpv = WCS(hdr)
    exp = full_exposure(tpv)
    back = round_trip(exp)
    assert_same_wcs(exp.wcs, back.wcs, exp.xy0, exp.image.shape)


def test_layout_matches_schema_and_conventions() -> None:
    exp = full_exposure()
    hdul = exposure_fits.exposure_to_hdulist(exp)
    layout = hdulist_layout(hdul)
    jsonschema.validate(layout, SCHEMA)
    assert [h.header.get("EXTNAME") for h in hdul[1:]] == [
        "IMAGE", "MASK", "VARIANCE", "PSF", "PHOTOCALIB", "METADATA",
    ]  # fmt: skip
    img = layout["IMAGE"]
    assert (img["LTV1"], img["LTV2"]) == (-1234.0, 56.0)
    assert img["CRPIX1"] == pytest.approx(1000.5 - 1234)
    assert layout["MASK"]["MP_MY_PLANE"] == exp.mask_planes.bit("MY_PLANE")
    assert layout["VARIANCE"]["BUNIT"] == "count2"
    assert layout["PSF"]["PSFTYPE"] == "VariableGaussianPsf"
    # schema rejects a file whose version we do not write
    bad = dict(layout, PRIMARY={**layout["PRIMARY"], "RBFMTV": 2})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)


def test_astropy_ccddata_reads_variance_and_units(tmp_path: Path) -> None:
    exp = full_exposure()
    path = tmp_path / "exp.fits"
    write_exposure(exp, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ccd = CCDData.read(path, hdu="IMAGE", hdu_uncertainty="VARIANCE", hdu_mask=None)
    assert isinstance(ccd.uncertainty, VarianceUncertainty)
    np.testing.assert_array_equal(ccd.uncertainty.array, exp.variance)
    assert ccd.unit.to_string() == "ct"
    back = read_exposure(path)
    np.testing.assert_array_equal(back.image, exp.image)


def test_read_psf_without_pixels(tmp_path: Path) -> None:
    from warping.formats.exposure_fits import read_psf_wcs_and_bbox

    exp = full_exposure()
    path = tmp_path / "exp.fits"
    write_exposure(exp, path)
    psf, wcs, bbox = read_psf_wcs_and_bbox(path)
    assert bbox == exp.bbox and wcs is not None
    assert exp.psf is not None and psf is not None and psf.to_dict() == exp.psf.to_dict()
    no_psf = Exposure(np.zeros((3, 4)), np.zeros((3, 4)), np.ones((3, 4)))
    write_exposure(no_psf, tmp_path / "bare.fits")
    assert read_psf_wcs_and_bbox(tmp_path / "bare.fits")[0] is None


def test_read_psf_without_pixels_of_an_lsst_calexp(shared_data: Path) -> None:
    from warping.formats.exposure_fits import read_psf_wcs_and_bbox

    path = shared_data / "lsst-jointcal-cfht_minimal" / "calexp-849375-12.fits.fz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    full = read_exposure(path)
    psf, wcs, bbox = read_psf_wcs_and_bbox(path)
    assert bbox == full.bbox and wcs is not None and psf is not None and full.psf is not None
    for x, y in ((100.0, 200.0), (1500.0, 4000.0)):
        assert np.array_equal(psf.compute_kernel_image(x, y), full.psf.compute_kernel_image(x, y))


def test_read_wcs_and_bbox_from_headers(tmp_path: Path) -> None:
    exp = full_exposure()
    path = tmp_path / "exp.fits"
    write_exposure(exp, path)
    with open(path, "rb") as f:
        wcs, bbox = read_wcs_and_bbox(f, source=str(path))
    assert bbox == exp.bbox
    assert wcs is not None
    assert_same_wcs(exp.wcs, wcs, exp.xy0, exp.image.shape)


class Extra:
    def __init__(self, values: np.ndarray) -> None:
        self.values = values


@pytest.fixture
def extra_extension() -> Iterator[None]:
    def to_hdus(obj: Extra) -> list[Any]:
        return [dict_to_bintable({"values": obj.values}, "TEST_EXTRA")]

    def from_hdus(hdus: Any) -> Extra:
        from warping.formats.fits_dict import bintable_to_dict

        return Extra(bintable_to_dict(hdus[0])["values"])

    register_extension("TEST_EXTRA", "test_extra", to_hdus, from_hdus)
    assert registered_extensions()["TEST_EXTRA"] == "test_extra"
    yield
    unregister_extension("TEST_EXTRA")


def test_registered_extension_round_trips(extra_extension: None) -> None:
    exp = full_exposure()
    exp.test_extra = Extra(np.array([1.5, 2.5]))
    back = round_trip(exp)
    assert isinstance(back.test_extra, Extra)
    np.testing.assert_array_equal(back.test_extra.values, [1.5, 2.5])
    with pytest.raises(ValueError, match="reserved"):
        register_extension("PSF", "psf", lambda v: [], lambda h: None)


def test_unregistered_extension_is_an_error(extra_extension: None) -> None:
    exp = full_exposure()
    exp.test_extra = Extra(np.array([1.0]))
    data = ExposureFormatter().to_bytes(exp)
    unregister_extension("TEST_EXTRA")
    try:
        with pytest.raises(FormatError, match="'TEST_EXTRA' is not registered"):
            ExposureFormatter().from_bytes(data, source="mem://x.fits")
    finally:
        register_extension("TEST_EXTRA", "test_extra", lambda v: [], lambda h: None)


def hdul_bytes(hdul: fits.HDUList) -> bytes:
    buf = io.BytesIO()
    hdul.writeto(buf)
    return buf.getvalue()


def test_bad_files_raise_format_errors_naming_the_file() -> None:
    fmt = ExposureFormatter()
    good = fmt.to_bytes(full_exposure())
    src = "s3://bucket/calexp-1.fits"
    with pytest.raises(FormatError, match=r"s3://bucket/calexp-1\.fits.*not a FITS file"):
        fmt.from_bytes(b"definitely not fits", source=src)
    with pytest.raises(FormatError, match=r"calexp-1\.fits.*truncated"):
        fmt.from_bytes(good[: len(good) // 2], source=src)
    with pytest.raises(FormatError, match=r"calexp-1\.fits.*(truncated|corrupt)"):
        fmt.from_bytes(good[:-2880], source=src)
    # wrong layout: a table-only file
    table = fits.HDUList(
        [fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "J", array=[1])])]
    )
    with pytest.raises(FormatError, match="neither a repo-butler exposure"):
        fmt.from_bytes(hdul_bytes(table), source=src)
    # our format but VARIANCE missing
    hdul = exposure_fits.exposure_to_hdulist(full_exposure())
    del hdul[3]
    with pytest.raises(FormatError, match="missing the VARIANCE extension"):
        fmt.from_bytes(hdul_bytes(hdul), source=src)
    # newer format version
    hdul = exposure_fits.exposure_to_hdulist(full_exposure())
    hdul[0].header["RBFMTV"] = 99
    with pytest.raises(FormatError, match="newer than this reader"):
        fmt.from_bytes(hdul_bytes(hdul), source=src)
    # wrong pixel type
    hdul = exposure_fits.exposure_to_hdulist(full_exposure())
    hdul[2].data = hdul[2].data.astype(np.float64)
    with pytest.raises(FormatError, match="MASK has dtype"):
        fmt.from_bytes(hdul_bytes(hdul), source=src)
    with pytest.raises(TypeError, match="Exposure"):
        fmt.to_bytes("not an exposure")


def test_wide_images_are_read_into_padded_rows_from_bytes_and_maps(tmp_path: Path) -> None:
    """128-pixel float32/int32 rows (512 bytes, a cache-aliasing stride) come back as views with
    one cache line of padding, the same values astropy reads, from bytes and from a memory map
    of the file (the path make-warp's inputs take)."""
    import mmap

    rng = np.random.default_rng(5)
    shape = (24, 128)
    exp = Exposure(
        rng.normal(0, 10, shape).astype(np.float32),
        rng.integers(0, 2**12, shape).astype(np.int32),
        rng.uniform(1, 5, shape).astype(np.float32),
        wcs=sip_wcs(),
    )
    path = tmp_path / "wide.fits"
    write_exposure(exp, path)
    truth = {h.name: h.data for h in fits.open(path) if h.name in ("IMAGE", "MASK", "VARIANCE")}
    fmt = ExposureFormatter()
    with open(path, "rb") as fh:
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    for back in (fmt.from_bytes(path.read_bytes(), source=str(path)),
                 fmt.from_buffer(mapped, source=str(path))):  # fmt: skip
        for name in ("image", "mask", "variance"):
            arr = getattr(back, name)
            assert arr.strides[0] == (128 + 16) * 4 and not arr.flags.c_contiguous
            np.testing.assert_array_equal(arr, truth[name.upper()])
            assert arr.flags.writeable  # a copy, not a view of the file
    mapped.close()  # no array refers to the map any more (else BufferError)


def test_narrow_images_stay_c_contiguous() -> None:
    back = round_trip(full_exposure())  # 60-pixel rows: 240 bytes, no aliasing
    assert back.image.flags.c_contiguous and back.mask.flags.c_contiguous
