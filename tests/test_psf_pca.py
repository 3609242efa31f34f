"""PcaPsf / KernelPsf: archive reading (modern and version-0 tables), evaluation against analytic
truth and against the real meas_modelfit PSF, persistence, and the PSFs that are refused."""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from afw_archive import ArchiveObject, archive_file, kernel_psf_objects, write_afw_calexp
from astropy.io import fits
from numpy.polynomial import chebyshev, polynomial

from warping.errors import FormatError
from warping.exposure import Exposure
from warping.formats.afw_psf import (
    PSF_CLASS_KEY,
    PSF_REASON_KEY,
    UnsupportedPsfError,
    read_archived_psf,
)
from warping.formats.exposure_fits import ExposureFormatter, read_exposure
from warping.formats.fits_dict import bintable_to_dict, dict_to_bintable
from warping.formats.lsst_afw import LsstArchive
from warping.geom import Box2I
from warping.psf import (
    Chebyshev1Function2D,
    KernelPsf,
    LinearCombinationKernel,
    PcaPsf,
    PolynomialFunction2D,
    psf_from_dict,
    psf_to_dict,
)
from warping.psf.base import PsfError

# -- a synthetic PcaPsf: Gaussian basis images, so every evaluation has an analytic truth ---------
W, H, CX, CY = 29, 25, 14, 11  # not square, centre not in the middle: exercises the padding
HALF = max(CX, W - 1 - CX, CY, H - 1 - CY)
N = 2 * HALF + 1  # the odd square kernel images
#: (sx, sy, rho): well sampled (sigma >= 1.5 px) and ~0 (< 1e-7) at the image edges, so shifting
#: the sampled images is shifting the continuous profiles
GAUSSIANS = [(1.6, 1.6, 0.0), (2.0, 1.7, 0.3), (1.5, 1.9, -0.2)]
CHEB = Chebyshev1Function2D((1.0, 0.05, -0.03, 0.01, 0.02, -0.015), (0.0, 0.0, 2047.0, 4175.0))
CHEB3 = Chebyshev1Function2D(tuple(0.01 * np.arange(1, 11)), (-100.0, 50.0, 2100.0, 4000.0))
POLY = PolynomialFunction2D((0.2, 1e-4, -2e-5, 1e-8, 3e-9, -4e-9))
FUNCTIONS = [CHEB, CHEB3, POLY]
POSITIONS = [(0.0, 0.0), (1023.5, 2087.5), (2047.0, 4175.0), (311.25, 3999.75), (-40.0, 4300.0)]


def gaussian(dx: np.ndarray, dy: np.ndarray, sx: float, sy: float, rho: float) -> np.ndarray:
    q = (dx / sx) ** 2 - 2 * rho * (dx / sx) * (dy / sy) + (dy / sy) ** 2
    return np.exp(-0.5 * q / (1 - rho**2))


