"""Wires a scenario, an engine, a load client (request/response or stream) and a recorder
into a RunResult.

``run()`` never lets a target's behaviour become a crash: refused, reset or silent targets
are counted by error kind. Ctrl-C (SIGINT) ends the run early and the result is still
returned, marked ``partial``. Only a failure of loadgen itself (no backend, a built-in
target that cannot start) raises.
"""

from __future__ import annotations

import os
import platform
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from datetime import UTC, datetime
from types import FrameType

from loadgen import __version__
from loadgen.client import ClientConfig, LoadClient
from loadgen.engine import select_backend
from loadgen.protocols.base import Codec
from loadgen.protocols.http1 import Http1Codec
from loadgen.protocols.resp import RespCodec
from loadgen.report.live import Snapshot
from loadgen.result import Environment, Generator, LatencySummary, RunResult, Summary
from loadgen.scenario import HttpSpec, RedisSpec, Scenario, StreamSpec
from loadgen.schedule import RatePhase, arrival_offsets_ns
from loadgen.stats.histogram import HdrHistogram
from loadgen.stats.recorder import Recorder
from loadgen.streams import StreamClient
from loadgen.targets.process import builtin_target

Notice = Callable[[str], None]
LiveFactory = Callable[[Callable[[], Snapshot]], AbstractContextManager[object]]


def os_description() -> str:
    """``platform.platform()`` crashes under Wine (WMI), so build the string by hand."""
    if sys.platform == "win32":
        version = sys.getwindowsversion()
        return f"Windows-{version.major}.{version.minor}.{version.build}"
    return f"{platform.system()}-{platform.release()}-{platform.machine()}"


def raise_fd_limit(needed: int) -> None:
    """Lift the soft descriptor limit toward the hard one when ``needed`` exceeds it."""
    try:
        import resource
    except ImportError:
        return  # Windows: sockets are not counted against a descriptor limit
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))


@contextmanager
def _sigint_stops(client: LoadClient | StreamClient) -> Iterator[list[str]]:
    """While running, the first Ctrl-C asks the loop to stop; the run then ends normally."""
    reasons: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield reasons
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        reasons.append(f"interrupted ({signal.Signals(signum).name})")
        client.stop_requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield reasons
    finally:
        signal.signal(signal.SIGINT, previous)


def client_config(
    scenario: Scenario, addresses: list[tuple[str, int]], seed: int | None = None
) -> ClientConfig:
    """What the client needs from a scenario, once the target addresses are known."""
    plan = scenario.plan
    connection_phases: list[tuple[float, int, int]] = []
    pool = plan.connections
    if plan.model == "closed" and any(p.connections is not None for p in plan.phases):
        for phase in plan.phases:
            first, last = phase.connections or (plan.connections, plan.connections)
            connection_phases.append((phase.duration, first, last))
        pool = max(max(first, last) for _, first, last in connection_phases)
    idle_windows: list[tuple[float, float]] = []
    phase_start = 0.0
    for phase in plan.phases:
        if phase.idle:
            idle_windows.append((phase_start, phase_start + phase.duration))
        phase_start += phase.duration
    think_times = {p.think_time for p in plan.phases if p.think_time is not None}
    codec_factory, pipeline = codec_for(scenario, addresses)
    return ClientConfig(
        addresses=addresses,
        connections=pool,
        message_size=scenario.message_size.largest,
        recv_mode=scenario.receive,
        receive_buffer=scenario.receive_buffer,
        connect_timeout_s=scenario.timeouts.connect,
        request_timeout_s=scenario.timeouts.request,
        connection_phases=connection_phases,
        think_time_s=max(think_times, default=plan.think_time),
        idle_windows=idle_windows,
        requests_per_connection=plan.requests_per_connection,
        sources=scenario.source_addresses(),
        codec_factory=codec_factory,
        pipeline=pipeline,
        message_sizes=scenario.message_size.sampler(random.Random(seed)),
    )


