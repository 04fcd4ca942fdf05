"""Echo round-trip benchmark: loadgen's engines against plain Python clients, in one go.

Every client does the same work against the same server: 1,000 connections, 64-byte
messages, one message in flight per connection, one client process. Each client first opens
all its connections (nothing sent); then the measured window starts: every connection sends
its first message and the client runs for a fixed time. Only that window counts, for the
round trips and for the client's CPU time: interpreter start, imports and connecting are
left out (they cost the Python clients tens of milliseconds, which a 3 s window would
charge against them). The server is a small C epoll program (benchmarks/echo_server.c,
built here with the system C compiler) so the client, not the server, is the limit; if no
compiler is present, loadgen's own echo target on epoll stands in and the figures say so.
With two or more allowed cores the server is pinned to the first and every client to the
last, so client and server never share a core; the output and the JSON say which.

Clients, each in a fresh process, in a shuffled order per round:

* ``loadgen-io_uring``, ``loadgen-epoll``: loadgen's closed-loop client (with its latency
  recording and data verification) on that backend;
* ``asyncio``: a plain ``asyncio.Protocol`` client;
* ``raw-epoll``: a hand-written ``select.epoll`` loop (recv, then send; nothing recorded).

Prints round trips/s per client as the median of the rounds (with min-max), round trips per
client CPU-second (each child's own process time over the window: steadier than wall-clock
rates on a shared machine) with its user/kernel split per round trip, and the ratios
loadgen/asyncio and loadgen/raw-epoll of both, and writes them as JSON under
benchmarks/results/ (format: benchmarks/results/README.md). Machines here are shared and
noisy: compare ratios.

Then the process sweep: ``loadgen run`` on an echo scenario against the same C server,
closed loop, the same connections and message, with ``--processes P`` for every P from 1 to
the number of allowed cores (``--max-processes``; 0 skips it), ``--allow-saturated`` (the
generator is measured at full speed by design; loadgen's self-check verdict is recorded),
one run per P per round. Nothing is pinned here (P processes need P cores, and the server
shares them). Per P: round trips/s as loadgen reports them, round trips per CPU-second of
the generator (loadgen's own ``generator.cpu_s``, summed over its processes) and of the
whole process tree (``os.wait4``, start-up included), each as a ratio to P=1, and how busy
the single-threaded C server was (its CPU time over the run's duration): near 100% the
server, not loadgen, sets the rate, and the output says so.

    python benchmarks/echo.py [--rounds 5] [--seconds 3] [--connections 1000] \\
        [--max-processes CORES]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _peers import run_sampled
from _results import spread, write_result

HERE = Path(__file__).resolve().parent
MESSAGE = b"m" * 64
CLIENTS = ("loadgen-io_uring", "loadgen-epoll", "asyncio", "raw-epoll")
#: The C server's core this busy (CPU time / run time) or more: it is what set the rate.
SERVER_BOUND = 0.9


# --- the clients (each runs in its own process: `echo.py --client NAME`) -----------------


def _connect_all(address: tuple[str, int], count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        socks.append(sock)
    return socks


class Window:
    """The measured window: round trips and the process's CPU time from ``start`` (every
    connection open, nothing sent yet) for ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.cpu_start_s = 0.0
        self.times_start = os.times()
        self.deadline = 0.0

    def start(self) -> float:
        """Open the window; returns its deadline (``time.monotonic``)."""
        self.times_start = os.times()
        self.cpu_start_s = time.process_time()
        self.deadline = time.monotonic() + self.seconds
        return self.deadline

    def result(self, trips: int) -> dict[str, float]:
        """The window's round trips, CPU seconds, and their user/kernel split (``os.times``:
        clock ticks, 10 ms, so the split is coarser than ``cpu_s``)."""
        end, start = os.times(), self.times_start
        return {
            "trips": trips,
            "cpu_s": time.process_time() - self.cpu_start_s,
            "user_s": round(end.user - start.user, 3),
            "system_s": round(end.system - start.system, 3),
        }


def client_raw_epoll(address: tuple[str, int], count: int, window: Window) -> dict[str, float]:
    socks = _connect_all(address, count)
    by_fd = {sock.fileno(): sock for sock in socks}
    pending = dict.fromkeys(by_fd, len(MESSAGE))
    epoll = select.epoll()
    for fd in by_fd:
        epoll.register(fd, select.EPOLLIN)
    deadline = window.start()
    for sock in socks:
        sock.send(MESSAGE)
    trips = 0
    while time.monotonic() < deadline:
        for fd, _ in epoll.poll(0.1, 512):
            sock = by_fd[fd]
            left = pending[fd] - len(sock.recv(65536))
            if left <= 0:
                trips += 1
                left = len(MESSAGE)
                sock.send(MESSAGE)
            pending[fd] = left
    return window.result(trips)


