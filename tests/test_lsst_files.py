"""Reading real files written by the LSST Science Pipelines (afw Exposure FITS)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from warping.ast_wcs import AstSkyWcs
from warping.errors import FormatError
from warping.formats.calib_fits import read_skywcs
from warping.formats.exposure_fits import ExposureFormatter, read_exposure, read_wcs_and_bbox
from warping.psf import GaussianPsf, PcaPsf, PsfexPsf

pytestmark = pytest.mark.realdata


def header_wcs(path: Path, hdu: int) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return WCS(fits.getheader(path, hdu))


def test_modern_hsc_calexp(shared_data: Path) -> None:
    path = shared_data / "lsst-obs_base" / "calexp.fits"
    exp = read_exposure(path)
    assert exp.image.shape == (32, 64) and exp.xy0 == (0, 0)
    assert exp.image[0, 0] == pytest.approx(-8.964243)
    assert exp.variance[0, 0] == pytest.approx(557.61804)
    # WCS: the archived afw SkyWcs (AST), 0.19 mas from the header's TAN-SIP approximation
    assert isinstance(exp.wcs, AstSkyWcs)
    ref = header_wcs(path, 1)
    ra, dec = exp.wcs.pixel_to_world_values([0.0, 63.0], [0.0, 31.0])
    ra_h, dec_h = ref.all_pix2world([0.0, 63.0], [0.0, 31.0], 0)
    sep_mas = np.hypot((ra - ra_h) * np.cos(np.radians(dec)), dec - dec_h) * 3.6e6
    assert np.all((sep_mas > 0.05) & (sep_mas < 1.0))
    # photometric calibration mean from the archive PhotoCalib table
    assert exp.photo_calib.calibration_mean == pytest.approx(1.99408751, rel=1e-8)
    assert exp.photo_calib.calibration_err == pytest.approx(0.00034857, rel=1e-4)
    # visit info from the primary keywords
    vi = exp.visit_info
    assert vi.exposure_time == 30.0
    assert vi.boresight_ra == pytest.approx(320.249908333333)
    assert vi.boresight_dec == pytest.approx(0.250025)
    assert vi.rotation_angle == 270.0
    assert vi.airmass == pytest.approx(1.10305078976126)
    assert vi.mid_time_mjd == pytest.approx(56598.2510623, abs=1e-6)  # 2013-11-02T06:01:31.7885 TAI
    assert exp.filter == "HSC-I"
    # mask planes by name, numbers from this file
    assert exp.mask_planes.bit("BRIGHT_OBJECT") == 11
    assert exp.mask_planes.bit("NO_DATA") == 8
    assert exp.psf == GaussianPsf(4.0, 3)
    assert exp.metadata["OBJECT"] == "STRIPE82L"


def test_old_layout_hsc_cutout_with_xy0(shared_data: Path) -> None:
    path = shared_data / "lsst-afw" / "HSC-0908120-056-small.fits"
    exp = read_exposure(path)
    assert exp.xy0 == (100, 100)
    assert exp.bbox == exp.bbox.__class__(100, 100, 200, 200)
    assert exp.image.max() == pytest.approx(2255.5422, rel=1e-6)
    assert exp.mask.dtype == np.int32 and exp.mask.max() == 256  # uint16 mask, BZERO applied
    assert exp.mask_planes.bit("CROSSTALK") == 8 and exp.mask_planes.bit("NO_DATA") == 9
    # parent pixel (100 + i, 100 + j) is array pixel (i, j) of the header WCS
    ref = header_wcs(path, 1)
    np.testing.assert_allclose(
        exp.wcs.pixel_to_world_values([100.0, 250.0], [100.0, 299.0]),
        ref.all_pix2world([0.0, 150.0], [0.0, 199.0], 0),
        atol=1e-11,
    )
    ra, dec = exp.wcs.pixel_to_world_values(200.0, 200.0)
    assert ra == pytest.approx(151.4, abs=0.2) and dec == pytest.approx(1.65, abs=0.2)
    assert exp.photo_calib is None  # FLUXMAG0 = 0
    assert exp.psf is None


@pytest.mark.slow
def test_tile_compressed_cfht_calexp_with_psfex(shared_data: Path) -> None:
    path = shared_data / "lsst-jointcal-cfht_minimal" / "calexp-849375-12.fits.fz"
    exp = read_exposure(path)  # ~5 s: decompresses 3 x 2048 x 4612 RICE tiles
    assert exp.image.shape == (4612, 2048)
    assert not exp.image.any()  # the upstream test file has zeroed pixels
    assert exp.filter == "r.MP9601"
    assert exp.id == 30577512
    assert exp.photo_calib.calibration_mean == pytest.approx(0.54322421, rel=1e-7)
    assert exp.visit_info.exposure_time == pytest.approx(300.2, abs=1.0)
    psf = exp.psf
    assert isinstance(psf, PsfexPsf)
    assert psf.comp.shape == (6, 81, 81) and psf.sample == 0.5
    ax, ay = psf.average_position()
    assert 0 < ax < 2048 and 0 < ay < 4612
    k = psf.compute_kernel_image(ax, ay)
    assert k.shape == (41, 41) and k.sum() == pytest.approx(1.0)
    assert np.unravel_index(k.argmax(), k.shape) == (20, 20)
    assert 2.0 < psf.fwhm(ax, ay) < 12.0  # MegaCam 0.187"/px
    # afw caches the basis of its last evaluation, at the CCD centre (1023.5, 2305.5) 0-based:
    # this pins both the basis order and the 0-based context convention.
    with fits.open(path) as hdul:
        stored = np.asarray(hdul[12].data["basis"][0], dtype=float)
    np.testing.assert_allclose(psf.basis(1023.5, 2305.5), stored, rtol=1e-6, atol=1e-12)
    corner = psf.compute_kernel_image(0.0, 0.0)
    assert np.abs(corner - k).max() > 1e-5  # spatially varying
    with open(path, "rb") as f:
        wcs, bbox = read_wcs_and_bbox(f, source=str(path))
    assert bbox.shape == (4612, 2048)
    np.testing.assert_allclose(
        wcs.pixel_to_world_values(10.0, 20.0), exp.wcs.pixel_to_world_values(10.0, 20.0)
    )


def test_second_cfht_visit_footprint_from_headers(shared_data: Path) -> None:
    a = shared_data / "lsst-jointcal-cfht_minimal" / "calexp-849375-12.fits.fz"
    b = shared_data / "lsst-jointcal-cfht_minimal" / "calexp-850587-12.fits.fz"
    wa, ba = read_wcs_and_bbox(a)
    wb, bb = read_wcs_and_bbox(b)
    assert ba == bb and ba.shape == (4612, 2048)
    ra_a, dec_a = wa.pixel_to_world_values(1024.0, 2306.0)
    ra_b, dec_b = wb.pixel_to_world_values(1024.0, 2306.0)
    # two visits of the same CCD on the same field: centres within a few arcmin
    assert abs(ra_a - ra_b) < 0.1 and abs(dec_a - dec_b) < 0.1
    assert (ra_a, dec_a) != (ra_b, dec_b)


def test_old_format_pca_psf_is_read(shared_data: Path, caplog: pytest.LogCaptureFixture) -> None:
    # its numbers are checked in tests/test_psf_pca.py; unreadable PSFs are tested there too
    with caplog.at_level(logging.WARNING):
        exp = read_exposure(shared_data / "lsst-meas_modelfit" / "calexp.fits")
    assert isinstance(exp.psf, PcaPsf)
    assert "LSST_UNSUPPORTED_PSF" not in exp.metadata and "PSF" not in caplog.text
    assert exp.xy0 == (1868, 2100)


def test_lsst_file_rewritten_in_our_format(shared_data: Path) -> None:
    exp = read_exposure(shared_data / "lsst-obs_base" / "calexp.fits")
    fmt = ExposureFormatter()
    back = fmt.from_bytes(fmt.to_bytes(exp), source="mem://x")
    assert back.image.tobytes() == exp.image.tobytes()
    assert back.mask_planes == exp.mask_planes
    assert back.photo_calib == exp.photo_calib
    assert back.psf == exp.psf


def test_truncated_lsst_file(shared_data: Path) -> None:
    data = (shared_data / "lsst-obs_base" / "calexp.fits").read_bytes()
    with pytest.raises(FormatError, match=r"calexp\.fits.*truncated"):
        ExposureFormatter().from_bytes(data[:100000], source="file:///x/calexp.fits")


@pytest.mark.parametrize(
    ("rel", "ctype"),
    [
        ("galsim-tests/sipsample.fits", "RA---TAN-SIP"),
        ("galsim-tests/tpv.fits.gz", "RA---TAN"),  # wcslib turns TPV into TAN + distortion
        ("astropy-testdata/sip-wcs.fits", "RA---TAN-SIP"),
    ],
)
def test_standalone_wcs_from_foreign_files(shared_data: Path, rel: str, ctype: str) -> None:
    wcs = read_skywcs(shared_data / rel)
    assert wcs.wcs.ctype[0] == ctype
    ref = header_wcs(shared_data / rel, 0)
    np.testing.assert_allclose(
        wcs.pixel_to_world_values(12.0, 34.0), ref.all_pix2world(12.0, 34.0, 0), atol=1e-12
    )
