"""HdrHistogram: layout and encoding against the reference ``hdrh`` package, statistics against
numpy on the raw samples, and the exact bookkeeping (min, max, clamped) the report relies on."""

from __future__ import annotations

import array
import base64
import json
import math
import struct
import time
import zlib
from fractions import Fraction

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram as RefHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from loadgen.stats.histogram import (
    DEFAULT_HIGHEST_NS,
    DEFAULT_LOWEST_NS,
    DEFAULT_SIGNIFICANT_FIGURES,
    HdrHistogram,
)

US, HOUR = 1_000, 3_600 * 10**9

# Latencies from 1 us to 1 h, log-uniform (so every decade is exercised), plus plain integers.
latency_ns = st.one_of(
    st.floats(math.log(US), math.log(HOUR)).map(lambda x: min(HOUR, max(US, round(math.exp(x))))),
    st.integers(US, HOUR),
)
latencies = st.lists(latency_ns, min_size=1, max_size=300)
# Percentiles as people write them (decimals), plus the edges.
percentile = st.one_of(
    st.sampled_from([0.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0]),
    st.integers(0, 100_000).map(lambda k: k / 1000),
)


def nearest_rank(values: list[int], p: float) -> int:
    """The p-th percentile sample by nearest rank: sorted[ceil(p/100 * n) - 1], exactly."""
    rank = max(1, math.ceil(Fraction(str(p)) * len(values) / 100))
    return sorted(values)[rank - 1]


def c_record_corrected(value: int, interval: int) -> list[int]:
    """The values C ``hdr_record_corrected_value`` records, transcribed for reference."""
    out = [value]
    if interval <= 0 or value <= interval:
        return out
    missing = value - interval
    while missing >= interval:
        out.append(missing)
        missing -= interval
    return out


def filled(values: list[int], **layout: int) -> HdrHistogram:
    hist = HdrHistogram(**layout)
    hist.record_many(values)
    return hist


# ------------------------------------------------------------------------------ layout


@pytest.mark.parametrize(
    ("lowest", "highest", "figures"),
    [(1, HOUR, 3), (1000, HOUR, 3), (1, 2**53, 5), (7, 1000, 1), (3, 10**15, 2), (1, 2**62, 3)],
)
def test_layout_matches_reference(lowest: int, highest: int, figures: int) -> None:
    ours, ref = HdrHistogram(lowest, highest, figures), RefHistogram(lowest, highest, figures)
    assert (ours.unit_magnitude, ours.sub_bucket_count, ours.bucket_count, ours.counts_len) == (
        ref.unit_magnitude,
        ref.sub_bucket_count,
        ref.bucket_count,
        ref.counts_len,
    )
    assert ours.counts.dtype == np.int64 and ours.counts.shape == (ref.counts_len,)


def test_default_layout_keeps_three_digits_from_1us_to_1h() -> None:
    hist = HdrHistogram()
    assert (DEFAULT_LOWEST_NS, DEFAULT_HIGHEST_NS, DEFAULT_SIGNIFICANT_FIGURES) == (1, HOUR, 3)
    assert (hist.unit_magnitude, hist.sub_bucket_count, hist.bucket_count) == (0, 2048, 32)
    assert hist.counts_len == 33_792
    for value in [*np.geomspace(US, HOUR, 2000).astype(np.int64).tolist(), HOUR]:
        width = hist.highest_equivalent_value(value) - hist.lowest_equivalent_value(value) + 1
        assert width <= value / 1000, value
    # Why not lowest=1000: HDR rounds it down to 512 ns steps, so 1 us would be off by 50 %.
    coarse = HdrHistogram(lowest=1000)
    assert coarse.unit_magnitude == 9
    assert coarse.highest_equivalent_value(US) - coarse.lowest_equivalent_value(US) + 1 == 512


@given(st.lists(st.integers(0, HOUR), min_size=1, max_size=200))
def test_bucket_index_matches_reference(values: list[int]) -> None:
    ours, ref = HdrHistogram(), RefHistogram(1, HOUR, 3)
    edges = [v for k in range(43) for v in (2**k - 1, 2**k, 2**k + 1) if v <= HOUR]
    for value in values + edges:
        assert ours.counts_index(value) == ref.get_counts_array_index(value)
    vectorised = ours._indices(np.array(values + edges, dtype=np.int64))
    assert vectorised.tolist() == [ours.counts_index(v) for v in values + edges]