def client_asyncio(address: tuple[str, int], count: int, window: Window) -> dict[str, float]:
    trips = 0

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.left = len(MESSAGE)  # the first message goes out when the window opens

        def data_received(self, data: bytes) -> None:
            nonlocal trips
            self.left -= len(data)
            if self.left <= 0:
                trips += 1
                self.left = len(MESSAGE)
                self.transport.write(MESSAGE)

    async def main() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        connections = await asyncio.gather(
            *(loop.create_connection(Echo, *address) for _ in range(count))
        )
        deadline = window.start()
        for transport, _ in connections:
            transport.write(MESSAGE)
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        result = window.result(trips)  # what happens after the deadline does not count
        for transport, _ in connections:
            transport.close()
        return result

    return asyncio.run(main())


def client_loadgen(
    backend: str, address: tuple[str, int], count: int, window: Window
) -> dict[str, float]:
    from loadgen.engine import select_backend
    from loadgen.load.client_config import ClientConfig
    from loadgen.load.recorder import Recorder
    from loadgen.load.requests import LoadClient

    engine = select_backend(backend)
    config = ClientConfig([address], count, len(MESSAGE), "buffered", 65536, 5.0, 5.0)
    recorder = Recorder(time.perf_counter_ns())
    client = LoadClient(engine, config, recorder)
    client.preconnect()  # every connection open, its receive posted, nothing sent
    if client.open_connections != count:
        raise SystemExit(f"loadgen-{backend}: {client.open_connections} of {count} connected")
    window.start()
    start = time.perf_counter_ns()
    client.rebase(start)
    client.run(start + int(window.seconds * 1e9))
    recorder.finish(time.perf_counter_ns())
    result = window.result(recorder.latency.total_count)
    client.close_all()
    engine.shutdown()
    if recorder.errors:
        raise SystemExit(f"loadgen-{backend} saw errors: {dict(recorder.errors)}")
    return result


def run_client(name: str, address: tuple[str, int], count: int, seconds: float) -> dict[str, float]:
    """One client's measured window: its round trips and CPU seconds."""
    window = Window(seconds)
    if name == "raw-epoll":
        return client_raw_epoll(address, count, window)
    if name == "asyncio":
        return client_asyncio(address, count, window)
    return client_loadgen(name.removeprefix("loadgen-"), address, count, window)


def pin_cores() -> tuple[int, int] | None:
    """(server core, client core): the first and the last allowed core; None with one."""
    cores = sorted(os.sched_getaffinity(0))
    return (cores[0], cores[-1]) if len(cores) > 1 else None


# --- the process sweep (loadgen run --processes P) ---------------------------------------

SCENARIO = """\
name: echo-processes
description: written by benchmarks/echo.py (process sweep)
target: {host}:{port}
protocol: echo
message_size: {size}B
connections: {connections}
duration: {seconds}s
"""


def sweep_run(
    processes: int,
    address: tuple[str, int],
    server_pid: int,
    args: argparse.Namespace,
    run_dir: Path,
) -> dict[str, Any]:
    """One ``loadgen run --processes P`` against the C server, with the server's CPU share."""
    run_dir.mkdir(parents=True)
    scenario = run_dir / "scenario.yaml"
    scenario.write_text(
        SCENARIO.format(
            host=address[0],
            port=address[1],
            size=len(MESSAGE),
            connections=args.connections,
            seconds=args.seconds,
        )
    )
    command = [sys.executable, "-m", "loadgen", "run", str(scenario), "--quiet"]
    command += ["--json", str(run_dir / "result.json"), "--processes", str(processes)]
    command += ["--allow-saturated"]
    run = run_sampled(command, run_dir, None, server_pid, args.seconds, None)
    if run.exit_code != 0:
        raise SystemExit(f"loadgen exited {run.exit_code}; its output:\n{run.output[-3000:]}")
    result = json.loads((run_dir / "result.json").read_text())
    summary, generator = result["summary"], result["generator"]
    if sum(summary["errors"].values()):
        raise SystemExit(f"loadgen --processes {processes} saw errors: {summary['errors']}")
    server_cpu_s = run.samples[-1].server_cpu_s - run.samples[0].server_cpu_s
    return {
        "processes": processes,
        "command": command,
        "requests": summary["requests"],
        "duration_s": summary["duration_s"],
        "trips_per_s": summary["throughput_rps"],
        "generator_cpu_s": generator["cpu_s"],
        "trips_per_cpu_s": summary["requests"] / generator["cpu_s"] if generator["cpu_s"] else None,
        "process_cpu_s": round(run.cpu_s, 3),
        "trips_per_cpu_s_process": summary["requests"] / run.cpu_s if run.cpu_s else None,
        "server_cpu_s": round(server_cpu_s, 3),
        "server_busy": server_cpu_s / summary["duration_s"] if summary["duration_s"] else None,
        "saturated": not result["self_check"]["valid"],
        "self_check_reasons": result["self_check"]["reasons"],
    }


