"""What a client needs to know of its slice of a scenario, resolved to plain values (the run
layer builds it: ``loadgen.run.wiring.client_config``). Both clients take it: the request
client (``requests``) all of it, the stream client (``streams``) the pool, receive and
timeout settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loadgen.config.receive import ReceiveMode
from loadgen.load.tls import TlsConfig
from loadgen.protocols.base import Codec

if TYPE_CHECKING:  # an annotation only: importing it loads the HTTP schema (~0.15 s of CPU)
    from loadgen.load.request_set import RequestSet


@dataclass(frozen=True)
class ClientConfig:
    addresses: Sequence[tuple[str, int]]  # connection i goes to addresses[i % len]
    connections: int  # the pool: the most connections any phase asks for
    message_size: int  # echo: the largest message
    recv_mode: ReceiveMode
    receive_buffer: int  # buffered: per connection; buffer-ring: per ring buffer
    connect_timeout_s: float
    request_timeout_s: float
    #: Closed model: (duration_s, connections at start, at end) per phase; empty = constant.
    connection_phases: Sequence[tuple[float, int, int]] = ()
    #: (end_s, think_s) per phase, in order (``LoadPlan.think_times``): after a response a
    #: connection waits the think time of the phase the response came in; the last holds
    #: past its end. Empty: no think time.
    think_times: Sequence[tuple[float, float]] = ()
    #: Closed model: (start_s, end_s) stretches of idle phases, in which connections open
    #: (and keep their receive posted) but send nothing; they start when the stretch ends.
    idle_windows: Sequence[tuple[float, float]] = ()
    requests_per_connection: int | None = None
    sources: Sequence[str] = field(default_factory=tuple)  # local addresses, spread like targets
    #: Request/response protocol: a codec per connection (None: verified echo).
    codec_factory: Callable[[int], Codec] | None = None
    pipeline: int = 1  # requests sent back to back per exchange (not for echo)
    message_sizes: Callable[[], int] | None = None  # echo: draws a size per request
    ring_buffers: int = 256  # buffer-ring: buffers in the ring (a power of two)
    register_buffers: bool = False  # buffered: register the buffers with the kernel
    close_rst: bool = False  # close: rst: every close an abort (no TIME_WAIT)
    tls: TlsConfig | None = None  # TLS on every connection (None: plain TCP)
    #: HTTP request sets and variables: what each connection sends per exchange (None:
    #: the codec's one fixed request).
    request_set: RequestSet | None = None
