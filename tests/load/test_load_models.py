"""Open and closed load models, end to end against real servers.

Expected numbers are derived from the scenario's own parameters (rates, durations, stall
length), never hard-coded results; tolerances allow for a shared, noisy 2-core machine.
"""

from __future__ import annotations

import itertools
import math
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from loadgen.config.scenario import parse_scenario
from loadgen.config.schedule import (
    ArrivalSchedule,
    RatePhase,
    arrival_offsets_ns,
    connections_at,
    expected_arrivals,
)
from loadgen.load.pool import TICK_NS
from loadgen.result.model import RunResult
from loadgen.run.api import run
from loadgen.run.progress import Snapshot
from tests.adversarial.servers import bad_target
from tests.hdr_values import values_of


def _run(text: str, live: Callable[[Callable[[], Snapshot]], object] | None = None) -> RunResult:
    return run(parse_scenario("name: models\n" + text), backend="auto", seed=7, live=live)  # type: ignore[arg-type]


def _completions_bounds(
    result: RunResult, due_by: Callable[[float], float], index: int
) -> tuple[float, float]:
    """The fewest and most requests interval ``index`` of an open-model run can count, for
    a schedule of ``due_by(t)`` requests due by t seconds (from the scenario's own rates).

    A request due at t completes at t + its corrected latency (at most the run's largest),
    and lands in the interval open when the loop handles its completion; the loop closes an
    interval at a tick, up to a tick period and the largest loop lag after its nominal end.
    So the interval holds every request due from its start (shifted the same way) up to its
    end less the largest latency, and at most those due up to its end plus that lateness.
    Both bounds come from this run's own measurements: tight on a quiet machine, wider on a
    busy one, and far from what a schedule sent in bursts would count.
    """
    interval = result.intervals[index]
    latest_s = result.histogram("latency_corrected").max / 1e9
    late_s = TICK_NS / 1e9 + result.generator.max_loop_lag_ms / 1e3
    start_s, end_s = interval.start_s, interval.start_s + interval.duration_s

    def due(a_s: float, b_s: float) -> float:
        return max(0.0, due_by(max(0.0, b_s)) - due_by(max(0.0, a_s)))

    fewest = due(start_s + (late_s if index else 0.0), end_s - latest_s) - 1
    most = due(start_s - latest_s if index else 0.0, end_s + late_s) + 1
    return fewest, most


# --- the schedule (pure) -----------------------------------------------------------------


def test_constant_schedule_is_evenly_spaced() -> None:
    offsets = list(arrival_offsets_ns([RatePhase(2.0, 500, 500)]))
    assert len(offsets) == 1000
    assert {b - a for a, b in itertools.pairwise(offsets)} <= {
        1_999_999,
        2_000_000,
        2_000_001,
    }


def test_ramp_schedule_follows_the_integral() -> None:
    # 0 -> 1,000/s over 2 s: N(t) = 250 t^2, so 250 arrivals in the first second.
    offsets = list(arrival_offsets_ns([RatePhase(2.0, 0, 1000)]))
    assert len(offsets) == 1000
    assert sum(1 for t in offsets if t < 1e9) == 250
    assert offsets == sorted(offsets)


def test_poisson_schedule_count_and_spread() -> None:
    phases = [RatePhase(20.0, 1000, 1000, poisson=True)]
    offsets = list(arrival_offsets_ns(phases, seed=3))
    mean = expected_arrivals(phases)
    assert abs(len(offsets) - mean) < 5 * math.sqrt(mean)  # 5 sigma of a Poisson count
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    # Exponential gaps: the standard deviation equals the mean (a constant rate would be 0).
    mean_gap = sum(gaps) / len(gaps)
    sd = math.sqrt(sum((g - mean_gap) ** 2 for g in gaps) / len(gaps))
    assert 0.9 < sd / mean_gap < 1.1


def test_phases_chain() -> None:
    offsets = list(arrival_offsets_ns([RatePhase(1.0, 100, 100), RatePhase(1.0, 300, 300)]))
    assert len(offsets) == 400
    assert sum(1 for t in offsets if t >= 1e9) == 300


