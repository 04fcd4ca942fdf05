"""A run's live numbers as an OpenMetrics (Prometheus) endpoint: ``loadgen run --metrics-port``.

While a run runs, ``GET /metrics`` on the port answers with its running totals, added up over
every client process (and host) the way the live view adds them (``run.progress.TickBoard``):

* ``loadgen_requests_total``, ``loadgen_errors_total{kind}`` (refused, reset, timeout, eof,
  verify, http_5xx, ...), ``loadgen_sent_bytes_total``, ``loadgen_received_bytes_total``;
* ``loadgen_open_connections``, ``loadgen_generator_cpu_seconds_total`` (every client
  process's CPU time; its rate is the generator's CPU share, 1 per core);
* ``loadgen_latency_seconds``: a histogram of every request in the intervals closed so far
  (one per second), from the intended send time in the open model (the latency thresholds
  judge). Its buckets are counted from the run's HDR histogram, which holds every value to 3
  significant digits, so each bucket count is exact to that resolution; the bounds are
  1-2.5-5 steps from 50 µs to 60 s, a grid a dashboard's ``histogram_quantile`` reads well;
* ``loadgen_run_elapsed_seconds``, ``loadgen_run_duration_seconds`` and ``loadgen_run_info``
  (scenario, target, backend) to tell runs apart.

The server is prometheus_client's (a thread, answering in the Prometheus text format or, to a
scraper that asks, OpenMetrics), bound to loopback unless told otherwise: the numbers name
targets. Counters are read from the board at each scrape; the run's hot loop pays nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from loadgen.run.progress import TickBoard

#: Bucket upper bounds, seconds: 1-2.5-5 steps from 50 µs (a local echo) to 60 s (beyond
#: any request timeout a scenario sets by default).
BUCKET_BOUNDS_S: tuple[float, ...] = (
    50e-6, 100e-6, 250e-6, 500e-6,
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 25.0, 60.0,
)  # fmt: skip
DEFAULT_BIND = "127.0.0.1"


@dataclass(frozen=True)
class RunInfo:
    scenario: str
    target: str
    backend: str


class BoardCollector(Collector):
    """Reads a run's ``TickBoard`` at each scrape."""

    def __init__(self, board: TickBoard, info: RunInfo) -> None:
        self._board = board
        self._info = info

    def collect(self) -> Iterator[Metric]:
        snapshot = self._board.snapshot()
        yield InfoMetricFamily(
            "loadgen_run",
            "The run being measured.",
            value={
                "scenario": self._info.scenario,
                "target": self._info.target,
                "backend": self._info.backend,
            },
        )
        yield CounterMetricFamily(
            "loadgen_requests", "Requests completed (responses received).", snapshot.requests
        )
        errors = CounterMetricFamily(
            "loadgen_errors", "Failed requests and connections, by kind.", labels=["kind"]
        )
        for kind, count in snapshot.errors.items():
            errors.add_metric([kind], count)
        yield errors
        yield CounterMetricFamily(
            "loadgen_sent_bytes", "Bytes sent to the target.", snapshot.bytes_sent
        )
        yield CounterMetricFamily(
            "loadgen_received_bytes", "Bytes received from the target.", snapshot.bytes_received
        )
        yield GaugeMetricFamily(
            "loadgen_open_connections", "Connections open now.", snapshot.open_connections
        )
        yield CounterMetricFamily(
            "loadgen_generator_cpu_seconds",
            "CPU time of loadgen's client processes (its rate: cores busy).",
            snapshot.cpu_s,
        )
        yield GaugeMetricFamily(
            "loadgen_run_elapsed_seconds", "Time since the run's start.", snapshot.elapsed_s
        )
        yield GaugeMetricFamily(
            "loadgen_run_duration_seconds", "The run's planned length.", snapshot.duration_s
        )
        yield self._latency()

    def _latency(self) -> HistogramMetricFamily:
        histogram = self._board.latency()
        buckets: list[tuple[str, float]] = []
        if histogram.total_count:
            below = histogram.count_at_or_below([int(b * 1e9) for b in BUCKET_BOUNDS_S])
            buckets = [(_bound(b), float(n)) for b, n in zip(BUCKET_BOUNDS_S, below, strict=True)]
        buckets.append(("+Inf", float(histogram.total_count)))
        total_s = histogram.mean * histogram.total_count / 1e9 if histogram.total_count else 0.0
        return HistogramMetricFamily(
            "loadgen_latency_seconds",
            "Request latency of the intervals closed so far (open model: from the intended "
            "send time).",
            buckets=buckets,
            sum_value=total_s,
        )


def _bound(seconds: float) -> str:
    return f"{seconds:g}"


class MetricsServer:
    """``with MetricsServer(board, info, port, bind):`` serves /metrics while the block runs.
    ``port`` 0 takes a free port (``self.port`` tells which)."""

    def __init__(self, board: TickBoard, info: RunInfo, port: int, bind: str = DEFAULT_BIND):
        from prometheus_client import start_http_server

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(BoardCollector(board, info))
        self._server, self._thread = start_http_server(port, addr=bind, registry=self.registry)
        self.bind = bind
        self.port = int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
