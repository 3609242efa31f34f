"""afw-style 1-D interpolation and the Chebyshev fit against independent truth (scipy, numpy,
hand-computed values from afw's documented rules)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.polynomial import chebyshev as npcheb
from scipy.interpolate import Akima1DInterpolator, CubicSpline

from warping.background_chebyshev import chebyshev_terms, evaluate_chebyshev, fit_chebyshev
from warping.background_interp import (
    InterpStyle,
    bin_geometry,
    interpolate_rows,
    max_style,
    min_points,
)

RNG = np.random.default_rng(16)
# uneven knots (as afw's bins are when the width does not divide evenly) and smooth-ish data
X = np.cumsum(RNG.uniform(80.0, 130.0, 9))
Y = 1000.0 + np.cumsum(RNG.normal(0.0, 5.0, (4, 9)), axis=1)
INSIDE = np.linspace(X[0], X[-1], 701)


def test_bin_geometry_matches_afw_integer_rule() -> None:
    # 2048 / 17 bins: sizes 120/121 alternate; 4612 / 37: 124/125 (reference §1, real file)
    orig, size, cen = bin_geometry(17, 2048)
    assert set(size) == {120, 121} and size.sum() == 2048 and orig[0] == 0
    np.testing.assert_array_equal(cen[:3], [59.5, 180.0, 300.5])
    assert cen[-1] == 1987.5
    _, ysize, ycen = bin_geometry(37, 4612)
    assert set(ysize) == {124, 125}
    np.testing.assert_array_equal(ycen[:3], [62.0, 186.5, 311.0])
    assert ycen[-1] == 4549.0
    # hand-computed: 10 px in 3 bins -> ends (10+1)//3=3, (20+1)//3=7, 10 -> sizes 3, 4, 3
    orig, size, cen = bin_geometry(3, 10)
    np.testing.assert_array_equal(size, [3, 4, 3])
    np.testing.assert_array_equal(cen, [1.0, 4.5, 8.0])


def test_style_tables() -> None:
    assert [min_points(s) for s in list(InterpStyle)[1:]] == [1, 2, 3, 3, 3, 5, 5]
    assert [max_style(n) for n in (1, 2, 3, 4, 5, 40)] == [
        InterpStyle.CONSTANT,
        InterpStyle.LINEAR,
        InterpStyle.CUBIC_SPLINE,
        InterpStyle.CUBIC_SPLINE,
        InterpStyle.AKIMA_SPLINE,
        InterpStyle.AKIMA_SPLINE,
    ]
    with pytest.raises(ValueError, match="UNKNOWN"):
        min_points(InterpStyle.UNKNOWN)


@pytest.mark.parametrize("style", [InterpStyle.NATURAL_SPLINE, InterpStyle.CUBIC_SPLINE])
def test_cubic_styles_are_scipy_natural_splines_inside(style: InterpStyle) -> None:
    got = interpolate_rows(X, Y, INSIDE, style)
    want = CubicSpline(X, Y, axis=1, bc_type="natural")(INSIDE)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_linear_is_numpy_interp_inside() -> None:
    got = interpolate_rows(X, Y, INSIDE, InterpStyle.LINEAR)
    for row, g in zip(Y, got, strict=True):
        np.testing.assert_allclose(g, np.interp(INSIDE, X, row), atol=1e-9)


def test_akima_is_scipy_akima_inside_away_from_plateaus() -> None:
    got = interpolate_rows(X, Y, INSIDE, InterpStyle.AKIMA_SPLINE)
    want = Akima1DInterpolator(X, Y, axis=1)(INSIDE)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_akima_plateau_is_straight_as_in_gsl_not_scipy() -> None:
    # secants 1, 1, 1, 0, 0, 1, 2. On segment 3 (x 3..4) both Akima weights vanish
    # (|m4 - m3| = |m2 - m1| = 0): GSL makes the segment its secant line (flat at 3), scipy
    # averages the two slopes at knot 3 (0.5) and bends it. That is the documented difference.
    x = np.arange(8.0)
    y = np.array([0.0, 1.0, 2.0, 3.0, 3.0, 3.0, 4.0, 6.0])
    u = np.linspace(3.0, 4.0, 11)
    ours = interpolate_rows(x, y[None, :], u, InterpStyle.AKIMA_SPLINE)[0]
    np.testing.assert_array_equal(ours, 3.0)
    assert np.abs(ours - Akima1DInterpolator(x, y)(u)).max() > 1e-3


def test_periodic_cubic_is_scipy_periodic_spline() -> None:
    x = np.array([0.0, 0.7, 1.9, 2.6, 4.0, 5.1, 6.0])
    y = np.cos(2 * np.pi * x / 6.0) + 0.3 * np.sin(4 * np.pi * x / 6.0)
    y[-1] = y[0]
    u = np.linspace(0.0, 6.0, 301)
    got = interpolate_rows(x, y[None, :], u, InterpStyle.CUBIC_SPLINE_PERIODIC)[0]
    np.testing.assert_allclose(got, CubicSpline(x, y, bc_type="periodic")(u), atol=1e-12)


def test_periodic_akima_is_akima_of_the_periodic_extension() -> None:
    # GSL's periodic Akima takes the secants beyond the ends from the other end; scipy's Akima of
    # the data repeated one period on each side has the same slopes at the original knots.
    x = np.array([0.0, 0.8, 1.7, 2.9, 3.6, 4.4, 5.2, 6.0])
    y = np.array([1.0, 1.9, 1.2, 3.1, 2.2, 0.4, 0.9, 1.0])
    period = x[-1] - x[0]
    xe = np.concatenate([x[:-1] - period, x, x[1:] + period])
    ye = np.concatenate([y[:-1], y, y[1:]])
    u = np.linspace(0.0, 6.0, 241)
    got = interpolate_rows(x, y[None, :], u, InterpStyle.AKIMA_SPLINE_PERIODIC)[0]
    np.testing.assert_allclose(got, Akima1DInterpolator(xe, ye)(u), atol=1e-12)


@pytest.mark.parametrize(
    ("style", "ref"),
    [
        (InterpStyle.NATURAL_SPLINE, lambda x, y: CubicSpline(x, y, bc_type="natural")),
        (InterpStyle.AKIMA_SPLINE, lambda x, y: Akima1DInterpolator(x, y, extrapolate=True)),
    ],
)
def test_beyond_the_end_knots_afw_uses_the_quadratic_taylor_rule(style, ref) -> None:  # type: ignore[no-untyped-def]
    row = Y[1]
    spline = ref(X, row)
    d1, d2 = spline.derivative(1), spline.derivative(2)
    left = np.linspace(X[0] - 150.0, X[0] - 0.5, 40)
    right = np.linspace(X[-1] + 0.5, X[-1] + 150.0, 40)
    got = interpolate_rows(X, row[None, :], np.concatenate([left, right]), style)[0]
    want_l = row[0] + (left - X[0]) * d1(X[0]) + 0.5 * (left - X[0]) ** 2 * d2(X[0])
    want_r = row[-1] + (right - X[-1]) * d1(X[-1]) + 0.5 * (right - X[-1]) ** 2 * d2(X[-1])
    np.testing.assert_allclose(got, np.concatenate([want_l, want_r]), atol=1e-8)
    # scipy's own extrapolation (the full end cubic) is not what afw does
    assert np.abs(got[:40] - spline(left)).max() > 1e-3


def test_linear_extends_the_end_segments() -> None:
    x = np.array([10.0, 20.0, 40.0])
    y = np.array([[1.0, 3.0, 4.0]])
    got = interpolate_rows(x, y, np.array([0.0, 5.0, 50.0]), InterpStyle.LINEAR)[0]
    np.testing.assert_allclose(got, [-1.0, 0.0, 4.5])


def test_constant_is_afws_step_function() -> None:
    # knots 0, 2, 4, 6 -> breaks -1, 1, 3, 5, 7; steps hold y0, (y0+y1)/2, (y1+y2)/2, (y2+y3)/2,
    # and y3 from 7 on; y0 everywhere left of 1
    x = np.array([0.0, 2.0, 4.0, 6.0])
    y = np.array([[2.0, 4.0, 10.0, 0.0]])
    u = np.array([-50.0, -1.0, 0.5, 0.99, 1.0, 2.9, 3.0, 4.999, 5.0, 6.9, 7.0, 99.0])
    want = [2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 7.0, 7.0, 5.0, 5.0, 0.0, 0.0]
    got = interpolate_rows(x, y, u, InterpStyle.CONSTANT)[0]
    np.testing.assert_array_equal(got, want)
    one = interpolate_rows(np.array([3.0]), np.array([[7.5]]), u, InterpStyle.CONSTANT)[0]
    assert np.all(one == 7.5)


def test_too_few_knots_is_refused() -> None:
    with pytest.raises(ValueError, match="AKIMA_SPLINE interpolation needs 5 knots"):
        interpolate_rows(X[:4], Y[:, :4], INSIDE, InterpStyle.AKIMA_SPLINE)


# -- Chebyshev ---------------------------------------------------------------------------------
def _numpy_fit(xc, yc, vals, errs, w, h, order, weighting):  # type: ignore[no-untyped-def]
    """Weighted least squares with numpy's Chebyshev Vandermonde, terms p + q <= order."""
    xs = (xc - (w - 1) / 2) * 2 / w
    ys = (yc - (h - 1) / 2) * 2 / h
    xx, yy = np.meshgrid(xs, ys)
    vander = npcheb.chebvander2d(xx.ravel(), yy.ravel(), [order, order])  # column p*(N+1)+q
    keep = [
        p * (order + 1) + q for p in range(order + 1) for q in range(order + 1) if p + q <= order
    ]
    a = vander[:, keep]
    with np.errstate(divide="ignore"):
        wt = 1.0 / errs.astype(float).ravel() if weighting else np.ones(vals.size)
    ok = np.isfinite(vals.ravel() + wt)
    sw = np.sqrt(wt[ok])
    sol = np.linalg.lstsq(a[ok] * sw[:, None], vals.ravel()[ok] * sw, rcond=None)[0]
    c = np.zeros((order + 1, order + 1))  # numpy's chebval2d(x, y, c) uses c[p, q]
    for k, col in enumerate(keep):
        c[col // (order + 1), col % (order + 1)] = sol[k]
    return c


def test_chebyshev_term_order_is_afws() -> None:
    assert chebyshev_terms(2) == [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)]
    assert len(chebyshev_terms(6)) == 28


