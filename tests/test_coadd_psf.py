"""WarpedPsf and CoaddPsf against analytic Gaussians pushed through known affine maps."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS

from warping.coadd_inputs import CcdRecord
from warping.coadd_psf import CoaddPsf, WarpedPsf
from warping.geom import Box2I
from warping.psf.base import Psf, PsfError


class _AnalyticGaussian(Psf):
    """Test-only elliptical Gaussian with covariance ``cov`` (source pixels), pixel-integrated."""

    def __init__(self, cov: np.ndarray, half: int = 12) -> None:
        self.cov = np.asarray(cov, dtype=float)
        self.inv = np.linalg.inv(self.cov)
        self.half = half

    def _draw(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        # 5x5 sub-sampling of each pixel approximates the pixel integral
        acc = np.zeros_like(dx)
        for ox in np.linspace(-0.4, 0.4, 5):
            for oy in np.linspace(-0.4, 0.4, 5):
                u, v = dx + ox, dy + oy
                q = self.inv[0, 0] * u * u + 2 * self.inv[0, 1] * u * v + self.inv[1, 1] * v * v
                acc += np.exp(-0.5 * q)
        return acc / acc.sum()

    def compute_kernel_image(self, x: float, y: float) -> np.ndarray:
        yy, xx = np.mgrid[-self.half : self.half + 1, -self.half : self.half + 1].astype(float)
        return self._draw(xx, yy)

    def compute_image(self, x: float, y: float) -> tuple[np.ndarray, Box2I]:
        xr, yr = round(x), round(y)
        box = Box2I(xr - self.half, yr - self.half, 2 * self.half + 1, 2 * self.half + 1)
        yy, xx = np.mgrid[box.y0 : box.y1 + 1, box.x0 : box.x1 + 1].astype(float)
        return self._draw(xx - x, yy - y), box

    def average_position(self) -> tuple[float, float]:
        return (100.0, 200.0)


def _moments(img: np.ndarray) -> tuple[float, float, float, float, float]:
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w]
    s = img.sum()
    cx, cy = (img * xx).sum() / s, (img * yy).sum() / s
    ixx = (img * (xx - cx) ** 2).sum() / s
    iyy = (img * (yy - cy) ** 2).sum() / s
    ixy = (img * (xx - cx) * (yy - cy)).sum() / s
    return cx, cy, ixx, iyy, ixy


def _affine(matrix: np.ndarray, offset: tuple[float, float]):  # type: ignore[no-untyped-def]
    def f(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (
            matrix[0, 0] * x + matrix[0, 1] * y + offset[0],
            matrix[1, 0] * x + matrix[1, 1] * y + offset[1],
        )

    return f


@pytest.mark.parametrize("angle", [0.0, 30.0, 90.0])
def test_warped_psf_moments_follow_the_affine_map(angle: float) -> None:
    cov = np.array([[4.0, 0.6], [0.6, 2.5]])  # source pixels^2
    scale = 1.19  # source pixels per destination pixel (0.2"/0.168")
    t = np.radians(angle)
    jac = scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    psf = WarpedPsf(_AnalyticGaussian(cov), _affine(jac, (13.3, -7.1)), kernel="lanczos5")
    k = psf.compute_kernel_image(250.3, 410.7)
    assert k.shape[0] % 2 == 1 and k.shape[0] == k.shape[1]
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    cx, cy, ixx, iyy, ixy = _moments(k)
    c = k.shape[0] // 2
    assert (cx, cy) == pytest.approx((c, c), abs=0.01)  # LSST testFractionalPixel bound
    inv = np.linalg.inv(jac)
    expected = inv @ (cov + np.eye(2) / 12.0) @ inv.T  # pixel-integrated source moments, mapped
    # the destination sampling adds ~1/12 px^2 of pixel response; allow 1 %
    assert ixx == pytest.approx(expected[0, 0] + 0.0, rel=0.03)
    assert iyy == pytest.approx(expected[1, 1], rel=0.03)
    assert ixy == pytest.approx(expected[0, 1], abs=0.03 * np.sqrt(expected[0, 0] * expected[1, 1]))


def test_warped_psf_image_is_centred_on_subpixel_position() -> None:
    jac = np.array([[1.19, 0.05], [-0.03, 1.21]])
    psf = WarpedPsf(_AnalyticGaussian(np.diag([3.0, 3.0])), _affine(jac, (5.0, 2.0)))
    img, box = psf.compute_image(100.37, 57.81)
    cx, cy, *_ = _moments(img)
    assert box.x0 + cx == pytest.approx(100.37, abs=0.01)
    assert box.y0 + cy == pytest.approx(57.81, abs=0.01)


def test_warped_psf_rejects_huge_transforms() -> None:
    psf = WarpedPsf(_AnalyticGaussian(np.eye(2)), _affine(np.eye(2) * 500.0, (0.0, 0.0)))
    with pytest.raises(PsfError, match="Unexpectedly large transform"):
        psf.compute_kernel_image(1.0, 1.0)


def _tan(crval: tuple[float, float], scale_arcsec: float, rot_deg: float = 0.0) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = crval
    w.wcs.crpix = [1.0, 1.0]
    s = scale_arcsec / 3600.0
    t = np.radians(rot_deg)
    w.wcs.cd = s * np.array([[-np.cos(t), np.sin(t)], [np.sin(t), np.cos(t)]])
    return w


def test_coadd_psf_averages_the_ccds_containing_a_point() -> None:
    coadd_wcs = _tan((150.0, 2.0), 0.2)
    box = Box2I(0, 0, 400, 400)
    psf_a = _AnalyticGaussian(np.diag([4.0, 4.0]))
    psf_b = _AnalyticGaussian(np.diag([9.0, 1.0]))
    ccd_a = CcdRecord(1, 1, 7, 100, 1.0, "HSC-I", box, _tan((150.0, 2.0), 0.168), psf=psf_a)
    ccd_b = CcdRecord(2, 2, 7, 100, 1.0, "HSC-I", box, _tan((150.0, 2.0), 0.168, 90.0), psf=psf_b)
    cpsf = CoaddPsf([ccd_a, ccd_b], coadd_wcs, kernel="lanczos3")
    # (100, 100) in the coadd is on CCD a (near its origin); with b rotated by 90 deg around
    # the same pixel it lands at negative y on b, outside it.
    assert cpsf.containing(100.0, 100.0) == [0]
    k_only_a = cpsf.compute_kernel_image(100.0, 100.0)
    k_a = WarpedPsf.from_wcs_pair(ccd_a.psf, ccd_a.wcs, coadd_wcs).compute_kernel_image(
        100.0, 100.0
    )
    assert np.allclose(k_only_a, k_a)
    # a point on both: mixture moments are the mean of the two components
    ccd_b.bbox = Box2I(0, -400, 400, 800)
    cpsf = CoaddPsf([ccd_a, ccd_b], coadd_wcs)
    assert cpsf.containing(100.0, 100.0) == [0, 1]
    mix = cpsf.compute_kernel_image(100.0, 100.0)
    _, _, ixx, iyy, _ = _moments(mix)
    parts = [
        _moments(WarpedPsf.from_wcs_pair(c.psf, c.wcs, coadd_wcs).compute_kernel_image(100, 100))
        for c in (ccd_a, ccd_b)
    ]
    assert ixx == pytest.approx(0.5 * (parts[0][2] + parts[1][2]), rel=0.02)
    assert iyy == pytest.approx(0.5 * (parts[0][3] + parts[1][3]), rel=0.02)
    # b's 9-vs-1 ellipse lies along b's x axis, which points north: along y in the coadd
    assert iyy > ixx
    with pytest.raises(PsfError, match="No input CCD"):
        cpsf.compute_kernel_image(-5000.0, -5000.0)


@pytest.mark.parametrize("kernel", ["lanczos3", "lanczos5", "bilinear"])
def test_psf_resampler_agrees_with_the_image_warper(kernel: str) -> None:
    """The vectorised PSF resampler and the compiled warper are the same afw kernels."""
    from warping.coadd_psf import resample_zero_padded
    from warping.warp import WarpingControl, warp_with_transform

    rng = np.random.default_rng(3)
    src = rng.random((30, 30))
    src_box = Box2I(-15, -15, 30, 30)
    dest = Box2I(-6, -6, 13, 13)
    jac = np.array([[1.19, 0.1], [-0.07, 1.21]])
    off = np.array([0.37, -0.21])

    def affine(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return jac[0, 0] * x + jac[0, 1] * y + off[0], jac[1, 0] * x + jac[1, 1] * y + off[1]

    control = WarpingControl(kernel=kernel, mask_kernel="", interp_length=0, grow_full_mask=())
    res = warp_with_transform(src.astype(np.float32), None, None, (src_box.x0, src_box.y0), dest,
                              affine, control=control)  # fmt: skip
    yy, xx = np.mgrid[dest.y0 : dest.y1 + 1, dest.x0 : dest.x1 + 1]
    u, v = affine(xx.ravel().astype(float), yy.ravel().astype(float))
    mine = resample_zero_padded(src, src_box, u, v, kernel).reshape(dest.shape)
    area = abs(np.linalg.det(jac))  # the image warper conserves flux
    good = np.isfinite(res.image)
    assert good.sum() > 50
    np.testing.assert_allclose(mine[good] * area, res.image[good], rtol=2e-5, atol=1e-5)


class _FailingLeft(_AnalyticGaussian):
    """Raises PsfError for source positions left of x = 0."""

    def compute_image(self, x: float, y: float) -> tuple[np.ndarray, Box2I]:
        if x < 0:
            raise PsfError(f"no PSF at ({x:.1f}, {y:.1f})")
        return super().compute_image(x, y)


@pytest.mark.parametrize("kernel", ["lanczos3", "lanczos5", "bilinear"])
def test_batch_kernel_images_equal_single_evaluations(kernel: str) -> None:
    """compute_kernel_images == compute_kernel_image at each position; errors per position."""
    cov = np.array([[3.0, 0.8], [0.8, 2.0]])
    jac = np.array([[1.05, 0.2], [-0.15, 0.98]])
    psf = WarpedPsf(_FailingLeft(cov), _affine(jac, (7.3, -2.6)), kernel=kernel)
    rng = np.random.default_rng(4)
    xs = np.concatenate([rng.uniform(-40.0, 300.0, 70), [12.0, 100.0]])
    ys = np.concatenate([rng.uniform(-50.0, 250.0, 70), [33.0, -4.0]])
    batch = psf.compute_kernel_images(xs, ys)
    assert len(batch) == len(xs)
    n_err = 0
    for x, y, got in zip(xs, ys, batch, strict=True):
        try:
            want = psf.compute_kernel_image(float(x), float(y))
        except PsfError as exc:
            assert isinstance(got, PsfError) and str(got) == str(exc)
            n_err += 1
            continue
        assert isinstance(got, np.ndarray) and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-14)
    assert 0 < n_err < len(xs)
