"""What a shard builds from its slice of a scenario before it runs: the client's
configuration (from the scenario and its ``LoadPlan``), a codec per connection, the open
model's arrival schedule shifted to interleave with other shards', and the check that the
chosen backend has the receive features the scenario asks for.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from loadgen.config.http import HttpSpec
from loadgen.config.plan import LoadPlan
from loadgen.config.protocol_specs import RedisSpec
from loadgen.config.receive import ReceiveMode
from loadgen.config.scenario import Scenario, check_receive
from loadgen.config.schedule import ArrivalSchedule
from loadgen.engine import Backend
from loadgen.engine.base import FeatureUnavailable
from loadgen.load.client_config import ClientConfig
from loadgen.load.request_set import RequestSet
from loadgen.load.tls import TlsConfig
from loadgen.protocols.base import Codec
from loadgen.protocols.http1 import Http1Codec
from loadgen.protocols.resp import RespCodec


def client_config(
    scenario: Scenario,
    plan: LoadPlan,
    addresses: list[tuple[str, int]],
    seed: int | None = None,
    shard: int = 0,
    shards: int = 1,
) -> ClientConfig:
    """What the client needs from a scenario and its plan, once the target addresses are
    known (this is shard ``shard`` of ``shards``: run-wide sequences interleave by it)."""
    codec_factory, pipeline = codec_for(scenario, addresses)
    http = scenario.protocol.http
    request_set = None
    if http is not None:
        request_set = RequestSet(
            http,
            target_authorities(scenario, addresses),
            pipeline=http.pipeline,
            seed=seed,
            shard=shard,
            shards=shards,
        )
    return ClientConfig(
        addresses=addresses,
        connections=plan.peak_connections,
        message_size=scenario.message_size.largest,
        recv_mode=scenario.receive,
        receive_buffer=scenario.receive_buffer,
        connect_timeout_s=scenario.timeouts.connect,
        request_timeout_s=scenario.timeouts.request,
        connection_phases=plan.connection_phases,
        think_times=plan.think_times,
        idle_windows=plan.idle_windows,
        requests_per_connection=plan.requests_per_connection,
        sources=scenario.source_addresses(),
        codec_factory=codec_factory,
        pipeline=pipeline,
        message_sizes=scenario.message_size.sampler(random.Random(seed)),
        ring_buffers=scenario.ring_buffer_count,
        register_buffers=scenario.register_buffers,
        close_rst=scenario.close == "rst",
        tls=tls_config(scenario),
        request_set=None if request_set is None or request_set.fixed else request_set,
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
        authorities = target_authorities(scenario, addresses)
        expected = http.expect.ranges
        # The codec parses the responses; its own request is the scenario's one request
        # (a request set's connections send theirs from the set: load.request_set). Its
        # method matters: a HEAD response has no body on the wire.
        method = http.request_list()[0].method
        fixed = http.fixed_request

        def make_http(index: int) -> Codec:
            authority = authorities[index % len(authorities)]
            if fixed:
                body = http.body.encode()
                return Http1Codec(
                    authority,
                    http.method,
                    http.path,
                    http.headers,
                    body,
                    expected,
                    max_body_bytes=http.max_body,
                )
            return Http1Codec(authority, method, expected=expected, max_body_bytes=http.max_body)

        return make_http, http.pipeline
    if isinstance(options, RedisSpec):
        command = options.command
        max_reply = options.max_reply
        return (lambda index: RespCodec(command, max_reply)), options.pipeline
    return None, 1


def target_authorities(scenario: Scenario, addresses: list[tuple[str, int]]) -> list[str]:
    """The HTTP ``Host`` of each target: as the scenario wrote it (a URL's host), or for a
    built-in target the address it listens on."""
    if scenario.builtin_target is None:
        return scenario.target_authorities()
    return [f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in addresses]


def shard_arrivals(
    plan: LoadPlan, seed: int | None, arrival_phase: float
) -> ArrivalSchedule | None:
    """Open model: this shard's arrival schedule, started ``arrival_phase`` of its first gap
    late (``split.arrival_phase``: constant schedules of several shards interleave) and cut
    at the run's end; closed model: None."""
    if not plan.open_model:
        return None
    shift_ns = int(arrival_phase * plan.first_gap_ns)
    end_ns = round(plan.duration_s * 1e9)
    return ArrivalSchedule(plan.rate_phases(), seed, shift_ns, end_ns)