def test_schedule_keeps_advancing_past_2_to_the_53() -> None:
    """Counts are integers: a float count stops growing by 1 at 2^53 (the old schedule then
    produced the same instant forever). 10M/s reaches 2^53 arrivals after ~28.5 years."""
    rate = 10_000_000
    schedule = ArrivalSchedule([RatePhase(1e9, rate, rate)])
    skipped = schedule.skip_until(2**53 * 100)  # arrival k is due at k * 100 ns
    assert skipped == 2**53 + 1  # arrivals 0 .. 2^53, counted exactly
    offsets = list(itertools.islice(schedule, 5))
    assert [b - a for a, b in itertools.pairwise(offsets)] == [100] * 4
    assert offsets[0] == (2**53 + 1) * 100


def test_skipping_counts_what_producing_would_have_produced() -> None:
    phases = [RatePhase(1.0, 300, 300), RatePhase(1.0, 0, 0), RatePhase(2.0, 100, 700)]
    every = list(arrival_offsets_ns(phases))
    for until_ns in (0, 123_456_789, 1_000_000_000, 2_500_000_000, 3_999_999_999, 10**10):
        schedule = ArrivalSchedule(phases)
        dropped = schedule.skip_until(until_ns)
        assert dropped == sum(1 for t in every if t <= until_ns), until_ns
        assert list(schedule) == [t for t in every if t > until_ns]


def test_skipping_poisson_arrivals_counts_the_expected_number() -> None:
    phases = [RatePhase(10.0, 1000, 1000, poisson=True)]
    schedule = ArrivalSchedule(phases, seed=5)
    dropped = schedule.skip_until(4 * 10**9)
    assert abs(dropped - 4000) <= 2  # the mean, not a draw
    rest = list(schedule)
    assert all(t > 4 * 10**9 for t in rest)
    assert abs(len(rest) - 6000) < 5 * math.sqrt(6000)


def test_shifted_schedule_is_cut_at_the_end() -> None:
    schedule = ArrivalSchedule([RatePhase(1.0, 10, 10)], shift_ns=50_000_000, end_ns=10**9)
    assert list(schedule) == [50_000_000 + k * 100_000_000 for k in range(10)]
    cut = ArrivalSchedule([RatePhase(1.0, 10, 10)], shift_ns=50_000_000, end_ns=900_000_000)
    assert cut.skip_until(10**10) == 9  # the one due at 950 ms is past the end


def test_connection_ramp() -> None:
    phases = [(10.0, 10, 1000), (5.0, 1000, 1000)]
    assert connections_at(phases, 0) == 10
    assert connections_at(phases, 5) == 505
    assert connections_at(phases, 12) == 1000
    assert connections_at(phases, 99) == 1000


# --- open model ----------------------------------------------------------------------------


def test_open_model_constant_rate(echo_target: str) -> None:
    rate, seconds = 1000, 2.0
    result = _run(
        f"target: {echo_target}\nload:\n  model: open\n  connections: 20\n"
        f"  phases: [{{duration: {seconds}s, rate: {rate}/s}}]\n"
    )
    summary = result.summary
    assert summary.errors == {}
    assert abs(summary.requests - rate * seconds) <= 0.03 * rate * seconds
    assert summary.unsent is not None and summary.unsent <= 0.02 * rate * seconds
    corrected, raw = result.histogram("latency_corrected"), result.histogram("latency")
    lag = result.histogram("schedule_lag")
    assert corrected.total_count == raw.total_count == summary.requests
    assert summary.latency_corrected_us is not None
    assert summary.latency_corrected_us.count == summary.requests
    # Corrected = raw + the schedule lag, request by request (the intended send time is the
    # actual one less its lag), so their means differ by the lag's mean. The lag is never
    # zero (a timer wakes the loop after the due time), so a "corrected" latency that is the
    # raw one fails here. Slack: 3 significant digits per value in each histogram, and the
    # lags of requests still in flight at the end (sent, so lagged, but not answered).
    assert lag.total_count == summary.requests + summary.in_flight_at_end
    slack_ns = 0.002 * corrected.mean + summary.in_flight_at_end * lag.max / lag.total_count
    assert lag.mean > slack_ns, "the lag is too small to tell corrected from raw here"
    assert corrected.mean - raw.mean == pytest.approx(lag.mean, abs=slack_ns)
    assert corrected.value_at_percentile(50) >= raw.value_at_percentile(50)
    # The sends are spread over the run as the schedule says: each interval holds what fell
    # due in it (bounded by this run's latency and loop lag), not a burst.
    assert len(result.intervals) == 2
    for index, interval in enumerate(result.intervals):
        fewest, most = _completions_bounds(result, lambda t: rate * min(t, seconds), index)
        assert fewest <= interval.requests <= most, (index, interval.requests, fewest, most)


