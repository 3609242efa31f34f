"""The 2-D Chebyshev least-squares fit afw uses when a background asks for ``APPROXSTYLE=0``.

afw (``ApproximateChebyshev`` over ``Chebyshev1Function2``) fits the bin values at the local bin
centres with the sum of ``T_p(x') T_q(y')`` over ``p + q <= N``, where the scaled coordinates map
the pixel-edge box of the background, ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``, onto ``[-1, 1]``:
``x' = (x - (W - 1) / 2) * 2 / W``. The terms are ordered by total degree, then by decreasing
power of x: (0,0), (1,0), (0,1), (2,0), (1,1), (0,2), ... Each bin is weighted by ``1 / e`` where
``e`` is its "variance" plane (which holds a standard error), or by 1 without weighting; a bin
whose value or weight is not finite is skipped. The weighted normal equations are solved by LU.

The fitted surface is separable, so evaluating it on a grid is ``Ty @ C @ Tx.T`` with ``C[q, p]``
the coefficient of ``T_p(x') T_q(y')``.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["chebyshev_terms", "evaluate_chebyshev", "fit_chebyshev", "scaled"]


def chebyshev_terms(order: int) -> list[tuple[int, int]]:
    """``(p, q)`` powers of x and y of afw's terms, in afw's parameter order."""
    if order < 0:
        raise ValueError(f"Chebyshev order must be >= 0, got {order}")
    return [(d - q, q) for d in range(order + 1) for q in range(d + 1)]


def scaled(pos: np.ndarray, length: int) -> np.ndarray:
    """Local pixel positions mapped onto [-1, 1] over the pixel-edge extent ``length``."""
    return (np.asarray(pos, dtype=float) - 0.5 * (length - 1)) * (2.0 / length)


def _cheb_matrix(t: np.ndarray, order: int) -> np.ndarray:
    """``T_0 .. T_order`` at ``t``: shape ``(len(t), order + 1)``."""
    out = np.empty((len(t), order + 1))
    out[:, 0] = 1.0
    if order >= 1:
        out[:, 1] = t
    for k in range(2, order + 1):
        out[:, k] = 2.0 * t * out[:, k - 1] - out[:, k - 2]
    return out


def fit_chebyshev(
    xcen: np.ndarray,
    ycen: np.ndarray,
    values: np.ndarray,
    errors: np.ndarray,
    width: int,
    height: int,
    order: int,
    weighting: bool,
) -> np.ndarray:
    """Fit the ``(ny, nx)`` bin ``values`` at local centres ``xcen``/``ycen``; return ``C``.

    Parameters
    ----------
    xcen, ycen
        Local bin centres (pixels from the background's bbox origin).
    values, errors
        Bin values and the afw "variance" plane (a standard error), both float32 as stored.
    width, height
        Size of the background's bbox.
    order
        Maximum total degree ``N``.
    weighting
        Weight each bin by ``1 / errors`` (afw ``APPROXWEIGHTING``).

    Returns
    -------
    numpy.ndarray
        ``(N + 1, N + 1)`` coefficients ``C[q, p]`` (zero for ``p + q > N``).

    Raises
    ------
    ValueError
        No bin has a finite value and weight.
    """
    vals = np.asarray(values, dtype=np.float32)
    if weighting:
        with np.errstate(divide="ignore", invalid="ignore"):
            w = (np.float32(1.0) / np.asarray(errors, dtype=np.float32)).astype(float)
    else:
        w = np.ones(vals.shape)
    v = vals.astype(float)
    ok = np.isfinite(v + w)
    if not ok.any():
        raise ValueError(
            "no bin has a finite value and weight to fit"
            + (" (the error plane is zero or NaN; fit without weighting)" if weighting else "")
        )
    tx = _cheb_matrix(scaled(xcen, width), order)  # (nx, N+1)
    ty = _cheb_matrix(scaled(ycen, height), order)  # (ny, N+1)
    terms = chebyshev_terms(order)
    jj, ii = np.nonzero(ok)
    design = np.stack([tx[ii, p] * ty[jj, q] for p, q in terms], axis=1)
    wk = w[jj, ii]
    normal = design.T @ (design * wk[:, None])
    rhs = design.T @ (v[jj, ii] * wk)
    coef = np.linalg.solve(normal, rhs)
    c = np.zeros((order + 1, order + 1))
    for (p, q), value in zip(terms, coef, strict=True):
        c[q, p] = value
    return c


def evaluate_chebyshev(
    coef: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    width: int,
    height: int,
    dtype: type = np.float64,
) -> np.ndarray:
    """The fit ``coef`` at local positions ``ys`` x ``xs``: shape ``(len(ys), len(xs))``.

    In float32 the ``T_0(x')`` column (the row's constant) is added last, as in
    :func:`warping.background_interp.offset_product`.
    """
    order = coef.shape[0] - 1
    tx = _cheb_matrix(scaled(xs, width), order)
    ty = _cheb_matrix(scaled(ys, height), order)
    rows = ty @ coef  # (len(ys), N+1): coefficient of T_p(x') per row
    if dtype == np.float64:
        out: np.ndarray = rows @ tx.T
        return out
    lhs = np.concatenate([rows[:, 1:], rows[:, :1]], axis=1).astype(np.float32)
    rhs = np.concatenate([tx[:, 1:].T, tx[:, :1].T], axis=0).astype(np.float32)
    out = np.empty((lhs.shape[0], rhs.shape[1]), dtype=np.float32)
    np.matmul(lhs, rhs, out=out)
    return out