@pytest.mark.parametrize(("lowest", "highest", "figures"), [(5, 2**62, 1), (1, 2**62, 4)])
def test_bucket_index_beyond_float_precision(lowest: int, highest: int, figures: int) -> None:
    hist = HdrHistogram(lowest, highest, figures)
    values = [v for k in range(63) for v in (2**k - 1, 2**k, 2**k + 1) if 0 <= v <= highest]
    got = hist._indices(np.array(values, dtype=np.int64)).tolist()
    assert got == [hist.counts_index(v) for v in values]


# ------------------------------------------------------------------------------ percentiles


@given(latencies, st.lists(percentile, min_size=1, max_size=8))
def test_percentiles_match_numpy_within_precision(values: list[int], ps: list[float]) -> None:
    hist = filled(values)
    got = hist.percentiles(ps)
    for p, value in zip(ps, got, strict=True):
        expected = nearest_rank(values, p)
        # the HDR rule exactly: the sample's bucket edge, clamped into the exact [min, max]
        edge = hist.lowest_equivalent_value if p == 0 else hist.highest_equivalent_value
        assert value == min(max(edge(expected), min(values)), max(values))
        assert expected <= value <= expected * (1 + 10**-DEFAULT_SIGNIFICANT_FIGURES)
        assert hist.value_at_percentile(p) == value
        exact_rank = Fraction(str(p)) * len(values) / 100
        if exact_rank.denominator != 1:  # numpy's float rank can tip over on integral ranks
            reference = np.percentile(np.array(values), p, method="inverted_cdf")
            assert reference == expected


@given(latencies)
def test_percentile_edges_are_exact_min_and_max(values: list[int]) -> None:
    hist = filled(values)
    p0, p50, p99, p100 = hist.percentiles([0, 50, 99, 100])
    assert p0 == hist.min == min(values)
    assert p100 == hist.max == max(values)
    assert p0 <= p50 <= p99 <= p100


def test_percentiles_use_the_percentile_as_written() -> None:
    hist = filled(list(range(1, 1001)))
    # in floats 99.9 / 100 * 1000 = 999.0000000000001, which would report 1000
    assert hist.percentiles([0, 0.1, 50, 99.9, 100]) == [1, 1, 500, 999, 1000]


def test_percentile_arguments_are_checked() -> None:
    hist = filled([5])
    for bad in (-0.1, 100.1, math.nan):
        with pytest.raises(ValueError, match=r"0\.\.100"):
            hist.value_at_percentile(bad)
    assert HdrHistogram().percentiles([50, 100]) == [0, 0]


@given(latencies)
def test_mean_and_stddev_within_precision(values: list[int]) -> None:
    hist, data = filled(values), np.array(values, dtype=np.float64)
    assert hist.mean == pytest.approx(data.mean(), rel=1e-3)
    rms = math.sqrt(float(np.mean(data * data)))
    assert abs(hist.stddev - data.std()) <= 1e-3 * rms
    assert hist.min <= hist.mean <= hist.max


# ------------------------------------------------------------------------------ recording


@given(st.lists(st.integers(0, 2 * HOUR), max_size=200))
def test_record_many_equals_record_loop(values: list[int]) -> None:
    one_by_one = HdrHistogram()
    for value in values:
        one_by_one.record(value)
    for form in (values, array.array("q", values), np.array(values, dtype=np.uint64)):
        assert filled(form) == one_by_one  # type: ignore[arg-type]
    assert filled(values).total_count == len(values)


@given(st.lists(st.tuples(st.integers(0, 2 * HOUR), st.integers(0, 40)), max_size=100))
def test_record_many_with_counts_equals_record_loop(pairs: list[tuple[int, int]]) -> None:
    one_by_one = HdrHistogram()
    for value, count in pairs:
        for _ in range(count):
            one_by_one.record(value)
    values = array.array("q", [value for value, _ in pairs])
    counts = array.array("q", [count for _, count in pairs])
    weighted = HdrHistogram()
    weighted.record_many(values, counts)
    assert weighted == one_by_one
    assert (weighted.total_count, weighted.min, weighted.max) == (
        one_by_one.total_count,
        one_by_one.min,
        one_by_one.max,
    )


def test_record_many_with_counts_clamps_and_refuses_bad_counts() -> None:
    hist = HdrHistogram(highest=10**6)
    hist.record_many([5, 2 * 10**6], [3, 4])
    assert (hist.clamped, hist.total_count, hist.max) == (4, 7, 10**6)
    before = hist.copy()
    with pytest.raises(ValueError, match="counts"):
        hist.record_many([1, 2], [1])
    with pytest.raises(ValueError, match="count"):
        hist.record_many([1, 2], [1, -1])
    with pytest.raises(TypeError, match="integer counts"):
        hist.record_many([1, 2], [1.0, 2.0])
    assert hist == before