def test_open_model_ramp_fills_intervals_by_the_integral(echo_target: str) -> None:
    # 0 -> 1,000/s over 2 s: N(t) = 250 t^2, so 250 due in the first second, 750 in the second.
    result = _run(
        f"target: {echo_target}\nload:\n  model: open\n  connections: 20\n"
        "  phases: [{duration: 2s, rate: 0/s to 1000/s}]\n"
    )
    assert result.summary.errors == {}
    per_second = [interval.requests for interval in result.intervals]
    assert len(per_second) == 2
    for index in (0, 1):
        fewest, most = _completions_bounds(result, lambda t: 250 * min(t, 2.0) ** 2, index)
        assert fewest <= per_second[index] <= most, (index, per_second, fewest, most)


@pytest.fixture
def stoppable_echo() -> Iterator[tuple[subprocess.Popen[str], int]]:
    server = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "serve", "echo", "--backend", "epoll"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    port = int(server.stdout.readline().strip().rsplit(":", 1)[1])
    yield server, port
    server.send_signal(signal.SIGCONT)
    server.send_signal(signal.SIGINT)
    server.wait(10)


@contextmanager
def _freeze_when_running(
    server: subprocess.Popen[str], after_s: float, stall_s: float, window: dict[str, float]
) -> Iterator[Callable[[Callable[[], Snapshot]], object]]:
    """A live-view hook: once the run is ``after_s`` in with traffic, stop the target for
    about ``stall_s``. The stall's real length lies in [``shortest_s``, ``longest_s``]
    (timestamps taken on both sides of each signal), whatever the sleep overran by."""

    @contextmanager
    def live(read: Callable[[], Snapshot]) -> Iterator[None]:
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.02):
                snapshot = read()
                if snapshot.elapsed_s >= after_s and snapshot.requests > 0:
                    before_stop = time.perf_counter()
                    server.send_signal(signal.SIGSTOP)
                    after_stop = time.perf_counter()
                    time.sleep(stall_s)
                    before_cont = time.perf_counter()
                    server.send_signal(signal.SIGCONT)
                    after_cont = time.perf_counter()
                    window["at_s"] = snapshot.elapsed_s
                    window["shortest_s"] = before_cont - after_stop
                    window["longest_s"] = after_cont - before_stop
                    return

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    yield live
    assert window, "the target was never stopped"


@pytest.mark.skipif(sys.platform == "win32", reason="stalls the target with SIGSTOP")
def test_corrected_latency_shows_a_stall_that_raw_latency_hides(
    stoppable_echo: tuple[subprocess.Popen[str], int],
) -> None:
    """A target frozen for S seconds during a T-second run at rate R.

    Requests due during the stall wait for it to end, so a request due at t into the
    stall is answered about S - t late: the fraction of requests later than x is
    (S - x) / T, and the corrected percentile p is S - (1 - p) T for p > 1 - S/T.
    Only the few requests already sent when it froze (at most one per connection) see the
    stall in their raw latency. S is the stall as measured around the signals (a sleeping
    thread can overrun on a busy machine); its uncertainty widens every bound.
    """
    server, port = stoppable_echo
    rate, total_s, stall_s, stall_at_s, connections = 500, 4.0, 1.0, 1.0, 5
    window: dict[str, float] = {}
    with _freeze_when_running(server, stall_at_s, stall_s, window) as live:
        result = _run(
            f"target: 127.0.0.1:{port}\ntimeouts: {{request: 10s}}\nload:\n  model: open\n"
            f"  connections: {connections}\n  phases: [{{duration: {total_s}s, rate: {rate}/s}}]\n",
            live,
        )
    summary = result.summary
    assert summary.errors == {}
    assert window["at_s"] + window["longest_s"] < total_s - 1.0  # the stall ended in the run
    shortest, longest = window["shortest_s"], window["longest_s"]
    stall = (shortest + longest) / 2
    #: What else delays a request by a little: catching up on the backlog after the stall,
    #: and this machine's noise (the raw latency's own p99 measures it).
    raw = result.histogram("latency")
    noise_s = 0.1 + raw.value_at_percentile(99) / 1e9
    slack_s = (longest - shortest) / 2 + noise_s
    corrected = result.histogram("latency_corrected")

    def expected_s(p: float) -> float:
        return stall - (1 - p) * total_s

    for p in (0.80, 0.90, 0.99):
        observed = corrected.value_at_percentile(p * 100) / 1e9
        assert abs(observed - expected_s(p)) < slack_s, (p, observed, expected_s(p), window)
    # The worst request was the one due as it froze: it waited the whole stall.
    assert shortest - 2 / rate - 0.01 <= corrected.max / 1e9 <= longest + noise_s, window
    # How many requests the stall delayed by more than x: those due in its first S - x
    # seconds, (S - x) R of them; the rest of the run, none.
    values_s = values_of(corrected) / 1e9
    for x in (0.25, 0.5):
        late = int((values_s > x).sum())
        assert abs(late - (stall - x) * rate) <= slack_s * rate, (x, late, stall, window)
    assert corrected.value_at_percentile(50) / 1e9 < 0.1  # most requests never saw it
    # Raw latency: at most `connections` requests were in flight when it froze.
    assert connections / summary.requests < 0.01
    assert raw.value_at_percentile(99) / 1e9 < stall / 4
    assert raw.max / 1e9 > 0.5 * shortest  # ...and those few did see it
    assert summary.waited_for_connection is not None
    assert summary.waited_for_connection > 0.5 * rate * shortest


