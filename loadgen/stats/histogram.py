"""HDR histogram of non-negative integers (latencies in nanoseconds), counts in numpy.

Bucket layout -- identical to HdrHistogram (Java, C, and the ``hdrh`` package), so the standard
V2 encoding can be exchanged with those implementations:

* ``sub_bucket_count = 2**ceil(log2(2 * 10**significant_figures))`` (2048 for 3 figures) and
  ``half = sub_bucket_count // 2``; ``unit_magnitude = floor(log2(lowest))``: the smallest step.
* Bucket 0 covers ``[0, sub_bucket_count << unit_magnitude)`` in steps of ``2**unit_magnitude``.
  Bucket ``b >= 1`` covers ``[half << (b + u), sub_bucket_count << (b + u))`` in steps of
  ``2**(b + u)``; only this upper half is stored (its lower half would repeat bucket ``b - 1``).
  A step is therefore at most ``1/half`` of the values it holds: relative error < 10**-figures.
* ``bucket_count`` is the number of buckets needed to reach ``highest``;
  ``counts_len = (bucket_count + 1) * half``. For a value ``v``:
  ``b = bit_length(v | ((sub_bucket_count - 1) << u)) - u - log2(half) - 1`` and
  ``index = (b << log2(half)) + (v >> (b + u))``.

Defaults: lowest 1 ns, highest 1 h, 3 figures -> 32 buckets, 33,792 counters (264 KiB), exact up
to 2,048 ns and within 0.1 % up to an hour. ``lowest=1000`` looks natural for "1 us" but HDR rounds
it down to a power of two (``unit_magnitude`` 9: steps of 512 ns below 1.05 ms, so 0.1 % only from
512 us up), giving loopback latencies of a few microseconds errors up to 50 % to save 27 % memory.

Besides the counts, the histogram keeps the exact recorded ``min``/``max`` and a ``clamped``
counter (values above ``highest`` are recorded as ``highest``, never dropped). Percentiles use
HdrHistogram's nearest-rank rule (highest equivalent value of the bucket where the cumulative
count reaches ``ceil(p/100 * total)``), clamped into ``[min, max]`` so that p100 == max.
"""

from __future__ import annotations

import array
import base64
import math
import operator
import struct
import zlib
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_HIGHEST_NS",
    "DEFAULT_LOWEST_NS",
    "DEFAULT_SIGNIFICANT_FIGURES",
    "HdrHistogram",
]

DEFAULT_LOWEST_NS = 1  # 1 ns: keeps unit_magnitude 0, so microsecond latencies keep 3+ digits
DEFAULT_HIGHEST_NS = 3_600 * 10**9  # 1 h: anything slower is a failed run, counted in `clamped`
DEFAULT_SIGNIFICANT_FIGURES = 3  # 0.1 %: the usual HdrHistogram trade-off of memory for precision

# V2 encoding (HdrHistogram Java/C, `hdrh`): the reference writers OR 0x10 into the cookie (a
# legacy word-size nibble); readers compare the cookie with that nibble masked out.
_PAYLOAD_COOKIE = 0x1C849303 | 0x10
_COMPRESSED_COOKIE = 0x1C849304 | 0x10
_COOKIE_NIBBLE_MASK = 0xFFFFFF0F
# Wrapper: cookie, length of the zlib data. Payload header: cookie, varint bytes,
# normalizing_index_offset, significant figures, lowest, highest, int-to-double ratio.
_WRAPPER = struct.Struct(">II")
_PAYLOAD_HEADER = struct.Struct(">IIIIqqd")
_MAX_VALUE = 2**62  # keeps `highest` and every shift inside int64 with room to spare
_RECORD_CORRECTED_LOOP_MAX = 4096  # longer missing-value runs are counted per bucket instead

Int64Array = npt.NDArray[np.int64]


