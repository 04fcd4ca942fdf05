"""One shard's measurement: its slice of the scenario, from the start instant its channel
gives, on this process's own engine, into a RunResult.

``run_shard(spec, channel)`` is the one entry point every way of running goes through: a
one-process run calls it in-process, ``loadgen.run.processes`` in spawned processes, the
distributed host in its own processes (``loadgen.run.shard`` describes the channels).
A failure inside the client's loop does not lose what was measured: the result is returned,
marked partial, with the failure and its traceback in the stop reason.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from loadgen import __version__
from loadgen.config.plan import LoadPlan
from loadgen.config.protocol_specs import StreamSpec
from loadgen.config.receive import ReceiveMode
from loadgen.engine import select_backend
from loadgen.load.recorder import NamedStats, Recorder
from loadgen.load.requests import LoadClient
from loadgen.load.streams import StreamClient
from loadgen.load.tls_clients import TlsLoadClient, TlsStreamClient
from loadgen.result.model import (
    Environment,
    Generator,
    Interval,
    LatencySummary,
    RequestName,
    RunResult,
    Summary,
)
from loadgen.result.stop import StopKind, StopReason
from loadgen.run.environment import os_description, raise_fd_limit
from loadgen.run.interrupts import interrupts_recorded
from loadgen.run.selfcheck import check as self_check
from loadgen.run.shard import ProcessChannel, ShardChannel, ShardSpec, sleep_until, ticking
from loadgen.run.wiring import check_receive_features, client_config, shard_arrivals
from loadgen.stats.clock import measuring_clock, raised_timer_resolution
from loadgen.stats.cpu import CpuSampler
from loadgen.stats.histogram import HdrHistogram


def _stopper(client: LoadClient | StreamClient) -> Callable[[], None]:
    """A stop signal's action (Ctrl-C, SIGTERM, SIGHUP) on a running client: its loop
    stops, and the run ends normally."""

    def stop() -> None:
        client.stop_requested = True

    return stop


def _latency(histogram: HdrHistogram, measured: bool) -> LatencySummary | None:
    return LatencySummary.from_histogram(histogram) if measured else None


def run_shard(spec: ShardSpec, channel: ShardChannel) -> RunResult:
    """Run one shard to its end (or until stopped) and return its result: its slice of the
    scenario, from the start instant the channel gives, on this process's own engine (with
    ``spec.connect_before_start``, its first connections opened before ``ready``)."""
    scenario, seed = spec.scenario, spec.seed
    engine = select_backend(spec.backend)
    started_at = datetime.now(UTC)
    plan = LoadPlan.from_scenario(scenario)
    open_model = plan.open_model
    clock = measuring_clock()
    with ExitStack() as stack:
        stack.callback(engine.shutdown)
        # Windows: waits end on the system timer's tick; 1 ms for the run instead of 15.6 ms.
        timer_ms = stack.enter_context(raised_timer_resolution())
        check_receive_features(scenario, engine)  # again: a shard may run elsewhere
        addresses = list(spec.addresses)
        config = client_config(scenario, plan, addresses, seed, shard=spec.index, shards=spec.count)
        names = config.request_set.names if config.request_set is not None else []
        raise_fd_limit(config.connections + 64)  # 64: stdio, the engine's own fds, the target
        options = scenario.protocol_options

        tls = config.tls is not None

        def make_client(recorder: Recorder) -> LoadClient | StreamClient:
            # The one TLS branch: a TLS run's clients are the TLS subclasses.
            if isinstance(options, StreamSpec):  # raw throughput: its own client, same result
                streams = TlsStreamClient if tls else StreamClient
                return streams(engine, config, options, recorder)
            arrivals = shard_arrivals(plan, seed, spec.arrival_phase)
            requests = TlsLoadClient if tls else LoadClient
            return requests(engine, config, recorder, arrivals)

        stop = StopReason.completed()
        early: list[StopReason] = []  # Ctrl-C while connecting before the start
        if spec.connect_before_start:
            # Connected before reporting ready: the recorder's start is provisional until
            # the start instant is known (connect latencies and errors of these connects
            # count for the run; the errors land in interval 0).
            recorder = Recorder(time.perf_counter_ns(), names=names)
            client = make_client(recorder)
            with interrupts_recorded(_stopper(client)) as early:
                try:
                    client.preconnect()
                except Exception as exc:  # reported as the run's failure, after ready
                    stop = StopReason.from_exception(exc)
            started_at = datetime.now(UTC)
            start_ns = spec.start_ns if spec.start_ns is not None else channel.ready(spec.index)
            started_at += timedelta(microseconds=(start_ns - time.perf_counter_ns()) / 1000)
            client.rebase(start_ns)
        else:
            start_ns = spec.start_ns if spec.start_ns is not None else channel.ready(spec.index)
            started_at += timedelta(microseconds=(start_ns - time.perf_counter_ns()) / 1000)
            recorder = Recorder(start_ns, names=names)
            client = make_client(recorder)
        sleep_until(start_ns)
        late_ns = time.perf_counter_ns() - start_ns  # the wake-up from the start barrier
        cpu_start = time.process_time()
        watching = ticking(spec, channel, client, recorder)
        cpu = CpuSampler(start_ns, recorder.interval_ns / 1e9)
        with interrupts_recorded(_stopper(client)) as interrupted, watching, cpu:
            try:
                if stop.is_completed and not early:
                    client.run(start_ns + int(plan.duration_s * 1e9))
            except Exception as exc:  # keep what was measured, then report the failure
                stop = StopReason.from_exception(exc)
        end_ns = time.perf_counter_ns()
        cpu_s = time.process_time() - cpu_start
        if early or interrupted:
            stop = (early or interrupted)[0]
        elif client.stop_requested and stop.is_completed:
            stop = StopReason(StopKind.STOPPED, "asked by the coordinator")
        in_flight = client.in_flight
        open_connections = client.open_connections
        recorder.finish(end_ns)
        client.close_all()
    duration_s = (end_ns - start_ns) / 1e9
    requests = recorder.latency.total_count
    summary = Summary(
        requests=requests,
        errors=dict(sorted(recorder.errors.items())),
        error_codes=recorder.error_codes_by_kind(),
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
        tls_handshake_us=_latency(recorder.tls_handshake, tls),
        tls_resumed=recorder.tls_resumed if tls else None,
        error_reasons={kind: dict(reasons) for kind, reasons in recorder.error_reasons.items()},
        failed=recorder.failed,
    )
    histograms = {
        "latency": recorder.latency.to_dict(),
        "connect_latency": recorder.connect_latency.to_dict(),
    }
    if tls:
        histograms["tls_handshake"] = recorder.tls_handshake.to_dict()
    if open_model:
        histograms["latency_corrected"] = recorder.latency_corrected.to_dict()
        histograms["schedule_lag"] = recorder.schedule_lag.to_dict()
    measured = {"latency": recorder.latency}
    if open_model:
        measured["latency_corrected"] = recorder.latency_corrected
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
            clock=clock.implementation,
            clock_resolution_ns=clock.resolution_ns,
            timer_resolution_ms=timer_ms,
        ),
        summary=summary,
        generator=Generator(
            cpu_s=round(cpu_s, 3),
            cpu_percent=cpu_percent,
            loop_iterations=client.loop_iterations,
            max_loop_lag_ms=round(client.max_loop_lag_ns / 1e6, 3),
            ring_enobufs=client.ring_enobufs
            if scenario.receive == ReceiveMode.BUFFER_RING
            else None,
            start_late_ms=round(late_ns / 1e6, 3),
        ),
        started_at=started_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        partial=not stop.is_completed,
        stop=stop,
        histograms=histograms,
        intervals=intervals,
        memory=recorder.memory,
        thresholds=[
            threshold.check(summary, {"connect_latency": recorder.connect_latency, **measured})
            for threshold in scenario.thresholds
        ],
        requests_by_name=[_named(stats, open_model) for stats in recorder.by_name],
        self_check=self_check(
            summary,
            processes=processes,
            cpu_percent=cpu_percent,
            interval_cpu=interval_cpu,
            runnable_percent=cpu.shares(0.0, duration_s)[1],
            interval_runnable=interval_runnable,
            clock_resolution_ns=clock.resolution_ns,
        ),
    )


def _named(stats: NamedStats, open_model: bool) -> RequestName:
    """One request name's part of the result (its histograms kept for an exact merge)."""
    histograms = {"latency": stats.latency.to_dict()}
    if open_model:
        histograms["latency_corrected"] = stats.latency_corrected.to_dict()
    return RequestName(
        name=stats.name,
        requests=stats.latency.total_count,
        failed=stats.failed,
        errors=dict(sorted(stats.errors.items())),
        latency_us=LatencySummary.from_histogram(stats.latency),
        latency_corrected_us=_latency(stats.latency_corrected, open_model),
        histograms=histograms,
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


def shard_process_main(spec: ShardSpec, channel: ProcessChannel) -> None:
    """The body of a shard process: run, then hand the result (or the failure) back."""
    try:
        result = run_shard(spec, channel)
    except BaseException as exc:
        channel.messages.put(("error", spec.index, StopReason.from_exception(exc)))
        raise SystemExit(1) from None
    channel.messages.put(("result", spec.index, result))