# --- closed model --------------------------------------------------------------------------


def test_closed_connection_ramp(echo_target: str) -> None:
    result = _run(
        f"target: {echo_target}\nload:\n  connections: 40\n"
        "  phases: [{duration: 1s, connections: 4 to 40}, {duration: 1s}]\n"
    )
    assert result.summary.errors == {}
    assert result.summary.connections == 40
    assert result.summary.connects == 40
    per_second = [interval.connections for interval in result.intervals]
    assert per_second[0] is not None and 4 <= per_second[0] < 40  # mid-ramp after 1 s
    assert per_second[-1] == 40


def test_think_time_paces_each_connection(echo_target: str) -> None:
    connections, think_s, seconds = 10, 0.1, 2.0
    result = _run(
        f"target: {echo_target}\nload:\n  connections: {connections}\n  think_time: {think_s}s\n"
        f"  phases: [{{duration: {seconds}s}}]\n"
    )
    expected = connections * seconds / think_s
    assert 0.75 * expected <= result.summary.requests <= 1.1 * expected


@pytest.mark.parametrize("recv_mode", ["buffered", "zero-byte"])
def test_churn_opens_a_connection_per_request(echo_target: str, recv_mode: str) -> None:
    result = _run(
        f"target: {echo_target}\nreceive: {recv_mode}\nload:\n  connections: 5\n"
        "  requests_per_connection: 1\n  phases: [{duration: 1s}]\n"
    )
    summary = result.summary
    assert summary.errors == {}
    assert summary.requests > 50
    assert abs(summary.connects - summary.requests) <= 5  # one connect per request
    assert summary.connect_latency_us.count == summary.connects


@pytest.mark.skipif(sys.platform != "linux", reason="127.0.0.2+ are loopback only on Linux")
def test_source_addresses_are_spread() -> None:
    peers: list[str] = []
    with bad_target("echo", peers) as (host, port):
        result = _run(
            f"target: {host}:{port}\nconnections: 6\nduration: 500ms\nsource: 127.0.0.2-127.0.0.4\n"
        )
    assert result.summary.errors == {}
    assert sorted(set(peers)) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert len(peers) == 6


def test_target_list_spreads_connections() -> None:
    first: list[str] = []
    second: list[str] = []
    with bad_target("echo", first) as a, bad_target("echo", second) as b:
        result = _run(
            f"target: ['{a[0]}:{a[1]}', '{b[0]}:{b[1]}']\nconnections: 6\nduration: 500ms\n"
        )
    assert result.summary.errors == {}
    assert len(first) == len(second) == 3


# --- thresholds ----------------------------------------------------------------------------


def test_thresholds_are_evaluated(echo_target: str) -> None:
    result = _run(
        f"target: {echo_target}\nconnections: 5\nduration: 500ms\n"
        "thresholds: ['p99 < 10s', 'error_rate < 1%', 'p50 < 1ns', 'throughput > 1/s']\n"
    )
    verdicts = {v.expression: v.passed for v in result.thresholds}
    assert verdicts == {
        "p99 < 10s": True,
        "error_rate < 1%": True,
        "p50 < 1ns": False,
        "throughput > 1/s": True,
    }
    assert not result.thresholds_passed
