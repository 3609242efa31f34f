"""One-dimensional interpolation as LSST afw's ``Interpolate`` does it, vectorised over many rows.

afw interpolates a background's bin grid with GSL's 1-D interpolants (``LINEAR``, natural cubic
spline for both ``NATURAL_SPLINE`` and ``CUBIC_SPLINE``, Akima, and their periodic variants) and its
own step function for ``CONSTANT``. Two afw rules differ from what scipy does by default:

* beyond the outermost knots afw evaluates the quadratic Taylor expansion of the interpolant at the
  end knot, ``f(x0) + (x - x0) f'(x0) + (x - x0)**2 f''(x0) / 2``, not the end cubic;
* ``CONSTANT`` is a step function with breaks at the midpoints between knots (and half a spacing
  beyond each end knot): the step around knot ``k >= 1`` holds the mean of ``y[k-1]`` and ``y[k]``,
  everything left of the first midpoint ``y[0]``, everything right of the last ``y[-1]``.

Every GSL style here is a piecewise cubic, so a row of knot values ``y`` (length ``n``) evaluated
at fixed positions ``u`` is ``y @ A + dl @ BL + dr @ BR``, where ``dl``/``dr`` are the slopes at
the left/right end of each of the ``n - 1`` segments and ``A``, ``BL``, ``BR`` hold Hermite basis
weights (and the Taylor rule outside the knots). For the linear styles the slopes are a fixed
linear map of ``y``, so the whole operator folds into one ``(n, m)`` matrix; Akima's slopes depend
on the data and are computed per row. Evaluating ``k`` rows is then one or three matrix products,
which is what makes a full CCD background cost milliseconds.

GSL's Akima differs from scipy's ``Akima1DInterpolator`` where two neighbouring secant slopes are
equal (a "plateau"): GSL makes that segment straight (and its neighbours' slopes at the shared knot
the segment's secant), scipy averages the two slopes. Elsewhere the two agree to rounding.
"""

from __future__ import annotations

import logging
from enum import IntEnum

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "InterpStyle",
    "UndersampleStyle",
    "bin_geometry",
    "interpolate_rows",
    "max_style",
    "min_points",
    "offset_product",
]


class InterpStyle(IntEnum):
    """afw ``Interpolate::Style`` (the ``INTERPSTYLE`` header value)."""

    UNKNOWN = -1
    CONSTANT = 0
    LINEAR = 1
    NATURAL_SPLINE = 2
    CUBIC_SPLINE = 3
    CUBIC_SPLINE_PERIODIC = 4
    AKIMA_SPLINE = 5
    AKIMA_SPLINE_PERIODIC = 6


class UndersampleStyle(IntEnum):
    """afw ``UndersampleStyle`` (the ``UNDERSAMPLESTYLE`` header value)."""

    THROW_EXCEPTION = 0
    REDUCE_INTERP_ORDER = 1
    INCREASE_NXNYSAMPLE = 2


_MIN_POINTS = {
    InterpStyle.CONSTANT: 1,
    InterpStyle.LINEAR: 2,
    InterpStyle.NATURAL_SPLINE: 3,
    InterpStyle.CUBIC_SPLINE: 3,
    InterpStyle.CUBIC_SPLINE_PERIODIC: 3,
    InterpStyle.AKIMA_SPLINE: 5,
    InterpStyle.AKIMA_SPLINE_PERIODIC: 5,
}


def min_points(style: InterpStyle) -> int:
    """Fewest knots ``style`` works with (afw ``lookupMinInterpPoints``)."""
    if style not in _MIN_POINTS:
        raise ValueError(f"interpolation style {style!r} cannot be evaluated")
    return _MIN_POINTS[style]


def max_style(n: int) -> InterpStyle:
    """Highest-order style usable with ``n`` knots (afw ``lookupMaxInterpStyle``)."""
    if n < 1:
        raise ValueError("an interpolant needs at least one knot")
    if n >= 5:
        return InterpStyle.AKIMA_SPLINE
    return {1: InterpStyle.CONSTANT, 2: InterpStyle.LINEAR}.get(n, InterpStyle.CUBIC_SPLINE)


