"""The numbers the HTML report's charts draw are the run's own: each series is checked
against latencies the test chose, not only its label and shape.

The run is an open-model result whose two latencies are far apart: from the actual send
(raw) ``RAW_US`` and from the intended send (corrected) ``CORRECTED_US``, both scaled per
interval; a chart drawn from the wrong one is off by a factor of ten or more.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from loadgen.report.html import render_html
from loadgen.result.model import Interval, LatencySummary, RunResult
from loadgen.stats.histogram import HdrHistogram

from .builders import loaded, make_result
from .test_html import chart_data

INTERVALS = 3
#: Per interval i: raw latencies uniform over RAW_US * (i + 1), corrected over CORRECTED_US *
#: (i + 1); requests 400 + 100 i.
RAW_US = (100.0, 300.0)
CORRECTED_US = (5_000.0, 15_000.0)
#: HdrHistogram keeps 3 significant digits; a percentile of 1,000 draws sits within 1% of
#: numpy's (linear interpolation between neighbours is closer than that here).
REL = 0.02


def _draws(low_high: tuple[float, float], index: int, seed: int) -> np.ndarray:
    low, high = low_high
    count = 400 + 100 * index
    values_us = np.random.default_rng(seed + index).uniform(low, high, count) * (index + 1)
    return values_us


def _histogram(values_us: np.ndarray) -> HdrHistogram:
    histogram = HdrHistogram()
    histogram.record_many(np.round(values_us * 1000).astype(np.int64))
    return histogram


def _open_run() -> tuple[RunResult, list[np.ndarray], list[np.ndarray]]:
    raw = [_draws(RAW_US, i, seed=1) for i in range(INTERVALS)]
    corrected = [_draws(CORRECTED_US, i, seed=50) for i in range(INTERVALS)]
    intervals = [
        Interval(
            index=i,
            start_s=float(i),
            duration_s=1.0,
            requests=len(raw[i]),
            errors={},
            bytes_sent=64 * len(raw[i]),
            bytes_received=64 * len(raw[i]),
            latency=_histogram(raw[i]).to_dict(),
            latency_corrected=_histogram(corrected[i]).to_dict(),
            connections=10,
        )
        for i in range(INTERVALS)
    ]
    whole_raw = _histogram(np.concatenate(raw))
    whole_corrected = _histogram(np.concatenate(corrected))
    base = make_result(name="open")
    result = replace(
        base,
        intervals=intervals,
        histograms={
            **base.histograms,
            "latency": whole_raw.to_dict(),
            "latency_corrected": whole_corrected.to_dict(),
        },
        summary=replace(
            base.summary,
            requests=whole_raw.total_count,
            duration_s=float(INTERVALS),
            latency_us=LatencySummary.from_histogram(whole_raw),
            latency_corrected_us=LatencySummary.from_histogram(whole_corrected),
            schedule_lag_us=LatencySummary.from_histogram(HdrHistogram()),
            unsent=0,
            waited_for_connection=0,
        ),
    )
    return result, raw, corrected


Charts = tuple[dict[str, dict[str, Any]], list[np.ndarray], list[np.ndarray]]


@pytest.fixture(scope="module")
def charts() -> Charts:
    result, raw, corrected = _open_run()
    page = render_html([loaded(result, "open")])
    return {chart["id"]: chart for chart in chart_data(page)}, raw, corrected


def test_interval_lines_of_an_open_run_are_its_corrected_latency(charts: Charts) -> None:
    by_id, raw, corrected = charts
    chart = by_id["latency-0"]
    assert chart["x"] == [1.0, 2.0, 3.0]  # each interval drawn at its end
    lines = {series["label"]: series["values"] for series in chart["series"]}
    assert list(lines) == ["p50", "p90", "p99", "max", "raw p99"]
    for i in range(INTERVALS):
        for name, q in (("p50", 50), ("p90", 90), ("p99", 99)):
            assert lines[name][i] == pytest.approx(np.percentile(corrected[i], q), rel=REL)
        assert lines["max"][i] == pytest.approx(corrected[i].max(), rel=0.001)
        assert lines["raw p99"][i] == pytest.approx(np.percentile(raw[i], 99), rel=REL)


def test_the_spectrum_draws_corrected_and_raw_from_their_own_histograms(charts: Charts) -> None:
    by_id, raw, corrected = charts
    spectrum = by_id["spectrum"]
    curves = {series["label"]: series["values"] for series in spectrum["series"]}
    assert list(curves) == ["open (corrected)", "open (raw)"]
    every_raw, every_corrected = np.concatenate(raw), np.concatenate(corrected)
    checked = 0
    for x, corrected_us, raw_us in zip(
        spectrum["x"], curves["open (corrected)"], curves["open (raw)"], strict=True
    ):
        if x > len(every_raw):
            assert corrected_us is None and raw_us is None  # past the run's samples
            continue
        if x >= len(every_raw):  # the last point: each curve ends at its maximum
            assert corrected_us == pytest.approx(every_corrected.max(), rel=0.001)
            assert raw_us == pytest.approx(every_raw.max(), rel=0.001)
            continue
        if x > 100:  # the far tail is a handful of samples: numpy interpolates differently
            continue
        percentile = 100 * (1 - 1 / x)
        assert corrected_us == pytest.approx(np.percentile(every_corrected, percentile), rel=REL)
        assert raw_us == pytest.approx(np.percentile(every_raw, percentile), rel=REL)
        checked += 1
    assert checked > 100


def test_throughput_is_each_intervals_requests_per_second(charts: Charts) -> None:
    by_id, raw, _ = charts
    (series,) = by_id["throughput"]["series"]
    assert series["values"] == [float(len(values)) for values in raw]  # 1-second intervals
