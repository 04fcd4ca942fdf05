"""A built-in target on several processes, all accepting on one port (SO_REUSEPORT).

One Python process serves about one core's worth of requests; a benchmark whose target is
loadgen's own server must not be limited by it. Linux lets several sockets listen on one
address when each sets SO_REUSEPORT before ``bind`` (same user), and then spreads incoming
connections over them by a hash of the connection's addresses and ports, so each process
gets about an equal share of the connections (not of the requests: a busy connection stays
with the process that accepted it).

The first process listens (port 0 picks the port) and starts the others with
multiprocessing's spawn (a fresh interpreter: no forked engine state, and the same on every
OS); each worker makes its own engine and listens on the same port, reports ready, and
serves until the first one stops (or dies). ``listening on`` is printed only when every
worker listens, so a client never connects to a half-started target.

Windows has no SO_REUSEPORT (its SO_REUSEADDR lets one socket take over another's port and
spreads nothing): there the target stays one process, and ``reuse_port_supported()`` says so.
"""

from __future__ import annotations

import importlib
import multiprocessing
import queue
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from typing import Any, Protocol

from loadgen.engine import Backend, select_backend

#: Built-in target name -> (module, class) of its server.
SERVERS = {
    "echo": ("loadgen.targets.echo", "EchoServer"),
    "http": ("loadgen.targets.http", "HttpServer"),
    "stream": ("loadgen.targets.stream", "StreamServer"),
}
#: A spawned interpreter imports numpy and the engine in about a second; Wine takes longer.
WORKER_START_TIMEOUT_S = 60.0
WINDOWS_NOTE = (
    "Windows has no SO_REUSEPORT: the built-in target runs in one process "
    "(processes for it ignored)"
)


class Server(Protocol):
    address: tuple[str, int]

    def serve(self, on_tick: Any = None, tick_s: float = 0.2) -> None: ...

    def stop(self) -> None: ...


def reuse_port_supported() -> bool:
    """True where several processes can share a listening port with load spreading."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def make_server(
    name: str, engine: Backend, host: str, port: int, *, reuse_port: bool = False
) -> Server:
    module, cls = SERVERS[name]
    factory = getattr(importlib.import_module(module), cls)
    server: Server = factory(engine, host, port, reuse_port=reuse_port)
    return server


def _worker(
    name: str, backend: str, host: str, port: int, ready: Any, stop: Event, index: int
) -> None:
    """One more process serving ``name`` on ``host:port`` (SO_REUSEPORT) until ``stop``."""
    for signal_name in (
        "SIGINT",
        "SIGTERM",
        "SIGHUP",
        "SIGBREAK",
    ):  # the first process owns the target's life
        if hasattr(signal, signal_name):
            signal.signal(getattr(signal, signal_name), signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    try:
        engine = select_backend(backend)
        server = make_server(name, engine, host, port, reuse_port=True)
    except Exception as exc:
        ready.put((index, f"{type(exc).__name__}: {exc}"))
        return
    ready.put((index, None))

    def check() -> None:
        if stop.is_set() or (parent is not None and not parent.is_alive()):
            server.stop()

    try:
        server.serve(on_tick=check)
    finally:
        engine.shutdown()


class ScaledServer:
    """``processes`` servers of one kind on one port; ``serve()`` serves in this process."""

    def __init__(self, name: str, engine: Backend, host: str, port: int, processes: int) -> None:
        self.processes = processes
        self._first = make_server(name, engine, host, port, reuse_port=True)
        self.address = self._first.address
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        ready = context.Queue()
        self._workers: list[BaseProcess] = []
        try:
            for index in range(1, processes):
                worker = context.Process(
                    target=_worker,
                    args=(
                        name,
                        engine.name,
                        self.address[0],
                        self.address[1],
                        ready,
                        self._stop,
                        index,
                    ),
                    name=f"loadgen-target-{name}-{index}",
                    daemon=True,
                )
                worker.start()
                self._workers.append(worker)
            self._await_ready(ready)
        except BaseException:
            self._end_workers()
            self._first.stop()
            raise

    def _await_ready(self, ready: Any) -> None:
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        waiting = len(self._workers)
        while waiting:
            try:
                index, problem = ready.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise OSError(
                    f"built-in target workers did not start within {WORKER_START_TIMEOUT_S:.0f} s"
                ) from None
            if problem is not None:
                raise OSError(f"built-in target worker {index} could not listen: {problem}")
            waiting -= 1

    def serve(self, on_tick: Any = None, tick_s: float = 0.2) -> None:
        try:
            self._first.serve(on_tick=on_tick, tick_s=tick_s)
        finally:
            self._end_workers()

    def stop(self) -> None:
        self._first.stop()
        self._stop.set()

    def _end_workers(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(5)
            if worker.is_alive():
                worker.kill()
                worker.join()