def codec_for(
    scenario: Scenario, addresses: list[tuple[str, int]]
) -> tuple[Callable[[int], Codec] | None, int]:
    """A codec factory for connection ``i`` (None for echo) and the pipelining depth."""
    options = scenario.protocol_options
    if isinstance(options, HttpSpec):
        http = options

        def make_http(index: int) -> Codec:
            host, port = addresses[index % len(addresses)]
            authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            return Http1Codec(authority, http.method, http.path, http.headers, http.body.encode())

        return make_http, http.pipeline
    if isinstance(options, RedisSpec):
        command = options.command
        return (lambda index: RespCodec(command)), options.pipeline
    return None, 1


def arrival_schedule(scenario: Scenario, seed: int | None = None) -> Iterator[int] | None:
    """Open model: intended send offsets (ns); closed model: None."""
    plan = scenario.plan
    if plan.model != "open":
        return None
    phases = []
    for phase in plan.phases:
        assert phase.rate is not None  # validated: the open model has a rate in every phase
        start, end = phase.rate
        phases.append(RatePhase(phase.duration, start, end, phase.arrivals == "poisson"))
    return arrival_offsets_ns(phases, seed)


def phase_label(scenario: Scenario, elapsed_s: float) -> str:
    """``phase 2/3 (20,000/s)``: where a run is, for the live view."""
    phases = scenario.plan.phases
    start_s = 0.0
    for number, phase in enumerate(phases, 1):
        if elapsed_s < start_s + phase.duration or number == len(phases):
            if phase.rate is not None:
                first, last = phase.rate
                fraction = min(1.0, max(0.0, (elapsed_s - start_s) / phase.duration))
                detail = f" ({first + (last - first) * fraction:,.0f}/s)"
            else:
                detail = " (idle)" if phase.idle else ""
            return f"phase {number}/{len(phases)}{detail}"
        start_s += phase.duration
    return ""


def _snapshot_reader(
    scenario: Scenario, client: LoadClient | StreamClient, recorder: Recorder
) -> Callable[[], Snapshot]:
    """A function the live view's thread calls for the run's numbers right now."""
    last_cpu = [time.process_time(), time.monotonic()]

    def read() -> Snapshot:
        now_cpu, now = time.process_time(), time.monotonic()
        cpu = 100 * (now_cpu - last_cpu[0]) / max(now - last_cpu[1], 1e-9)
        last_cpu[:] = [now_cpu, now]
        elapsed_s = (time.monotonic_ns() - recorder.start_ns) / 1e9
        last = recorder.last_interval
        for _ in range(3):  # the engine's thread may add a kind while we copy
            try:
                errors = dict(recorder.errors)
                break
            except RuntimeError:
                errors = {}
        return Snapshot(
            elapsed_s=elapsed_s,
            duration_s=scenario.plan.duration,
            phase=phase_label(scenario, elapsed_s),
            requests=recorder.requests,
            last_interval_rps=None if last is None else last[0],
            last_p50_us=None if last is None or last[1] is None else last[1] / 1000,
            last_p99_us=None if last is None or last[2] is None else last[2] / 1000,
            errors=errors,
            open_connections=client.open_connections,
            cpu_percent=cpu,
        )

    return read


def _latency(histogram: HdrHistogram, measured: bool) -> LatencySummary | None:
    return LatencySummary.from_histogram(histogram) if measured else None