SWEEP_METRICS = {
    "trips_per_s": "round trips/s (as loadgen reports them)",
    "trips_per_cpu_s": "round trips per generator CPU-second (loadgen's own, all processes)",
    "trips_per_cpu_s_process": "round trips per CPU-second of the process tree (with start-up)",
    "server_busy": "C echo server busy (its CPU time / run time; 100% = its one core)",
}


def summarize_sweep(sweep: list[dict[str, Any]], counts: list[int]) -> dict[str, Any]:
    medians = {
        str(p): {
            key: spread([r[key] for r in sweep if r["processes"] == p and r[key] is not None])
            for key in SWEEP_METRICS
        }
        for p in counts
    }
    base = medians[str(counts[0])]
    ratios = {
        str(p): {
            key: medians[str(p)][key]["median"] / base[key]["median"]
            if medians[str(p)][key]["median"] is not None and base[key]["median"]
            else None
            for key in ("trips_per_s", "trips_per_cpu_s", "trips_per_cpu_s_process")
        }
        for p in counts
    }
    print("\nprocess sweep: loadgen run --processes P (median, min-max; ratio to P=1)")
    for key, label in SWEEP_METRICS.items():
        print(f"  {label}:")
        for p in counts:
            cell = medians[str(p)][key]
            if cell["median"] is None:
                print(f"    P={p}  not measurable here")
                continue
            if key == "server_busy":
                text = f"{cell['median']:.0%}   ({cell['min']:.0%}-{cell['max']:.0%})"
            else:
                text = f"{cell['median']:>10,.0f}   ({cell['min']:,.0f}-{cell['max']:,.0f})"
                text += f"   {ratios[str(p)][key]:.2f}x"
            print(f"    P={p}  {text}")
    for p in counts:
        busy = medians[str(p)]["server_busy"]["median"]
        saturated = sum(1 for r in sweep if r["processes"] == p and r["saturated"])
        runs = sum(1 for r in sweep if r["processes"] == p)
        verdict = (
            "the C server (one thread) was the limit"
            if busy is not None and busy >= SERVER_BOUND
            else "the C server was not the limit"
        )
        print(
            f"  P={p}: {verdict} (busy {busy:.0%}, limit {SERVER_BOUND:.0%}); "
            f"loadgen's self-check marked {saturated} of {runs} runs generator-bound"
            if busy is not None
            else f"  P={p}: the server's CPU share is not measurable here"
        )
    return {"metrics": SWEEP_METRICS, "medians": medians, "ratios_to_1": ratios}


# --- the orchestration -------------------------------------------------------------------


