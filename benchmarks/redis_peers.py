"""Redis SET: loadgen against redis-benchmark, side by side on one redis-server.

Every client does the same work against the same server: N connections (50 by default),
closed loop, the same command ``SET key:__rand_int__ xxx`` (redis-benchmark's SET test with
its default 3-byte value and no ``-r``: one key, sent as a RESP array of bulk strings by
both), pipelined P deep on each connection (P = 1 and 16 by default: one case each), one
client process, about S seconds per run.

* Server: Debian's redis-server, started here in the foreground on a free 127.0.0.1 port
  (no persistence, its files in a temp dir). It counts every command it runs
  (``INFO stats``: total_commands_processed, total_connections_received).
* Clients, each a fresh process, in a shuffled order per round:
  ``loadgen`` (``loadgen run`` on a ``redis:`` scenario with ``pipeline: P``,
  ``--processes 1 --allow-saturated``: this benchmark measures the generator at full speed
  by design, so loadgen's self-check may mark runs as generator-bound; they are kept and
  recorded, ``tool.note`` and ``saturated``), ``redis-benchmark`` (``-t set -d 3 -c N -P P
  -n R --csv``, one thread). redis-benchmark stops after R requests, not after a time: R is
  its own rate from a short calibration run of each case (before round 1) times S.
* Pinning (when at least two cores are allowed): the server on the first allowed core,
  each client on the second, this script on the server's core (shared with http_peers.py).

Measured per run (as in http_peers.py): commands/s counted by redis-server over the steady
window (the same ruler for both), requests/s as each tool reports it, requests per client
CPU-second (steady window from /proc, and whole process), client and server core busy, and
latency p50/p99 as each tool reports it. They measure differently: loadgen per command, from
just before its batch is handed to the engine to the completion that carries its reply
(HdrHistogram, ns); redis-benchmark per command too, but every command of a pipelined batch
gets the batch's time, from the batch's write to the last reply read (its own histogram, in
ms with 3 decimals here).

Prints medians of the rounds (with min-max) and the ratios loadgen/redis-benchmark per case;
writes everything as JSON under benchmarks/results/ (format: benchmarks/results/README.md).

    python benchmarks/redis_peers.py [--rounds 5] [--seconds 5] [--connections 50] \\
        [--pipelines 1,16]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from _peers import (
    Sampled,
    ToolFigures,
    accepting,
    add_arguments,
    choose_clients,
    free_port,
    loadgen_version,
    parse_loadgen,
    pin,
    play_round,
    print_summary,
    ratios,
    run_client_process,
    session,
    stop,
    summarize,
)

CLIENTS = ("loadgen", "redis-benchmark")
#: Issue 7's target for loadgen's requests/s against the peer.
TARGETS = {"redis-benchmark": 0.7}
KEY = "key:__rand_int__"  # redis-benchmark's key without -r (the literal text)
VALUE_BYTES = 3  # redis-benchmark's default -d
#: Requests in redis-benchmark's calibration run, per unit of pipeline depth.
CALIBRATION_REQUESTS = 20_000

LATENCY_NOTES = {
    "loadgen": "per command, from just before its batch is handed to the engine to the "
    "completion carrying its reply; HdrHistogram in ns (JSON result, summary.latency_us)",
    "redis-benchmark": "per command, but each command of a pipelined batch gets the batch's "
    "time (its write to the last reply read); its own histogram, --csv in ms (3 decimals)",
}


# --- the target --------------------------------------------------------------------------


@dataclass
class Target:
    label: str
    version: str
    port: int
    pid: int


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or shutil.which("redis-server", path="/usr/sbin:/sbin")


@contextmanager
def redis_server(workdir: Path, core: int | None) -> Iterator[Target]:
    binary = redis_server_binary()
    assert binary is not None
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    root = workdir / "redis"
    root.mkdir()
    log = root / "redis.log"
    for _ in range(3):  # the free port can be taken before redis-server binds it
        port = free_port()
        command = [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--dir", str(root),
            "--logfile", str(log), "--maxclients", "10000",
        ]  # fmt: skip
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, preexec_fn=pin(core)
        )
        try:
            if accepting(process, port):
                # "Redis server v=7.0.15 sha=... malloc=jemalloc-5.3.0 bits=64 build=..."
                short = " ".join(version.split()[:3])
                yield Target(f"{short}, one thread (io-threads 1)", version, port, process.pid)
                return
        finally:
            stop(process)
    text = log.read_text()[-2000:] if log.exists() else "(no log)"
    raise SystemExit(f"redis-server did not start; its log:\n{text}")


class RedisCounter:
    """redis-server's command and connection counters (INFO stats), less this counter's
    own INFO commands."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.asked = 0

    def read(self) -> tuple[int, int]:
        self.sock.sendall(b"*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n")
        data = b""
        while b"\r\n" not in data:
            data += self._recv()
        header, _, body = data.partition(b"\r\n")
        length = int(header[1:])  # "$1234"
        while len(body) < length + 2:
            body += self._recv()
        self.asked += 1
        stats = dict(
            line.split(":", 1) for line in body[:length].decode().splitlines() if ":" in line
        )
        commands = int(stats["total_commands_processed"]) - self.asked
        return commands, int(stats["total_connections_received"])

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise OSError("redis-server closed the INFO connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


# --- the clients -------------------------------------------------------------------------


def availability() -> dict[str, str | None]:
    """Each client: None when it can run here, else why not."""
    return {
        "loadgen": None,
        "redis-benchmark": None
        if shutil.which("redis-benchmark")
        else "redis-benchmark not found: install the Debian package 'redis-tools'",
    }


def versions(available: list[str]) -> dict[str, str]:
    found = {"loadgen": loadgen_version()}
    if "redis-benchmark" in available:
        banner = subprocess.run(["redis-benchmark", "--version"], capture_output=True, text=True)
        found["redis-benchmark"] = banner.stdout.strip()  # "redis-benchmark 7.0.15"
    return found


SCENARIO = """\
name: redis-peers
description: written by benchmarks/redis_peers.py
target: 127.0.0.1:{port}
protocol:
  redis: {{command: [SET, "{key}", {value}], pipeline: {pipeline}}}
connections: {connections}
duration: {seconds}s
"""


def benchmark_command(port: int, connections: int, pipeline: int, requests: int) -> list[str]:
    return [
        "redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(connections),
        "-P", str(pipeline), "-n", str(requests), "-t", "set", "-d", str(VALUE_BYTES), "--csv",
    ]  # fmt: skip


def client_command(
    name: str, target: Target, args: argparse.Namespace, pipeline: int, requests: int, run_dir: Path
) -> list[str]:
    if name == "loadgen":
        scenario = run_dir / "scenario.yaml"
        scenario.write_text(
            SCENARIO.format(
                port=target.port,
                key=KEY,
                value="x" * VALUE_BYTES,
                pipeline=pipeline,
                connections=args.connections,
                seconds=args.seconds,
            )
        )
        command = [sys.executable, "-m", "loadgen", "run", str(scenario), "--quiet"]
        command += ["--json", str(run_dir / "result.json"), "--processes", "1"]
        return [*command, "--allow-saturated"]
    if name == "redis-benchmark":
        return benchmark_command(target.port, args.connections, pipeline, requests)
    raise ValueError(name)


def parse_redis_benchmark(output: str, requests: int) -> ToolFigures:
    """redis-benchmark --csv: a header line, then one line per test."""
    lines = [line for line in output.splitlines() if line.startswith('"')]
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    row = next(r for r in rows if r["test"] == "SET")
    return ToolFigures(
        requests=requests,
        rps=float(row["rps"]),
        p50_us=float(row["p50_latency_ms"]) * 1000,
        p99_us=float(row["p99_latency_ms"]) * 1000,
        errors=0,  # an error reply ends redis-benchmark (exit 1: the run fails) uncounted
    )


def calibrate(target: Target, connections: int, pipeline: int, client_core: int | None) -> float:
    """redis-benchmark's own rate on this case, from a short run."""
    requests = CALIBRATION_REQUESTS * pipeline
    completed = subprocess.run(
        benchmark_command(target.port, connections, pipeline, requests),
        capture_output=True,
        text=True,
        preexec_fn=pin(client_core),
        check=True,
    )
    return parse_redis_benchmark(completed.stdout, requests).rps


def run_client(
    name: str,
    target: Target,
    counter: RedisCounter,
    args: argparse.Namespace,
    pipeline: int,
    requests: int,
    run_dir: Path,
    client_core: int | None,
) -> dict[str, Any]:
    run_dir.mkdir(parents=True)
    command = client_command(name, target, args, pipeline, requests, run_dir)
    saturated = None

    def parse(run: Sampled) -> ToolFigures:
        nonlocal saturated
        if name == "redis-benchmark":
            return parse_redis_benchmark(run.output, requests)
        tool = parse_loadgen(run_dir)
        check = json.loads((run_dir / "result.json").read_text())["self_check"]
        saturated = not check["valid"]
        if saturated:  # loadgen's own check: the generator was the limit
            tool.note += "; self-check: generator-bound (" + "; ".join(check["reasons"]) + ")"
        return tool

    # both exit 0 (loadgen: --allow-saturated keeps a saturated run at 0)
    record = run_client_process(
        name, command, run_dir, counter, target.pid, args.seconds, client_core, (0,), parse
    )
    record["saturated"] = saturated
    return record


# --- the orchestration -------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, CLIENTS, seconds="per run")
    parser.add_argument("--pipelines", default="1,16", help="one case per pipeline depth")
    args = parser.parse_args()
    try:
        pipelines = [int(p) for p in args.pipelines.split(",")]
    except ValueError:
        parser.error(f"--pipelines: comma-separated whole numbers, not {args.pipelines!r}")
    if args.rounds < 1 or args.seconds < 1 or args.connections < 1 or min(pipelines) < 1:
        parser.error("--rounds, --seconds, --connections and --pipelines must be at least 1")
    clients, skipped = choose_clients(parser, args.clients, CLIENTS, availability())
    if redis_server_binary() is None:
        parser.error("redis-server not found: install the Debian package 'redis-server'")

    runs: list[dict[str, Any]] = []
    cases: dict[str, dict[str, Any]] = {}
    with (
        session(clients, skipped) as this,
        tempfile.TemporaryDirectory(prefix="redis-peers-") as tmp,
        redis_server(Path(tmp), this.server_core) as target,
    ):
        counter = RedisCounter(target.port)
        print(f"server: {target.label} on 127.0.0.1:{target.port}")
        print(f"pinning: {this.pin_note}")
        print(
            f"SET {KEY} ({VALUE_BYTES}-byte value), {args.connections} connections, closed "
            f"loop, one client process, {args.seconds} s per run, {args.rounds} rounds, "
            "pipeline " + " and ".join(map(str, pipelines)) + f"; load average {this.load_text()}"
        )
        print("loadgen: --processes 1 --allow-saturated (saturated runs are kept and counted)")
        for name, reason in skipped.items():
            print(f"skipped {name}: {reason}")

        def play(pipeline: int, requests: int, round_number: int, name: str) -> dict[str, Any]:
            run_dir = Path(tmp) / f"P{pipeline}-round{round_number}-{name}"
            return run_client(
                name, target, counter, args, pipeline, requests, run_dir, this.client_core
            )

        for pipeline in pipelines:
            case = f"SET -P {pipeline}"
            requests = 0
            if "redis-benchmark" in clients:
                rate = calibrate(target, args.connections, pipeline, this.client_core)
                requests = max(1000, round(rate * args.seconds))
                print(f"{case}: redis-benchmark -n {requests} (calibrated {rate:,.0f} req/s)")
            cases[case] = {"pipeline": pipeline, "redis_benchmark_requests": requests}
            for round_number in range(1, args.rounds + 1):
                runs += play_round(
                    clients,
                    partial(play, pipeline, requests, round_number),
                    f"{case} round {round_number}",
                    "server_rps",
                    "commands/s counted by redis-server",
                    case=case,
                    round=round_number,
                )
        counter.close()
    medians: dict[str, Any] = {}
    found_ratios: dict[str, Any] = {}
    for case in cases:
        print(f"\n=== {case}")
        medians[case] = summarize([r for r in runs if r["case"] == case], clients)
        found_ratios[case] = ratios(medians[case], clients, TARGETS)
        print_summary(medians[case], found_ratios[case], clients, LATENCY_NOTES)
        flagged = sum(1 for r in runs if r["case"] == case and r["saturated"])
        print(
            f"  loadgen's self-check marked {flagged} of {args.rounds} runs generator-bound "
            "(kept: --allow-saturated)"
        )
    config = {
        "command": ["SET", KEY, "x" * VALUE_BYTES],
        "pipelines": pipelines,
        "model": "closed loop, one client process",
    }
    this.write(
        "redis_peers",
        args,
        config,
        {"label": target.label, "version": target.version},
        LATENCY_NOTES,
        versions(clients),
        cases=cases,
        medians=medians,
        ratios=found_ratios,
        runs=runs,
    )


if __name__ == "__main__":
    main()
