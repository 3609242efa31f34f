"""Statistical uncertainties and verdicts of ``bench/psf_fidelity.py``'s goal figures.

Every star figure is a mean over star-visit measurements; the same star measured on several
visits is not independent of itself (its neighbours, its position on the patch and its truth
flux are shared), so uncertainties come from a **cluster bootstrap over stars**: each resample
draws stars with replacement and keeps all of their visits. A goal ``|figure| < goal`` is then

* ``pass`` when ``|mean| + K σ < goal`` (the goal holds with ~98 % confidence, one-sided, K = 2),
* ``FAIL`` when ``|mean| − K σ > goal``,
* ``not resolved`` otherwise: the sample is too small to tell.

For the annulus goal (every 1-px annulus within the goal) the verdict is ``pass`` when every
annulus passes, ``FAIL`` when any fails, else ``not resolved``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: the number of standard errors a figure must clear its goal by to be resolved
K_SIGMA = 2.0
N_BOOT = 2000
PASS, FAIL, UNRESOLVED = "pass", "FAIL", "not resolved"


@dataclass(frozen=True)
class Estimate:
    """A mean over measurements, its bootstrap standard error and the sample sizes."""

    mean: float
    sigma: float
    n: int  # measurements (star-visits)
    n_groups: int  # independent units resampled (stars)


def bootstrap(
    values: Sequence[float] | np.ndarray,
    groups: Sequence[int] | np.ndarray,
    *,
    n_boot: int = N_BOOT,
    seed: int = 18,
) -> Estimate:
    """Mean of ``values`` and its standard error by a cluster bootstrap over ``groups``."""
    mean, sigma, n, g = bootstrap_profile(np.asarray(values, float)[:, None], groups,
                                          n_boot=n_boot, seed=seed)  # fmt: skip
    return Estimate(float(mean[0]), float(sigma[0]), n, g)


def bootstrap_profile(
    rows: np.ndarray,
    groups: Sequence[int] | np.ndarray,
    *,
    n_boot: int = N_BOOT,
    seed: int = 18,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Column means of ``rows`` (one row per measurement) and their cluster-bootstrap standard
    errors over ``groups``; also the numbers of rows and of groups.

    With fewer than two groups the standard errors are NaN.
    """
    rows = np.asarray(rows, dtype=float)
    if rows.ndim != 2:
        raise ValueError(f"rows must be 2-D (measurements x columns), got shape {rows.shape}")
    groups = np.asarray(groups)
    if groups.shape != (rows.shape[0],):
        raise ValueError(f"{groups.size} groups for {rows.shape[0]} measurements")
    if rows.shape[0] == 0:
        nan = np.full(rows.shape[1], np.nan)
        return nan, nan.copy(), 0, 0
    labels, inverse = np.unique(groups, return_inverse=True)
    n_groups = labels.size
    sums = np.zeros((n_groups, rows.shape[1]))
    np.add.at(sums, inverse, rows)
    counts = np.bincount(inverse, minlength=n_groups).astype(float)
    mean = sums.sum(axis=0) / counts.sum()
    if n_groups < 2:
        return mean, np.full(rows.shape[1], np.nan), rows.shape[0], n_groups
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, rows.shape[1]))
    for start in range(0, n_boot, 250):  # resample weights in chunks: bounded memory
        stop = min(n_boot, start + 250)
        w = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=stop - start)
        boot[start:stop] = (w @ sums) / (w @ counts)[:, None]
    return mean, boot.std(axis=0, ddof=1), rows.shape[0], n_groups


def verdict(value: float, sigma: float, goal: float, k: float = K_SIGMA) -> str:
    """``pass`` / ``FAIL`` / ``not resolved`` for the goal ``|value| < goal`` (see the module)."""
    if not (np.isfinite(value) and np.isfinite(sigma)):
        return UNRESOLVED
    if abs(value) + k * sigma < goal:
        return PASS
    if abs(value) - k * sigma > goal:
        return FAIL
    return UNRESOLVED


def verdict_all(values: np.ndarray, sigmas: np.ndarray, goal: float, k: float = K_SIGMA) -> str:
    """The verdict for "every one of ``values`` within ``goal``"."""
    each = [verdict(float(v), float(s), goal, k) for v, s in zip(values, sigmas, strict=True)]
    if FAIL in each:
        return FAIL
    if each and all(v == PASS for v in each):
        return PASS
    return UNRESOLVED


def block_mean(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Weighted mean of independent block estimates and its standard error (for the noise
    ratio: robust variance per background block, weighted by the block's clean pixels)."""
    values, weights = np.asarray(values, float), np.asarray(weights, float)
    if values.size == 0:
        return float("nan"), float("nan")
    w = weights / weights.sum()
    mean = float((w * values).sum())
    if values.size < 2:
        return mean, float("nan")
    n_eff = 1.0 / (w**2).sum()
    var = float((w * (values - mean) ** 2).sum()) * n_eff / (n_eff - 1.0)
    return mean, float(np.sqrt(var / n_eff))
