"""Binned background models: interpolation styles, fallbacks, sums, negation, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from warping.background import BackgroundComponent, BackgroundList, effective_style
from warping.errors import FormatError
from warping.formats.calib_fits import BackgroundFormatter
from warping.geom import Box2I

BBOX = Box2I(0, 0, 400, 300)


def grid_of(fn, bbox: Box2I, nx: int, ny: int, style: str = "AKIMA_SPLINE") -> BackgroundComponent:  # type: ignore[no-untyped-def]
    probe = BackgroundComponent(bbox, np.zeros((ny, nx)), style)
    xc, yc = probe.bin_centres
    return BackgroundComponent(bbox, fn(xc[None, :], yc[:, None]), style)


def full(fn, bbox: Box2I) -> np.ndarray:  # type: ignore[no-untyped-def]
    yy, xx = np.mgrid[bbox.y0 : bbox.y0 + bbox.height, bbox.x0 : bbox.x0 + bbox.width]
    return fn(xx.astype(float), yy.astype(float))


def test_bin_centres() -> None:
    c = BackgroundComponent(Box2I(10, 0, 100, 50), np.zeros((2, 4)))
    xc, yc = c.bin_centres
    np.testing.assert_allclose(xc, [22.0, 47.0, 72.0, 97.0])
    np.testing.assert_allclose(yc, [12.0, 37.0])


@pytest.mark.parametrize("style", ["AKIMA_SPLINE", "CUBIC_SPLINE", "LINEAR"])
def test_linear_sky_is_reproduced_exactly(style: str) -> None:
    def fn(x, y):  # type: ignore[no-untyped-def]
        return 100.0 + 0.05 * x - 0.02 * y

    comp = grid_of(fn, BBOX, 6, 5, style)
    np.testing.assert_allclose(comp.get_image(), full(fn, BBOX), atol=1e-9)


def test_smooth_sky_is_interpolated_accurately() -> None:
    def fn(x, y):  # type: ignore[no-untyped-def]
        return 500.0 + 20.0 * np.sin(x / 150.0) + 1e-4 * (y - 150.0) ** 2

    comp = grid_of(fn, BBOX, 8, 6)
    err = np.abs(comp.get_image() - full(fn, BBOX))
    assert err.max() < 0.5
    assert err.mean() < 0.05


def test_constant_and_fallbacks() -> None:
    one = BackgroundComponent(BBOX, np.array([[7.5]]))
    assert np.all(one.get_image() == 7.5)
    assert effective_style("AKIMA_SPLINE", 4) == "CUBIC_SPLINE"
    assert effective_style("AKIMA_SPLINE", 2) == "LINEAR"
    assert effective_style("CUBIC_SPLINE", 1) == "CONSTANT"
    two = BackgroundComponent(BBOX, np.array([[1.0, 3.0]]))  # akima falls back to linear in x
    img = two.get_image()
    xc, _ = two.bin_centres
    x = np.arange(BBOX.width)
    expect = 1.0 + (x - xc[0]) * 2.0 / (xc[1] - xc[0])  # linear, extrapolated at the ends
    np.testing.assert_allclose(img[0], expect, rtol=1e-12)
    np.testing.assert_allclose(img[-1], expect, rtol=1e-12)
    with pytest.raises(ValueError, match="Unknown interpolation style"):
        BackgroundComponent(BBOX, np.ones((2, 2)), "SPLINE")


def test_list_sums_negates_and_sub_boxes() -> None:
    a = grid_of(lambda x, y: 100 + 0.01 * x * np.ones_like(y), BBOX, 6, 5)
    b = grid_of(lambda x, y: 5 + 0.02 * y * np.ones_like(x), BBOX, 3, 3, "CUBIC_SPLINE")
    bl = BackgroundList([a, b])
    total = bl.get_image()
    assert total.dtype == np.float32
    np.testing.assert_allclose(total, a.get_image() + b.get_image(), rtol=1e-6)
    for comp, neg in zip(bl, bl.negated(), strict=True):
        np.testing.assert_array_equal(neg.get_image(), -comp.get_image())
    assert np.abs((bl + bl.negated()).get_image()).max() < 1e-9
    sub = Box2I(50, 40, 30, 20)
    np.testing.assert_array_equal(bl.get_image(sub), total[sub.slices(BBOX)])


def test_fits_round_trip_is_exact() -> None:
    rng = np.random.default_rng(3)
    bl = BackgroundList(
        [
            BackgroundComponent(BBOX, rng.normal(100, 3, (5, 7)), "AKIMA_SPLINE"),
            BackgroundComponent(Box2I(-5, 3, 100, 80), rng.normal(0, 1, (2, 2)), "LINEAR"),
        ]
    )
    fmt = BackgroundFormatter()
    back = fmt.from_bytes(fmt.to_bytes(bl), source="mem://bg.fits")
    assert back == bl
    np.testing.assert_array_equal(back.get_image(BBOX), bl.get_image(BBOX))


def test_truncated_file_is_a_clear_error() -> None:
    fmt = BackgroundFormatter()
    data = fmt.to_bytes(BackgroundList([BackgroundComponent(BBOX, np.ones((3, 3)))]))
    with pytest.raises(FormatError, match=r"s3://b/bg\.fits"):
        fmt.from_bytes(data[: len(data) - 100], source="s3://b/bg.fits")
