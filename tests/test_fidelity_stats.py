"""The fidelity benchmark's uncertainties and verdicts (bench/_fidelity_stats.py) against the
standard error of the mean and Monte-Carlo truth."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from _fidelity_stats import (  # noqa: E402
    FAIL,
    PASS,
    UNRESOLVED,
    block_mean,
    bootstrap,
    bootstrap_profile,
    verdict,
    verdict_all,
)


def test_bootstrap_of_independent_values_is_the_standard_error_of_the_mean() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0.002, 0.01, 400)
    e = bootstrap(x, np.arange(x.size))
    sem = x.std(ddof=1) / np.sqrt(x.size)
    assert e.mean == pytest.approx(x.mean(), abs=1e-15)
    assert e.sigma == pytest.approx(sem, rel=0.06)
    assert (e.n, e.n_groups) == (400, 400)


def test_bootstrap_resamples_stars_not_visits() -> None:
    """Three visits of one star share its offset: the error is that of 100 stars, not of 300
    independent measurements (sqrt(3) larger than the naive one when the offset dominates)."""
    rng = np.random.default_rng(2)
    offsets = rng.normal(0.0, 0.01, 100)
    x = np.repeat(offsets, 3) + rng.normal(0.0, 1e-5, 300)
    groups = np.repeat(np.arange(100), 3)
    e = bootstrap(x, groups)
    naive = x.std(ddof=1) / np.sqrt(300)
    assert e.sigma == pytest.approx(offsets.std(ddof=1) / 10.0, rel=0.08)
    assert e.sigma / naive == pytest.approx(np.sqrt(3.0), rel=0.1)
    assert e.n_groups == 100


def test_bootstrap_errors_cover_the_truth_at_the_stated_rate() -> None:
    """Over 200 samples the true mean is within 2 bootstrap sigmas about 95 % of the time."""
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(200):
        x = rng.standard_t(5, 60) * 0.01 + 0.003  # heavy-tailed, like flux residuals
        e = bootstrap(x, np.arange(60), n_boot=400, seed=int(rng.integers(1 << 30)))
        hits += abs(e.mean - 0.003) < 2 * e.sigma
    assert 0.88 <= hits / 200 <= 0.99


def test_bootstrap_profile_columns_match_one_column_bootstraps() -> None:
    rng = np.random.default_rng(4)
    rows = rng.normal(0.0, [1e-3, 5e-3, 2e-2], (150, 3))
    groups = rng.integers(0, 60, 150)
    mean, sigma, n, g = bootstrap_profile(rows, groups)
    assert (n, g) == (150, np.unique(groups).size)
    for j in range(3):
        one = bootstrap(rows[:, j], groups)
        assert mean[j] == pytest.approx(one.mean, abs=1e-15)
        assert sigma[j] == pytest.approx(one.sigma, rel=1e-12)
    with pytest.raises(ValueError, match="groups for"):
        bootstrap_profile(rows, groups[:-1])


def test_bootstrap_of_too_few_stars_has_no_error() -> None:
    assert np.isnan(bootstrap([0.1, 0.2], [7, 7]).sigma)
    empty = bootstrap([], [])
    assert empty.n == 0 and np.isnan(empty.mean)


@pytest.mark.parametrize(
    ("value", "sigma", "expected"),
    [
        (0.0002, 0.0003, PASS),  # 0.0008 < 0.001
        (-0.0011, 0.0009, UNRESOLVED),  # the demo's S/N >= 200 PSF-flux bias
        (-0.0011, 0.00004, FAIL),  # the same bias, measured on enough stars
        (0.0009, 0.0001, UNRESOLVED),  # within the goal but not by 2 sigma
        (float("nan"), 0.1, UNRESOLVED),
    ],
)
def test_verdict(value: float, sigma: float, expected: str) -> None:
    assert verdict(value, sigma, 1e-3) == expected


def test_verdict_all_needs_every_annulus() -> None:
    sig = np.full(3, 1e-4)
    assert verdict_all(np.array([1e-4, -2e-4, 5e-4]), sig, 1e-3) == PASS
    assert verdict_all(np.array([1e-4, -9.5e-4, 5e-4]), sig, 1e-3) == UNRESOLVED
    assert verdict_all(np.array([1e-4, -9.5e-4, 1.5e-3]), sig, 1e-3) == FAIL


def test_block_mean_is_the_weighted_standard_error() -> None:
    rng = np.random.default_rng(5)
    v = rng.normal(1.0, 0.02, 64)
    mean, err = block_mean(v, np.ones(64))
    assert mean == pytest.approx(v.mean())
    assert err == pytest.approx(v.std(ddof=1) / 8.0, rel=1e-12)
