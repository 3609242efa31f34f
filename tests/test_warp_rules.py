"""Warper rules: kernels, control validation, masks, NaN, edges, tiny inputs, Exposure, CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from warping.exposure import Exposure, VisitInfo
from warping.geom import Box2I
from warping.masks import MaskPlanes
from warping.warp import (
    KERNEL_NAMES,
    WarpingControl,
    compute_warped_bbox,
    kernel_weights,
    warp_exposure,
    warp_image,
    warp_with_transform,
)
from warping.warp._kernels import lanczos_reference, weight_table
from warping.warp.testing import make_tan_wcs

PLANES = MaskPlanes.default()
EDGE = PLANES.bitmask("EDGE")
BAD = PLANES.bitmask("BAD")
NO_DATA = PLANES.bitmask("NO_DATA")


def shift(dx: float, dy: float):  # type: ignore[no-untyped-def]
    def f(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x + dx, y + dy

    return f


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_lanczos_weights_match_definition(n: int) -> None:
    a = np.arange(-(n - 1), n + 1)
    for f in np.linspace(0.0, 0.999, 37):
        np.testing.assert_allclose(
            kernel_weights(f"lanczos{n}", f), lanczos_reference(a - f, n), atol=1e-12
        )
    # the table the core interpolates is accurate below float32 resolution
    table = weight_table(f"lanczos{n}")
    rows = table.shape[0] - 2
    f = (np.arange(rows) + 0.5) / rows
    mid = 0.5 * (table[:-2] + table[1:-1])
    ref = lanczos_reference(a[None, :] - f[:, None], n)
    assert np.abs(mid - ref).max() < 5e-8


def test_bilinear_and_nearest_weights() -> None:
    np.testing.assert_allclose(kernel_weights("bilinear", 0.25), [0.75, 0.25])
    np.testing.assert_allclose(kernel_weights("nearest", 0.49), [1.0, 0.0])
    np.testing.assert_allclose(kernel_weights("nearest", 0.5), [0.0, 1.0])


def test_control_validation() -> None:
    assert WarpingControl().kernel == "lanczos3"
    assert set(KERNEL_NAMES) >= {"nearest", "bilinear", "lanczos5"}
    with pytest.raises(ValueError, match="allowed: nearest, bilinear, lanczos2"):
        WarpingControl(kernel="lanczos7")
    with pytest.raises(ValueError, match="larger than kernel"):
        WarpingControl(kernel="bilinear", mask_kernel="lanczos3")
    with pytest.raises(ValueError, match="interp_length"):
        WarpingControl(interp_length=-1)
    with pytest.raises(ValueError, match="tuple of plane names"):
        WarpingControl(grow_full_mask="EDGE")  # type: ignore[arg-type]
    assert WarpingControl(kernel="lanczos3", mask_kernel="").mask_kernel_spec.n == 3


def test_mask_rules_edge_grown_full_others_bilinear() -> None:
    img = np.zeros((40, 40))
    mask = np.zeros((40, 40), np.int32)
    mask[20, 20] = EDGE | BAD
    res = warp_with_transform(
        img, None, mask, (0, 0), Box2I(0, 0, 40, 40), shift(0.3, 0.6), control=WarpingControl()
    )
    # destination pixel (i, j) reads source columns floor(i+0.3)-2 .. +3, rows floor(j+0.6)-2 .. +3
    edge = np.argwhere(res.mask & EDGE)
    bad = np.argwhere(res.mask & BAD)
    assert {tuple(p) for p in edge} == {(j, i) for j in range(17, 23) for i in range(17, 23)}
    assert {tuple(p) for p in bad} == {(j, i) for j in (19, 20) for i in (19, 20)}
    # pixels within 2 (left/top) or 3 (right/bottom) source pixels of the edge are NO_DATA
    assert (res.mask[:, :2] == NO_DATA).all() and (res.mask[:, 37:] == NO_DATA).all()
    assert np.isnan(res.image[:2]).all() and not np.isnan(res.image[5:30, 5:30]).any()


def test_nan_only_spoils_outputs_whose_footprint_touches_it() -> None:
    rng = np.random.default_rng(1)
    img = rng.normal(size=(50, 50))
    img[25, 25] = np.nan
    out = warp_with_transform(
        img, None, None, (0, 0), Box2I(0, 0, 50, 50), shift(0.5, 0.5), control=WarpingControl()
    ).image
    nan = {tuple(p) for p in np.argwhere(np.isnan(out[5:45, 5:45])) + 5}
    assert nan == {(j, i) for j in range(22, 28) for i in range(22, 28)}


def test_source_smaller_than_kernel_and_off_target() -> None:
    res = warp_with_transform(
        np.ones((5, 5)), np.ones((5, 5)), None, (0, 0), Box2I(0, 0, 4, 4), shift(0.1, 0.1),
        control=WarpingControl(),
    )  # fmt: skip
    assert np.isnan(res.image).all() and (res.mask == NO_DATA).all()
    assert res.variance is not None and np.isinf(res.variance).all() and res.n_good == 0
    # 6x6 is exactly Lanczos-3's footprint: one valid position when the shift lands on it
    res = warp_with_transform(
        np.ones((6, 6)), None, None, (0, 0), Box2I(0, 0, 1, 1), shift(2.5, 2.5),
        control=WarpingControl(),
    )  # fmt: skip
    assert res.n_good == 1 and res.image[0, 0] == pytest.approx(1.0)
    # completely off the target: warp_image returns all NaN
    src = make_tan_wcs(10.0, 0.0, (10.0, 10.0), 1.0)
    dest = make_tan_wcs(40.0, 0.0, (10.0, 10.0), 1.0)
    out = warp_image(np.ones((20, 20)), src, dest, (20, 20))
    assert np.isnan(out).all()


def test_edge_touching_and_parent_offsets() -> None:
    img = np.arange(30 * 40, dtype=float).reshape(30, 40)
    # source with xy0 = (100, 200); destination bbox with its own origin
    res = warp_with_transform(
        img, None, None, (100, 200), Box2I(-3, -4, 50, 40), shift(103, 204),
        control=WarpingControl(kernel="bilinear"),
    )  # fmt: skip
    # dest (x, y) -> source parent (x + 103, y + 204) -> local (x + 3, y + 4): integer shift
    ok = np.isfinite(res.image)
    jj, ii = np.nonzero(ok)
    np.testing.assert_allclose(res.image[ok], img[jj, ii], rtol=1e-13, atol=1e-12)
    # bilinear validity: 0 <= u <= W - 2 (the last column needs its right neighbour, as in afw)
    assert ok[:29, :39].all() and not ok[:, 39:].any() and not ok[29:, :].any()


def test_warp_exposure_metadata_bbox_and_empty() -> None:
    wcs = make_tan_wcs(30.0, -5.0, (50.0, 40.0), 0.2)
    planes = MaskPlanes({"BAD": 0, "SAT": 1})
    exp = Exposure(
        np.ones((80, 100)), np.zeros((80, 100)), np.full((80, 100), 2.0),
        mask_planes=planes, xy0=(5, 7), wcs=wcs, filter="r",
        visit_info=VisitInfo(exposure_time=30.0), id=42, metadata={"A": 1},
    )  # fmt: skip
    dest = make_tan_wcs(30.0, -5.0, (500.0, 500.0), 0.2, rotation_deg=10.0)
    out = warp_exposure(exp, dest)
    expected = compute_warped_bbox(exp.bbox, wcs, dest)
    assert out.bbox == expected and out.wcs is dest and out.psf is None
    assert out.filter == "r" and out.id == 42 and out.visit_info == exp.visit_info
    assert out.metadata == {"A": 1} and out.metadata is not exp.metadata
    assert "NO_DATA" in out.mask_planes and "EDGE" in out.mask_planes
    assert out.mask_planes.bit("SAT") == 1
    good = np.isfinite(out.image)
    assert good.sum() > 0.8 * 80 * 100
    np.testing.assert_allclose(out.image[good], 1.0, rtol=1e-9)  # same scale: area 1
    # variance 2 scaled by sum of squared normalised weights: <= ~1, < 1 on average
    assert (out.variance[good] <= 2.0 * 1.05).all()
    assert 0.3 * 2.0 < out.variance[good].mean() < 0.9 * 2.0
    nd = out.mask_planes.bitmask("NO_DATA")
    assert ((out.mask & nd) != 0).sum() == (~good).sum()
    clipped = warp_exposure(exp, dest, max_bbox=Box2I(460, 460, 30, 20))
    assert clipped.bbox == Box2I(460, 460, 30, 20)
    far = make_tan_wcs(120.0, 40.0, (0.0, 0.0), 0.2)
    empty = warp_exposure(exp, dest, max_bbox=Box2I(5000, 5000, 10, 10))
    assert empty.image.shape == (0, 0)
    assert warp_exposure(exp, far, max_bbox=Box2I(0, 0, 10, 10)).image.shape == (0, 0)


def test_compute_warped_bbox_expands_corners() -> None:
    wcs = make_tan_wcs(0.0, 0.0, (0.0, 0.0), 1.0)
    # same WCS shifted by 0.3 px: corners -0.5..9.5 land on -0.2..9.8 -> pixels 0..10
    dest = make_tan_wcs(0.0, 0.0, (0.3, 0.3), 1.0)
    box = compute_warped_bbox(Box2I(0, 0, 10, 10), wcs, dest)
    assert box == Box2I(0, 0, 11, 11)
    assert math.isclose(box.x0, 0)


def test_rb_warp_image_cli(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from astropy.io import fits
    from astropy.wcs import WCS
    from typer.testing import CliRunner

    from repo_butler_cli.main import app

    src = make_tan_wcs(150.0, 2.0, (32.0, 32.0), 0.2)
    dest = make_tan_wcs(150.0, 2.0, (40.0, 30.0), 0.25, rotation_deg=20.0)
    rng = np.random.default_rng(4)
    img = rng.normal(size=(64, 64)).astype(np.float32)
    fits.ImageHDU(img, header=src.to_header()).writeto(tmp_path / "in.fits")  # first image HDU
    head = dest.to_header()
    head["NAXIS1"], head["NAXIS2"] = 80, 60
    (tmp_path / "t.head").write_text(head.tostring(sep="\n", padding=False))
    res = CliRunner().invoke(
        app,
        ["warp-image", str(tmp_path / "in.fits"), str(tmp_path / "t.head"),
         str(tmp_path / "out.fits"), "--kernel", "lanczos4", "--interp-length", "0"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    with fits.open(tmp_path / "out.fits") as hdul:
        out = hdul[0].data
        wout = WCS(hdul[0].header)
    assert out.shape == (60, 80)
    np.testing.assert_allclose(wout.wcs.crpix, dest.wcs.crpix)
    ref = warp_image(img, src, dest, (60, 80), control=WarpingControl("lanczos4", interp_length=0))
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    # the CLI's WCSs come from the FITS cards written above, the reference's are the objects:
    # positions agree to ~1e-10 px, values to float32 resolution (atol for values near zero)
    np.testing.assert_allclose(out[np.isfinite(out)], ref[np.isfinite(ref)], rtol=1e-6, atol=1e-6)
    bad = CliRunner().invoke(
        app, ["warp-image", str(tmp_path / "in.fits"), str(tmp_path / "t.head"),
              str(tmp_path / "o2.fits"), "--kernel", "cubic"],
    )  # fmt: skip
    assert bad.exit_code != 0 and "allowed" in bad.output
