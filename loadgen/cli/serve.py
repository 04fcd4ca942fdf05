"""``loadgen serve echo|http|stream``: run a built-in target until Ctrl-C."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Annotated, Protocol

import typer

from loadgen.cli.common import EXIT_USAGE, BackendOption, Command, Group, errors, examples, fail
from loadgen.engine import Backend, BackendUnavailable, select_backend
from loadgen.engine.iocp import DEFAULT_ACCEPT_POOL, IocpBackend

_CONTEXT = {"help_option_names": ["-h", "--help"]}
serve_app = typer.Typer(
    help="Run a built-in target server.",
    no_args_is_help=True,
    cls=Group,
    context_settings=_CONTEXT,
    epilog=examples("loadgen serve echo --port 7000", "loadgen serve http --host 0.0.0.0"),
)

StopOption = Annotated[
    bool, typer.Option(hidden=True, help="Stop when stdin closes (for a parent process).")
]
HostOption = Annotated[str, typer.Option(metavar="ADDRESS", help="Address to listen on.")]
PortOption = Annotated[int, typer.Option(metavar="PORT", help="Port (0 picks a free one).")]
AcceptPoolOption = Annotated[
    int,
    typer.Option(
        "--accept-pool",
        min=1,
        help="IOCP (Windows): AcceptEx kept posted per listener, so a connect burst is "
        "accepted instead of reset. Other backends accept from the kernel's backlog.",
    ),
]
ServeProcessesOption = Annotated[
    int,
    typer.Option(
        "--processes",
        min=1,
        metavar="N",
        help="Processes accepting on the one port, at least 1 (SO_REUSEPORT; Linux only, else 1).",
    ),
]


@serve_app.command(
    "echo",
    cls=Command,
    context_settings=_CONTEXT,
    epilog=examples("loadgen serve echo --port 7000 --processes 2"),
)
def serve_echo(
    host: HostOption = "127.0.0.1",
    port: PortOption = 0,
    backend: BackendOption = "auto",
    stop_on_stdin_eof: StopOption = False,
    processes: ServeProcessesOption = 1,
    accept_pool: AcceptPoolOption = DEFAULT_ACCEPT_POOL,
) -> None:
    """Serve echo on the engine; prints `listening on HOST:PORT`."""
    from loadgen.targets.echo import EchoServer

    _serve_builtin(
        EchoServer, host, port, backend, stop_on_stdin_eof, processes, "echo", accept_pool
    )


@serve_app.command(
    "http",
    cls=Command,
    context_settings=_CONTEXT,
    epilog=examples("loadgen serve http --port 8080   (then GET /bytes/512, /delay/10, ...)"),
)
def serve_http(
    host: HostOption = "127.0.0.1",
    port: PortOption = 0,
    backend: BackendOption = "auto",
    stop_on_stdin_eof: StopOption = False,
    processes: ServeProcessesOption = 1,
    accept_pool: AcceptPoolOption = DEFAULT_ACCEPT_POOL,
    capacity: Annotated[
        str | None,
        typer.Option(
            "--capacity",
            metavar="RATE",
            help="Serve as one worker answering one request at a time, in arrival order, "
            "each taking 1/RATE (e.g. 2000/s: 500 µs): a target with a known capacity "
            "(an M/D/1 queue under Poisson arrivals).",
        ),
    ] = None,
) -> None:
    """Serve HTTP/1.1 on the engine (/status/N, /bytes/N, /chunked/N, /delay/MS, /close);
    prints `listening on HOST:PORT`."""
    from functools import partial

    from loadgen.config.units import parse_rate_per_s
    from loadgen.targets.http import HttpServer

    make: Callable[..., _BuiltinServer] = HttpServer
    if capacity is not None:
        try:
            rate = parse_rate_per_s(capacity)
        except ValueError as exc:
            raise fail(f"--capacity: {exc}", EXIT_USAGE) from None
        if rate <= 0:
            raise fail(f"--capacity: a capacity must be above 0/s, got {capacity}", EXIT_USAGE)
        if processes > 1:
            raise fail(
                "--capacity is one worker's: it cannot be split over --processes "
                f"{processes} (each process would be a worker of its own)",
                EXIT_USAGE,
            )
        make = partial(HttpServer, service_time_ns=max(1, round(1e9 / rate)))
    _serve_builtin(make, host, port, backend, stop_on_stdin_eof, processes, "http", accept_pool)


@serve_app.command(
    "stream",
    cls=Command,
    context_settings=_CONTEXT,
    epilog=examples("loadgen serve stream --port 9000"),
)
def serve_stream(
    host: HostOption = "127.0.0.1",
    port: PortOption = 0,
    backend: BackendOption = "auto",
    stop_on_stdin_eof: StopOption = False,
    processes: ServeProcessesOption = 1,
    accept_pool: AcceptPoolOption = DEFAULT_ACCEPT_POOL,
) -> None:
    """Serve the stream patterns (push, pull, pushpull, duplex) on the engine; prints
    `listening on HOST:PORT`."""
    from loadgen.targets.stream import StreamServer

    _serve_builtin(
        StreamServer, host, port, backend, stop_on_stdin_eof, processes, "stream", accept_pool
    )


class _BuiltinServer(Protocol):
    address: tuple[str, int]

    def serve(self) -> None: ...

    def stop(self) -> None: ...


def _serve_builtin(
    make: Callable[[Backend, str, int], _BuiltinServer],
    host: str,
    port: int,
    backend: str,
    stop_on_stdin_eof: bool,
    processes: int = 1,
    name: str = "",
    accept_pool: int = DEFAULT_ACCEPT_POOL,
) -> None:
    """Run a built-in target until Ctrl-C (or stdin's end, for a parent process)."""
    from loadgen.run.environment import raise_fd_limit
    from loadgen.run.interrupts import STOP_SIGNAL_NAMES
    from loadgen.targets.scaled import WINDOWS_NOTE, ScaledServer, reuse_port_supported

    if processes > 1 and not reuse_port_supported():
        errors.print(WINDOWS_NOTE, highlight=False)
    elif processes > 1:
        make = lambda engine, host, port: ScaledServer(name, engine, host, port, processes)  # noqa: E731

    try:
        engine = select_backend(backend, notice=lambda m: errors.print(m))
    except BackendUnavailable as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    raise_fd_limit(1 << 20)
    if isinstance(engine, IocpBackend):
        engine.accept_pool = accept_pool
    try:
        server = make(engine, host, port)
    except OSError as exc:
        engine.shutdown()
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1) from None
    if stop_on_stdin_eof:
        # The parent owns our life: Ctrl-C (Ctrl-Break) in its terminal, or a SIGTERM or
        # SIGHUP sent to its whole process group (``timeout``, a closed terminal), is its to
        # handle: it keeps measuring its partial result against us, then closes our stdin.
        for signal_name in STOP_SIGNAL_NAMES:
            if hasattr(signal, signal_name):
                signal.signal(getattr(signal, signal_name), signal.SIG_IGN)

        def watch_stdin() -> None:
            sys.stdin.read()
            server.stop()

        threading.Thread(target=watch_stdin, daemon=True).start()
    else:
        # Ctrl-C (or Ctrl-Break, SIGTERM, SIGHUP) asks the loop to stop (it looks every
        # tick) instead of raising inside it or ending the process where it stands.
        for signal_name in STOP_SIGNAL_NAMES:
            if hasattr(signal, signal_name):
                signal.signal(getattr(signal, signal_name), lambda signum, frame: server.stop())
    host_text = f"[{server.address[0]}]" if ":" in server.address[0] else server.address[0]
    print(f"listening on {host_text}:{server.address[1]}", flush=True)
    try:
        server.serve()
    finally:
        engine.shutdown()
