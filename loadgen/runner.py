"""Wires a scenario, an engine, a load client (request/response or stream) and a recorder
into a RunResult.

``run()`` never lets a target's behaviour become a crash: refused, reset or silent targets
are counted by error kind. Ctrl-C (SIGINT) ends the run early and the result is still
returned, marked ``partial``. Only a failure of loadgen itself (no backend, a built-in
target that cannot start, no shard process that produced anything) raises, and so does a
receive feature the chosen backend lacks (``receive: buffer-ring`` or ``register_buffers``
off io_uring): ``FeatureUnavailable``, before the target starts, naming the backend.

``run()`` starts the built-in target (if any), splits the scenario into shards, runs them
(in this process for one, as spawned processes for more: ``loadgen.workers``) and merges
their results. ``measure()`` is one shard's run, reached through ``shard.run_shard``.
"""

from __future__ import annotations

import os
import platform
import random
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from loadgen import __version__
from loadgen.client import ClientConfig, LoadClient
from loadgen.engine import Backend, select_backend
from loadgen.engine.base import FeatureUnavailable
from loadgen.interrupts import sigint_recorded
from loadgen.protocols.base import Codec
from loadgen.protocols.http1 import Http1Codec
from loadgen.protocols.resp import RespCodec
from loadgen.report.live import Snapshot
from loadgen.result import Environment, Generator, Interval, LatencySummary, RunResult, Summary
from loadgen.scenario import HttpSpec, RedisSpec, Scenario, StreamSpec, check_receive
from loadgen.schedule import RatePhase, arrival_offsets_ns
from loadgen.selfcheck import check as self_check
from loadgen.stats.cpu import CpuSampler
from loadgen.stats.histogram import HdrHistogram
from loadgen.stats.recorder import Recorder
from loadgen.streams import StreamClient
from loadgen.targets.process import builtin_target

if TYPE_CHECKING:
    from loadgen.shard import ShardChannel, ShardSpec

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


def _stopper(client: LoadClient | StreamClient) -> Callable[[], None]:
    """Ctrl-C's action on a running client: its loop stops, and the run ends normally."""

    def stop() -> None:
        client.stop_requested = True

    return stop


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
        ring_buffers=scenario.ring_buffer_count,
        register_buffers=scenario.register_buffers,
        close_rst=scenario.close == "rst",
    )


