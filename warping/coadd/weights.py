"""One weight per warp: the inverse of its sigma-clipped mean variance (LSST's default).

As ``AssembleCoaddTask.prepareInputs``: the variance plane's pixels that are finite and have none
of ``bad_mask_planes`` are clipped like ``MEANCLIP`` (a first window of ``sigma_clip x 0.7413 x
IQR`` around the median, then ``sigma_clip`` standard deviations around the mean, ``clip_iter``
passes, unweighted); the weight is the inverse of the clipped mean. A warp whose mean variance
is not a positive finite number is left out, with the reason.
"""

from __future__ import annotations

import numpy as np

from warping.coadd.combine import IQR_TO_SIGMA
from warping.coadd.config import CoaddConfig

__all__ = ["clipped_mean", "warp_weight"]


def clipped_mean(values: np.ndarray, sigma_clip: float, clip_iter: int) -> float:
    """Sigma-clipped mean of a 1-D sample (NaN for an empty one)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        return float("nan")
    q1, median, q3 = np.percentile(x, [25.0, 50.0, 75.0])
    width = sigma_clip * IQR_TO_SIGMA * (q3 - q1)
    kept = x[np.abs(x - median) <= width]
    for _ in range(1, clip_iter):
        if kept.size < 2:
            break
        mean = kept.mean()
        trial = x[np.abs(x - mean) <= sigma_clip * kept.std(ddof=1)]
        if trial.size == 0:
            break
        kept = trial
    return float(kept.mean()) if kept.size else float("nan")


def warp_weight(
    variance: np.ndarray, mask: np.ndarray, bad: int, config: CoaddConfig
) -> tuple[float, str]:
    """``(weight, "")`` of one warp, or ``(0.0, reason)`` when it cannot be weighted.

    Parameters
    ----------
    variance, mask
        The warp's variance and mask planes (any shape).
    bad
        Bit value of the ``bad_mask_planes`` in this mask.
    config
        Clipping parameters.
    """
    v = np.asarray(variance)
    good = np.isfinite(v) & ((np.asarray(mask) & bad) == 0)
    n = int(good.sum())
    if n == 0:
        return 0.0, "no good pixels (every pixel is NO_DATA, masked or non-finite)"
    mean_var = clipped_mean(v[good], config.sigma_clip, config.clip_iter)
    if not (np.isfinite(mean_var) and mean_var > 0):
        return 0.0, f"mean variance {mean_var} over {n} good pixels is not positive and finite"
    return 1.0 / mean_var, ""