def test_record_many_accepts_the_runner_buffer_and_small_ints() -> None:
    buffer = array.array("q", [1500, 7, 2_000_000])
    assert filled(buffer) == filled(np.array([1500, 7, 2_000_000], dtype=np.int32))  # type: ignore[arg-type]
    hist = filled([])
    assert hist.total_count == 0 and hist == HdrHistogram()


def test_record_with_count() -> None:
    hist = HdrHistogram()
    hist.record(42, count=3)
    hist.record(43, count=0)
    assert (hist.total_count, hist.min, hist.max) == (3, 42, 42)
    assert hist == filled([42, 42, 42])


def test_negative_values_raise_and_leave_the_histogram_untouched() -> None:
    hist = filled([10, 20])
    before = hist.copy()
    with pytest.raises(ValueError, match="negative"):
        hist.record(-1)
    with pytest.raises(ValueError, match="negative"):
        hist.record_many([5, -3, 7])
    with pytest.raises(ValueError, match="count"):
        hist.record(5, count=-1)
    with pytest.raises(TypeError, match="integer"):
        hist.record_many([1.5, 2.0])
    with pytest.raises(TypeError):
        hist.record(1.5)  # type: ignore[arg-type]
    assert hist == before


def test_values_above_highest_are_clamped_and_counted() -> None:
    hist = HdrHistogram(highest=10**6)
    hist.record_many(np.array([5, 2 * 10**6, 10**6, 2**64 - 1], dtype=np.uint64))
    hist.record(10**7)
    assert hist.clamped == 3
    assert hist.total_count == 5
    assert hist.max == 10**6 == hist.value_at_percentile(100)
    assert hist.counts[hist.counts_index(10**6)] == 4
    merged = hist.copy()
    merged.merge(hist)
    assert merged.clamped == 6


@given(latencies)
def test_exact_min_and_max(values: list[int]) -> None:
    hist = filled(values)
    assert (hist.min, hist.max, hist.total_count) == (min(values), max(values), len(values))
    hist.record(min(values) + 1)
    assert hist.min == min(values)


# ------------------------------------------------------------------------------ corrected


@pytest.mark.parametrize(
    ("value", "interval", "expected"),
    [
        (250, 100, [250, 150]),  # non-multiple: stops once 50 < 100 (a naive loop adds 50)
        (300, 100, [300, 200, 100]),  # multiple: the last missing value equals the interval
        (1000, 300, [1000, 700, 400]),
        (199, 100, [199]),  # the missing 99 is below the interval
        (100, 100, [100]),
        (99, 100, [99]),
        (500, 0, [500]),  # no expected interval: no correction
    ],
)
def test_record_corrected_hand_derived(value: int, interval: int, expected: list[int]) -> None:
    hist = HdrHistogram()
    hist.record_corrected(value, interval)
    assert hist == filled(expected)
    doubled = HdrHistogram()
    doubled.record_corrected(value, interval, count=2)
    assert doubled == filled(expected + expected)


def test_naive_python_port_records_one_too_many() -> None:
    # the `hdrh` package's Python loop: why stats.histogram ports the C loop instead
    ref = RefHistogram(1, HOUR, 3)
    ref.record_corrected_value(250, 100)
    assert ref.get_total_count() == 3
    ours = HdrHistogram()
    ours.record_corrected(250, 100)
    assert ours.total_count == 2


@given(st.integers(0, 100_000), st.integers(-5, 30_000))
def test_record_corrected_matches_the_c_loop(value: int, interval: int) -> None:
    hist = HdrHistogram(highest=20_000)
    hist.record_corrected(value, interval)
    assert hist == filled(c_record_corrected(value, interval), highest=20_000)


@pytest.mark.parametrize(
    ("value", "interval", "highest"),
    [(10_000_000, 1_000, HOUR), (123_456_789, 7_919, HOUR), (9_000_000, 997, 5_000_000)],
)
def test_record_corrected_long_runs_count_per_bucket(
    value: int, interval: int, highest: int
) -> None:
    assert value // interval > 4096  # exercises the per-bucket path
    hist = HdrHistogram(highest=highest)
    hist.record_corrected(value, interval)
    assert hist == filled(c_record_corrected(value, interval), highest=highest)


