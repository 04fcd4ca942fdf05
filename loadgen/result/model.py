"""RunResult: the pure-data outcome of a run, versioned, to and from JSON.

Everything a report, a CI gate or a later merge needs is here; nothing here talks to a
socket. Latencies in summaries are microseconds (floats); histograms are nanoseconds,
encoded in the standard HdrHistogram V2 format so other HDR tools can read them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadgen.config.thresholds import ThresholdVerdict
from loadgen.result.files import write_atomically
from loadgen.result.stop import StopReason
from loadgen.stats.histogram import HdrHistogram

#: 2 added ``self_check`` (was the generator itself the bottleneck?) and each interval's
#: ``cpu_percent``; results of schema 1 still load (``self_check`` None: not checked).
#: 3 added ``cluster`` (a distributed run's hosts, clock offsets and start skew) and the
#: generator's ``start_late_ms``; older results load with both None.
#: 4 added ``stop`` (``result.stop.StopReason``: kind, detail, a failure's traceback); the
#: one-line ``stop_reason`` is still written beside it, and older results' is parsed.
#: 5 added ``summary.failed`` (responses outside the expected statuses, which are now
#: requests too), ``requests_by_name`` (a request set's breakdown) and each interval's
#: ``failed``; older results load with none failed and no breakdown.
#: 6 added the measuring clock and the Windows timer resolution to ``environment``, the OS
#: error codes per error kind (``summary.error_codes``) and the self-check's clock
#: resolution; older results load with them None (or empty).
#: 7 added TLS: the summary's ``tls_handshake_us`` and ``tls_resumed`` (with the
#: ``tls_handshake`` histogram), and ``error_reasons``; older results load with none.
SCHEMA_VERSION = 7
READABLE_SCHEMAS = (1, 2, 3, 4, 5, 6, 7)
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9}
#: ``Summary.error_reasons``: where the reasons beyond the few kept per kind are counted.
OTHER_REASONS = "(other reasons)"


@dataclass(frozen=True)
class LatencySummary:
    """Latency statistics in microseconds (``None`` when nothing was recorded)."""

    count: int
    min: float | None
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    p99_9: float | None
    max: float | None

    @classmethod
    def from_histogram(cls, histogram: HdrHistogram) -> LatencySummary:
        if histogram.total_count == 0:
            return cls(0, None, None, None, None, None, None, None)
        values = histogram.percentiles(list(PERCENTILES.values()))
        p50, p90, p99, p99_9 = (v / 1000 for v in values)
        return cls(
            count=histogram.total_count,
            min=histogram.min / 1000,
            mean=round(histogram.mean / 1000, 3),
            p50=p50,
            p90=p90,
            p99=p99,
            p99_9=p99_9,
            max=histogram.max / 1000,
        )


@dataclass(frozen=True)
class Environment:
    backend: str
    recv_mode: str
    os: str
    python: str
    loadgen_version: str
    processes: int  # shard processes of the client (merged into this one result)
    cpu_count: int | None
    hostname: str
    #: The receive mode's settings (``Scenario.receive_options``): buffered's buffer size
    #: and whether it was registered, buffer-ring's ring size. Empty in older results.
    recv_options: dict[str, Any] = field(default_factory=dict)
    target_processes: int | None = None  # processes of a built-in target (None: not built-in)
    #: The clock every latency was timed with (``time.get_clock_info``'s implementation)
    #: and its resolution in ns (schema 6; None before).
    clock: str | None = None
    clock_resolution_ns: float | None = None
    #: Windows: the system timer period the run raised waits to (timeBeginPeriod), in ms.
    #: None elsewhere, in older results, or where Windows refused it.
    timer_resolution_ms: float | None = None


@dataclass(frozen=True)
class Summary:
    requests: int
    errors: dict[str, int]
    duration_s: float
    throughput_rps: float
    latency_us: LatencySummary
    connect_latency_us: LatencySummary
    connections: int
    connects: int
    bytes_sent: int
    bytes_received: int
    in_flight_at_end: int
    #: Open model only (None in the closed model): latency from intended send times, how
    #: late requests left, how many had to wait for a free connection, how many never left.
    latency_corrected_us: LatencySummary | None = None
    schedule_lag_us: LatencySummary | None = None
    waited_for_connection: int | None = None
    unsent: int | None = None
    #: Stream runs only: payload bytes moved per second, both directions together.
    throughput_bytes_per_s: float | None = None
    #: TLS runs only (None otherwise): the handshakes, from the TCP connect completing to
    #: the handshake completing, and how many of them resumed a session.
    tls_handshake_us: LatencySummary | None = None
    tls_resumed: int | None = None
    #: Why errors happened, where the client could tell (a TLS alert or a failed
    #: certificate check, what a server did wrong): per kind, each reason's count. Not
    #: every error has one, so the counts may add up to less than ``errors``.
    error_reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Responses that arrived whole but are not what the scenario expects (an HTTP status
    #: outside ``http.expect``, a Redis error reply): counted in ``requests`` (and timed)
    #: and in ``errors`` under their kind. 0 in results before schema 5.
    failed: int = 0
    #: The OS's own error codes behind each error kind, counted (errno on Linux, the
    #: Win32/Winsock code on Windows): ``{"no_buffers": {"10055": 3}}``. Kinds found by
    #: loadgen itself (timeout, eof, verify) have no code. Empty in results before schema 6.
    error_codes: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def succeeded(self) -> int:
        """Requests answered as expected."""
        return self.requests - self.failed

    @property
    def attempts(self) -> int:
        """Requests plus the errors that ended an exchange without a response (a failed
        request is both a request and an error: counted once)."""
        return self.requests + self.error_count - self.failed

    @property
    def error_rate(self) -> float:
        """Errors of any kind per attempt (0 when nothing was attempted)."""
        attempts = self.attempts
        return self.error_count / attempts if attempts else 0.0

    @property
    def failed_rate(self) -> float | None:
        """Failed requests per request (k6's ``http_req_failed``); None without requests."""
        return self.failed / self.requests if self.requests else None


@dataclass(frozen=True)
class Interval:
    """One fixed-length slice of the run, counted from the run's start."""

    index: int
    start_s: float
    duration_s: float
    requests: int
    errors: dict[str, int]
    bytes_sent: int
    bytes_received: int
    latency: dict[str, Any]  # HdrHistogram.to_dict() of this interval only
    latency_corrected: dict[str, Any] | None = None  # open model: from intended send times
    connections: int | None = None  # open when the interval closed
    #: The generator's CPU in this interval, percent of one core (schema 2; None before).
    cpu_percent: float | None = None
    failed: int = 0  # of ``requests``: answered outside the expectation (schema 5)


@dataclass(frozen=True)
class Generator:
    """How hard the load generator itself worked (a saturated generator measures itself)."""

    cpu_s: float
    cpu_percent: float
    loop_iterations: int
    max_loop_lag_ms: float
    #: buffer-ring runs: receives that ended because the ring was empty (ENOBUFS) and
    #: were armed again; a ring too small for the data in flight shows here. None otherwise.
    ring_enobufs: int | None = None
    #: How long after the run's start instant the (latest) shard began, in ms: the
    #: wake-up from the start barrier. None in results older than schema 3.
    start_late_ms: float | None = None


@dataclass(frozen=True)
class ClusterHost:
    """One host (one Dask worker with the ``loadgen`` resource) of a distributed run."""

    index: int  # the host shard's number, 0-based
    worker: str  # the Dask worker's address
    hostname: str
    processes: int  # client processes the host ran
    weight: float  # its share of the load (the split's weight; shares add up to 1)
    loadgen_version: str
    #: This host's wall clock minus the scheduler's, ms (measured: the sample with the
    #: shortest round trip to the scheduler); ``offset_uncertainty_ms`` is half that trip.
    clock_offset_ms: float | None
    offset_uncertainty_ms: float | None
    #: How late the host's latest process began after the shared start instant, ms.
    start_late_ms: float | None
    lost: str | None = None  # why the host gave no result (None: it did)
    #: What the host measured: from its result, or for a lost host from the intervals it
    #: reported before it was lost.
    requests: int | None = None
    errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Cluster:
    """A distributed run (``loadgen run --cluster``): where the load came from and how
    closely the hosts started together."""

    scheduler: str  # the Dask scheduler's address
    hosts: list[ClusterHost]
    #: Spread of the hosts' actual start times on the scheduler's clock, ms: the latest
    #: host's lateness minus the earliest's (each clock offset corrected for); the offsets'
    #: uncertainty bounds how exact that is.
    start_skew_ms: float | None
    warnings: list[str] = field(default_factory=list)

    @property
    def lost_hosts(self) -> list[ClusterHost]:
        return [host for host in self.hosts if host.lost is not None]


@dataclass(frozen=True)
class SelfCheck:
    """Was the generator itself the bottleneck? (``loadgen.run.selfcheck`` decides; schema 2.)

    ``valid`` is False when any check failed; ``reasons`` says which, each with the value
    measured and its bound. The measured values are kept so a reader can judge the margin.
    """

    valid: bool
    reasons: list[str]
    cpu_percent: float  # the busiest: whole run or its busiest window, % of one core
    cpu_limit_percent: float  # the bound: SATURATED_CPU_SHARE x generator processes
    #: Linux: the share of wall time the loop thread was running or waiting for a CPU (a
    #: generator starved by other processes is a bottleneck too); None where not measurable.
    runnable_percent: float | None = None
    #: Open model only: how late requests left (p99, ms), its bound, and the share of the
    #: scheduled requests that never left.
    schedule_lag_p99_ms: float | None = None
    schedule_lag_limit_ms: float | None = None
    unsent_fraction: float | None = None
    waited_fraction: float | None = None
    #: The resolution of the clock latencies were timed with, ns (schema 6; None before).
    clock_resolution_ns: float | None = None


@dataclass(frozen=True)
class RequestName:
    """One request of a request set (``http.requests``): what its responses measured.

    ``histograms`` holds its latency (and in the open model its corrected latency) in the
    HdrHistogram encoding, so processes and hosts merge per name exactly as for the run.
    ``errors`` are the failed responses by kind and the errors of exchanges that ended
    while this request was in flight (timeout, reset, eof); refused connects belong to no
    request and count only in the run's errors."""

    name: str
    requests: int
    failed: int
    errors: dict[str, int]
    latency_us: LatencySummary
    latency_corrected_us: LatencySummary | None = None
    histograms: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def failed_rate(self) -> float | None:
        return self.failed / self.requests if self.requests else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestName:
        corrected = data.get("latency_corrected_us")
        return cls(
            **{
                **data,
                "latency_us": LatencySummary(**data["latency_us"]),
                "latency_corrected_us": LatencySummary(**corrected) if corrected else None,
            }
        )


@dataclass(frozen=True)
class RunResult:
    scenario: dict[str, Any]
    environment: Environment
    summary: Summary
    generator: Generator
    started_at: str  # ISO 8601, UTC
    partial: bool
    stop: StopReason  # why the run ended (completed, interrupted, stopped, failed)
    histograms: dict[str, dict[str, Any]]
    intervals: list[Interval] = field(default_factory=list)
    thresholds: list[ThresholdVerdict] = field(default_factory=list)
    #: Memory samples during the run (``stats.memory``): ``t_s`` since start, the OS
    #: sampler's fields, ``engine_posted_recv_bytes``. Empty when none was taken.
    memory: list[dict[str, Any]] = field(default_factory=list)
    #: None in results written before loadgen checked itself (schema 1): "not checked".
    self_check: SelfCheck | None = None
    #: A distributed run's hosts (``loadgen run --cluster``); None on one host.
    cluster: Cluster | None = None
    #: A name for the run in reports and comparisons (``loadgen run --label``); None: the
    #: file's name. Optional and ignored by readers that predate it, so no new schema.
    label: str | None = None
    #: A request set's breakdown by request name, in the scenario's order (schema 5);
    #: empty for a single request and for other protocols.
    requests_by_name: list[RequestName] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    @property
    def stop_reason(self) -> str:
        """``stop`` as one line: ``completed``, ``interrupted (SIGINT)``, ``failed: ...``."""
        return str(self.stop)

    @property
    def thresholds_passed(self) -> bool:
        return all(verdict.passed for verdict in self.thresholds)

    @property
    def no_success(self) -> bool:
        """No request succeeded although the scenario sends some and does not set
        ``expect_failures``: a dead or failing target, which ``run`` reports as a failure."""
        summary = self.summary
        if summary.succeeded > 0 or self.scenario.get("expect_failures"):
            return False
        if (
            summary.throughput_bytes_per_s is not None
            and summary.bytes_sent + summary.bytes_received
        ):
            return False  # a stream moved payload: its transfers just outlast the run
        return _sends_requests(self.scenario)

    @property
    def invalid(self) -> bool:
        """True when the generator itself was the bottleneck (never for unchecked results)."""
        return self.self_check is not None and not self.self_check.valid

    def histogram(self, name: str) -> HdrHistogram:
        return HdrHistogram.from_dict(self.histograms[name])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = self.stop.to_dict()
        ordered = {"schema_version": data.pop("schema_version")}
        for key, value in data.items():
            ordered[key] = value
            if key == "partial":
                ordered["stop_reason"] = self.stop_reason  # the one-line form (schema 1-3)
        return ordered

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def write(self, path: str | Path) -> Path:
        """Write the JSON atomically (a partial file never replaces a good one)."""
        return write_atomically(path, self.to_json() + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        version = data.get("schema_version")
        if version not in READABLE_SCHEMAS:
            raise ValueError(
                f"result schema_version {version!r} is not supported (this loadgen reads "
                f"{', '.join(map(str, READABLE_SCHEMAS))})"
            )
        summary = dict(data["summary"])
        for key in (
            "latency_us",
            "connect_latency_us",
            "latency_corrected_us",
            "schedule_lag_us",
            "tls_handshake_us",
        ):
            if summary.get(key) is not None:
                summary[key] = LatencySummary(**summary[key])
        return cls(
            scenario=data["scenario"],
            environment=Environment(**data["environment"]),
            summary=Summary(**summary),
            generator=Generator(**data["generator"]),
            started_at=data["started_at"],
            partial=data["partial"],
            stop=(
                StopReason.from_dict(data["stop"])
                if "stop" in data
                else StopReason.parse(data["stop_reason"])
            ),
            histograms=data["histograms"],
            intervals=[Interval(**item) for item in data.get("intervals", [])],
            thresholds=[ThresholdVerdict(**item) for item in data.get("thresholds", [])],
            memory=list(data.get("memory", [])),
            self_check=SelfCheck(**data["self_check"]) if data.get("self_check") else None,
            cluster=_cluster_from_dict(data.get("cluster")),
            label=data["label"] if isinstance(data.get("label"), str) else None,
            requests_by_name=[
                RequestName.from_dict(item) for item in data.get("requests_by_name", [])
            ],
        )

    @classmethod
    def read(cls, path: str | Path) -> RunResult:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _sends_requests(scenario: dict[str, Any]) -> bool:
    """False for a recorded scenario none of whose phases sends (all idle, or rate 0)."""
    load = scenario.get("load")
    if not isinstance(load, dict):
        return True
    phases = load.get("phases")
    if not isinstance(phases, list) or not phases:
        return True
    if load.get("model") == "open":
        return any(max(phase.get("rate") or [0]) > 0 for phase in phases)
    return not all(phase.get("idle") for phase in phases)


def _cluster_from_dict(data: dict[str, Any] | None) -> Cluster | None:
    if not data:
        return None
    hosts = [ClusterHost(**host) for host in data.get("hosts", [])]
    return Cluster(**{**data, "hosts": hosts})
