"""The HdrHistogram log, read back by the reference ``hdrhistogram`` package (``hdrh``)."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram as RefHistogram
from hdrh.log import HistogramLogReader

from loadgen.report.hdrlog import start_time_s, write_hdr_log
from loadgen.result.model import RunResult
from loadgen.stats.histogram import HdrHistogram

from .conftest import RunFile

PERCENTILES = (50.0, 90.0, 99.0, 99.9, 100.0)


def _reference_layout() -> RefHistogram:
    ours = HdrHistogram()
    return RefHistogram(ours.lowest_discernible_value, ours.highest_trackable_value, 3)


def _read_all(path: Path) -> list[RefHistogram]:
    reader = HistogramLogReader(str(path), _reference_layout())
    histograms = []
    while (histogram := reader.get_next_interval_histogram()) is not None:
        histograms.append(histogram)
    reader.input_file.close()
    return histograms


def _same_histogram(ref: RefHistogram, ours: HdrHistogram) -> None:
    """Identical buckets, and identical percentiles wherever both rank rules pick one sample.

    ``hdrh`` ranks a percentile as round(p/100 * n) and HdrHistogram (and loadgen) as
    ceil(p/100 * n); where those agree the value must be the same bucket's top.
    """
    assert ref.get_total_count() == ours.total_count
    assert [ref.get_count_at_index(i) for i in range(ref.counts_len)] == ours.counts.tolist()
    if ours.total_count == 0:
        return
    compared = 0
    for p in PERCENTILES:
        n = ours.total_count
        if max(1, int(p * n / 100 + 0.5)) != max(1, math.ceil(Fraction(str(p)) * n / 100)):
            continue
        expected = ours.highest_equivalent_value(ours.value_at_percentile(p))
        assert ref.get_value_at_percentile(p) == expected, p
        compared += 1
    assert compared >= 2  # p50 of an even count and p100 always agree


def _check_log(run: RunFile, tmp_path: Path) -> list[RefHistogram]:
    path = write_hdr_log(run.result, tmp_path / "run.hlog")
    text = path.read_text()
    assert text.startswith("#[Histogram log format version 1.3]\n")
    assert f"#[StartTime: {start_time_s(run.result):.3f} (seconds since epoch)" in text
    assert '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"' in (
        text
    )
    return _read_all(path)


def test_closed_model_log_reads_back_interval_by_interval(
    real_runs: dict[str, RunFile], tmp_path: Path
) -> None:
    run = real_runs["closed"]
    result: RunResult = run.result
    histograms = _check_log(run, tmp_path)
    assert len(result.intervals) >= 3
    assert len(histograms) == len(result.intervals)
    start_ms = start_time_s(result) * 1000
    for ref, interval in zip(histograms, result.intervals, strict=True):
        assert ref.get_tag() is None
        assert ref.get_start_time_stamp() == pytest.approx(start_ms + interval.start_s * 1000)
        assert ref.get_end_time_stamp() - ref.get_start_time_stamp() == pytest.approx(
            interval.duration_s * 1000, abs=1
        )
        _same_histogram(ref, HdrHistogram.from_dict(interval.latency))
    # the intervals add up to the whole run, in the reference implementation too
    total = _reference_layout()
    for ref in histograms:
        total.add(ref)
    _same_histogram(total, result.histogram("latency"))
    assert total.get_total_count() == result.summary.requests > 0


def test_open_model_log_holds_corrected_and_tagged_raw(
    real_runs: dict[str, RunFile], tmp_path: Path
) -> None:
    result = real_runs["open"].result
    histograms = _check_log(real_runs["open"], tmp_path)
    corrected = [h for h in histograms if h.get_tag() is None]
    raw = [h for h in histograms if h.get_tag() == "raw"]
    assert len(corrected) == len(raw) == len(result.intervals) and result.intervals
    for interval, ref_corrected, ref_raw in zip(result.intervals, corrected, raw, strict=True):
        _same_histogram(ref_raw, HdrHistogram.from_dict(interval.latency))
        expected = (
            HdrHistogram.from_dict(interval.latency_corrected)
            if interval.latency_corrected
            else HdrHistogram()
        )
        _same_histogram(ref_corrected, expected)
    total = _reference_layout()
    for ref in corrected:
        total.add(ref)
    _same_histogram(total, result.histogram("latency_corrected"))


def test_run_without_requests_logs_empty_intervals(
    real_runs: dict[str, RunFile], tmp_path: Path
) -> None:
    result = real_runs["refused"].result
    assert result.summary.requests == 0 and result.intervals
    histograms = _check_log(real_runs["refused"], tmp_path)
    assert len(histograms) == len(result.intervals)
    assert all(h.get_total_count() == 0 for h in histograms)