def test_record_corrected_clamps_missing_values_above_highest() -> None:
    hist = HdrHistogram()
    hist.record_corrected(10 * 10**12, 10**12)  # 10e12 and 9e12..4e12 clamp; 3e12..1e12 fit
    assert hist == filled([10**13 - k * 10**12 for k in range(10)])
    assert (hist.clamped, hist.total_count, hist.min, hist.max) == (7, 10, 10**12, HOUR)
    huge = HdrHistogram()
    huge.record_corrected(2**70, 2**60)  # beyond int64: every value is clamped, none lost
    assert (huge.clamped, huge.total_count, huge.min, huge.max) == (1024, 1024, HOUR, HOUR)


# ------------------------------------------------------------------------------ combining


@given(latencies, latencies)
def test_merge_equals_recording_everything_in_one(a: list[int], b: list[int]) -> None:
    merged = filled(a)
    merged.merge(filled(b))
    assert merged == filled(a + b)
    added = filled(b)
    added.add(filled(a))
    assert added == merged


def test_merge_rules() -> None:
    hist = filled([5, 9])
    hist.merge(HdrHistogram())
    assert hist == filled([5, 9])
    empty = HdrHistogram()
    empty.merge(hist)
    assert empty == hist
    with pytest.raises(ValueError, match="layout"):
        hist.merge(HdrHistogram(significant_figures=2))


def test_copy_reset_and_equality() -> None:
    hist = filled([3, 4_000, 5_000_000])
    twin = hist.copy()
    assert twin == hist and twin.counts is not hist.counts
    twin.record(3)
    assert twin != hist
    assert filled([2048]) != filled([2049])  # one bucket, different exact min and max
    hist.reset()
    assert hist == HdrHistogram()
    assert (hist.total_count, hist.min, hist.max, hist.clamped) == (0, 0, 0, 0)
    with pytest.raises(TypeError):
        hash(hist)


# ------------------------------------------------------------------------------ encoding


@given(latencies)
def test_encode_decode_round_trip(values: list[int]) -> None:
    hist = filled(values)
    decoded = HdrHistogram.decode(hist.encode())
    assert decoded.layout == hist.layout
    assert np.array_equal(decoded.counts, hist.counts)
    assert decoded.total_count == hist.total_count
    # the standard encoding has no exact min/max: they come back as bucket edges
    assert decoded.min == hist.lowest_equivalent_value(hist.min)
    assert decoded.max == min(hist.highest_equivalent_value(hist.max), HOUR)


@given(latencies, st.integers(0, 3))
def test_to_dict_round_trip_is_exact(values: list[int], clamped: int) -> None:
    hist = filled(values)
    hist.record_many([2 * HOUR] * clamped)
    restored = HdrHistogram.from_dict(json.loads(json.dumps(hist.to_dict())))
    assert restored == hist
    assert restored.clamped == clamped


def test_empty_and_huge_counts_round_trip() -> None:
    empty = HdrHistogram()
    assert HdrHistogram.decode(empty.encode()) == empty
    assert HdrHistogram.from_dict(empty.to_dict()) == empty
    huge = HdrHistogram()
    huge.record(12_345, count=2**60)  # zigzag word > 2**56: the 9-byte LEB128 form
    huge.record(12, count=2**56 - 1)
    huge.record(7)
    assert HdrHistogram.from_dict(huge.to_dict()) == huge


def test_wire_format_header() -> None:
    raw = base64.b64decode(filled([1, 2, 3, 2000, 2000]).encode())
    cookie, length = struct.unpack_from(">II", raw)
    assert (cookie, length) == (0x1C849314, len(raw) - 8)
    payload = zlib.decompress(raw[8:])
    fields = struct.unpack_from(">IIIIqqd", payload)
    assert fields[0] == 0x1C849313
    assert fields[1:] == (len(payload) - 40, 0, 3, 1, HOUR, 1.0)
    # counts 0,1,1,1 then 1996 zeros (token -1996), then 2 at index 2000... in zigzag LEB128
    assert payload[40:] == bytes([0, 2, 2, 2, 0x97, 0x1F, 4])


def test_decode_rejects_garbage() -> None:
    good = base64.b64decode(filled([5]).encode())
    cases = [
        b"",
        struct.pack(">II", 0x12345678, 0),
        good[:-1],  # wrapper length no longer matches
        struct.pack(">II", 0x1C849314, 3) + b"abc",  # not zlib
    ]
    for raw in cases:
        with pytest.raises((ValueError, zlib.error)):
            HdrHistogram.decode(base64.b64encode(raw))
    with pytest.raises(ValueError):
        HdrHistogram.decode("not base64!")


