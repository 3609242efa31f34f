"""Combining one tile of a warp stack: the weighted mean, the sigma-clipped mean and the median.

Pure numpy on arrays ``(n_warps, height, width)``; every sum runs over the warps in stack order
with the tile's pixels vectorised, so a pixel's result does not depend on the tile it was
computed in (tile-by-tile equals one-shot, bit for bit).

The statistics follow LSST's ``afw.math.statisticsStack`` as ``AssembleCoaddTask`` configures it
(weighted, NaN-safe, variance from the input variances):

* inputs: a warp's pixel is *good* when its image and variance are finite, it has none of
  ``bad_mask_planes`` and its weight is positive (``pixel`` weighting: variance > 0);
* ``MEAN``: ``I = sum(w x) / sum(w)``, ``V = sum(w**2 v) / sum(w)**2`` over good inputs;
  with per-pixel weights ``w = 1/v`` this is ``V = 1 / sum(1/v)``;
* ``MEANCLIP``: the first pass keeps inputs within ``sigma_clip x 0.7413 x IQR`` of the median
  (unweighted, quartiles interpolated linearly); each further pass keeps those within
  ``sigma_clip x s`` of the previous pass's weighted mean, ``s**2`` the debiased weighted
  variance of the kept values (``clip_iter`` passes in all). ``I`` and ``V`` are ``MEAN``'s
  over the inputs kept by the last pass. Where a pass cannot set a window (fewer than two values
  kept) the previous pass's set is kept (afw returns NaN there);
* ``MEDIAN``: the unweighted median of the good inputs (linear interpolation between the two
  middle values), ``V = (pi/2) sum(v) / n**2``: the variance of the median of ``n`` Gaussian
  values, from the input variances (afw uses the scatter of the values instead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from warping.coadd.config import CoaddConfig
from warping.masks import MaskPlanes

__all__ = ["IQR_TO_SIGMA", "CoaddPlanes", "TileResult", "coadd_planes", "combine_tile"]

#: Standard deviation of a Gaussian per unit of its interquartile range: 1 / (2 z(0.75)).
IQR_TO_SIGMA = float(1.0 / (2.0 * ndtri(0.75)))
#: Planes the coadd adds to the warps' planes.
NEW_PLANES = ("CLIPPED", "REJECTED", "SENSOR_EDGE", "INEXACT_PSF")


@dataclass(frozen=True)
class CoaddPlanes:
    """Bit values the combination uses, resolved once from the warps' planes and the config.

    ``planes`` is the coadd's: the warps' planes plus ``CLIPPED``, ``REJECTED``,
    ``SENSOR_EDGE`` and ``INEXACT_PSF`` (warp bits keep their numbers).
    """

    planes: MaskPlanes
    bad: int  # input bits that leave a pixel out
    to_rejected: int  # bad bits other than NO_DATA, EDGE, CLIPPED -> REJECTED
    to_sensor_edge: int  # EDGE (when bad) -> SENSOR_EDGE
    to_clipped: int  # an input's own CLIPPED (when bad) -> CLIPPED
    no_data: int
    clipped: int
    rejected: int
    sensor_edge: int
    inexact_psf: int
    thresholds: tuple[tuple[int, float], ...]  # (input bit value, weight fraction)


def coadd_planes(warp_planes: MaskPlanes, config: CoaddConfig) -> CoaddPlanes:
    """The coadd's planes and the bit values of ``config``'s mask rules for these warps."""
    planes = warp_planes.with_plane("NO_DATA")
    for name in NEW_PLANES:
        planes = planes.with_plane(name)
    bad = warp_planes.bitmask_if_present(*config.bad_mask_planes)
    excused = warp_planes.bitmask_if_present("NO_DATA", "EDGE", "CLIPPED")
    thresholds = tuple(
        (warp_planes.bitmask(name), float(t))
        for name, t in config.mask_propagation_thresholds.items()
        if name in warp_planes
    )
    return CoaddPlanes(
        planes=planes,
        bad=bad,
        to_rejected=bad & ~excused,
        to_sensor_edge=bad & warp_planes.bitmask_if_present("EDGE"),
        to_clipped=bad & warp_planes.bitmask_if_present("CLIPPED"),
        no_data=planes.bitmask("NO_DATA"),
        clipped=planes.bitmask("CLIPPED"),
        rejected=planes.bitmask("REJECTED"),
        sensor_edge=planes.bitmask("SENSOR_EDGE"),
        inexact_psf=planes.bitmask("INEXACT_PSF"),
        thresholds=thresholds,
    )


@dataclass(frozen=True)
class TileResult:
    """One combined tile: float32 image and variance, int32 mask, int32 input count."""

    image: np.ndarray
    variance: np.ndarray
    mask: np.ndarray
    n_inputs: np.ndarray  # good inputs per pixel (before clipping; LSST nImage)
    n_clipped: int  # input pixels removed by sigma clipping
    variance_sums: np.ndarray  # per warp: sum of the variance over its good pixels here
    good_counts: np.ndarray  # per warp: its good pixels here


def _zeroed(values: np.ndarray, where: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """A copy of ``values`` with ``fill`` where ``where`` holds."""
    out = values.copy()
    np.copyto(out, values.dtype.type(fill), where=where)
    return out


class _Stack:
    """The arrays of one tile with the per-warp weights resolved.

    ``image0``/``var0`` are the inputs with 0 where not good and ``wgood`` the weights there
    (0 elsewhere, float64), so the sums need no test per warp.
    """

    def __init__(
        self,
        image: np.ndarray,
        variance: np.ndarray,
        mask: np.ndarray,
        weights: np.ndarray,
        config: CoaddConfig,
        planes: CoaddPlanes,
    ) -> None:
        self.image = image
        self.variance = variance
        self.mask = mask
        self.weights = weights
        self.pixel = config.weighting == "pixel"
        valid = np.isfinite(image) & np.isfinite(variance)
        if self.pixel:
            valid &= variance > 0
        self.masked = (mask & planes.bad) != 0 if planes.bad else np.zeros(mask.shape, bool)
        self.good = valid & ~self.masked & (weights > 0)[:, None, None]
        self.n = image.shape[0]
        # copy then zero where not good: fewer passes over memory than np.where
        bad = ~self.good
        self.image0 = _zeroed(image, bad)
        self.var0 = _zeroed(variance, bad)
        self.wgood = np.empty(image.shape)
        if self.pixel:
            with np.errstate(divide="ignore", invalid="ignore"):
                np.divide(1.0, variance, out=self.wgood)
        else:
            self.wgood[:] = weights[:, None, None]
        np.copyto(self.wgood, 0.0, where=bad)

    def weight_where(self, i: int, where: np.ndarray) -> np.ndarray:
        """Weights of warp ``i`` where ``where`` holds and the weight is defined (float64)."""
        if self.pixel:
            v = self.variance[i]
            ok = where & np.isfinite(v) & (v > 0)
            out = np.zeros(v.shape)
            np.divide(1.0, v, out=out, where=ok)
            return out
        return np.where(where, self.weights[i], 0.0)

    def mean(self, keep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weighted mean, sum of weights and variance of the mean ``sum(w^2 v)/sum(w)^2`` over
        the inputs in ``keep`` (every good input when ``None``)."""
        shape = self.image.shape[1:]
        sw = np.zeros(shape)
        sx = np.zeros(shape)
        svar = np.zeros(shape)
        tmp = np.empty(shape)
        for i in range(self.n):
            w = self.wgood[i] if keep is None else np.where(keep[i], self.wgood[i], 0.0)
            sw += w
            np.multiply(w, self.image0[i], out=tmp)
            sx += tmp
            np.multiply(w, w, out=tmp)
            tmp *= self.var0[i]
            svar += tmp
        with np.errstate(divide="ignore", invalid="ignore"):
            return sx / sw, sw, svar / (sw * sw)

    def spread(self, keep: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weighted mean and debiased weighted variance of the values in ``keep``, summed as
        offsets from ``centre`` (afw's clipping passes)."""
        shape = keep.shape[1:]
        sw = np.zeros(shape)
        sw2 = np.zeros(shape)
        sx = np.zeros(shape)
        sxx = np.zeros(shape)
        for i in range(self.n):
            w = np.where(keep[i], self.wgood[i], 0.0)
            d = np.where(keep[i], self.image0[i] - centre, 0.0)
            sw += w
            sw2 += w * w
            wd = w * d
            sx += wd
            sxx += wd * d
        with np.errstate(divide="ignore", invalid="ignore"):
            m = sx / sw
            var = (sxx / sw - m * m) * (sw * sw / (sw * sw - sw2))
            return m + centre, var


def _quantiles(
    values: np.ndarray, count: np.ndarray, fractions: tuple[float, ...]
) -> list[np.ndarray]:
    """Linear-interpolation quantiles along axis 0 of ``values`` (NaN where not counted)."""
    ordered = np.sort(values, axis=0)  # NaN sort last
    top = np.maximum(count - 1, 0)
    out = []
    for q in fractions:
        pos = q * top
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, top)
        f = pos - lo
        vlo = np.take_along_axis(ordered, lo[None], axis=0)[0].astype(np.float64)
        vhi = np.take_along_axis(ordered, hi[None], axis=0)[0].astype(np.float64)
        out.append(np.where(count > 0, vlo * (1.0 - f) + vhi * f, np.nan))
    return out


def _clipped_keep(st: _Stack, config: CoaddConfig) -> np.ndarray:
    """The inputs kept by ``clip_iter`` sigma-clipping passes (see the module docstring)."""
    count = st.good.sum(axis=0)
    values = _zeroed(st.image, ~st.good, np.nan)
    median, q1, q3 = _quantiles(values, count, (0.5, 0.25, 0.75))
    iqr_width = config.sigma_clip * IQR_TO_SIGMA * (q3 - q1)
    keep = st.good & (np.abs(st.image - median) <= iqr_width)
    centre = median
    for _ in range(1, config.clip_iter):
        mean, spread = st.spread(keep, np.where(np.isfinite(centre), centre, 0.0))
        width = np.where(count > 1, config.sigma_clip * np.sqrt(np.maximum(spread, 0.0)), iqr_width)
        ok = np.isfinite(width) & np.isfinite(mean)
        trial = st.good & (np.abs(st.image - mean) <= width)
        ok &= trial.any(axis=0)
        keep = np.where(ok, trial, keep)
        centre = np.where(ok, mean, centre)
    return keep


def combine_tile(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    weights: np.ndarray,
    config: CoaddConfig,
    planes: CoaddPlanes,
) -> TileResult:
    """Combine the warps of one tile.

    Parameters
    ----------
    image, variance, mask
        Arrays ``(n_warps, height, width)``: float32, float32, int32 (bits of the warps' planes).
    weights
        One weight per warp (``scalar`` weighting; ``pixel`` weighting uses them only to leave
        out warps of weight 0).
    config
        Statistic, weighting, clipping and mask rules.
    planes
        From :func:`coadd_planes`.

    Returns
    -------
    TileResult
        Image NaN, variance +inf and ``NO_DATA`` where no input is good.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if image.shape[0] != weights.shape[0]:
        raise ValueError(f"{image.shape[0]} warps but {weights.shape[0]} weights")
    st = _Stack(image, variance, mask, weights, config, planes)
    count = st.good.sum(axis=0)
    n_clipped = 0
    used_weight: np.ndarray | None = None
    if config.statistic == "MEDIAN":
        values = _zeroed(image, ~st.good, np.nan)
        (value,) = _quantiles(values, count, (0.5,))
        vsum = np.zeros(image.shape[1:])
        for i in range(st.n):
            vsum += st.var0[i]
        with np.errstate(divide="ignore", invalid="ignore"):
            var = (math.pi / 2.0) * vsum / (count.astype(np.float64) ** 2)
        clipped = np.zeros(image.shape[1:], dtype=bool)
    elif config.statistic == "MEANCLIP":
        keep = _clipped_keep(st, config)
        value, _, var = st.mean(keep)
        removed = st.good & ~keep
        clipped = removed.any(axis=0)
        n_clipped = int(removed.sum())
    else:
        value, used_weight, var = st.mean(None)
        clipped = np.zeros(image.shape[1:], dtype=bool)

    # bitwise OR does not depend on the order: reduce over the warps at once
    out_mask = np.bitwise_or.reduce(mask * st.good, axis=0).astype(np.int32)
    left_out = np.bitwise_or.reduce(mask * st.masked, axis=0)
    for bit, threshold in planes.thresholds:
        carriers = ~st.good & ((mask & bit) != 0)
        if not carriers.any():
            continue
        if used_weight is None:
            used_weight = np.zeros(image.shape[1:])
            for i in range(st.n):
                used_weight += st.wgood[i]
        lost = np.zeros(image.shape[1:])
        for i in range(st.n):
            lost += st.weight_where(i, carriers[i])
        with np.errstate(divide="ignore", invalid="ignore"):
            over = lost / (used_weight + lost) > threshold
        out_mask |= np.where(over, bit, 0).astype(np.int32)
    empty = count == 0
    out_mask[empty] = planes.no_data
    out_mask |= np.where((left_out & planes.to_rejected) != 0, planes.rejected, 0).astype(np.int32)
    out_mask |= np.where((left_out & planes.to_sensor_edge) != 0, planes.sensor_edge, 0).astype(
        np.int32
    )
    out_mask |= np.where(clipped | ((left_out & planes.to_clipped) != 0), planes.clipped, 0).astype(
        np.int32
    )
    inexact = (out_mask & (planes.clipped | planes.rejected | planes.sensor_edge)) != 0
    out_mask |= np.where(inexact, planes.inexact_psf, 0).astype(np.int32)
    out_image = np.where(empty, np.nan, value).astype(np.float32)
    out_var = np.where(empty, np.inf, var).astype(np.float32)
    vsums = st.var0.reshape(st.n, -1).sum(axis=1, dtype=np.float64)
    counts = st.good.reshape(st.n, -1).sum(axis=1)
    return TileResult(
        out_image, out_var, out_mask, count.astype(np.int32), n_clipped, vsums, counts
    )
