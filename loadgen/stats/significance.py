"""Two-sample tests on run-level values: Mann-Whitney U and a bootstrap interval.

Why here and in numpy rather than scipy: the regression gate needs two small, well-known
procedures on a handful of numbers (one per run), and scipy would add ~40 MB to every install
of a load generator for them. The tests check both against ``scipy.stats`` (a test-only
dependency), so the arithmetic is held to the reference implementation.

* ``mann_whitney_u``: exact null distribution when there are no ties (the generating function
  of U is the Gaussian binomial coefficient, computed in integers, so any run count is exact),
  the normal approximation with tie and continuity corrections otherwise (what scipy's
  ``method="asymptotic"`` computes).
* ``bootstrap_ci``: percentile interval of the relative change of medians, resampling each
  side's runs with replacement; seeded, so the same inputs always print the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Alternative = Literal["two-sided", "less", "greater"]


@dataclass(frozen=True)
class MannWhitneyResult:
    u: float  # U statistic of the first sample
    p_value: float
    method: Literal["exact", "asymptotic"]


def _u_distribution(m: int, n: int) -> list[int]:
    """Number of orderings giving U = 0 .. m*n for samples of m and n distinct values.

    The coefficients of the Gaussian binomial [m+n choose m]_q = prod_{i=1..m}
    (1 - q**(n+i)) / (1 - q**i): multiply by each numerator, then divide by each denominator
    (exact: dividing by 1 - q**i is a running sum with stride i).
    """
    size = m * n + 1
    coefficients = [1] + [0] * (size - 1)
    for i in range(1, m + 1):
        step = n + i
        for k in range(size - 1, step - 1, -1):
            coefficients[k] -= coefficients[k - step]
        for k in range(i, size):
            coefficients[k] += coefficients[k - i]
    return coefficients


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def mann_whitney_u(
    x: Sequence[float], y: Sequence[float], alternative: Alternative = "two-sided"
) -> MannWhitneyResult:
    """Mann-Whitney U test of ``x`` against ``y``.

    ``alternative="greater"``: the alternative is that ``x`` tends to be larger than ``y``;
    ``"less"``: smaller. The p-value is the probability under the null of a U at least as
    extreme in that direction.
    """
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    m, n = a.size, b.size
    if m == 0 or n == 0:
        raise ValueError("each sample needs at least one value")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("samples must be finite numbers")
    both = np.concatenate([a, b])
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    # midranks: a value's rank is the mean of the positions its ties occupy (1-based)
    ends = np.cumsum(counts)
    midranks = ends - (counts - 1) / 2.0
    ranks = midranks[inverse]
    u1 = float(ranks[:m].sum() - m * (m + 1) / 2.0)
    u2 = m * n - u1
    if alternative == "greater":
        u = u1
    elif alternative == "less":
        u = u2
    else:
        u = max(u1, u2)
    ties = bool((counts > 1).any())
    if not ties:
        distribution = _u_distribution(min(m, n), max(m, n))
        total = sum(distribution)
        at_least = sum(distribution[math.ceil(u) :])  # u is an integer without ties
        p = at_least / total
        if alternative == "two-sided":
            p = min(1.0, 2.0 * p)
        return MannWhitneyResult(u1, p, "exact")
    total_n = m + n
    tie_term = float((counts.astype(np.float64) ** 3 - counts).sum())
    variance = m * n / 12.0 * ((total_n + 1) - tie_term / (total_n * (total_n - 1)))
    if variance <= 0:  # every value tied: no evidence of any difference
        return MannWhitneyResult(u1, 1.0, "asymptotic")
    z = (u - m * n / 2.0 - 0.5) / math.sqrt(variance)  # 0.5: continuity correction
    p = _normal_sf(z)
    if alternative == "two-sided":
        p = min(1.0, 2.0 * p)
    return MannWhitneyResult(u1, p, "asymptotic")


def relative_change(baseline: float, current: float) -> float:
    """(current - baseline) / baseline; 0 when both are 0, +-inf from a zero baseline."""
    if baseline == 0:
        return 0.0 if current == 0 else math.copysign(math.inf, current)
    return (current - baseline) / abs(baseline)


def bootstrap_ci(
    baseline: Sequence[float],
    current: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the relative change of medians (current vs baseline).

    Resamples in which the baseline median is 0 give no relative change; when that is every
    resample the interval is (nan, nan).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    a, b = np.asarray(baseline, dtype=np.float64), np.asarray(current, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError("each sample needs at least one value")
    rng = np.random.default_rng(seed)
    base = np.median(a[rng.integers(0, a.size, size=(resamples, a.size))], axis=1)
    cur = np.median(b[rng.integers(0, b.size, size=(resamples, b.size))], axis=1)
    usable = base != 0
    if not usable.any():
        return (math.nan, math.nan)
    changes = (cur[usable] - base[usable]) / np.abs(base[usable])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(changes, [tail, 100 - tail])
    return (float(low), float(high))