def check_receive_features(scenario: Scenario, engine: Backend) -> None:
    """Refuse, before anything starts, a receive mode the chosen backend does not have."""
    problem = check_receive(scenario)
    if problem:
        raise FeatureUnavailable(f"{problem[0]}: {problem[1]}")
    if scenario.receive == "buffer-ring" and not engine.supports_buffer_ring:
        raise FeatureUnavailable(
            f"receive: buffer-ring needs the io_uring backend (Linux 6.1 or later): the "
            f"{engine.name} backend has no provided-buffer ring; run with --backend io_uring "
            "where it works, or choose receive: buffered or zero-byte"
        )
    if scenario.register_buffers and not engine.supports_fixed_buffers:
        raise FeatureUnavailable(
            f"register_buffers needs the io_uring backend: the {engine.name} backend cannot "
            "register receive buffers with the kernel; drop register_buffers or run with "
            "--backend io_uring"
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


def _latency(histogram: HdrHistogram, measured: bool) -> LatencySummary | None:
    return LatencySummary.from_histogram(histogram) if measured else None


def run(
    scenario: Scenario,
    *,
    backend: str = "auto",
    notice: Notice | None = None,
    seed: int | None = None,
    live: LiveFactory | None = None,
    processes: int = 1,
    target_processes: int = 1,
) -> RunResult:
    """Run a scenario to its end (or to Ctrl-C) and return its result.

    ``live``, when given, is entered around the run with a function that reads the run's
    numbers at any moment (from another thread): the CLI's live view.

    ``processes`` > 1 splits the load over that many shard processes (``loadgen.workers``)
    and merges their results; 1 runs the one shard in this process. ``target_processes``
    is how many processes a built-in target serves on (SO_REUSEPORT; 1 on Windows).
    """
    from loadgen.report.live import TickBoard
    from loadgen.shard import LocalChannel, run_shard
    from loadgen.split import usable_processes
    from loadgen.workers import run_processes, shard_specs

    engine = select_backend(backend, notice=notice)
    engine_name = engine.name
    try:
        check_receive_features(scenario, engine)
    finally:
        engine.shutdown()  # each shard makes its own; this one resolved "auto" (and told why)
    usable = usable_processes(scenario, processes)
    if usable < processes and notice is not None:
        notice(f"{usable} processes, not {processes}: the scenario has {usable} connections")
    processes = usable
    with ExitStack() as stack:
        builtin = scenario.builtin_target
        if builtin is not None:
            target_processes = builtin_processes(target_processes, notice)
        addresses = (
            [
                stack.enter_context(
                    builtin_target(builtin, backend=engine_name, processes=target_processes)
                )
            ]
            if builtin is not None
            else scenario.target_addresses()
        )
        specs = shard_specs(scenario, processes, engine_name, addresses, seed)
        board = TickBoard(
            processes, scenario.plan.duration, lambda elapsed: phase_label(scenario, elapsed)
        )
        watching = live(board.snapshot) if live else nullcontext()
        with watching:
            if processes == 1:
                channel = LocalChannel(board.add if live else None)
                result = run_shard(specs[0], channel)
                board.retire(0)
            else:
                result = run_processes(specs, scenario, board)
    if processes == 1:  # the one slice is the whole scenario: keep its own spelling
        result = replace(result, scenario=scenario.to_dict())
    if builtin is not None:
        result = replace(
            result, environment=replace(result.environment, target_processes=target_processes)
        )
    return result


def default_processes(
    scenario: Scenario, processes: int | None, target_processes: int | None = None
) -> tuple[int, int]:
    """(client processes, built-in target processes) for ``loadgen run``.

    Against a network target every core runs a client process. A built-in target shares
    this machine's cores with the client: each side does about the same work per request
    (a receive and a send; measured here: ~13 µs of CPU each per 64 B echo on a busy VM),
    so the cores are split evenly between the two rather than oversubscribed (on 2 cores:
    one client process and one target process; README has the measurements).
    ``--processes N`` sets the client's count; the target then gets the cores left (at
    least one) unless ``--target-processes`` says otherwise.
    """
    cores = os.cpu_count() or 1
    if scenario.builtin_target is None:
        return (processes or cores), 1
    from loadgen.targets.scaled import reuse_port_supported

    client = processes or max(1, cores // 2)
    left = max(1, cores - client) if reuse_port_supported() else 1  # Windows: one, silently
    return client, target_processes or left


def builtin_processes(wanted: int, notice: Notice | None) -> int:
    """How many processes a built-in target can have here (1 where SO_REUSEPORT is not)."""
    from loadgen.targets.scaled import WINDOWS_NOTE, reuse_port_supported

    if wanted > 1 and not reuse_port_supported():
        if notice is not None:
            notice(WINDOWS_NOTE)
        return 1
    return max(1, wanted)


def measure(spec: ShardSpec, channel: ShardChannel) -> RunResult:
    """Run one shard (``loadgen.shard.run_shard``): its slice of the scenario, from the
    start instant the channel gives, on this process's own engine (with
    ``spec.connect_before_start``, its first connections opened before ``ready``)."""
    from loadgen.shard import first_gap_ns, shifted, sleep_until, ticking

    scenario, seed = spec.scenario, spec.seed
    engine = select_backend(spec.backend)
    started_at = datetime.now(UTC)
    plan = scenario.plan
    open_model = plan.model == "open"
    with ExitStack() as stack:
        stack.callback(engine.shutdown)
        check_receive_features(scenario, engine)  # again: a shard may run elsewhere
        addresses = list(spec.addresses)
        config = client_config(scenario, addresses, seed)
        raise_fd_limit(config.connections + 64)  # 64: stdio, the engine's own fds, the target
        options = scenario.protocol_options

        def make_client(recorder: Recorder) -> LoadClient | StreamClient:
            if isinstance(options, StreamSpec):  # raw throughput: its own client, same result
                return StreamClient(engine, config, options, recorder)
            arrivals = arrival_schedule(scenario, seed)
            shift_ns = int(spec.arrival_phase * first_gap_ns(scenario))
            if arrivals is not None and shift_ns:
                arrivals = shifted(arrivals, shift_ns, int(plan.duration * 1e9))
            return LoadClient(engine, config, recorder, arrivals)

        stop_reason = "completed"
        early: list[str] = []  # Ctrl-C while connecting before the start
        if spec.connect_before_start:
            # Connected before reporting ready: the recorder's start is provisional until
            # the start instant is known (connect latencies and errors of these connects
            # count for the run; the errors land in interval 0).
            recorder = Recorder(time.monotonic_ns())
            client = make_client(recorder)
            with sigint_recorded(_stopper(client)) as early:
                try:
                    client.preconnect()
                except Exception as exc:  # reported as the run's failure, after ready
                    stop_reason = f"failed: {type(exc).__name__}: {exc}"
            started_at = datetime.now(UTC)
            start_ns = spec.start_ns if spec.start_ns is not None else channel.ready(spec.index)
            started_at += timedelta(microseconds=(start_ns - time.monotonic_ns()) / 1000)
            client.rebase(start_ns)
        else:
            start_ns = spec.start_ns if spec.start_ns is not None else channel.ready(spec.index)
            started_at += timedelta(microseconds=(start_ns - time.monotonic_ns()) / 1000)
            recorder = Recorder(start_ns)
            client = make_client(recorder)
        sleep_until(start_ns)
        late_ns = time.monotonic_ns() - start_ns  # the wake-up from the start barrier
        cpu_start = time.process_time()
        watching = ticking(spec, channel, client, recorder)
        cpu = CpuSampler(start_ns, recorder.interval_ns / 1e9)
        with sigint_recorded(_stopper(client)) as interrupted, watching, cpu:
            try:
                if stop_reason == "completed" and not early:
                    client.run(start_ns + int(plan.duration * 1e9))
            except Exception as exc:  # keep what was measured, then report the failure
                stop_reason = f"failed: {type(exc).__name__}: {exc}"
        end_ns = time.monotonic_ns()
        cpu_s = time.process_time() - cpu_start
        if early or interrupted:
            stop_reason = (early or interrupted)[0]
        elif client.stop_requested and stop_reason == "completed":
            stop_reason = "stopped by the coordinator"
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
    intervals, interval_cpu, interval_runnable = _with_cpu(recorder.intervals, cpu)
    processes = 1
    cpu_percent = round(100 * cpu_s / duration_s, 1) if duration_s > 0 else 0.0
    return RunResult(
        scenario=scenario.to_dict(),
        environment=Environment(
            backend=engine.name,
            recv_mode=scenario.receive,
            recv_options=scenario.receive_options(),
            os=os_description(),
            python=platform.python_version(),
            loadgen_version=__version__,
            processes=processes,
            cpu_count=os.cpu_count(),
            hostname=socket.gethostname(),
        ),
        summary=summary,
        generator=Generator(
            cpu_s=round(cpu_s, 3),
            cpu_percent=cpu_percent,
            loop_iterations=client.loop_iterations,
            max_loop_lag_ms=round(client.max_loop_lag_ns / 1e6, 3),
            ring_enobufs=client.ring_enobufs if scenario.receive == "buffer-ring" else None,
            start_late_ms=round(late_ns / 1e6, 3),
        ),
        started_at=started_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        partial=stop_reason != "completed",
        stop_reason=stop_reason,
        histograms=histograms,
        intervals=intervals,
        memory=recorder.memory,
        thresholds=[threshold.check(summary) for threshold in scenario.thresholds],
        self_check=self_check(
            summary,
            processes=processes,
            cpu_percent=cpu_percent,
            interval_cpu=interval_cpu,
            runnable_percent=cpu.shares(0.0, duration_s)[1],
            interval_runnable=interval_runnable,
        ),
    )


def _with_cpu(
    intervals: list[Interval], cpu: CpuSampler
) -> tuple[list[Interval], list[float | None], list[float | None]]:
    """Each interval with the generator's CPU share in it, and the shares of the full-length
    intervals (CPU, runnable) for the self-check's busiest window."""
    filled, cpu_shares, runnable_shares = [], [], []
    full_s = cpu.period_ns / 1e9
    for interval in intervals:
        share, runnable = cpu.shares(interval.start_s, interval.start_s + interval.duration_s)
        filled.append(replace(interval, cpu_percent=share))
        if interval.duration_s >= full_s * 0.999:
            cpu_shares.append(share)
            runnable_shares.append(runnable)
    return filled, cpu_shares, runnable_shares