def run(
    scenario: Scenario,
    *,
    backend: str = "auto",
    notice: Notice | None = None,
    seed: int | None = None,
    live: LiveFactory | None = None,
) -> RunResult:
    """Run a scenario to its end (or to Ctrl-C) and return its result.

    ``live``, when given, is entered around the run with a function that reads the run's
    numbers at any moment (from another thread): the CLI's live view.
    """
    engine = select_backend(backend, notice=notice)
    started_at = datetime.now(UTC)
    plan = scenario.plan
    open_model = plan.model == "open"
    with ExitStack() as stack:
        stack.callback(engine.shutdown)
        builtin = scenario.builtin_target
        addresses = (
            [stack.enter_context(builtin_target(builtin, backend=engine.name))]
            if builtin is not None
            else scenario.target_addresses()
        )
        config = client_config(scenario, addresses, seed)
        raise_fd_limit(config.connections + 64)  # 64: stdio, the engine's own fds, the target
        start_ns = time.monotonic_ns()
        recorder = Recorder(start_ns)
        options = scenario.protocol_options
        client: LoadClient | StreamClient
        if isinstance(options, StreamSpec):  # raw throughput: its own client, same result
            client = StreamClient(engine, config, options, recorder)
        else:
            client = LoadClient(engine, config, recorder, arrival_schedule(scenario, seed))
        cpu_start = time.process_time()
        stop_reason = "completed"
        watching = live(_snapshot_reader(scenario, client, recorder)) if live else nullcontext()
        with _sigint_stops(client) as interrupted, watching:
            try:
                client.run(start_ns + int(plan.duration * 1e9))
            except Exception as exc:  # keep what was measured, then report the failure
                stop_reason = f"failed: {type(exc).__name__}: {exc}"
        end_ns = time.monotonic_ns()
        cpu_s = time.process_time() - cpu_start
        if interrupted:
            stop_reason = interrupted[0]
        in_flight = client.in_flight
        open_connections = client.open_connections
        recorder.finish(end_ns)
        client.close_all()
    duration_s = (end_ns - start_ns) / 1e9
    requests = recorder.latency.total_count
    summary = Summary(
        requests=requests,
        errors=dict(sorted(recorder.errors.items())),
        duration_s=round(duration_s, 6),
        throughput_rps=round(requests / duration_s, 3) if duration_s > 0 else 0.0,
        latency_us=LatencySummary.from_histogram(recorder.latency),
        connect_latency_us=LatencySummary.from_histogram(recorder.connect_latency),
        connections=open_connections,
        connects=recorder.connects,
        bytes_sent=recorder.bytes_sent,
        bytes_received=recorder.bytes_received,
        throughput_bytes_per_s=(
            round((recorder.bytes_sent + recorder.bytes_received) / duration_s, 1)
            if isinstance(client, StreamClient) and duration_s > 0
            else None
        ),
        in_flight_at_end=in_flight,
        latency_corrected_us=_latency(recorder.latency_corrected, open_model),
        schedule_lag_us=_latency(recorder.schedule_lag, open_model),
        waited_for_connection=client.waited_for_connection if open_model else None,
        unsent=client.unsent if open_model else None,
    )
    histograms = {
        "latency": recorder.latency.to_dict(),
        "connect_latency": recorder.connect_latency.to_dict(),
    }
    if open_model:
        histograms["latency_corrected"] = recorder.latency_corrected.to_dict()
        histograms["schedule_lag"] = recorder.schedule_lag.to_dict()
    return RunResult(
        scenario=scenario.to_dict(),
        environment=Environment(
            backend=engine.name,
            recv_mode=scenario.receive,
            os=os_description(),
            python=platform.python_version(),
            loadgen_version=__version__,
            processes=1,
            cpu_count=os.cpu_count(),
            hostname=socket.gethostname(),
        ),
        summary=summary,
        generator=Generator(
            cpu_s=round(cpu_s, 3),
            cpu_percent=round(100 * cpu_s / duration_s, 1) if duration_s > 0 else 0.0,
            loop_iterations=client.loop_iterations,
            max_loop_lag_ms=round(client.max_loop_lag_ns / 1e6, 3),
        ),
        started_at=started_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        partial=stop_reason != "completed",
        stop_reason=stop_reason,
        histograms=histograms,
        intervals=recorder.intervals,
        memory=recorder.memory,
        thresholds=[threshold.check(summary) for threshold in scenario.thresholds],
    )
