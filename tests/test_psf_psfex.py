"""PSFEx models read from a real PSFEx ``.psf`` file and from an LSST calexp archive."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from warping.psf import PsfexPsf, psf_from_dict, psf_to_dict


def centroid(img: np.ndarray, x0: int, y0: int) -> tuple[float, float]:
    yy, xx = np.mgrid[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]]
    s = img.sum()
    return float((img * xx).sum() / s), float((img * yy).sum() / s)


@pytest.fixture(scope="module")
def decam(shared_data: Path) -> PsfexPsf:
    return PsfexPsf.from_fits(shared_data / "galsim-tests" / "DECam_00154912_12_psfcat.psf")


def test_reads_header_and_components(decam: PsfexPsf, shared_data: Path) -> None:
    assert decam.comp.shape == (6, 25, 25)
    assert decam.degree == 2
    hdr = fits.getheader(shared_data / "galsim-tests" / "DECam_00154912_12_psfcat.psf", 1)
    assert decam.sample == pytest.approx(hdr["PSF_SAMP"])
    assert decam.polzero == (hdr["POLZERO1"], hdr["POLZERO2"])
    assert decam.polscal == (hdr["POLSCAL1"], hdr["POLSCAL2"])
    # basis at the context origin is (1, 0, 0, 0, 0, 0)
    b = decam.basis(hdr["POLZERO1"] - 1.0, hdr["POLZERO2"] - 1.0)
    np.testing.assert_allclose(b, [1, 0, 0, 0, 0, 0], atol=1e-15)


@pytest.mark.parametrize(("x", "y"), [(100.0, 100.0), (1000.0, 2000.0), (1950.0, 4000.0)])
def test_kernel_normalised_and_plausible(decam: PsfexPsf, x: float, y: float) -> None:
    k = decam.compute_kernel_image(x, y)
    assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    c = k.shape[0] // 2
    assert np.unravel_index(k.argmax(), k.shape) == (c, c)
    # DES Y-band seeing ~1-1.5 arcsec at 0.263"/px: a few pixels
    assert 3.0 < decam.fwhm(x, y) < 7.0


def test_half_maximum_width_matches_psfex_estimate(decam: PsfexPsf, shared_data: Path) -> None:
    hdr = fits.getheader(shared_data / "galsim-tests" / "DECam_00154912_12_psfcat.psf", 1)
    d = np.arange(-8.0, 8.0001, 0.1)
    img = decam.evaluate_offsets(d, d, *decam.average_position())
    area = (img > img.max() / 2).sum() * 0.01  # pixels² above half maximum
    fwhm = 2.0 * np.sqrt(area / np.pi)
    # PSFEx's PSF_FWHM (from SExtractor FWHM_IMAGE of the input stars) is a rough estimate
    assert 0.8 < fwhm / hdr["PSF_FWHM"] < 1.1


def test_compute_image_is_centred_where_asked(decam: PsfexPsf) -> None:
    k = decam.compute_kernel_image(1000.0, 2000.0)
    c = k.shape[0] // 2
    kx, ky = centroid(k, -c, -c)  # intrinsic centroid offset of the model
    for dx, dy in [(0.0, 0.0), (0.3, -0.2), (0.5, 0.49), (-0.45, 0.1)]:
        img, bbox = decam.compute_image(1000.0 + dx, 2000.0 + dy)
        cx, cy = centroid(img, bbox.x0, bbox.y0)
        assert cx - 1000.0 - kx == pytest.approx(dx, abs=0.02)
        assert cy - 2000.0 - ky == pytest.approx(dy, abs=0.02)
        assert img.sum() == pytest.approx(1.0, abs=1e-12)


def test_model_varies_over_the_ccd(decam: PsfexPsf) -> None:
    a = decam.compute_kernel_image(50.0, 50.0)
    b = decam.compute_kernel_image(2000.0, 4000.0)
    assert np.abs(a - b).max() > 1e-3
    assert decam.fwhm(50.0, 50.0) != pytest.approx(decam.fwhm(2000.0, 4000.0), rel=1e-3)


def test_dict_round_trip(decam: PsfexPsf) -> None:
    back = psf_from_dict(psf_to_dict(decam))
    assert back == decam
    np.testing.assert_array_equal(
        back.compute_kernel_image(10, 20), decam.compute_kernel_image(10, 20)
    )


def test_not_a_psfex_file(shared_data: Path) -> None:
    with pytest.raises(ValueError, match=r"m13\.fits.*not a PSFEx file"):
        PsfexPsf.from_fits(shared_data / "astropy-testdata" / "m13.fits")