def bin_geometry(n: int, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Origins, sizes and centres of ``n`` bins over ``length`` pixels, local coordinates.

    Bin ``i`` ends at ``min(((i + 1) * length + n // 2) // n, length)`` (integer division) and
    starts where bin ``i - 1`` ends; its centre is ``origin + size / 2 - 0.5`` (afw
    ``Background::_setCenOrigSize``).
    """
    if n < 1 or length < 1:
        raise ValueError(f"need at least one bin over a positive length, got n={n}, {length}")
    ends = np.minimum(((np.arange(n) + 1) * length + n // 2) // n, length)
    orig = np.concatenate([[0], ends[:-1]])
    size = ends - orig
    return orig, size, orig + 0.5 * size - 0.5


# -- slopes of each segment at its two ends, for every row of y ------------------------------
def _secants(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.diff(y, axis=-1) / np.diff(x)


def _spline_second_derivatives(x: np.ndarray, periodic: bool) -> np.ndarray:
    """Matrix ``G`` (n, n) with the knot second derivatives of a cubic spline ``= y @ G``.

    Natural ends have zero curvature. The periodic system (GSL ``cspline_periodic``) identifies
    the last knot with the first: the curvature there joins segment ``n - 2`` to segment 0.
    """
    n = len(x)
    h = np.diff(x)
    # d2 = 6 (s_k - s_{k-1}) per interior knot; s = y @ D with D (n, n-1)
    D = np.zeros((n, n - 1))
    D[np.arange(n - 1), np.arange(n - 1)] = -1.0 / h
    D[np.arange(1, n), np.arange(n - 1)] = 1.0 / h
    G = np.zeros((n, n))
    if not periodic:
        if n < 3:
            return G
        m = n - 2
        T = np.zeros((m, m))
        for r, k in enumerate(range(1, n - 1)):
            T[r, r] = 2.0 * (h[k - 1] + h[k])
            if r > 0:
                T[r, r - 1] = h[k - 1]
            if r < m - 1:
                T[r, r + 1] = h[k]
        rhs = 6.0 * (D[:, 1:] - D[:, :-1])  # (n, m): y @ rhs = 6 (s_k - s_{k-1})
        G[:, 1 : n - 1] = np.linalg.solve(T, rhs.T).T
        return G
    # unknowns: curvature at knots 1 .. n-1, knot n-1 == knot 0
    m = n - 1
    T = np.zeros((m, m))
    rhs = np.zeros((n, m))
    for r, k in enumerate(range(1, n)):
        h_prev = h[k - 1]
        h_next = h[k] if k < n - 1 else h[0]
        s_next = D[:, k] if k < n - 1 else D[:, 0]
        T[r, r] += 2.0 * (h_prev + h_next)
        T[r, (r - 1) % m] += h_prev
        T[r, (r + 1) % m] += h_next
        rhs[:, r] = 6.0 * (s_next - D[:, k - 1])
    sol = np.linalg.solve(T, rhs.T).T  # (n, m)
    G[:, 1:] = sol
    G[:, 0] = sol[:, -1]
    return G


def _linear_slopes(x: np.ndarray, style: InterpStyle) -> tuple[np.ndarray, np.ndarray]:
    """Matrices ``SL``, ``SR`` (n, n-1): segment end slopes ``y @ SL``, ``y @ SR``."""
    n = len(x)
    h = np.diff(x)
    S = np.zeros((n, n - 1))
    S[np.arange(n - 1), np.arange(n - 1)] = -1.0 / h
    S[np.arange(1, n), np.arange(n - 1)] = 1.0 / h
    if style == InterpStyle.LINEAR:
        return S, S
    G = _spline_second_derivatives(x, periodic=style == InterpStyle.CUBIC_SPLINE_PERIODIC)
    SL = S - (2.0 * G[:, :-1] + G[:, 1:]) * h / 6.0
    SR = S + (G[:, :-1] + 2.0 * G[:, 1:]) * h / 6.0
    return SL, SR


def _akima_slopes(x: np.ndarray, y: np.ndarray, periodic: bool) -> tuple[np.ndarray, np.ndarray]:
    """GSL Akima segment end slopes ``(dl, dr)``, each ``(k, n-1)``, for rows ``y`` ``(k, n)``."""
    n = y.shape[-1]
    s = _secants(x, y)  # s[:, i], i = 0 .. n-2
    if periodic:
        ext = [s[:, n - 3], s[:, n - 2], s[:, 0], s[:, 1]]
    else:
        ext = [
            3.0 * s[:, 0] - 2.0 * s[:, 1],
            2.0 * s[:, 0] - s[:, 1],
            2.0 * s[:, n - 2] - s[:, n - 3],
            3.0 * s[:, n - 2] - 2.0 * s[:, n - 3],
        ]
    m = np.concatenate([ext[0][:, None], ext[1][:, None], s, ext[2][:, None], ext[3][:, None]], 1)
    # m[:, j + 2] is GSL's m[j], j = -2 .. n
    i = np.arange(n - 1) + 2
    ne = np.abs(m[:, i + 1] - m[:, i]) + np.abs(m[:, i - 1] - m[:, i - 2])
    ne_next = np.abs(m[:, i + 2] - m[:, i + 1]) + np.abs(m[:, i] - m[:, i - 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = np.abs(m[:, i - 1] - m[:, i - 2]) / ne
        alpha_next = np.abs(m[:, i] - m[:, i - 1]) / ne_next
    left = (1.0 - alpha) * m[:, i - 1] + alpha * m[:, i]
    right = (1.0 - alpha_next) * m[:, i] + alpha_next * m[:, i + 1]
    right = np.where(ne_next == 0.0, s, right)
    flat = ne == 0.0  # GSL: the whole segment is its secant line
    return np.where(flat, s, left), np.where(flat, s, right)


# -- Hermite basis weights at the evaluation positions ---------------------------------------
def _hermite_weights(x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``A`` (n, m), ``BL``/``BR`` (n-1, m) with ``f(u) = y @ A + dl @ BL + dr @ BR``."""
    n, mm = len(x), len(u)
    h = np.diff(x)
    seg = np.clip(np.searchsorted(x, u, side="right") - 1, 0, n - 2)
    cols = np.arange(mm)
    A = np.zeros((n, mm))
    BL = np.zeros((n - 1, mm))
    BR = np.zeros((n - 1, mm))
    hs = h[seg]
    t = (u - x[seg]) / hs
    inside = (u >= x[0]) & (u <= x[-1])
    t2, t3 = t * t, t * t * t
    c = cols[inside]
    si = seg[inside]
    A[si, c] = (2 * t3 - 3 * t2 + 1)[inside]
    A[si + 1, c] = (-2 * t3 + 3 * t2)[inside]
    BL[si, c] = ((t3 - 2 * t2 + t) * hs)[inside]
    BR[si, c] = ((t3 - t2) * hs)[inside]
    # beyond the ends: y_e + d f'(x_e) + d^2 f''(x_e) / 2 of the end segment (afw's rule)
    lo = u < x[0]
    if lo.any():
        d, h0, c = u[lo] - x[0], h[0], cols[lo]
        # f''(x0) = 6 (y1 - y0) / h^2 - (4 dl + 2 dr) / h
        A[0, c] = 1.0 - 3.0 * d * d / h0**2
        A[1, c] = 3.0 * d * d / h0**2
        BL[0, c] = d - 2.0 * d * d / h0
        BR[0, c] = -d * d / h0
    hi = u > x[-1]
    if hi.any():
        d, h1, c = u[hi] - x[-1], h[-1], cols[hi]
        # f''(x_{n-1}) = 6 (y_{n-2} - y_{n-1}) / h^2 + (2 dl + 4 dr) / h
        A[n - 1, c] = 1.0 - 3.0 * d * d / h1**2
        A[n - 2, c] = 3.0 * d * d / h1**2
        BL[n - 2, c] = d * d / h1
        BR[n - 2, c] = d + 2.0 * d * d / h1
    return A, BL, BR


def _constant_matrix(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``W`` (n, m) of afw's CONSTANT step function: ``f(u) = y @ W``."""
    n = len(x)
    W = np.zeros((n, len(u)))
    if n == 1:
        W[0] = 1.0
        return W
    breaks = np.concatenate(
        [[1.5 * x[0] - 0.5 * x[1]], 0.5 * (x[:-1] + x[1:]), [1.5 * x[-1] - 0.5 * x[-2]]]
    )
    # step j (j = 0 .. n) holds y[0], mean(y[j-1], y[j]) for 1 <= j <= n-1, y[n-1]
    j = np.clip(np.searchsorted(breaks, u, side="right") - 1, 0, n)
    cols = np.arange(len(u))
    first, last = j == 0, j == n
    mid = ~(first | last)
    W[0, cols[first]] = 1.0
    W[n - 1, cols[last]] = 1.0
    W[j[mid] - 1, cols[mid]] += 0.5
    W[j[mid], cols[mid]] += 0.5
    return W


def linear_operator(x: np.ndarray, u: np.ndarray, style: InterpStyle) -> np.ndarray:
    """The ``(n, m)`` matrix mapping knot values to values at ``u`` (every style but Akima)."""
    x = np.asarray(x, dtype=float)
    u = np.asarray(u, dtype=float)
    if style == InterpStyle.CONSTANT:
        return _constant_matrix(x, u)
    if style in (InterpStyle.AKIMA_SPLINE, InterpStyle.AKIMA_SPLINE_PERIODIC):
        raise ValueError("Akima interpolation is not linear in the data")
    _check_points(style, len(x))
    A, BL, BR = _hermite_weights(x, u)
    SL, SR = _linear_slopes(x, style)
    W: np.ndarray = A + SL @ BL + SR @ BR
    return W


def _check_points(style: InterpStyle, n: int) -> None:
    if n < min_points(style):
        raise ValueError(f"{style.name} interpolation needs {min_points(style)} knots, got {n}")


def offset_product(terms: list[np.ndarray], weights: list[np.ndarray], dtype: type) -> np.ndarray:
    """``sum(t @ w)`` for row terms ``t`` (k, n_i) and weights ``w`` (n_i, m) as one product.

    In float32 the first term (the knot values) is taken relative to its row mean, which is
    added back as the last column of the product (with a row of ones in the weights): every
    operator here reproduces constants, so the result is unchanged while float32 only carries
    the small residuals, and the sum comes out within about one unit in the last place of the
    float64 result rounded to float32.
    """
    if dtype == np.float64:
        out: np.ndarray = np.concatenate(terms, axis=1) @ np.concatenate(weights, axis=0)
        return out
    y = terms[0]
    c = y.mean(axis=1, keepdims=True)
    lhs = np.concatenate([y - c, *terms[1:], c], axis=1).astype(np.float32)
    ones = np.ones((1, weights[0].shape[1]))
    rhs = np.concatenate([*weights, ones], axis=0).astype(np.float32)
    out = np.empty((lhs.shape[0], rhs.shape[1]), dtype=np.float32)
    np.matmul(lhs, rhs, out=out)
    return out


def interpolate_rows(
    x: np.ndarray,
    y: np.ndarray,
    u: np.ndarray,
    style: InterpStyle,
    dtype: type = np.float64,
) -> np.ndarray:
    """Interpolate every row of ``y`` (k, n), knots at ``x`` (n, increasing), to ``u`` (m,).

    Returns a ``(k, m)`` array of ``dtype`` (float64, or float32 through
    :func:`offset_product`). ``style`` must have enough knots (:func:`min_points`); the
    undersampling rules are the caller's (see :mod:`warping.background_afw`).
    """
    x = np.asarray(x, dtype=float)
    y = np.atleast_2d(np.asarray(y, dtype=float))
    u = np.asarray(u, dtype=float)
    if style not in (InterpStyle.AKIMA_SPLINE, InterpStyle.AKIMA_SPLINE_PERIODIC):
        return offset_product([y], [linear_operator(x, u, style)], dtype)
    _check_points(style, len(x))
    dl, dr = _akima_slopes(x, y, periodic=style == InterpStyle.AKIMA_SPLINE_PERIODIC)
    A, BL, BR = _hermite_weights(x, u)
    if np.array_equal(dl[:, 1:], dr[:, :-1]):
        # no plateau: one slope per knot, so the slope weights of neighbouring segments merge
        knot = np.concatenate([dl[:, :1], dr], axis=1)  # (k, n)
        B = np.zeros((len(x), len(u)))
        B[:-1] += BL
        B[1:] += BR
        return offset_product([y, knot], [A, B], dtype)
    return offset_product([y, dl, dr], [A, BL, BR], dtype)
