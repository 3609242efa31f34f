"""The astropy-free ``rb warp-image`` inputs (lite_io) against the astropy path."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from warping.errors import FormatError
from warping.warp.lite_io import fast_world_to_pixel, load_for_warp, write_warp
from warping.warp.lite_wcs import LiteWcs
from warping.warp.testing import make_sip_wcs, make_tan_wcs

ROOT = Path(__file__).resolve().parents[1]


def write_inputs(tmp_path: Path, *, tpv: bool = False) -> tuple[Path, Path, WCS, WCS]:
    src = make_sip_wcs(150.0, 2.0, (256, 128), 0.168, corner_distortion_px=3.0)
    dest = make_tan_wcs(150.0, 2.0, (99.5, 99.5), 0.2, 30.0)
    image = np.random.default_rng(0).normal(size=(256, 128)).astype(np.float32)
    header = src.to_header(relax=True)
    if tpv:
        header["CTYPE1"], header["CTYPE2"] = "RA---TPV", "DEC--TPV"
        header["PV1_1"] = header["PV2_1"] = 1.0
    inp = tmp_path / "input.fits"
    fits.PrimaryHDU(image, header=header).writeto(inp)
    target = dest.to_header()
    target["NAXIS"], target["NAXIS1"], target["NAXIS2"] = 2, 200, 200
    head = tmp_path / "target.head"
    head.write_text(target.tostring(sep="\n", endcard=True, padding=False) + "\n")
    return inp, head, src, dest


def sep_deg(ra1: Any, dec1: Any, ra2: Any, dec2: Any) -> float:
    dra = (np.asarray(ra1) - ra2 + 180.0) % 360.0 - 180.0
    return float(np.max(np.hypot(dra * np.cos(np.radians(dec2)), np.asarray(dec1) - dec2)))


def test_load_for_warp_matches_astropy_path(tmp_path: Path) -> None:
    inp, head, _src, _dest = write_inputs(tmp_path)
    got = load_for_warp(inp, head)
    assert got is not None
    image, src, dest, shape, cards = got
    assert shape == (200, 200) and image.dtype == np.float32
    np.testing.assert_array_equal(image, fits.getdata(inp))
    assert isinstance(src, LiteWcs) and src.has_sip and isinstance(dest, LiteWcs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        ref_src = WCS(fits.getheader(inp))
        ref_dest = WCS(fits.Header.fromtextfile(str(head)))
    yy, xx = np.mgrid[-5:260:7, -5:140:7].astype(float)
    ra, dec = src.pixel_to_world_values(xx, yy)
    assert sep_deg(ra, dec, *ref_src.all_pix2world(xx, yy, 0)) < 1e-10
    ra, dec = dest.pixel_to_world_values(xx, yy)
    assert sep_deg(ra, dec, *ref_dest.all_pix2world(xx, yy, 0)) < 1e-10
    # the output cards describe the target WCS for astropy too
    out = tmp_path / "out.fits"
    warped = np.arange(200 * 200, dtype=np.float32).reshape(200, 200)
    write_warp(out, warped, cards)
    with fits.open(out) as hdul:
        np.testing.assert_array_equal(hdul[0].data, warped)
        out_wcs = WCS(hdul[0].header)
    assert sep_deg(*out_wcs.all_pix2world(xx, yy, 0), *ref_dest.all_pix2world(xx, yy, 0)) < 1e-10


def test_integer_input_becomes_float(tmp_path: Path) -> None:
    inp, head, src, _dest = write_inputs(tmp_path)
    fits.PrimaryHDU(
        np.arange(64, dtype=np.int32).reshape(8, 8), header=src.to_header(relax=True)
    ).writeto(inp, overwrite=True)
    got = load_for_warp(inp, head)
    assert got is not None and got[0].dtype == np.float64


def test_falls_back_for_tpv_input(tmp_path: Path) -> None:
    inp, head, _src, _dest = write_inputs(tmp_path, tpv=True)
    assert load_for_warp(inp, head) is None


@pytest.mark.parametrize("edit", ["car", "no_naxis", "galactic"])
def test_falls_back_for_target_it_cannot_handle(tmp_path: Path, edit: str) -> None:
    inp, head, _src, _dest = write_inputs(tmp_path)
    text = head.read_text()
    if edit == "car":
        text = text.replace("RA---TAN", "RA---CAR").replace("DEC--TAN", "DEC--CAR")
    elif edit == "no_naxis":
        text = "\n".join(line for line in text.splitlines() if not line.startswith("NAXIS1"))
    else:  # the input is RA/Dec: a Galactic target needs a frame conversion -> astropy
        text = text.replace("'RA---TAN'", "'GLON-TAN'").replace("'DEC--TAN'", "'GLAT-TAN'")
    head.write_text(text)
    assert load_for_warp(inp, head) is None


def test_malformed_target_raises(tmp_path: Path) -> None:
    inp, head, _src, _dest = write_inputs(tmp_path)
    head.write_text(head.read_text().replace("CRVAL1  =", "CRVAL1  = 'broken"))
    with pytest.raises(FormatError, match=r"target\.head: line \d+"):
        load_for_warp(inp, head)


def test_fast_world_to_pixel_matches_all_world2pix() -> None:
    src = make_sip_wcs(150.0, 2.0, (4096, 2048), 0.168, corner_distortion_px=5.0, rotation_deg=20)
    rng = np.random.default_rng(2)
    x, y = rng.uniform(-100, 2150, 20000), rng.uniform(-100, 4200, 20000)
    ra, dec = src.all_pix2world(x, y, 0)
    got = fast_world_to_pixel(src, ra, dec)
    assert got is not None
    ref = src.all_world2pix(ra, dec, 0, tolerance=1e-12, maxiter=100, quiet=True)
    assert np.max(np.hypot(got[0] - ref[0], got[1] - ref[1])) < 1e-8
    assert np.max(np.hypot(got[0] - x, got[1] - y)) < 2e-9


def test_fast_world_to_pixel_declines_other_wcs() -> None:
    car = WCS(naxis=2)
    car.wcs.ctype = ["RA---CAR", "DEC--CAR"]
    car.wcs.set()
    assert fast_world_to_pixel(car, np.zeros(3), np.zeros(3)) is None


def test_lite_modules_import_no_heavy_dependency() -> None:
    """The fast path must not pay for astropy/numba/scipy/fsspec, nor the butler (lazy package)."""
    code = (
        "import sys, warping.warp.lite_io; "
        "heavy = {'astropy', 'numba', 'scipy', 'fsspec', 'repo_butler.butler'}; "
        "print(sorted(({m.split('.')[0] for m in sys.modules} | set(sys.modules)) & heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


REAL_SUPPORTED = [
    "astropy-testdata/m13.fits",  # int16, CDELT + CROTA1 = 0
    "astropy-testdata/sip-wcs.fits",  # uint16 (BZERO 32768), TAN-SIP
    "galsim-tests/sipsample.fits",
    "lsst-afw/HSC-0908120-056-small.fits",  # LSST Exposure: image in the first extension
    "lsst-meas_modelfit/calexp.fits",
    "lsst-obs_base/calexp.fits",
]
REAL_FALLBACK = [
    "galsim-tests/tpv.fits.gz",  # gzip (and TPV)
    "lsst-jointcal-cfht_minimal/calexp-850587-12.fits.fz",  # tile-compressed
    "lsst-drp_tasks/visitSummary_1176.fits",  # tables only
]


@pytest.mark.realdata
@pytest.mark.parametrize("name", REAL_SUPPORTED)
def test_real_files_match_astropy(shared_data: Path, name: str) -> None:
    from warping.warp.lite_fits import read_image

    path = shared_data / name
    got = read_image(path)
    assert got is not None
    data, header = got
    with fits.open(path) as hdul:
        hdu = next(h for h in hdul if h.data is not None and h.data.ndim == 2)
        np.testing.assert_array_equal(data, np.asarray(hdu.data))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = WCS(hdu.header)
    lite = LiteWcs.from_header(header)
    assert lite is not None
    ny, nx = data.shape
    yy, xx = np.mgrid[-3 : ny + 3 : 15j, -3 : nx + 3 : 15j]
    ra_ref, dec_ref = ref.all_pix2world(xx, yy, 0)
    assert sep_deg(*lite.pixel_to_world_values(xx, yy), ra_ref, dec_ref) < 1e-10
    px, py = ref.all_world2pix(ra_ref, dec_ref, 0, tolerance=1e-12, maxiter=100, quiet=True)
    qx, qy = lite.world_to_pixel_values(ra_ref, dec_ref)
    assert np.max(np.hypot(qx - px, qy - py)) < 1e-8


@pytest.mark.realdata
@pytest.mark.parametrize("name", REAL_FALLBACK)
def test_real_files_fall_back(shared_data: Path, name: str) -> None:
    from warping.warp.lite_fits import read_image

    assert read_image(shared_data / name) is None


def test_warp_image_with_lite_wcs_equals_astropy_wcs(tmp_path: Path) -> None:
    """LiteWcs plugs into the warper (APE-14 names): same pixels as with astropy WCS objects."""
    from warping.warp import warp_image

    inp, head, src, dest = write_inputs(tmp_path)
    got = load_for_warp(inp, head)
    assert got is not None
    image, lite_src, lite_dest, shape, _cards = got
    a = warp_image(image, lite_src, lite_dest, shape)
    b = warp_image(image, src, dest, shape)
    assert np.array_equal(np.isfinite(a), np.isfinite(b)) and np.isfinite(a).sum() > 1000
    ok = np.isfinite(a)
    # positions agree to ~1e-9 px: only float32 rounding of the output remains
    assert np.max(np.abs(a[ok] - b[ok])) <= 1e-5 * np.max(np.abs(b[ok]))
