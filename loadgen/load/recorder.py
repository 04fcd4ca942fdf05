"""Recorder: what the hot loop counts, turned into histograms and per-interval slices.

The hot loop only appends integers to ``array('q')`` buffers and bumps plain ints (about
30 ns each); ``tick()``, called a few times a second, moves the buffered values into HDR
histograms with one vectorised ``record_many`` and closes each 1-second interval. Several
responses with the same latency (a pipelined batch answered in one chunk) are buffered as
one value and its count (``pending_repeated`` and ``pending_repeats``, and the same for the
corrected latency): two appends instead of one per response, recorded exactly as often.

Histograms (all nanoseconds):

* ``latency``: from each request's actual send to its whole response (service time);
* ``latency_corrected``: open model only, from each request's *intended* send time;
* ``connect_latency``: from connect submitted to connect completed;
* ``schedule_lag``: open model only, how late each request left against its schedule;
* ``tls_handshake``: TLS runs only, from the TCP connect completing to the TLS handshake
  completing (``tls_resumed`` counts the handshakes that resumed a session).

An error may come with its reason (a TLS alert, a failed certificate check, what a server
did wrong): ``error_reasons`` counts them per kind, at most ``MAX_REASONS_PER_KIND``
distinct ones (the rest under ``OTHER_REASONS``), so a result says why as well as how often.

A response outside the scenario's expectation (``failure``) is timed like any other and
also counted in ``failed`` and as an error of its kind. A request set keeps the same numbers
per request name (``by_name``), flushed with the rest.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Sequence
from typing import Any

from loadgen.result.model import OTHER_REASONS, Interval
from loadgen.stats.histogram import HdrHistogram

#: Distinct reasons kept per error kind: enough for the few causes a run has (a bad
#: certificate, an alert), bounded for a target that names each failure differently.
MAX_REASONS_PER_KIND = 10


class NamedStats:
    """One request name's latency (and corrected latency), failed responses and errors."""

    __slots__ = (
        "errors",
        "failed",
        "latency",
        "latency_corrected",
        "name",
        "pending_corrected",
        "pending_latency",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.latency = HdrHistogram()
        self.latency_corrected = HdrHistogram()
        self.failed = 0
        self.errors: Counter[str] = Counter()
        self.pending_latency: array[int] = array("q")
        self.pending_corrected: array[int] = array("q")

    def flush(self) -> None:
        for pending, histogram in (
            (self.pending_latency, self.latency),
            (self.pending_corrected, self.latency_corrected),
        ):
            if pending:
                histogram.record_many(pending)
                del pending[:]


class Recorder:
    """Latency, connect latency, errors and bytes for one run (one process)."""

    def __init__(self, start_ns: int, interval_s: float = 1.0, names: Sequence[str] = ()) -> None:
        self.start_ns = start_ns
        self.interval_ns = int(interval_s * 1e9)
        self.latency = HdrHistogram()
        self.latency_corrected = HdrHistogram()
        self.connect_latency = HdrHistogram()
        self.schedule_lag = HdrHistogram()
        self.tls_handshake = HdrHistogram()
        self.tls_resumed = 0
        self.errors: Counter[str] = Counter()
        #: The OS code behind each error counted with one: kind -> code -> count.
        self.error_codes: dict[str, Counter[int]] = {}
        #: Why, where the client could tell: kind -> reason -> count (bounded per kind).
        self.error_reasons: dict[str, Counter[str]] = {}
        self.failed = 0  # responses outside the expectation (also in ``errors``)
        #: A request set's numbers per request name, indexed as the set lists them.
        self.by_name = [NamedStats(name) for name in names]
        self.connects = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        #: Hot-loop buffers (nanoseconds). Cleared in place by ``flush``, so the hot loop
        #: may hold their bound ``append`` methods.
        self.pending_latency: array[int] = array("q")
        self.pending_corrected: array[int] = array("q")
        self.pending_connect: array[int] = array("q")
        self.pending_schedule_lag: array[int] = array("q")
        self.pending_tls_handshake: array[int] = array("q")
        #: Latencies shared by several responses: the value, and how many it stands for.
        self.pending_repeated: array[int] = array("q")
        self.pending_repeats: array[int] = array("q")
        self.pending_corrected_repeated: array[int] = array("q")
        self.pending_corrected_repeats: array[int] = array("q")
        self.intervals: list[Interval] = []
        self._interval = HdrHistogram()
        self._interval_corrected = HdrHistogram()
        self._interval_index = 0
        self._interval_errors: Counter[str] = Counter()
        self._interval_failed = 0
        self._interval_base = (0, 0)  # bytes sent and received when the interval began
        self._connections: int | None = None  # open connections, as of the last tick
        #: Memory samples taken by the client's tick (``stats.memory``), for the result.
        self.memory: list[dict[str, Any]] = []

    def error(self, kind: str, code: int | None = None, reason: str | None = None) -> None:
        """Count one error of ``kind``; ``code`` is the OS's own number for it, if any, and
        ``reason`` what went wrong in words (a TLS alert, what a server did wrong)."""
        self.errors[kind] += 1
        self._interval_errors[kind] += 1
        if code is not None:
            codes = self.error_codes.get(kind)
            if codes is None:
                codes = self.error_codes[kind] = Counter()
            codes[code] += 1
        if reason is not None:
            reasons = self.error_reasons.setdefault(kind, Counter())
            if reason not in reasons and len(reasons) >= MAX_REASONS_PER_KIND:
                reason = OTHER_REASONS
            reasons[reason] += 1

    def error_codes_by_kind(self) -> dict[str, dict[str, int]]:
        """``error_codes`` as the result keeps them (JSON keys are strings), sorted."""
        return {
            kind: {str(code): n for code, n in sorted(codes.items())}
            for kind, codes in sorted(self.error_codes.items())
        }

    def failure(self, kind: str) -> None:
        """A whole response outside the expectation (its latency is recorded as usual)."""
        self.failed += 1
        self._interval_failed += 1
        self.errors[kind] += 1
        self._interval_errors[kind] += 1

    def flush(self) -> None:
        """Move buffered values into the histograms."""
        corrected = self._interval_corrected
        for pending, histogram in (
            (self.pending_latency, self._interval),
            (self.pending_corrected, corrected),
            (self.pending_connect, self.connect_latency),
            (self.pending_schedule_lag, self.schedule_lag),
            (self.pending_tls_handshake, self.tls_handshake),
        ):
            if pending:
                histogram.record_many(pending)
                del pending[:]
        for values, counts, histogram in (
            (self.pending_repeated, self.pending_repeats, self._interval),
            (self.pending_corrected_repeated, self.pending_corrected_repeats, corrected),
        ):
            if values:
                histogram.record_many(values, counts)
                del values[:]
                del counts[:]
        for named in self.by_name:
            named.flush()
        self.connects = self.connect_latency.total_count

    def tick(self, now_ns: int, connections: int | None = None) -> None:
        """Flush, and close every interval that has ended by ``now_ns``. ``connections``
        (open right now) is what an interval closing here reports."""
        self.flush()
        if connections is not None:
            self._connections = connections
        while now_ns - self.start_ns >= (self._interval_index + 1) * self.interval_ns:
            self._close_interval(self.interval_ns)

    def finish(self, end_ns: int) -> None:
        """Flush and close the last (possibly short) interval."""
        self.tick(end_ns)
        remainder = end_ns - self.start_ns - self._interval_index * self.interval_ns
        if remainder > 0 and (self._interval.total_count or self._interval_errors):
            self._close_interval(remainder)

    @property
    def requests(self) -> int:
        """Responses recorded so far (closed intervals, the open one, the buffer)."""
        return (
            self.latency.total_count
            + self._interval.total_count
            + len(self.pending_latency)
            + sum(self.pending_repeats)
        )

    def _close_interval(self, length_ns: int) -> None:
        sent, received = self._interval_base
        corrected = self._interval_corrected
        self.intervals.append(
            Interval(
                index=self._interval_index,
                start_s=self._interval_index * self.interval_ns / 1e9,
                duration_s=length_ns / 1e9,
                requests=self._interval.total_count,
                errors=dict(self._interval_errors),
                bytes_sent=self.bytes_sent - sent,
                bytes_received=self.bytes_received - received,
                latency=self._interval.to_dict(),
                latency_corrected=corrected.to_dict() if corrected.total_count else None,
                connections=self._connections,
                failed=self._interval_failed,
            )
        )
        self.latency.merge(self._interval)
        self.latency_corrected.merge(corrected)
        self._interval.reset()
        corrected.reset()
        self._interval_errors.clear()
        self._interval_failed = 0
        self._interval_base = (self.bytes_sent, self.bytes_received)
        self._interval_index += 1