@pytest.mark.parametrize("weighting", [True, False])
def test_chebyshev_fit_equals_numpys_weighted_least_squares(weighting: bool) -> None:
    w, h, order = 700, 900, 4
    xc = bin_geometry(9, w)[2]
    yc = bin_geometry(11, h)[2]
    xx, yy = np.meshgrid(xc, yc)
    vals = (300 + 0.01 * xx - 2e-5 * yy**2 + RNG.normal(0, 0.5, xx.shape)).astype(np.float32)
    errs = RNG.uniform(0.2, 0.6, xx.shape).astype(np.float32)
    vals[3, 4] = np.nan  # skipped, as afw skips non-finite value + weight
    errs[5, 5] = 0.0  # infinite weight: skipped when weighting
    coef = fit_chebyshev(xc, yc, vals, errs, w, h, order, weighting)
    want = _numpy_fit(xc, yc, vals.astype(float), errs, w, h, order, weighting)
    px = np.array([0.0, 123.0, 349.5, 699.0])
    py = np.array([0.0, 450.0, 899.0])
    got = evaluate_chebyshev(coef, px, py, w, h)
    sx = (px - (w - 1) / 2) * 2 / w
    sy = (py - (h - 1) / 2) * 2 / h
    ref = npcheb.chebgrid2d(sx, sy, want).T  # (len(px), len(py)) -> rows y
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_chebyshev_without_usable_bins_is_refused() -> None:
    xc, yc = bin_geometry(3, 30)[2], bin_geometry(3, 30)[2]
    vals = np.ones((3, 3), np.float32)
    with pytest.raises(ValueError, match="fit without weighting"):
        fit_chebyshev(xc, yc, vals, np.zeros((3, 3), np.float32), 30, 30, 1, True)