def test_from_dict_checks_its_extra_fields() -> None:
    data = filled([1_000, 5_000]).to_dict()
    with pytest.raises(ValueError, match="total_count"):
        HdrHistogram.from_dict({**data, "total_count": 3})
    with pytest.raises(ValueError, match="min/max"):
        HdrHistogram.from_dict({**data, "max": 9_000})
    with pytest.raises(ValueError, match="layout"):
        HdrHistogram.from_dict({**data, "significant_figures": 2})


# ------------------------------------------------------------------------------ interop


# 100 samples: p50, p90 and p99 have integral ranks, where `hdrh`'s rounded rank
# (int(p/100 * n + 0.5)) and HdrHistogram's ceil agree. `hdrh` reports the top bucket's edge,
# which can exceed `highest`; ours stops at `highest` (nothing above it is ever recorded).
INTEROP_PERCENTILES = [50.0, 90.0, 99.0, 100.0]


@settings(max_examples=25, deadline=None)
@given(st.lists(latency_ns, min_size=100, max_size=100))
def test_reference_decodes_our_encoding(values: list[int]) -> None:
    hist = filled(values)
    ref = RefHistogram.decode(hist.encode())
    assert ref.get_total_count() == len(values)
    assert [ref.get_count_at_index(i) for i in range(ref.counts_len)] == hist.counts.tolist()
    ours = HdrHistogram.decode(hist.encode())
    for p in INTEROP_PERCENTILES:
        assert ours.value_at_percentile(p) == min(ref.get_value_at_percentile(p), HOUR)
        # below the max bucket the exact min/max clamp changes nothing
        if hist.value_at_percentile(p) < hist.lowest_equivalent_value(hist.max):
            assert hist.value_at_percentile(p) == ref.get_value_at_percentile(p)


@settings(max_examples=25, deadline=None)
@given(st.lists(latency_ns, min_size=100, max_size=100))
def test_we_decode_the_reference_encoding(values: list[int]) -> None:
    ref = RefHistogram(1, HOUR, 3)
    for value in values:
        ref.record_value(value)
    ours = HdrHistogram.decode(ref.encode())
    assert ours.layout == (1, HOUR, 3)
    assert ours.total_count == len(values)
    assert ours.counts.tolist() == [ref.get_count_at_index(i) for i in range(ref.counts_len)]
    assert np.array_equal(ours.counts, filled(values).counts)
    for p in INTEROP_PERCENTILES:
        assert ours.value_at_percentile(p) == min(ref.get_value_at_percentile(p), HOUR)


def test_reference_decodes_other_layouts() -> None:
    rng = np.random.default_rng(7)
    values = rng.integers(1, 10**9, 5_000)
    hist = HdrHistogram(1000, 10**10, 2)
    hist.record_many(values)
    ref = RefHistogram.decode(hist.encode())
    assert (ref.lowest_trackable_value, ref.highest_trackable_value) == (1000, 10**10)
    assert ref.significant_figures == 2 and ref.get_total_count() == 5_000
    assert [ref.get_count_at_index(i) for i in range(ref.counts_len)] == hist.counts.tolist()


# ------------------------------------------------------------------------------ speed


def test_record_many_of_a_million_values_is_fast() -> None:
    rng = np.random.default_rng(1)
    values = np.exp(rng.uniform(math.log(US), math.log(HOUR), 1_000_000)).astype(np.int64)
    buffer = array.array("q", values.tobytes())
    hist = HdrHistogram()
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        hist.record_many(buffer)
        best = min(best, time.perf_counter() - start)
    assert hist.total_count == 3_000_000
    assert best < 0.1, f"record_many(1e6) took {best * 1e3:.1f} ms"


def test_count_at_or_below_matches_the_values_to_the_histograms_resolution() -> None:
    rng = np.random.default_rng(7)
    values = rng.lognormal(13, 1.5, 20_000).astype(np.int64) + 1
    histogram = HdrHistogram()
    histogram.record_many(values)
    bounds = [50_000, 250_000, 1_000_000, 5_000_000, 60_000_000_000]
    counted = histogram.count_at_or_below(bounds)
    for bound, count in zip(bounds, counted, strict=True):
        # A bucket counts as below a bound in it: exact within 0.1% of the bound (3 digits).
        low = int(np.count_nonzero(values <= bound * 0.999))
        high = int(np.count_nonzero(values <= bound * 1.001))
        assert low <= count <= high
    assert histogram.count_at_or_below([int(values.max())])[0] == len(values)
    assert histogram.count_at_or_below([-1]) == [0]
