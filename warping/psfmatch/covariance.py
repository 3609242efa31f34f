"""Noise covariance of a warped CCD and the variance it gives a PSF-matched warp.

Warping resamples: output pixel ``p`` is ``A(p) sum_a W(a - s(p)) x_a`` with ``s(p)`` the source
position, ``W`` the separable warping kernel (Lanczos) and ``A`` the pixel-area factor. White input
noise of variance ``V`` therefore comes out correlated,
``Cov(p, q) = A(p) A(q) V sum_a W(a - s(p)) W(a - s(q))``, while the warped variance plane holds
only the diagonal. The normalised correlation ``rho(p, d)`` between ``p`` and ``p + d`` depends on
``p`` through the sub-pixel phase of ``s(p)`` (zero correlation at integer phases, the most at
half-pixel ones) and on the local Jacobian ``J`` of ``s`` (``s(p + d) = s(p) + J d``).

Convolving by the matching kernel ``K`` gives the per-pixel variance
``sum_{u,v} K(u) K(v) Cov(x - u, x - v)``; LSST's plane ``sum_u K(u)^2 V'(x - u)`` (``V'`` the
warped plane) keeps only ``u = v``. With ``R(d) = sum_u K(u) K(u + d)`` the kernel's
autocorrelation, the ratio of the two at a pixel where the correlation is ``rho(p, .)`` is

    F(p) = sum_d R(d) rho(p, d) / R(0),

and the honest plane is ``sum_u K(u)^2 F(x - u) V'(x - u)``, approximated here as LSST's plane
times ``F`` smoothed by ``K^2 / sum K^2`` (exact where ``V'`` is locally constant; ``F`` then
averages the fast phase ripple over the kernel footprint as the convolution does).
``F(p)`` is evaluated per pixel from tables over the sub-pixel phase (16 x 16 nodes, bilinear,
periodic), one table per block of :data:`BLOCK` pixels with that block's ``J`` and ``K``.

:func:`warp_noise_correlation` is the exact per-pixel correlation (used for the tables, the summary
and the tests); :func:`matched_noise_covariance` builds the factor map and the summary that MakeWarp
records in the warp's metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.signal import oaconvolve

from warping.geom import Box2I
from warping.psfmatch.solve import SpatialKernel
from warping.warp._kernels import kernel_weight_rows, parse_kernel

logger = logging.getLogger(__name__)

__all__ = [
    "SUMMARY_LAGS",
    "MatchedNoise",
    "axis_covariance",
    "matched_noise_covariance",
    "warp_noise_correlation",
    "warp_noise_covariance",
]

DestToSrc = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

#: Lags (dx, dy) of the correlation summary recorded in the metadata.
SUMMARY_LAGS: tuple[tuple[int, int], ...] = (
    (1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (3, 0), (0, 3),
)  # fmt: skip
#: Block size (pixels) of the phase tables: J and K are taken at each block's centre.
BLOCK = 512
#: Phase nodes per axis of the tables.
PHASES = 16
#: Source-position grid step (pixels) before bilinear interpolation to every pixel.
GRID_STEP = 16
#: Random valid pixels whose exact correlations make the metadata summary (error ~0.003).
SUMMARY_POINTS = 1024


def _taps(kernel: str, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First source index and weights of each position's taps along one axis."""
    i = np.floor(s)
    w = kernel_weight_rows(kernel, s - i)
    return i.astype(np.int64) - (w.shape[1] // 2 - 1), w


def _cross(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``sum_a W_s(a) W_t(a)`` of two sets of taps (see :func:`_taps`), elementwise."""
    (ia, wa), (ib, wb) = a, b
    nk = wa.shape[1]
    off = ib - ia
    out = np.zeros(len(ia))
    for o in range(-(nk - 1), nk):
        m = off == o
        if not m.any():
            continue
        x, y = wa[m], wb[m]  # tap k of a and tap k - o of b weigh the same source pixel
        if o >= 0:
            out[m] = np.einsum("ij,ij->i", x[:, o:], y[:, : nk - o])
        else:
            out[m] = np.einsum("ij,ij->i", x[:, : nk + o], y[:, -o:])
    return out


def axis_covariance(kernel: str, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``sum_a W(a - s) W(a - t)`` over integer source indices ``a``, elementwise.

    The covariance of two outputs of a one-axis resampling of unit white noise, whose source
    positions along that axis are ``s`` and ``t``.
    """
    s, t = np.broadcast_arrays(np.asarray(s, float), np.asarray(t, float))
    return _cross(_taps(kernel, s.ravel()), _taps(kernel, t.ravel()))


def warp_noise_covariance(
    kernel: str,
    sx: np.ndarray,
    sy: np.ndarray,
    jac: np.ndarray,
    lags: Sequence[tuple[int, int]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Covariance of warped unit white noise between output pixel ``p`` and ``p + d``.

    Parameters
    ----------
    kernel
        The warping kernel (``lanczos3`` ...).
    sx, sy
        Source positions of the output pixels ``p``, shape ``(n,)``.
    jac
        ``d(source)/d(output)`` at each ``p``, shape ``(n, 2, 2)`` or ``(2, 2)``.
    lags
        Output-pixel lags ``(dx, dy)``.

    Returns
    -------
    cov, var_p, var_pd
        ``(n, len(lags))`` covariances, the variance at ``p`` ``(n,)`` and at ``p + d``
        ``(n, len(lags))`` (area factors left out: they cancel in correlations).
    """
    sx, sy = np.asarray(sx, float).ravel(), np.asarray(sy, float).ravel()
    j = np.broadcast_to(np.asarray(jac, float), (sx.size, 2, 2))
    px, py = _taps(kernel, sx), _taps(kernel, sy)
    var_p = _cross(px, px) * _cross(py, py)
    cov = np.empty((sx.size, len(lags)))
    var_pd = np.empty((sx.size, len(lags)))
    for n, (dx, dy) in enumerate(lags):
        qx = _taps(kernel, sx + j[:, 0, 0] * dx + j[:, 0, 1] * dy)
        qy = _taps(kernel, sy + j[:, 1, 0] * dx + j[:, 1, 1] * dy)
        cov[:, n] = _cross(px, qx) * _cross(py, qy)
        var_pd[:, n] = _cross(qx, qx) * _cross(qy, qy)
    return cov, var_p, var_pd


def warp_noise_correlation(
    kernel: str,
    sx: np.ndarray,
    sy: np.ndarray,
    jac: np.ndarray,
    lags: Sequence[tuple[int, int]],
) -> np.ndarray:
    """Correlation ``(n, len(lags))`` of warped white noise between output pixels ``p`` and
    ``p + d`` (arguments as :func:`warp_noise_covariance`; 1 at lag (0, 0))."""
    cov, var_p, var_pd = warp_noise_covariance(kernel, sx, sy, jac, lags)
    return np.asarray(cov / np.sqrt(var_p[:, None] * var_pd))


def _autocorrelation(k: np.ndarray, max_lag: int) -> np.ndarray:
    """``R(d) = sum_u K(u) K(u + d)`` for ``|dx|, |dy| <= max_lag``, indexed ``[dy+L, dx+L]``."""
    full = oaconvolve(k, k[::-1, ::-1], mode="full")
    c = k.shape[0] - 1
    return np.asarray(full[c - max_lag : c + max_lag + 1, c - max_lag : c + max_lag + 1])


def _source_grid(
    dest_to_src: DestToSrc, bbox: Box2I, step: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source positions on a grid of nodes every ``step`` pixels covering ``bbox`` (+1 node)."""
    nx = np.arange(bbox.x0, bbox.x0 + bbox.width + step, step, dtype=float)
    ny = np.arange(bbox.y0, bbox.y0 + bbox.height + step, step, dtype=float)
    gx, gy = np.meshgrid(nx, ny)
    sx, sy = dest_to_src(gx.ravel(), gy.ravel())
    return nx, ny, np.asarray(sx, float).reshape(gx.shape), np.asarray(sy, float).reshape(gx.shape)


def _interp_rows(values: np.ndarray, nodes: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``values[..., node]`` along the last axis to ``at``."""
    i = np.clip(np.searchsorted(nodes, at, side="right") - 1, 0, len(nodes) - 2)
    w = (at - nodes[i]) / (nodes[i + 1] - nodes[i])
    return values[..., i] * (1.0 - w) + values[..., i + 1] * w


def _fill_nonfinite(a: np.ndarray) -> np.ndarray:
    """Non-finite grid values (off the WCS) replaced by the finite mean (phases there are moot)."""
    ok = np.isfinite(a)
    if not ok.all():
        a = np.where(ok, a, a[ok].mean() if ok.any() else 0.0)
    return a


def _bilinear(grid: np.ndarray, nx: np.ndarray, ny: np.ndarray, x: np.ndarray, y: np.ndarray
              ) -> np.ndarray:  # fmt: skip
    """Bilinear interpolation of ``grid[iy, ix]`` (nodes ``nx``, ``ny``) at points ``(x, y)``."""
    ix = np.clip(np.searchsorted(nx, x, side="right") - 1, 0, len(nx) - 2)
    iy = np.clip(np.searchsorted(ny, y, side="right") - 1, 0, len(ny) - 2)
    wx = (x - nx[ix]) / (nx[ix + 1] - nx[ix])
    wy = (y - ny[iy]) / (ny[iy + 1] - ny[iy])
    return np.asarray(
        grid[iy, ix] * (1 - wx) * (1 - wy) + grid[iy, ix + 1] * wx * (1 - wy)
        + grid[iy + 1, ix] * (1 - wx) * wy + grid[iy + 1, ix + 1] * wx * wy
    )  # fmt: skip


def _factor_per_pixel(
    tables: np.ndarray,
    bbox: Box2I,
    nx: np.ndarray,
    ny: np.ndarray,
    gsx: np.ndarray,
    gsy: np.ndarray,
    n_blocks_x: int,
    band: int = 256,
) -> np.ndarray:
    """``F`` at every pixel: its source position's sub-pixel phase looked up (bilinear, periodic)
    in its block's table; computed in bands of ``band`` rows to bound the memory."""
    h, w = bbox.shape
    xs = np.arange(bbox.x0, bbox.x0 + w, dtype=float)
    # source positions x PHASES, float32: at 1e5 that resolves 1/100 of a phase node
    rows_x = (_interp_rows(gsx, nx, xs) * PHASES).astype(np.float32)  # (nodes y, w)
    rows_y = (_interp_rows(gsy, nx, xs) * PHASES).astype(np.float32)
    # periodic copy of row/column 0 as row/column PHASES: the upper neighbours need no modulo
    padded = np.concatenate([tables, tables[:, :1]], axis=1)
    padded = np.concatenate([padded, padded[:, :, :1]], axis=2).astype(np.float32)
    flat = padded.ravel()
    pp = PHASES + 1
    bcol = (np.arange(w) // BLOCK).astype(np.int32) * (pp * pp)
    out = np.empty((h, w), dtype=np.float32)
    for r0 in range(0, h, band):
        ys = np.arange(bbox.y0 + r0, bbox.y0 + min(h, r0 + band), dtype=float)
        iy = np.clip(np.searchsorted(ny, ys, side="right") - 1, 0, len(ny) - 2)
        wy = ((ys - ny[iy]) / (ny[iy + 1] - ny[iy])).astype(np.float32)[:, None]
        u = rows_x[iy] + (rows_x[iy + 1] - rows_x[iy]) * wy
        v = rows_y[iy] + (rows_y[iy + 1] - rows_y[iy]) * wy
        fu, fv = np.floor(u), np.floor(v)
        idx = fv.astype(np.int32) % PHASES * pp + fu.astype(np.int32) % PHASES
        fu = u - fu
        fv = v - fv
        brow = ((np.arange(r0, r0 + len(ys)) // BLOCK) * n_blocks_x * pp * pp).astype(np.int32)
        idx += brow[:, None]
        idx += bcol[None, :]
        a, b = flat[idx], flat[idx + 1]
        top = a + (b - a) * fu
        a, b = flat[idx + pp], flat[idx + pp + 1]
        out[r0 : r0 + len(ys)] = top + (a + (b - a) * fu - top) * fv
    return out


@dataclass(frozen=True)
class MatchedNoise:
    """What warping and matching did to the noise of one CCD.

    ``factor`` is the per-pixel ratio of the honest variance to LSST's ``sum K^2 V`` plane (float32,
    the arrays' shape); ``warp_correlation`` and ``matched_correlation`` the mean noise
    correlation at :data:`SUMMARY_LAGS` of the warped and of the PSF-matched CCD.
    """

    factor: np.ndarray
    mean_factor: float
    warp_correlation: tuple[float, ...]
    matched_correlation: tuple[float, ...]

    def metadata(self) -> dict[str, object]:
        """The summary MakeWarp stores in a PSF-matched warp's metadata."""
        return {
            "lags": [list(lag) for lag in SUMMARY_LAGS],
            "warp_correlation": [round(v, 6) for v in self.warp_correlation],
            "matched_correlation": [round(v, 6) for v in self.matched_correlation],
            "variance_factor": round(self.mean_factor, 6),
        }


def matched_noise_covariance(
    dest_to_src: DestToSrc,
    warp_kernel: str,
    kernel: SpatialKernel,
    bbox: Box2I,
    valid: np.ndarray | None = None,
    *,
    max_lag: int | None = None,
    seed: int = 0,
) -> MatchedNoise:
    """Variance factor map and correlation summary of a CCD warped with ``warp_kernel`` through
    ``dest_to_src`` (output parent pixel -> source parent pixel) and matched with ``kernel``.

    Parameters
    ----------
    bbox
        Parent bbox of the warped arrays (the factor map has its shape).
    valid
        Pixels that hold data (the summary averages over them); None: all.
    max_lag
        Largest lag per axis of the correlation sums; default the warping kernel's width - 2
        (4 for Lanczos-3: its correlation at lag 5 is below 1e-3).
    """
    spec = parse_kernel(warp_kernel)
    lag_max = max(spec.size - 2, 1) if max_lag is None else int(max_lag)
    h, w = bbox.shape
    nx, ny, gsx, gsy = _source_grid(dest_to_src, bbox, GRID_STEP)
    gsx, gsy = _fill_nonfinite(gsx), _fill_nonfinite(gsy)
    # Jacobian on the grid (d source / d output), by differences of the nodes
    jxx, jxy = np.gradient(gsx, nx, axis=1), np.gradient(gsx, ny, axis=0)
    jyx, jyy = np.gradient(gsy, nx, axis=1), np.gradient(gsy, ny, axis=0)
    lags = [(dx, dy) for dy in range(-lag_max, lag_max + 1) for dx in range(-lag_max, lag_max + 1)]
    # blocks: centres, their Jacobians and the kernel's autocorrelation there
    bx = np.arange(bbox.x0, bbox.x0 + w, BLOCK) + min(BLOCK, w) / 2.0
    by = np.arange(bbox.y0, bbox.y0 + h, BLOCK) + min(BLOCK, h) / 2.0
    cx, cy = np.meshgrid(bx, by)
    cx, cy = cx.ravel(), cy.ravel()

    def at(grid: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _bilinear(grid, nx, ny, x, y)

    jb = np.stack([np.stack([at(jxx, cx, cy), at(jxy, cx, cy)], -1),
                   np.stack([at(jyx, cx, cy), at(jyy, cx, cy)], -1)], -2)  # fmt: skip
    rk = np.stack([_autocorrelation(kernel.kernel_image(x, y), lag_max).ravel()
                   for x, y in zip(cx, cy, strict=True)])  # fmt: skip
    r_rel = rk / rk[:, len(lags) // 2][:, None]  # R(d) / R(0), lags in row-major (dy, dx) order
    # phase tables: F at PHASES x PHASES sub-pixel phases, per block. The correlation is
    # separable, rho(p, d) = rho_x(fx, J d) rho_y(fy, J d), so 2 x PHASES evaluations per lag.
    ph = np.arange(PHASES) / PHASES
    dxy = np.array(lags, dtype=float)  # (nl, 2)
    shift = np.einsum("bij,lj->bli", jb, dxy)  # source offsets J d, (nb, nl, 2)
    axes = []
    for a in (0, 1):
        s0 = np.broadcast_to(ph, (*shift.shape[:2], PHASES)).ravel()
        s1 = (ph[None, None, :] + shift[:, :, a, None]).ravel()
        t0, t1 = _taps(warp_kernel, s0), _taps(warp_kernel, s1)
        rho_a = _cross(t0, t1) / np.sqrt(_cross(t0, t0) * _cross(t1, t1))
        axes.append(rho_a.reshape(*shift.shape[:2], PHASES))
    tables = np.einsum("bl,blx,bly->byx", r_rel, axes[0], axes[1])  # [b, fy, fx]
    f_pix = _factor_per_pixel(tables, bbox, nx, ny, gsx, gsy, len(bx))
    # the convolution averages F over the kernel footprint with weights K^2: a Gaussian of the
    # second moments of K^2 stands in for it (it only averages the phase ripple)
    k2 = kernel.kernel_image(float(np.mean(cx)), float(np.mean(cy))) ** 2
    k2 /= k2.sum()
    off = np.arange(k2.shape[0]) - k2.shape[0] // 2
    sig_x = float(np.sqrt((k2.sum(axis=0) * off**2).sum()))
    sig_y = float(np.sqrt((k2.sum(axis=1) * off**2).sum()))
    factor = gaussian_filter(f_pix, sigma=(sig_y, sig_x), mode="nearest", truncate=3.0)
    # summary: exact correlations at random valid pixels, with the local Jacobian
    rng = np.random.default_rng(seed)
    if valid is not None and valid.any():
        # random valid pixels: rejection sampling (np.nonzero of a CCD-sized mask takes ~0.2 s)
        yv, xv = rng.integers(0, h, 8 * SUMMARY_POINTS), rng.integers(0, w, 8 * SUMMARY_POINTS)
        keep = valid[yv, xv]
        if keep.sum() < SUMMARY_POINTS // 4:  # mostly invalid: take them all
            yv, xv = np.nonzero(valid)
            keep = rng.integers(0, len(xv), size=min(SUMMARY_POINTS, len(xv)))
        px, py = xv[keep][:SUMMARY_POINTS] + bbox.x0, yv[keep][:SUMMARY_POINTS] + bbox.y0
        mean_factor = float(factor[valid].mean())
    else:
        px = rng.integers(bbox.x0, bbox.x0 + w, SUMMARY_POINTS)
        py = rng.integers(bbox.y0, bbox.y0 + h, SUMMARY_POINTS)
        mean_factor = float(factor.mean())
    px, py = px.astype(float), py.astype(float)
    spx, spy = dest_to_src(px, py)
    jp = np.stack([np.stack([at(jxx, px, py), at(jxy, px, py)], -1),
                   np.stack([at(jyx, px, py), at(jyy, px, py)], -1)], -2)  # fmt: skip
    ok = np.isfinite(spx) & np.isfinite(spy)
    cov_s, var_s, var_sd = warp_noise_covariance(
        warp_kernel, np.asarray(spx)[ok], np.asarray(spy)[ok], jp[ok], lags
    )
    rho_mean = (cov_s / np.sqrt(var_s[:, None] * var_sd)).mean(axis=0)
    # what a stacker measures on the warp: mean covariance over mean variance
    warp_rho = cov_s.mean(axis=0) / var_s.mean()
    grid_rho = rho_mean.reshape(2 * lag_max + 1, 2 * lag_max + 1)  # [dy, dx]
    r_full = _autocorrelation(kernel.kernel_image(float(np.mean(cx)), float(np.mean(cy))),
                              kernel.size - 1)  # fmt: skip
    cov = oaconvolve(r_full, grid_rho, mode="full")  # matched covariance / V, by lag
    c = cov.shape[0] // 2
    wgrid = warp_rho.reshape(2 * lag_max + 1, 2 * lag_max + 1)
    warp_corr = tuple(
        float(wgrid[lag_max + dy, lag_max + dx]) if max(abs(dx), abs(dy)) <= lag_max else 0.0
        for dx, dy in SUMMARY_LAGS
    )
    matched_corr = tuple(float(cov[c + dy, c + dx] / cov[c, c]) for dx, dy in SUMMARY_LAGS)
    return MatchedNoise(factor, mean_factor, warp_corr, matched_corr)
