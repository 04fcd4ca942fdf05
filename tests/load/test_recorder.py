"""The recorder's buffers: values buffered one per response, and values buffered once with
a count (a pipelined batch answered in one chunk), end in the same histograms, interval by
interval, as a histogram fed every value."""

from __future__ import annotations

import random

from loadgen.load.recorder import Recorder
from loadgen.stats.histogram import HdrHistogram

SECOND_NS = 1_000_000_000


def test_repeated_latencies_land_exactly_where_single_ones_would() -> None:
    rng = random.Random(7)
    recorder = Recorder(0, names=())
    expected = [HdrHistogram() for _ in range(4)]
    expected_corrected = [HdrHistogram() for _ in range(4)]
    total = 0
    now_ns = 0
    unflushed: list[tuple[int, int]] = []  # (latency, corrected) of each buffered response

    def tick(at_ns: int) -> None:
        # What a tick flushes lands in the interval open at that tick.
        open_index = min(len(recorder.intervals), 3)
        for latency, corrected in unflushed:
            expected[open_index].record(latency)
            expected_corrected[open_index].record(corrected)
        unflushed.clear()
        recorder.tick(at_ns)

    for step in range(4000):
        now_ns = step * SECOND_NS * 4 // 4000  # four intervals, ticks between batches
        latency_ns = rng.randrange(1_000, 50_000_000)
        corrected_ns = latency_ns + rng.randrange(0, 1_000_000)
        count = rng.choice([1, 1, 2, 16, 16, 5])
        if count == 1:
            recorder.pending_latency.append(latency_ns)
            recorder.pending_corrected.append(corrected_ns)
        else:
            recorder.pending_repeated.append(latency_ns)
            recorder.pending_repeats.append(count)
            recorder.pending_corrected_repeated.append(corrected_ns)
            recorder.pending_corrected_repeats.append(count)
        unflushed += [(latency_ns, corrected_ns)] * count
        total += count
        assert recorder.requests == total  # buffered ones included
        if step % 97 == 0:
            tick(now_ns)
    tick(4 * SECOND_NS - 1)
    recorder.finish(4 * SECOND_NS)
    assert recorder.requests == total
    assert [interval.requests for interval in recorder.intervals] == [
        histogram.total_count for histogram in expected
    ]
    for interval, histogram, corrected in zip(
        recorder.intervals, expected, expected_corrected, strict=True
    ):
        assert interval.latency == histogram.to_dict()
        assert interval.latency_corrected == corrected.to_dict()
    whole = HdrHistogram()
    for histogram in expected:
        whole.merge(histogram)
    assert recorder.latency == whole
    assert not recorder.pending_repeated and not recorder.pending_repeats
