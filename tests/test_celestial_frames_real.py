"""Celestial frames on a real file: the afw HSC cutout's WCS is FK5 J2000; the target is ICRS.

reproject (astropy's own frame handling) is the independent reference. Ignoring the frame moves
everything by 18-29 mas on this field; the warps must agree with reproject to a small fraction
of that, through ``rb warp-image`` and through make-warp's reader + ``warp_exposure``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

pytestmark = pytest.mark.realdata

PIXEL_SCALE_MAS = 168.0  # the target grid: 0.168"/px like HSC


@pytest.fixture(scope="module")
def hsc(shared_data: Path) -> Path:
    return shared_data / "lsst-afw" / "HSC-0908120-056-small.fits"


def source_wcs(path: Path) -> tuple[np.ndarray, WCS]:
    with fits.open(path) as hdul, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header = hdul[1].header
        assert header["RADESYS"].strip() == "FK5" and header["EQUINOX"] == 2000.0
        return hdul[1].data.astype(np.float64), WCS(header)


def icrs_target(src: WCS, shape: tuple[int, int]) -> WCS:
    """A TAN grid in ICRS over the cutout, rotated 10 degrees, 0.168"/px."""
    ra, dec = src.all_pix2world([[99.5, 99.5]], 0)[0]
    target = WCS(naxis=2)
    target.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    target.wcs.crval = [ra, dec]
    target.wcs.crpix = [shape[1] / 2 + 0.5, shape[0] / 2 + 0.5]
    s = PIXEL_SCALE_MAS / 3.6e6
    th = np.radians(10.0)
    target.wcs.cd = s * np.array([[-np.cos(th), np.sin(th)], [np.sin(th), np.cos(th)]])
    target.wcs.radesys = "ICRS"
    target.wcs.set()
    return target


def reference_warp(data: np.ndarray, src: WCS, target: WCS, shape: tuple[int, int]) -> np.ndarray:
    from reproject import reproject_interp

    out, _ = reproject_interp((data, src), target, shape_out=shape, order="bicubic")
    return np.asarray(out)


def shift_mas(image: np.ndarray, reference: np.ndarray) -> float:
    """Translation (mas) of ``image`` relative to ``reference`` over the pixels both cover, away
    from the edges: Gauss-Newton on ``image(x) = reference(x - d)``, the reference shifted by
    cubic splines (:func:`scipy.ndimage.shift`), so the estimate is not biased by finite
    differences."""
    from scipy import ndimage

    good = np.isfinite(image) & np.isfinite(reference)
    good[:12, :] = good[-12:, :] = good[:, :12] = good[:, -12:] = False
    filled = np.where(np.isfinite(reference), reference, np.nanmedian(reference))
    d = np.zeros(2)  # (dy, dx)
    for _ in range(6):
        moved = ndimage.shift(filled, d, order=3, mode="nearest")
        # d(moved)/dd by central differences of the spline shift itself
        jac = [
            ndimage.shift(filled, d + e, order=3, mode="nearest")
            - ndimage.shift(filled, d - e, order=3, mode="nearest")
            for e in (np.array([0.05, 0.0]), np.array([0.0, 0.05]))
        ]
        a = np.column_stack([j[good] / 0.1 for j in jac])
        step, *_ = np.linalg.lstsq(a, (image - moved)[good], rcond=None)
        d += step
        if np.hypot(*step) < 1e-6:
            break
    return float(np.hypot(*d) * PIXEL_SCALE_MAS)


@pytest.fixture(scope="module")
def scene(hsc: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    data, src = source_wcs(hsc)
    shape = (190, 190)
    target = icrs_target(src, shape)
    tmp = tmp_path_factory.mktemp("frames")
    head = tmp / "icrs.head"
    header = target.to_header()
    header["NAXIS1"], header["NAXIS2"] = shape[1], shape[0]
    head.write_text(header.tostring(sep="\n"))
    return {
        "data": data,
        "src": src,
        "target": target,
        "shape": shape,
        "head": head,
        "tmp": tmp,
        "reference": reference_warp(data, src, target, shape),
    }


def test_ignoring_the_frame_would_move_this_field_by_18_to_29_mas(scene: dict) -> None:
    """The size of the effect under test, measured with astropy.coordinates alone."""
    from astropy.coordinates import SkyCoord

    src = scene["src"]
    ra, dec = src.all_pix2world([0.0, 199.0, 0.0, 199.0], [0.0, 0.0, 199.0, 199.0], 0)
    fk5 = SkyCoord(ra, dec, unit="deg", frame="fk5", equinox="J2000")
    icrs = SkyCoord(ra, dec, unit="deg", frame="icrs")
    sep = fk5.icrs.separation(icrs).to_value("mas")
    assert np.all((sep > 15) & (sep < 35))
    # and the warp of the frame-less WCS really is displaced by that much against reproject
    from warping.warp import WarpingControl, warp_image

    naive = scene["src"].deepcopy()
    naive.wcs.radesys = "ICRS"
    naive.wcs.set()
    control = WarpingControl(mask_kernel="", interp_length=0)
    wrong = warp_image(scene["data"], naive, scene["target"], scene["shape"], control=control)
    assert abs(shift_mas(wrong, scene["reference"]) - np.median(sep)) < 3.0


def test_rb_warp_image_converts_fk5_to_icrs_like_reproject(scene: dict, hsc: Path) -> None:
    from typer.testing import CliRunner

    from repo_butler_cli.main import app

    out = scene["tmp"] / "warped.fits"
    result = CliRunner().invoke(
        app, ["warp-image", str(hsc), str(scene["head"]), str(out), "--interp-length", "0"]
    )
    assert result.exit_code == 0, result.output
    warped = fits.getdata(out).astype(np.float64)
    assert np.isfinite(warped).sum() > 0.8 * warped.size
    assert shift_mas(warped, scene["reference"]) < 1.0


def test_make_warp_reader_and_warp_exposure_convert_fk5_to_icrs(scene: dict, hsc: Path) -> None:
    from warping.formats.exposure_fits import read_exposure
    from warping.warp import WarpingControl, warp_exposure

    exposure = read_exposure(hsc)
    assert exposure.xy0 == (100, 100)
    target = scene["target"]
    warp = warp_exposure(
        exposure,
        target,
        control=WarpingControl(interp_length=0),
    )
    # place the warp (its own bbox in the target's parent pixels) onto the reference grid
    ny, nx = scene["shape"]
    full = np.full((ny, nx), np.nan)
    x0, y0 = warp.xy0
    h, w = warp.image.shape
    ys, xs = slice(max(y0, 0), min(y0 + h, ny)), slice(max(x0, 0), min(x0 + w, nx))
    full[ys, xs] = warp.image[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    assert np.isfinite(full).sum() > 0.8 * full.size
    assert shift_mas(full, scene["reference"]) < 1.0
