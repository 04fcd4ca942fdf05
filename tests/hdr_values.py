"""The values an HdrHistogram holds, for tests that feed one histogram every value."""

from __future__ import annotations

import numpy as np

from loadgen.stats.histogram import HdrHistogram


def values_of(histogram: HdrHistogram) -> np.ndarray:
    """Every value a histogram holds, each at its bucket's lowest equivalent value, with the
    exact min and max in place of the first and last (they lie in those buckets)."""
    nonzero = np.flatnonzero(histogram.counts)
    low, _ = histogram._index_edges(nonzero.astype(np.int64))
    values = np.repeat(low, histogram.counts[nonzero])
    # Other values of the lowest bucket would sit at its low edge, below the exact min.
    values = np.clip(values, histogram.min, histogram.max)
    values[0], values[-1] = histogram.min, histogram.max
    return values
