"""What a shard builds from its slice of a scenario before it runs: the client's
configuration, a codec per connection, the open model's arrival schedule, and the check that
the chosen backend has the receive features the scenario asks for.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from loadgen.config.receive import ReceiveMode
from loadgen.config.scenario import HttpSpec, RedisSpec, Scenario, check_receive
from loadgen.config.schedule import ArrivalSchedule, RatePhase
from loadgen.engine import Backend
from loadgen.engine.base import FeatureUnavailable
from loadgen.load.client_config import ClientConfig
from loadgen.load.tls import TlsConfig
from loadgen.protocols.base import Codec
from loadgen.protocols.http1 import Http1Codec
from loadgen.protocols.resp import RespCodec


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
        tls=tls_config(scenario),
    )


def tls_config(scenario: Scenario) -> TlsConfig | None:
    """The ``tls:`` section for the client (None without TLS). The server name (SNI, and
    what the certificate must name) is ``tls.server_name``, else each target's host as the
    scenario writes it, before any name is resolved."""
    tls = scenario.tls
    if not tls.enabled:
        return None
    if tls.server_name is not None:
        names = [tls.server_name]
    else:
        names = [host for host, _port in scenario.target_addresses()]
    return TlsConfig(
        server_names=names,
        verify=tls.verify,
        ca_file=tls.ca_file,
        client_cert=tls.client_cert,
        client_key=tls.client_key,
        alpn=("http/1.1",) if scenario.protocol_name == "http" else (),
        min_version=tls.min_version,
        session_resumption=tls.session_resumption,
        handshake_timeout_s=scenario.timeouts.connect,
    )


def check_receive_features(scenario: Scenario, engine: Backend) -> None:
    """Refuse, before anything starts, a receive mode the chosen backend does not have."""
    problem = check_receive(scenario)
    if problem:
        raise FeatureUnavailable(f"{problem[0]}: {problem[1]}")
    if scenario.receive == ReceiveMode.BUFFER_RING and not engine.supports_buffer_ring:
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


def arrival_schedule(
    scenario: Scenario, seed: int | None = None, shift_ns: int = 0
) -> ArrivalSchedule | None:
    """Open model: the intended send times, started ``shift_ns`` late (a shard's place in
    the interleaving) and cut at the run's end; closed model: None."""
    plan = scenario.plan
    if plan.model != "open":
        return None
    phases = []
    for phase in plan.phases:
        assert phase.rate is not None  # validated: the open model has a rate in every phase
        start, end = phase.rate
        phases.append(RatePhase(phase.duration, start, end, phase.arrivals == "poisson"))
    return ArrivalSchedule(phases, seed, shift_ns, end_ns=round(plan.duration * 1e9))


def first_gap_ns(scenario: Scenario) -> int:
    """Open model, constant arrivals: the gap between this shard's first two sends (0 if
    none: closed model, Poisson arrivals or a ramp from zero)."""
    plan = scenario.plan
    if plan.model != "open":
        return 0
    first = plan.phases[0]
    if first.arrivals != "constant" or first.rate is None or first.rate[0] <= 0:
        return 0
    return int(1e9 / first.rate[0])