def basis_images(shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Basis k at offsets ``(c - CX - shift_x, r - CY - shift_y)``; non-normalised."""
    dx = np.arange(W) - CX - shift[0]
    dy = np.arange(H) - CY - shift[1]
    return np.stack([gaussian(dx[None, :], dy[:, None], *g) for g in GAUSSIANS])


def cheb_truth(f: Chebyshev1Function2D, x: float, y: float) -> float:
    """numpy's chebval2d on the coefficients put in a matrix (afw order: by degree, x first)."""
    order = f.order
    c = np.zeros((order + 1, order + 1))
    k = 0
    for n in range(order + 1):
        for j in range(n + 1):
            c[n - j, j] = f.coefficients[k]
            k += 1
    x0, y0, x1, y1 = f.xy_range
    u = (x - (x0 + x1) / 2) * 2 / (x1 - x0)
    v = (y - (y0 + y1) / 2) * 2 / (y1 - y0)
    return float(chebyshev.chebval2d(u, v, c))


def poly_truth(f: PolynomialFunction2D, x: float, y: float) -> float:
    order = f.order
    c = np.zeros((order + 1, order + 1))
    k = 0
    for n in range(order + 1):
        for j in range(n + 1):
            c[n - j, j] = f.coefficients[k]
            k += 1
    return float(polynomial.polyval2d(x, y, c))


def amplitudes_truth(x: float, y: float) -> np.ndarray:
    return np.array([cheb_truth(CHEB, x, y), cheb_truth(CHEB3, x, y), poly_truth(POLY, x, y)])


def truth_kernel(x: float, y: float, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Σ a_k B_k / Σ a_k S_k, on the W x H grid (S_k: sums of the unshifted basis)."""
    a = amplitudes_truth(x, y)
    sums = basis_images().sum(axis=(1, 2))
    return np.tensordot(a, basis_images(shift), axes=1) / float(a @ sums)


def padded(k: np.ndarray) -> np.ndarray:
    """A W x H kernel placed in the odd square centred on (CX, CY)."""
    out = np.zeros((N, N))
    out[HALF - CY : HALF - CY + H, HALF - CX : HALF - CX + W] = k
    return out


AVERAGE = (1000.25, 2000.75)


def synthetic_file(tmp_path: Path, *, version0: bool, name: str = "pca.fits") -> Path:
    objs = kernel_psf_objects(
        basis_images(), (CX, CY), functions=FUNCTIONS, average_position=AVERAGE
    )
    path = tmp_path / name
    archive_file(objs, version0=version0).writeto(path)
    return path


def read_psf(path: Path, obj_id: int = 1) -> Any:
    with fits.open(path) as hdul:
        return read_archived_psf(LsstArchive(hdul, str(path)), obj_id)


# -- (a) synthetic PcaPsf read back equals its definition ------------------------------------------
@pytest.mark.parametrize("version0", [False, True], ids=["modern", "version0"])
def test_synthetic_pca_psf_reads_back_its_kernels_and_functions(
    tmp_path: Path, version0: bool
) -> None:
    path = synthetic_file(tmp_path, version0=version0)
    with fits.open(path) as hdul:  # as afw does, objects with one schema share a data table
        index = hdul[1].data
        tables = {str(n).strip(): set() for n in index["name"]}
        for name, cat, row0 in zip(index["name"], index.field(1), index["row0"], strict=True):
            tables[str(name).strip()].add((int(cat), int(row0)))
        assert len(hdul) == 8  # primary, index, PcaPsf, kernel, 2 Chebyshev schemas, poly, images
        assert tables["FixedKernel"] == {(6, 0), (6, 1), (6, 2)}
        assert tables["Chebyshev1Function2D"] == {(3, 0), (4, 0)}  # 6 and 10 coefficients
        assert index.columns.names[1] == ("cat_archive" if version0 else "cat.archive")
    psf = read_psf(path)
    assert type(psf) is PcaPsf
    assert psf.average_position() == AVERAGE
    kernel = psf.kernel
    np.testing.assert_array_equal(kernel.basis, basis_images())
    assert kernel.center == (CX, CY)
    assert kernel.spatial_functions == tuple(FUNCTIONS)
    for x, y in POSITIONS:
        np.testing.assert_allclose(
            kernel.amplitudes_at(x, y), amplitudes_truth(x, y), rtol=1e-13, atol=1e-15
        )
        np.testing.assert_allclose(kernel.image(x, y), truth_kernel(x, y), rtol=1e-12, atol=1e-16)
        k = psf.compute_kernel_image(x, y)
        assert k.shape == (N, N) and k.sum() == pytest.approx(1.0, abs=1e-13)
        np.testing.assert_allclose(k, padded(truth_kernel(x, y)), rtol=1e-12, atol=1e-16)


def test_compute_image_is_the_model_at_the_subpixel_position(tmp_path: Path) -> None:
    psf = read_psf(synthetic_file(tmp_path, version0=False))
    for x, y in [(1000.3, 2000.8), (17.5, 3.49), (250.0, 4100.0), (1999.12, 7.77)]:
        img, box = psf.compute_image(x, y)
        ix, iy = math.floor(x + 0.5), math.floor(y + 0.5)
        assert box == Box2I(ix - HALF, iy - HALF, N, N)
        # truth: the analytic basis sampled at the exact offsets from (x, y), normalised
        truth = padded(truth_kernel(x, y, shift=(x - ix, y - iy)))
        np.testing.assert_allclose(img, truth / truth.sum(), atol=2e-7)  # peak ~0.07
        yy, xx = np.mgrid[box.y0 : box.y0 + N, box.x0 : box.x0 + N]
        k = psf.compute_kernel_image(x, y)
        kyy, kxx = np.mgrid[-HALF : HALF + 1, -HALF : HALF + 1]
        assert (img * xx).sum() == pytest.approx(x + (k * kxx).sum(), abs=1e-5)
        assert (img * yy).sum() == pytest.approx(y + (k * kyy).sum(), abs=1e-5)
    # a non-finite position evaluates the model at the average position (afw)
    np.testing.assert_array_equal(
        psf.compute_kernel_image(math.nan, 0.0), psf.compute_kernel_image(*AVERAGE)
    )


def test_constant_amplitudes_and_fixed_kernel_psfs(tmp_path: Path) -> None:
    amps = [0.7, 0.2, 0.1]
    objs = kernel_psf_objects(basis_images(), (CX, CY), amplitudes=amps, psf_class="KernelPsf")
    path = tmp_path / "k.fits"
    archive_file(objs).writeto(path)
    psf = read_psf(path)
    assert type(psf) is KernelPsf and not psf.kernel.is_spatially_varying
    b = basis_images()
    truth = np.tensordot(amps, b, axes=1) / float(np.dot(amps, b.sum(axis=(1, 2))))
    for x, y in POSITIONS:
        np.testing.assert_allclose(psf.compute_kernel_image(x, y), padded(truth), rtol=1e-13)
    # a KernelPsf of one FixedKernel: that image, normalised
    fixed = [
        ArchiveObject(
            1,
            "KernelPsf",
            "lsst.meas.algorithms",
            [{"kernel": 2, "averagePosition": objs[0].catalogs[0]["averagePosition"]}],
        ),
        ArchiveObject(2, "FixedKernel", "lsst.afw.math", [objs[-1].catalogs[0]]),
    ]
    archive_file(fixed).writeto(tmp_path / "f.fits")
    one = read_psf(tmp_path / "f.fits")
    np.testing.assert_allclose(one.compute_kernel_image(5.0, 5.0), padded(b[-1] / b[-1].sum()))


def test_zero_sum_kernel_cannot_be_evaluated(tmp_path: Path) -> None:
    b = basis_images()
    s = b.sum(axis=(1, 2))
    amps = [s[1], -s[0], 0.0]  # Σ a_k S_k = 0
    objs = kernel_psf_objects(b, (CX, CY), amplitudes=amps, psf_class="KernelPsf")
    archive_file(objs).writeto(tmp_path / "z.fits")
    psf = read_psf(tmp_path / "z.fits")  # reading is fine (afw too); evaluating is not
    with pytest.raises(PsfError, match="cannot be normalised"):
        psf.compute_image(10.0, 10.0)


def test_pca_psf_persists_in_our_format_and_pickles(tmp_path: Path) -> None:
    psf = read_psf(synthetic_file(tmp_path, version0=True))
    back = psf_from_dict(bintable_to_dict(dict_to_bintable(psf_to_dict(psf), "PSF")))
    assert type(back) is PcaPsf and back == psf
    again = pickle.loads(pickle.dumps(psf))
    assert again == psf
    for x, y in POSITIONS[:2]:
        np.testing.assert_array_equal(
            back.compute_kernel_image(x, y), psf.compute_kernel_image(x, y)
        )
        np.testing.assert_array_equal(
            again.compute_image(x + 0.3, y)[0], psf.compute_image(x + 0.3, y)[0]
        )
    const = KernelPsf(LinearCombinationKernel(basis_images(), (CX, CY), amplitudes=[1, 2, 3]))
    assert psf_from_dict(bintable_to_dict(dict_to_bintable(psf_to_dict(const), "PSF"))) == const


# -- (b) the real PcaPsf of meas_modelfit's calexp ----------------------------------------------
@pytest.fixture(scope="module")
def modelfit(shared_data: Path) -> Path:
    path = shared_data / "lsst-meas_modelfit" / "calexp.fits"
    if not path.exists():
        pytest.skip(f"{path} is not in ../shared/data")
    return path


def independent_kernel(path: Path, x: float, y: float) -> np.ndarray:
    """The kernel straight from the file's tables (HDU 6 kernel, 7 functions, 8 images) with
    numpy's chebval2d: the reference's archive graph, without our archive or PSF code."""
    with fits.open(path) as hdul:
        lck = hdul[6].data[0]
        funcs = hdul[7].data
        images = hdul[8].data
        n = len(lck["components"])
        w, h = (int(v) for v in lck["dimensions"])
        a = []
        for i in range(n):
            coeffs, lo, hi = funcs[i]["coefficients"], funcs[i]["min"], funcs[i]["max"]
            c = np.zeros((3, 3))
            c[0, 0], c[1, 0], c[0, 1], c[2, 0], c[1, 1], c[0, 2] = coeffs
            u = (x - (lo[0] + hi[0]) / 2) * 2 / (hi[0] - lo[0])
            v = (y - (lo[1] + hi[1]) / 2) * 2 / (hi[1] - lo[1])
            a.append(chebyshev.chebval2d(u, v, c))
        basis = np.stack(
            [np.asarray(images[i]["image"], dtype=float).reshape(h, w) for i in range(n)]
        )
    # index rows in the file are in id order: functions 3-10, images 11-18 (checked below)
    return np.tensordot(a, basis, axes=1) / float(np.dot(a, basis.sum(axis=(1, 2))))


def test_real_pca_psf_is_a_normalised_2_24_pixel_kernel(modelfit: Path) -> None:
    exp = read_exposure(modelfit)
    psf = exp.psf
    assert isinstance(psf, PcaPsf) and PSF_CLASS_KEY not in exp.metadata
    ax, ay = psf.average_position()
    assert (ax, ay) == pytest.approx((2014.18, 1948.20), abs=0.01)
    kernel = psf.kernel
    assert kernel.basis.shape == (8, 25, 25) and kernel.center == (12, 12)
    assert all(
        isinstance(f, Chebyshev1Function2D)
        and f.order == 2
        and f.xy_range == (0.0, 0.0, 4000.0, 4072.0)
        for f in kernel.spatial_functions
    )
    assert kernel.spatial_functions[0].coefficients == (1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    np.testing.assert_allclose(kernel.basis_sums, [1, 0, 0, 0, 0, 0, 0, 0], atol=1e-6)
    with fits.open(modelfit) as hdul:
        index = hdul[4].data
        ids = {
            str(n).strip(): sorted(
                int(i)
                for i, m in zip(index["id"], index["name"], strict=True)
                if str(m).strip() == str(n).strip()
            )
            for n in index["name"]
        }
    assert ids["Chebyshev1Function2D"] == list(range(3, 11))
    assert ids["FixedKernel"] == list(range(11, 19))
    k = psf.compute_kernel_image(ax, ay)
    assert k.shape == (25, 25)
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    assert k.max() == pytest.approx(0.0640, abs=5e-5) and k.argmax() == 12 * 25 + 12
    yy, xx = np.mgrid[-12:13, -12:13]
    assert (k * xx).sum() == pytest.approx(0.004, abs=0.001)
    assert (k * yy).sum() == pytest.approx(0.002, abs=0.001)
    ixx, iyy, ixy = psf.second_moments(ax, ay)
    assert (ixx, iyy, ixy) == pytest.approx((5.04, 5.01, -0.01), abs=0.005)
    sigma = (ixx * iyy - ixy * ixy) ** 0.25
    assert sigma == pytest.approx(2.24, abs=0.005)
    for x, y in [(ax, ay), (1918.0, 2150.0), (0.0, 0.0), (3999.0, 4071.0)]:
        np.testing.assert_allclose(
            psf.compute_kernel_image(x, y),
            independent_kernel(modelfit, x, y),
            rtol=1e-12,
            atol=1e-17,
        )
    for x, y in [(1918.0, 2150.0), (0.0, 0.0)]:  # the model barely varies over the CCD
        assert psf.second_moments(x, y) == pytest.approx((ixx, iyy, ixy), abs=0.005)
    # a star in the cutout (xy0 = (1868, 2100)): unit flux, centred where asked
    img, box = psf.compute_image(1918.3, 2150.8)
    assert box == Box2I(1906, 2139, 25, 25) and img.sum() == pytest.approx(1.0)
    by, bx = np.mgrid[box.y0 : box.y0 + 25, box.x0 : box.x0 + 25]
    kc = psf.compute_kernel_image(1918.3, 2150.8)
    # moved by (+0.3, -0.2) within 0.002 px: the kernel's noisy, partly negative wings reach the
    # stamp edges, where shifted flux leaves the stamp (afw's Lanczos-5 shift is 0.009 px short)
    assert (img * bx).sum() == pytest.approx(1918.3 + (kc * xx).sum(), abs=0.002)
    assert (img * by).sum() == pytest.approx(2150.8 + (kc * yy).sum(), abs=0.002)


def test_real_pca_psf_survives_our_format_and_pickle(modelfit: Path) -> None:
    exp = read_exposure(modelfit)
    fmt = ExposureFormatter()
    back = fmt.from_bytes(fmt.to_bytes(exp), source="mem://calexp")
    assert type(back.psf) is PcaPsf and back.psf == exp.psf
    clone = pickle.loads(pickle.dumps(exp.psf))  # as Dask ships it inside a CoaddPsf's inputs
    assert clone == exp.psf
    np.testing.assert_array_equal(
        clone.compute_image(1900.5, 2120.25)[0], exp.psf.compute_image(1900.5, 2120.25)[0]
    )


# -- (c) Piff is refused without unpickling ----------------------------------------------------
class _Tripwire:
    """Unpickling this creates ``path``: proof that something unpickled the payload."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Path.touch, (self.path,))


def piff_objects(payload: bytes) -> list[ArchiveObject]:
    return [ArchiveObject(1, "PiffPsf", "lsst.meas.extensions.piff.piffPsf", [{"bytes": payload}])]


def test_piff_psf_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    # the tripwire works: unpickling a payload like the file's creates its marker
    probe = tmp_path / "probe-unpickled"
    pickle.loads(pickle.dumps(_Tripwire(probe)))
    assert probe.exists()
    marker = tmp_path / "piff-unpickled"
    archive_file(piff_objects(pickle.dumps(_Tripwire(marker)))).writeto(tmp_path / "piff.fits")
    with pytest.raises(UnsupportedPsfError, match=r"piff\.fits: PiffPsf .*pickle.*never unpickled"):
        read_psf(tmp_path / "piff.fits")
    assert not marker.exists()
    # in a calexp: the pixels are readable, the PSF is None with the class and the reason
    calexp = Exposure.empty(Box2I(0, 0, 20, 10), fill_no_data=False)
    calexp.image[:] = 3.0
    write_afw_calexp(
        tmp_path / "calexp.fits", calexp, piff_objects(pickle.dumps(_Tripwire(marker))), 1
    )
    exp = read_exposure(tmp_path / "calexp.fits")
    assert exp.psf is None and np.all(exp.image == 3.0)
    assert exp.metadata[PSF_CLASS_KEY] == "PiffPsf"
    assert "never unpickled" in exp.metadata[PSF_REASON_KEY]
    assert not marker.exists()


# -- (d) unknown classes and malformed objects: clear errors ------------------------------------
def test_unknown_psf_class_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    objs = [ArchiveObject(1, "MysteryPsf", "lsst.somewhere", [{"sigma": 2.0}])]
    archive_file(objs).writeto(tmp_path / "m.fits")
    with pytest.raises(UnsupportedPsfError) as info:
        read_psf(tmp_path / "m.fits")
    msg = str(info.value)
    assert str(tmp_path / "m.fits") in msg and "'MysteryPsf' is not supported" in msg
    assert "PcaPsf" in msg and "PsfexPsf" in msg and "make-warp skips this CCD" in msg
    assert info.value.psf_class == "MysteryPsf" and isinstance(info.value, FormatError)
    assert isinstance(info.value, ValueError)
    # a PcaPsf with a basis kernel we do not evaluate names both classes
    good = kernel_psf_objects(basis_images(), (CX, CY), functions=FUNCTIONS)
    bad = [
        o
        if o.name != "FixedKernel" or o.id != good[-1].id
        else ArchiveObject(o.id, "AnalyticKernel", o.module, o.catalogs)
        for o in good
    ]
    archive_file(bad).writeto(tmp_path / "a.fits")
    with pytest.raises(
        UnsupportedPsfError,
        match="'PcaPsf' with a basis kernel of class 'AnalyticKernel' is not supported",
    ):
        read_psf(tmp_path / "a.fits")


def test_malformed_pca_psf_names_the_file(tmp_path: Path) -> None:
    objs = kernel_psf_objects(basis_images(), (CX, CY), functions=FUNCTIONS)
    objs[-1].catalogs[0]["image"] = np.zeros(W * H - 1)  # one pixel short
    archive_file(objs).writeto(tmp_path / "short.fits")
    with pytest.raises(
        FormatError,
        match=rf"short\.fits: .*FixedKernel.*{W * H - 1} pixels for "
        rf"dimensions {W}x{H}",
    ):
        read_psf(tmp_path / "short.fits")
    funcs = kernel_psf_objects(basis_images(), (CX, CY), functions=FUNCTIONS)
    funcs[2].catalogs[0]["coefficients"] = np.ones(5)  # not a triangular number
    archive_file(funcs).writeto(tmp_path / "five.fits")
    with pytest.raises(FormatError, match=r"five\.fits: .*5 coefficients is not a triangular"):
        read_psf(tmp_path / "five.fits")
