"""Mann-Whitney U and the bootstrap interval against scipy.stats (the reference)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from loadgen.stats.significance import (
    _u_distribution,
    bootstrap_ci,
    mann_whitney_u,
    relative_change,
)

ALTERNATIVES = ("two-sided", "less", "greater")


@pytest.mark.parametrize(("m", "n"), [(1, 1), (3, 3), (3, 5), (7, 4), (10, 12), (25, 30)])
def test_u_distribution_counts_every_ordering(m: int, n: int) -> None:
    counts = _u_distribution(m, n)
    assert len(counts) == m * n + 1
    assert sum(counts) == math.comb(m + n, m)
    assert counts == counts[::-1]  # U and m*n - U are equally likely
    assert min(counts) >= 1


@pytest.mark.parametrize("seed", range(40))
def test_exact_p_values_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m, n = (int(k) for k in rng.integers(1, 15, size=2))
    x = rng.normal(size=m)
    y = rng.normal(loc=float(rng.uniform(-1, 1)), size=n)
    for alternative in ALTERNATIVES:
        ours = mann_whitney_u(x, y, alternative)
        reference = stats.mannwhitneyu(x, y, alternative=alternative, method="exact")
        assert ours.method == "exact"
        assert ours.u == reference.statistic
        assert ours.p_value == pytest.approx(reference.pvalue, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("seed", range(40))
def test_tied_p_values_match_scipy_asymptotic(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    m, n = (int(k) for k in rng.integers(2, 20, size=2))
    x = rng.integers(0, 5, size=m).astype(float)
    y = rng.integers(0, 5, size=n).astype(float)
    if len(set(x.tolist()) | set(y.tolist())) == 1:
        x[0] += 1  # all tied has no scipy reference (its z is 0/0)
    for alternative in ALTERNATIVES:
        ours = mann_whitney_u(x, y, alternative)
        reference = stats.mannwhitneyu(x, y, alternative=alternative, method="asymptotic")
        expected_method = "asymptotic" if len(np.unique(np.r_[x, y])) < m + n else "exact"
        assert ours.method == expected_method
        if expected_method == "exact":
            reference = stats.mannwhitneyu(x, y, alternative=alternative, method="exact")
        assert ours.p_value == pytest.approx(reference.pvalue, rel=1e-9, abs=1e-15)


def test_three_runs_a_side_reach_five_percent_only_when_separated() -> None:
    assert mann_whitney_u([4, 5, 6], [1, 2, 3], "greater").p_value == pytest.approx(1 / 20)
    assert mann_whitney_u([4, 5, 6], [1, 2, 3], "less").p_value == 1.0
    assert mann_whitney_u([2.5, 5, 6], [1, 2, 3], "greater").p_value == pytest.approx(2 / 20)


def test_all_values_tied_is_no_evidence() -> None:
    result = mann_whitney_u([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], "greater")
    assert result.p_value == 1.0


def test_bad_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        mann_whitney_u([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        mann_whitney_u([math.nan], [1.0])


def test_bootstrap_interval_brackets_a_clear_shift_and_is_repeatable() -> None:
    baseline = [100.0, 101.0, 99.0, 100.5, 99.5]
    current = [120.0, 121.0, 119.0, 120.5, 119.5]  # +20 %
    low, high = bootstrap_ci(baseline, current)
    assert 0.17 < low <= 0.20 <= high < 0.23
    assert bootstrap_ci(baseline, current) == (low, high)
    # the interval of a no-change comparison straddles zero
    low, high = bootstrap_ci(baseline, baseline)
    assert low < 0 < high


def test_bootstrap_against_scipy_percentile_interval() -> None:
    rng = np.random.default_rng(5)
    baseline = rng.normal(100, 5, size=8)
    current = rng.normal(110, 5, size=8)

    def change(b: np.ndarray, c: np.ndarray, axis: int = -1) -> np.ndarray:
        return (np.median(c, axis=axis) - np.median(b, axis=axis)) / np.median(b, axis=axis)

    reference = stats.bootstrap(
        (baseline, current),
        change,
        method="percentile",
        n_resamples=20_000,
        paired=False,
        random_state=1,
    ).confidence_interval
    low, high = bootstrap_ci(baseline, current, resamples=20_000)
    assert low == pytest.approx(reference.low, abs=0.01)
    assert high == pytest.approx(reference.high, abs=0.01)


def test_bootstrap_of_a_zero_baseline_has_no_interval() -> None:
    low, high = bootstrap_ci([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    assert math.isnan(low) and math.isnan(high)


def test_relative_change() -> None:
    assert relative_change(100.0, 110.0) == pytest.approx(0.1)
    assert relative_change(0.0, 0.0) == 0.0
    assert relative_change(0.0, 0.5) == math.inf