class HdrHistogram:
    """Counts of integer values in logarithmic buckets of bounded relative width."""

    def __init__(
        self,
        lowest: int = DEFAULT_LOWEST_NS,
        highest: int = DEFAULT_HIGHEST_NS,
        significant_figures: int = DEFAULT_SIGNIFICANT_FIGURES,
    ) -> None:
        lowest, highest = operator.index(lowest), operator.index(highest)
        if not 1 <= significant_figures <= 5:
            raise ValueError(f"significant_figures must be 1..5, got {significant_figures}")
        if lowest < 1:
            raise ValueError(f"lowest must be >= 1, got {lowest}")
        if highest < 2 * lowest or highest > _MAX_VALUE:
            raise ValueError(f"highest must be in [2 * lowest, 2**62], got {highest}")
        self.lowest_discernible_value = lowest
        self.highest_trackable_value = highest
        self.significant_figures = significant_figures
        self.unit_magnitude = lowest.bit_length() - 1
        largest_single_unit_value = 2 * int(10**significant_figures)
        self.sub_bucket_count = 1 << (largest_single_unit_value - 1).bit_length()  # 2**ceil(log2)
        self.sub_bucket_half_count = self.sub_bucket_count // 2
        self.sub_bucket_half_count_magnitude = self.sub_bucket_half_count.bit_length() - 1
        self.sub_bucket_mask = (self.sub_bucket_count - 1) << self.unit_magnitude
        smallest_untrackable = self.sub_bucket_count << self.unit_magnitude
        self.bucket_count = 1
        while smallest_untrackable <= highest:
            smallest_untrackable <<= 1
            self.bucket_count += 1
        self.counts_len = (self.bucket_count + 1) * self.sub_bucket_half_count
        self.counts: Int64Array = np.zeros(self.counts_len, dtype=np.int64)
        # float64 holds every integer below 2**53 exactly (see _indices).
        self._float_exact = highest < 2**53
        self._total = 0
        self._min = 0
        self._max = 0
        self.clamped = 0

    # ----------------------------------------------------------------- layout helpers

    @property
    def layout(self) -> tuple[int, int, int]:
        """``(lowest, highest, significant_figures)``: histograms merge only when these match."""
        return (
            self.lowest_discernible_value,
            self.highest_trackable_value,
            self.significant_figures,
        )

    def counts_index(self, value: int) -> int:
        """Index into ``counts`` of the bucket holding ``value`` (0 <= value <= highest)."""
        bucket = (
            (value | self.sub_bucket_mask).bit_length()
            - self.unit_magnitude
            - self.sub_bucket_half_count_magnitude
            - 1
        )
        sub_bucket = value >> (bucket + self.unit_magnitude)
        return (bucket << self.sub_bucket_half_count_magnitude) + sub_bucket

    def _indices(self, values: Int64Array) -> Int64Array:
        """Vectorised ``counts_index`` for values already checked to lie in [0, highest]."""
        h, u = self.sub_bucket_half_count_magnitude, self.unit_magnitude
        if not self._float_exact:  # generic path: bit length from frexp, corrected for rounding
            masked = values | self.sub_bucket_mask
            bit_length = np.frexp(masked.astype(np.float64))[1].astype(np.int64)
            bit_length -= (masked >> (bit_length - 1)) == 0
            bucket = bit_length - (u + h + 1)
            return np.asarray((bucket << h) + (values >> (bucket + u)), dtype=np.int64)
        # Fast path (3x faster): an exact float64 is (biased exponent << 52 | mantissa), so its top
        # 12 + h bits are (bit_length + 1022) << h plus the h bits after the leading one, and the
        # index of any value >= half << u is that minus (1022 + u + h) << h. Bucket 0's lower
        # half (values below half << u) is linear: index = value >> u.
        index = values.astype(np.float64).view(np.int64)
        index >>= 52 - h
        index -= (1022 + u + h) << h
        small = values < (self.sub_bucket_half_count << u)
        if small.any():
            index[small] = values[small] >> u
        return index

    def _index_edges(self, indices: Int64Array) -> tuple[Int64Array, Int64Array]:
        """Lowest and highest equivalent values of the buckets at ``indices``."""
        bucket = (indices >> self.sub_bucket_half_count_magnitude) - 1
        sub_bucket = (indices & (self.sub_bucket_half_count - 1)) + self.sub_bucket_half_count
        first = bucket < 0
        sub_bucket = np.where(first, sub_bucket - self.sub_bucket_half_count, sub_bucket)
        shift = np.maximum(bucket, 0) + self.unit_magnitude
        low = sub_bucket << shift
        return low, low + (np.int64(1) << shift) - 1

    def lowest_equivalent_value(self, value: int) -> int:
        """Smallest value that shares ``value``'s bucket."""
        low, _ = self._index_edges(np.array([self.counts_index(value)], dtype=np.int64))
        return int(low[0])

    def highest_equivalent_value(self, value: int) -> int:
        """Largest value that shares ``value``'s bucket."""
        _, high = self._index_edges(np.array([self.counts_index(value)], dtype=np.int64))
        return int(high[0])

    # ----------------------------------------------------------------- recording

    def record(self, value: int, count: int = 1) -> None:
        """Record ``value`` ``count`` times; values above ``highest`` are clamped and counted."""
        value, count = operator.index(value), operator.index(count)  # ints only, never floats
        if value < 0:
            raise ValueError(f"cannot record a negative value: {value}")
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if count == 0:
            return
        if value > self.highest_trackable_value:
            self.clamped += count
            value = self.highest_trackable_value
        self.counts[self.counts_index(value)] += count
        self._note(value, value, count)

    def record_many(
        self,
        values: npt.ArrayLike | array.array[int],
        counts: npt.ArrayLike | array.array[int] | None = None,
    ) -> None:
        """Record every value of an integer array, ``array.array('q')`` or list (vectorised);
        with ``counts`` (as long as ``values``), each value that many times."""
        arr = np.asarray(values).ravel()
        weights = None
        if counts is not None:
            weights = np.asarray(counts).ravel()
            if weights.shape != arr.shape:
                raise ValueError(f"{arr.size} values but {weights.size} counts")
            if weights.size and weights.dtype.kind not in "iu":
                raise TypeError(f"record_many needs integer counts, got dtype {weights.dtype}")
            if weights.size and int(weights.min()) < 0:
                raise ValueError(f"count must be >= 0, got {int(weights.min())}")
            kept = weights > 0
            if not kept.all():
                arr, weights = arr[kept], weights[kept]
        if arr.size == 0:
            return
        if arr.dtype.kind not in "iu":
            raise TypeError(f"record_many needs integer values, got dtype {arr.dtype}")
        low, high = int(arr.min()), int(arr.max())
        if low < 0:
            raise ValueError(f"cannot record a negative value: {low}")
        if high > self.highest_trackable_value:
            over = arr > self.highest_trackable_value
            self.clamped += int(over.sum() if weights is None else weights[over].sum())
            arr = np.minimum(arr, self.highest_trackable_value)
            low, high = min(low, self.highest_trackable_value), self.highest_trackable_value
        indices = self._indices(arr.astype(np.int64, copy=False))
        if weights is None:
            self.counts += np.bincount(indices, minlength=self.counts_len)
            self._note(low, high, int(arr.size))
        else:
            # Exact: np.add.at sums int64 counts (bincount's weights would go through float64).
            np.add.at(self.counts, indices, weights.astype(np.int64, copy=False))
            self._note(low, high, int(weights.sum()))

    def record_corrected(self, value: int, expected_interval: int, count: int = 1) -> None:
        """Record ``value`` and the samples coordinated omission hid (C ``hdr_record_corrected``).

        After ``value``, records ``value - k * expected_interval`` for k = 1, 2, ... while that
        missing value is still >= ``expected_interval`` (so 250 with interval 100 adds only 150).
        """
        self.record(value, count)
        interval, cap = operator.index(expected_interval), self.highest_trackable_value
        if interval <= 0 or value <= interval or count == 0:
            return
        n_missing = value // interval - 1  # k runs 1..n_missing
        if n_missing <= 0:
            return
        first = value - n_missing * interval  # smallest missing value, in [interval, 2 interval)
        # terms above `highest` are recorded as `highest`; the rest fit int64 for numpy
        n_in_range = 0 if first > cap else min(n_missing, (cap - first) // interval + 1)
        over = n_missing - n_in_range
        added = np.zeros(self.counts_len, dtype=np.int64)
        if 0 < n_in_range <= _RECORD_CORRECTED_LOOP_MAX:
            missing = np.arange(n_in_range, dtype=np.int64) * interval + first
            added += np.bincount(self._indices(missing), minlength=self.counts_len)
        elif n_in_range:  # count the progression's terms per bucket: cost independent of length
            low, high = self._index_edges(np.arange(self.counts_len, dtype=np.int64))

            def terms_upto(x: Int64Array) -> Int64Array:
                below = (np.minimum(x, cap) - first) // interval + 1
                return np.asarray(np.clip(below, 0, n_in_range), dtype=np.int64)

            added += terms_upto(high) - terms_upto(low - 1)
        added[self.counts_index(cap)] += over
        self.counts += added * count
        self.clamped += over * count
        self._note(min(first, cap), min(value - interval, cap), n_missing * count)

    def _note(self, low: int, high: int, count: int) -> None:
        empty = self._total == 0
        self._min = low if empty else min(self._min, low)
        self._max = high if empty else max(self._max, high)
        self._total += count

    # ----------------------------------------------------------------- combining

    def merge(self, other: HdrHistogram) -> None:
        """Add ``other``'s counts to this histogram (exact; layouts must match)."""
        if self.layout != other.layout:
            raise ValueError(f"cannot merge histogram layout {other.layout} into {self.layout}")
        if other._total == 0:
            return
        self.counts += other.counts
        self.clamped += other.clamped
        self._note(other._min, other._max, other._total)

    add = merge

    def reset(self) -> None:
        """Forget everything recorded; the layout stays."""
        self.counts[:] = 0
        self._total = self._min = self._max = self.clamped = 0

    def copy(self) -> HdrHistogram:
        twin = HdrHistogram(*self.layout)
        twin.merge(self)
        return twin

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HdrHistogram):
            return NotImplemented
        return (
            self.layout == other.layout
            and (self._total, self._min, self._max, self.clamped)
            == (other._total, other._min, other._max, other.clamped)
            and bool(np.array_equal(self.counts, other.counts))
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (
            f"HdrHistogram(layout={self.layout}, total_count={self._total}, "
            f"min={self.min}, max={self.max}, clamped={self.clamped})"
        )

    # ----------------------------------------------------------------- statistics

    @property
    def total_count(self) -> int:
        return self._total

    @property
    def min(self) -> int:
        """Exact smallest recorded value (0 when empty)."""
        return self._min

    @property
    def max(self) -> int:
        """Exact largest recorded value after clamping (0 when empty)."""
        return self._max

    def _bucket_medians(self) -> tuple[Int64Array, npt.NDArray[np.float64]]:
        nonzero = np.flatnonzero(self.counts)
        low, high = self._index_edges(nonzero.astype(np.int64))
        # HdrHistogram's median equivalent value, kept inside the exact [min, max]
        medians = np.clip(low + ((high - low + 1) >> 1), self._min, self._max)
        return self.counts[nonzero], medians.astype(np.float64)

    @property
    def mean(self) -> float:
        """Mean of bucket medians (clamped into [min, max]), weighted by count; 0.0 when empty."""
        if self._total == 0:
            return 0.0
        counts, medians = self._bucket_medians()
        return float(np.dot(counts.astype(np.float64), medians) / self._total)

    @property
    def stddev(self) -> float:
        """Population standard deviation over the same bucket medians as ``mean``."""
        if self._total == 0:
            return 0.0
        counts, medians = self._bucket_medians()
        deviation = medians - self.mean
        return math.sqrt(
            float(np.dot(counts.astype(np.float64), deviation * deviation)) / self._total
        )

    def value_at_percentile(self, percentile: float) -> int:
        """Value at ``percentile`` (0..100) by HdrHistogram's rule, clamped into [min, max]."""
        return self.percentiles([percentile])[0]

    def percentiles(self, percentiles: npt.ArrayLike) -> list[int]:
        """``value_at_percentile`` for each of ``percentiles``, in one pass over the counts."""
        p = np.asarray(percentiles, dtype=np.float64).ravel()
        if p.size and not bool(np.all((p >= 0.0) & (p <= 100.0))):  # NaN fails too
            raise ValueError(f"percentiles must lie in 0..100, got {p.tolist()}")
        if self._total == 0:
            return [0] * int(p.size)
        # The rank ceil(p/100 * total) in exact arithmetic on p as written: in floats
        # 99.9 * 1000 / 100 = 999.0000000000001 would move p99.9 to the next sample (Java's
        # HdrHistogram steps one ulp down to dodge that; exact fractions cannot miss).
        rank = np.array(
            [max(1, math.ceil(Fraction(str(x)) * self._total / 100)) for x in p.tolist()],
            dtype=np.int64,
        )
        index = np.searchsorted(np.cumsum(self.counts), rank, side="left").astype(np.int64)
        low, high = self._index_edges(index)
        values = np.clip(np.where(p == 0.0, low, high), self._min, self._max)
        return [int(v) for v in values]

    def count_at_or_below(self, values: Sequence[int]) -> list[int]:
        """How many recorded values are at or below each of ``values`` (counts of whole
        buckets: a value's bucket counts as below it, so each is exact to the histogram's
        resolution). A Prometheus-style histogram's cumulative bucket counts."""
        cumulative = np.cumsum(self.counts)
        counts = []
        for value in values:
            if value < 0:
                counts.append(0)
            elif value >= self._max:
                counts.append(self._total)  # the exact max: every value is at or below
            else:
                counts.append(int(cumulative[self.counts_index(int(value))]))
        return counts

    # ----------------------------------------------------------------- serialization

    def encode(self) -> str:
        """Base64 of the standard compressed V2 encoding (decodable by HdrHistogram and ``hdrh``).

        It carries counts and layout only: exact min/max and ``clamped`` travel in ``to_dict``.
        """
        nonzero = np.flatnonzero(self.counts)
        used = self.counts[: int(nonzero[-1]) + 1] if nonzero.size else self.counts[:0]
        varints = _leb128(_zigzag(_zero_runs(used)))
        header = _PAYLOAD_HEADER.pack(
            _PAYLOAD_COOKIE,
            len(varints),
            0,  # normalizing_index_offset: only shifted (double) histograms use it
            self.significant_figures,
            self.lowest_discernible_value,
            self.highest_trackable_value,
            1.0,  # integer-to-double conversion ratio: values are plain integers
        )
        compressed = zlib.compress(header + varints)
        wrapper = _WRAPPER.pack(_COMPRESSED_COOKIE, len(compressed))
        return base64.b64encode(wrapper + compressed).decode("ascii")

    @classmethod
    def decode(cls, encoded: str | bytes) -> HdrHistogram:
        """Inverse of ``encode``; also reads V2 encodings written by other HdrHistogram ports.

        min/max become the edges of the lowest and highest non-empty buckets and ``clamped`` 0.
        """
        raw = base64.b64decode(encoded, validate=True)
        if len(raw) < _WRAPPER.size:
            raise ValueError("encoded histogram is too short")
        cookie, length = _WRAPPER.unpack_from(raw)
        if cookie & _COOKIE_NIBBLE_MASK != _COMPRESSED_COOKIE & _COOKIE_NIBBLE_MASK:
            raise ValueError(f"not a compressed V2 histogram (cookie {cookie:#x})")
        if length != len(raw) - _WRAPPER.size:
            raise ValueError(f"wrapper says {length} bytes, {len(raw) - _WRAPPER.size} follow")
        payload = zlib.decompress(raw[_WRAPPER.size :])
        if len(payload) < _PAYLOAD_HEADER.size:
            raise ValueError("histogram payload is shorter than its header")
        cookie, n_bytes, offset, figures, lowest, highest, _ = _PAYLOAD_HEADER.unpack_from(payload)
        if cookie & _COOKIE_NIBBLE_MASK != _PAYLOAD_COOKIE & _COOKIE_NIBBLE_MASK:
            raise ValueError(f"not a V2 histogram payload (cookie {cookie:#x})")
        if n_bytes != len(payload) - _PAYLOAD_HEADER.size:
            raise ValueError("histogram payload length does not match its header")
        if offset != 0:
            raise ValueError("normalizing_index_offset != 0 (shifted histograms) is unsupported")
        hist = cls(lowest, highest, figures)
        indices, counts = _parse_counts(payload[_PAYLOAD_HEADER.size :], hist.counts_len)
        if counts.size == 0:
            return hist
        hist.counts[indices] = counts
        low, high = hist._index_edges(indices[[0, -1]])
        hist._total = int(hist.counts.sum())
        hist._min, hist._max = int(low[0]), min(int(high[1]), highest)
        return hist

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the V2 encoding plus the exact fields it cannot carry."""
        return {
            "lowest": self.lowest_discernible_value,
            "highest": self.highest_trackable_value,
            "significant_figures": self.significant_figures,
            "total_count": self._total,
            "min": self._min,
            "max": self._max,
            "clamped": self.clamped,
            "encoded": self.encode(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HdrHistogram:
        """Inverse of ``to_dict``; checks the extra fields against the encoded counts."""
        hist = cls.decode(data["encoded"])
        declared = (data["lowest"], data["highest"], data["significant_figures"])
        if hist.layout != declared:
            raise ValueError(f"layout {declared} does not match the encoding's {hist.layout}")
        if hist._total != data["total_count"]:
            raise ValueError(f"total_count {data['total_count']} != encoded {hist._total}")
        low, high, clamped = int(data["min"]), int(data["max"]), int(data["clamped"])
        if hist._total and not (hist._min <= low <= high <= hist._max):
            raise ValueError(f"min/max {low}/{high} lie outside the recorded buckets")
        if not 0 <= clamped <= hist._total:
            raise ValueError(f"clamped {clamped} is not within 0..total_count")
        if hist._total:
            hist._min, hist._max = low, high
        hist.clamped = clamped
        return hist


# --------------------------------------------------------------------- V2 counts codec


def _zero_runs(counts: Int64Array) -> Int64Array:
    """Counts as V2 tokens: a run of n >= 2 zeros becomes the single token -n."""
    is_zero = counts == 0
    run_start = is_zero & np.concatenate(([True], ~is_zero[:-1]))
    starts = np.flatnonzero(run_start)
    if starts.size == 0:
        return counts
    filled = np.flatnonzero(~is_zero)
    ends = np.append(filled, counts.size)[np.searchsorted(filled, starts)]
    tokens = counts.copy()
    lengths = ends - starts
    tokens[starts] = np.where(lengths > 1, -lengths, 0)
    return np.asarray(tokens[~is_zero | run_start], dtype=np.int64)


def _zigzag(tokens: Int64Array) -> npt.NDArray[np.uint64]:
    return ((tokens << 1) ^ (tokens >> 63)).view(np.uint64)


def _leb128(words: npt.NDArray[np.uint64]) -> bytes:
    """HdrHistogram's LEB128: 7 bits a byte, but a 9th byte carries a full 8 bits."""
    shifts = np.arange(0, 63, 7, dtype=np.uint64)  # 0, 7, ..., 56
    groups = words[:, None] >> shifts
    n_bytes = 1 + np.count_nonzero(groups[:, 1:], axis=1)
    column = np.arange(9)
    groups[:, :8] &= np.uint64(0x7F)
    groups[:, 8] &= np.uint64(0xFF)
    groups |= np.where(column < (n_bytes - 1)[:, None], np.uint64(0x80), np.uint64(0))
    return bytes(groups[column < n_bytes[:, None]].astype(np.uint8).tobytes())


def _parse_counts(data: bytes, counts_len: int) -> tuple[Int64Array, Int64Array]:
    """Decode V2 tokens into (indices, counts) of the non-zero buckets."""
    indices: list[int] = []
    counts: list[int] = []
    index = pos = 0
    end = len(data)
    while pos < end:
        byte = data[pos]
        word, shift, pos = byte & 0x7F, 7, pos + 1
        while byte & 0x80:
            if pos >= end:
                raise ValueError("histogram counts end inside a number")
            byte, pos = data[pos], pos + 1
            if shift == 56:  # the 9th byte holds a full 8 bits
                word |= byte << 56
                break
            word |= (byte & 0x7F) << shift
            shift += 7
        token = (word >> 1) ^ -(word & 1)
        if token < 0:
            index -= token
            continue
        if index >= counts_len:
            raise ValueError(f"histogram counts run past counts_len {counts_len}")
        if token:
            indices.append(index)
            counts.append(token)
        index += 1
    return np.array(indices, dtype=np.int64), np.array(counts, dtype=np.int64)