def start_server(workdir: Path) -> tuple[subprocess.Popen[str], tuple[str, int], str]:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler:
        binary = workdir / "echo_server"
        subprocess.run(
            [compiler, "-O2", "-o", str(binary), str(HERE / "echo_server.c")], check=True
        )
        command, label = [str(binary), "0"], "C epoll echo server"
    else:
        command = [sys.executable, "-m", "loadgen", "serve", "echo", "--backend", "epoll"]
        label = "loadgen's epoll echo target (no C compiler found)"
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    host, port = server.stdout.readline().strip().removeprefix("listening on ").rsplit(":", 1)
    return server, (host, int(port)), label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument(
        "--max-processes",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="process sweep: loadgen run --processes 1..N (default: the allowed cores; 0: skip)",
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--pin-core", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--results-dir", type=Path, default=None, help="default benchmarks/results")
    args = parser.parse_args()
    if args.client:  # a child: run one client, print its window's count and CPU time
        host, port = args.address.rsplit(":", 1)
        if args.pin_core is not None:
            os.sched_setaffinity(0, {args.pin_core})
        print(
            json.dumps(run_client(args.client, (host, int(port)), args.connections, args.seconds))
        )
        return

    clients = args.clients.split(",")
    counts = list(range(1, args.max_processes + 1))
    sweep: list[dict[str, Any]] = []
    started = datetime.now(UTC)
    load_at_start = list(os.getloadavg())
    runs: list[dict[str, Any]] = []
    rates: dict[str, list[float]] = {name: [] for name in clients}
    per_cpu: dict[str, list[float]] = {name: [] for name in clients}  # trips per CPU-second
    allowed = os.sched_getaffinity(0)
    pinning = pin_cores()
    with tempfile.TemporaryDirectory() as tmp:
        server, address, label_of_server = start_server(Path(tmp))
        try:
            print(f"server: {label_of_server} on {address[0]}:{address[1]}")
            print(
                f"{args.connections} connections, 64 B, 1 in flight each, "
                f"{args.seconds:g} s per run, {args.rounds} rounds; load average "
                + " ".join(f"{v:.2f}" for v in load_at_start)
            )
            if counts:
                print(
                    f"process sweep: loadgen run --processes 1..{counts[-1]} --allow-saturated, "
                    "not pinned"
                )
            print(
                f"clients pinned to core {pinning[1]}, the server to core {pinning[0]}; "
                "measured: the window after every connection is open"
                if pinning
                else "one allowed core: clients and server share it (nothing pinned)"
            )
            for round_number in range(args.rounds):
                order = random.sample(clients, len(clients))
                if pinning:
                    os.sched_setaffinity(server.pid, {pinning[0]})
                for name in order:
                    pin = [] if pinning is None else ["--pin-core", str(pinning[1])]
                    child = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--client",
                            name,
                            "--address",
                            f"{address[0]}:{address[1]}",
                            "--connections",
                            str(args.connections),
                            "--seconds",
                            str(args.seconds),
                            *pin,
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    report = json.loads(child.stdout.strip().splitlines()[-1])
                    rates[name].append(report["trips"] / args.seconds)
                    per_cpu[name].append(report["trips"] / max(report["cpu_s"], 1e-9))
                    runs.append({"round": round_number + 1, "client": name, **report})
                if pinning:  # the sweep pins nothing: P processes need P cores
                    os.sched_setaffinity(server.pid, allowed)
                for processes in random.sample(counts, len(counts)):
                    run_dir = Path(tmp) / f"round{round_number + 1}-processes{processes}"
                    record = sweep_run(processes, address, server.pid, args, run_dir)
                    sweep.append({"round": round_number + 1, **record})
                this_sweep = {r["processes"]: r for r in sweep if r["round"] == round_number + 1}
                print(
                    f"round {round_number + 1}: "
                    + ", ".join(f"{name} {rates[name][-1]:,.0f}" for name in clients)
                    + "".join(
                        f", --processes {p} {this_sweep[p]['trips_per_s']:,.0f}" for p in counts
                    )
                )
        finally:
            server.kill()
            server.wait()
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print("\nround trips/s (median, min-max):")
    for name in clients:
        print(
            f"  {name:18} {medians[name]:>10,.0f}   ({min(rates[name]):,.0f}-"
            f"{max(rates[name]):,.0f})"
        )
    cpu_medians = {name: statistics.median(values) for name, values in per_cpu.items()}
    print("\nround trips per client CPU-second (median; steadier on a shared machine):")
    for name in clients:
        print(f"  {name:18} {cpu_medians[name]:>10,.0f}")
    split = {
        name: {
            side: statistics.median(
                r[f"{side}_s"] / r["trips"] * 1e6
                for r in runs
                if r["client"] == name and r["trips"]
            )
            for side in ("user", "system")
        }
        for name in clients
    }
    print("\nclient CPU per round trip (median, user + kernel, us; clock ticks of 10 ms):")
    for name in clients:
        cell = split[name]
        print(f"  {name:18} {cell['user']:6.2f} + {cell['system']:6.2f}")
    found_ratios: dict[str, dict[str, float]] = {}
    for label, key, table in (
        ("round trips/s", "trips_per_s", medians),
        ("per CPU-second", "trips_per_cpu_s", cpu_medians),
    ):
        print(f"\nratios of medians, {label}:")
        for ours in (n for n in clients if n.startswith("loadgen-")):
            for peer in (n for n in clients if not n.startswith("loadgen-")):
                print(f"  {ours} / {peer}: {table[ours] / table[peer]:.2f}x")
                found_ratios.setdefault(f"{ours}/{peer}", {})[key] = table[ours] / table[peer]
    sweep_summary = summarize_sweep(sweep, counts) if counts else None
    path = write_result(
        "echo",
        {
            "config": {
                "rounds": args.rounds,
                "seconds": args.seconds,
                "connections": args.connections,
                "message_bytes": len(MESSAGE),
                "model": "closed loop, 1 message in flight per connection, one client process",
                "measured": "the window after every connection is open (trips and CPU time)",
                "pinning": None
                if pinning is None
                else {"server_core": pinning[0], "client_core": pinning[1]},
            },
            "server": {"label": label_of_server},
            "load_average_at_start": load_at_start,
            "clients": clients,
            "medians": {
                name: {"trips_per_s": spread(rates[name]), "trips_per_cpu_s": spread(per_cpu[name])}
                for name in clients
            },
            "ratios": found_ratios,
            "cpu_us_per_trip": split,
            "runs": runs,
            "process_sweep": None
            if sweep_summary is None
            else {
                "processes": counts,
                "pinning": "none: P client processes and the server share the machine's cores",
                "server_bound_at": SERVER_BOUND,
                **sweep_summary,
                "runs": sweep,
            },
        },
        args.results_dir,
        started,
    )
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
