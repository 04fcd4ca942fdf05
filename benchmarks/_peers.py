"""What the peer benchmarks share (http_peers.py, redis_peers.py, echo.py's process sweep).

* Pinning: the server on the first allowed core, each client on the second, the calling
  script on the server's core (it only samples, ~10 times a second) - ``cores()``.
* Client CPU: user + system time of a client's whole process tree, read from
  ``/proc/PID/stat`` (``TreeCpu``; reaped descendants count through their parents'
  cutime/cstime), and the process's own rusage from ``os.wait4`` when it is reaped.
* One run (``run_sampled``): start the client pinned, sample the server's request counter
  and both CPU clocks every 0.1 s until the client exits; ``steady_window`` then takes the
  figures between warm-up (20% of the run, at most 1 s, after the first request) and
  wind-down (the last sample before requests stop), the same ruler for every client.
* One client run (``run_client_process``): the above, its exit code checked and its own
  figures read; ``play_round`` runs each client once in a shuffled order.
* The script around them: ``add_arguments`` and ``choose_clients`` (the options and checks
  every peer benchmark has), ``Session`` (start time, load average, pinning of this script,
  undone at the end; ``write`` writes the JSON result with the fields every one has).
* Rounds: ``summarize`` gives each metric's median (min-max) over the rounds, ``ratios``
  loadgen/peer of the medians, ``print_summary`` prints both.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from _results import spread, write_result

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_S = 0.1
#: /proc is scanned for new descendants of a client every this many samples.
RESCAN_EVERY = 5
#: A client gets this long past its run time (start-up, shutdown) before it is killed.
GRACE_S = 60.0
START_TIMEOUT_S = 15.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- /proc: CPU time of a process tree ---------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on


class TreeCpu:
    """User + system CPU seconds of a process and its descendants (reaped ones included,
    through their parents' cutime/cstime). New descendants are found by scanning /proc
    (this kernel has no /proc/PID/task/TID/children)."""

    def __init__(self, pid: int) -> None:
        self.pids = {pid}
        self.root = pid
        self._reads = 0

    def _rescan(self) -> None:
        children: dict[int, list[int]] = {}
        for name in os.listdir("/proc"):
            if name.isdigit() and (fields := _stat_fields(int(name))) is not None:
                children.setdefault(int(fields[1]), []).append(int(name))
        found, todo = set(), [self.root]
        while todo:
            pid = todo.pop()
            found.add(pid)
            todo.extend(children.get(pid, []))
        self.pids = found

    def read(self) -> float:
        if self._reads % RESCAN_EVERY == 0:
            self._rescan()
        self._reads += 1
        ticks = 0
        for pid in self.pids:
            fields = _stat_fields(pid)
            if fields is not None:  # utime, stime, cutime, cstime are fields 14-17
                ticks += sum(int(value) for value in fields[11:15])
        return ticks / CLOCK_TICKS


# --- processes ---------------------------------------------------------------------------


def pin(core: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child to ``core`` (None: no pinning)."""
    if core is None:
        return None
    return lambda: os.sched_setaffinity(0, {core})


def cores() -> tuple[int | None, int | None, str]:
    """(server core, client core, a sentence saying so); both None on a single core."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None, f"not pinned: only {len(allowed)} core allowed here"
    server, client = allowed[0], allowed[1]
    note = (
        f"server pinned to core {server}, each client to core {client} (sched_setaffinity), "
        f"this script on core {server}; other processes on the machine are not kept off them"
    )
    return server, client, note


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def accepting(process: subprocess.Popen[Any], port: int) -> bool:
    """Wait until ``process`` accepts on 127.0.0.1:port (False: it exited or timed out)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.01)
    return False


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def child_env() -> dict[str, str]:
    """The children import loadgen from this checkout, whatever is installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


# --- loadgen as a client -----------------------------------------------------------------


@dataclass
class ToolFigures:
    """What a client says about its own run (its own definitions)."""

    requests: int
    rps: float
    p50_us: float | None
    p99_us: float | None
    errors: int
    note: str = ""


def loadgen_has_processes_option() -> bool:
    env = child_env() | {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    helptext = subprocess.run(
        [sys.executable, "-m", "loadgen", "run", "--help"], capture_output=True, text=True, env=env
    ).stdout
    return "--processes" in helptext


def loadgen_version() -> str:
    text = (ROOT / "loadgen" / "__init__.py").read_text()
    match = re.search(r'__version__ = "([^"]+)"', text)
    return f"loadgen {match[1] if match else '?'}"


def parse_loadgen(run_dir: Path) -> ToolFigures:
    result = json.loads((run_dir / "result.json").read_text())
    summary = result["summary"]
    return ToolFigures(
        requests=summary["requests"],
        rps=summary["throughput_rps"],
        p50_us=summary["latency_us"]["p50"],
        p99_us=summary["latency_us"]["p99"],
        errors=sum(summary["errors"].values()),
        note=f"backend {result['environment']['backend']}; stop: {result['stop_reason']}",
    )


# --- one run -----------------------------------------------------------------------------


class Counter(Protocol):
    """A server's own counts: (requests answered, connections accepted) so far."""

    def read(self) -> tuple[int, int]: ...


@dataclass
class Sample:
    t_s: float
    requests: int | None  # counted by the server (None: the target cannot count)
    accepts: int | None
    client_cpu_s: float
    server_cpu_s: float


def steady_window(samples: list[Sample], seconds: float) -> dict[str, Any] | None:
    """The figures between warm-up and wind-down, from the server's counts (see header)."""
    counted = [s for s in samples if s.requests is not None]
    moving = [i for i in range(1, len(counted)) if counted[i].requests > counted[i - 1].requests]  # type: ignore[operator]
    if not moving:
        return None
    first, last = moving[0], moving[-1]
    warm_up = min(1.0, 0.2 * seconds)
    start = next(
        (i for i in range(first, last) if counted[i].t_s >= counted[first].t_s + warm_up), None
    )
    end = last - 1
    if start is None or end <= start:
        return None
    a, b = counted[start], counted[end]
    span = b.t_s - a.t_s
    requests = b.requests - a.requests  # type: ignore[operator]
    client_cpu = b.client_cpu_s - a.client_cpu_s
    return {
        "from_s": round(a.t_s, 3),
        "seconds": round(span, 3),
        "requests": requests,
        "rps": requests / span,
        "client_cpu_s": round(client_cpu, 3),
        "requests_per_cpu_s": requests / client_cpu if client_cpu > 0 else None,
        "client_busy": client_cpu / span,
        "server_busy": (b.server_cpu_s - a.server_cpu_s) / span,
    }


@dataclass
class Sampled:
    """One client process's run: how it ended, its output, and the samples taken."""

    command: list[str]
    exit_code: int
    output: str
    wall_s: float
    cpu_s: float  # user + system of the whole process (os.wait4), start-up included
    max_rss_kib: int
    samples: list[Sample]


def run_sampled(
    command: list[str],
    run_dir: Path,
    counter: Counter | None,
    server_pid: int,
    seconds: float,
    client_core: int | None,
) -> Sampled:
    """Run one client (output to run_dir/output.txt), sampling until it exits."""
    server_cpu = TreeCpu(server_pid)
    started = time.monotonic()
    # A first sample before the client starts: wrk connects within milliseconds.
    requests, accepts = counter.read() if counter else (None, None)
    samples = [Sample(0.0, requests, accepts, 0.0, server_cpu.read())]
    with (run_dir / "output.txt").open("w") as output:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=child_env(),
            cwd=run_dir,
            preexec_fn=pin(client_core),
        )
    client_cpu = TreeCpu(child.pid)
    while True:
        # wait4, not Popen.poll: the child's rusage is only given to the call that reaps it.
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        now = time.monotonic() - started
        requests, accepts = counter.read() if counter else (None, None)
        samples.append(Sample(now, requests, accepts, client_cpu.read(), server_cpu.read()))
        if now > seconds + GRACE_S:
            child.kill()
            pid, status, usage = os.wait4(child.pid, 0)
            break
        time.sleep(SAMPLE_S)
    wall_s = time.monotonic() - started
    child.returncode = exit_code = os.waitstatus_to_exitcode(status)
    return Sampled(
        command,
        exit_code,
        (run_dir / "output.txt").read_text(errors="replace"),
        wall_s,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss,
        samples,
    )


def run_record(name: str, run: Sampled, tool: ToolFigures, seconds: float) -> dict[str, Any]:
    """One run as it goes into the JSON result (format: benchmarks/results/README.md)."""
    counted = [s for s in run.samples if s.accepts is not None]
    return {
        "client": name,
        "command": run.command,
        "exit_code": run.exit_code,
        "tool": asdict(tool),
        "process": {
            "wall_s": round(run.wall_s, 3),
            "cpu_s": round(run.cpu_s, 3),
            "max_rss_kib": run.max_rss_kib,
            "requests_per_cpu_s": tool.requests / run.cpu_s if run.cpu_s > 0 else None,
        },
        "window": steady_window(run.samples, seconds) if counted else None,
        # keep-alive check: connections the server accepted during the run (~N when every
        # connection is kept for the whole run)
        "connections_accepted": counted[-1].accepts - counted[0].accepts  # type: ignore[operator]
        if len(counted) > 1
        else None,
    }


def run_client_process(
    name: str,
    command: list[str],
    run_dir: Path,
    counter: Counter | None,
    server_pid: int,
    seconds: float,
    client_core: int | None,
    exit_codes: Sequence[int],
    parse: Callable[[Sampled], ToolFigures],
) -> dict[str, Any]:
    """One client's run as a JSON record: it must exit with one of ``exit_codes``, and
    ``parse`` reads its figures (from its output or the files it wrote in ``run_dir``)."""
    run = run_sampled(command, run_dir, counter, server_pid, seconds, client_core)
    failure = f"{name} exited {run.exit_code}; its output:\n{run.output[-3000:]}"
    if run.exit_code not in exit_codes:
        raise SystemExit(failure)
    try:
        tool = parse(run)
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        raise SystemExit(f"could not read {name}'s figures ({exc}); {failure}") from exc
    return run_record(name, run, tool, seconds)


def play_round(
    clients: list[str],
    run_one: Callable[[str], dict[str, Any]],
    title: str,
    key: str,
    unit: str,
    **fields: Any,
) -> list[dict[str, Any]]:
    """Each client once, in a shuffled order; each record gets ``fields`` and its position.
    Prints ``title`` with the order and each client's ``key`` metric (in ``unit``)."""
    order = random.sample(clients, len(clients))
    played: dict[str, dict[str, Any]] = {}
    for position, name in enumerate(order):
        run = run_one(name)
        run.update(**fields, position=position)
        played[name] = run
    print(
        f"{title} ({' '.join(order)}): "
        + ", ".join(f"{n} {fmt(metrics_of(played[n])[key], key)}" for n in clients)
        + f" {unit}"
    )
    return list(played.values())


# --- the script: options, clients, session ----------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, clients: Sequence[str], seconds: str) -> None:
    """The options every peer benchmark has (``seconds``: the help of --seconds)."""
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5, help=seconds)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--clients", default=",".join(clients))
    parser.add_argument("--results-dir", type=Path, default=None, help="default benchmarks/results")


def choose_clients(
    parser: argparse.ArgumentParser,
    requested_text: str,
    known: Sequence[str],
    missing: dict[str, str | None],
) -> tuple[list[str], dict[str, str]]:
    """(the clients that run, the skipped ones with why) of ``--clients``; ``missing`` is
    each client's reason it cannot run here (None: it can)."""
    requested = requested_text.split(",")
    unknown = set(requested) - set(known)
    if unknown:
        parser.error(f"unknown clients {sorted(unknown)}; choose from {', '.join(known)}")
    if "loadgen" not in requested:
        parser.error("loadgen must be one of the clients (every ratio is loadgen/peer)")
    skipped = {name: why for name in requested if (why := missing[name])}
    return [name for name in requested if not missing[name]], skipped


@dataclass
class Session:
    """One benchmark script's run: its clients, when it started, the load then, the cores."""

    clients: list[str]
    skipped: dict[str, str]
    started: datetime
    load_before: tuple[float, float, float]
    server_core: int | None
    client_core: int | None
    pin_note: str

    def load_text(self) -> str:
        return " ".join(f"{v:.2f}" for v in self.load_before)

    def write(
        self,
        benchmark: str,
        args: argparse.Namespace,
        config: dict[str, Any],
        server: dict[str, Any],
        latency_notes: dict[str, str],
        versions: dict[str, str],
        **figures: Any,
    ) -> None:
        """Write the JSON result (what every peer benchmark records, then ``figures``) and
        print where; ``config`` adds to the common options."""
        document = {
            "config": {
                "rounds": args.rounds,
                "seconds": args.seconds,
                "connections": args.connections,
                **config,
            },
            "server": server,
            "pinning": {
                "server_core": self.server_core,
                "client_core": self.client_core,
                "note": self.pin_note,
            },
            "load_average_at_start": list(self.load_before),
            "clients": self.clients,
            "skipped": self.skipped,
            "versions": versions,
            "latency_notes": {name: latency_notes[name] for name in self.clients},
            "metrics": METRICS,
            **figures,
        }
        path = write_result(benchmark, document, args.results_dir, self.started)
        print(f"\nresults: {path}")


@contextmanager
def session(clients: list[str], skipped: dict[str, str]) -> Iterator[Session]:
    """This script pinned to the server's core (``cores``) until the block ends."""
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    server_core, client_core, pin_note = cores()
    own_cores = os.sched_getaffinity(0)
    if server_core is not None:
        os.sched_setaffinity(0, {server_core})
    try:
        yield Session(clients, skipped, started, load_before, server_core, client_core, pin_note)
    finally:
        os.sched_setaffinity(0, own_cores)


# --- rounds: medians, ratios -------------------------------------------------------------


METRICS = {
    # key in medians and in each run's figures: what it is
    "server_rps": "requests/s counted by the server (steady window)",
    "tool_rps": "requests/s as each tool reports it (whole run)",
    "requests_per_cpu_s": "requests per client CPU-second (steady window)",
    "requests_per_cpu_s_process": "requests per client CPU-second (whole process, with start-up)",
    "p50_us": "latency p50 in us as each tool reports it",
    "p99_us": "latency p99 in us as each tool reports it",
    "client_busy": "client core busy (steady window)",
    "server_busy": "server core busy (steady window)",
}


def metrics_of(run: dict[str, Any]) -> dict[str, float | None]:
    window = run["window"] or {}
    return {
        "server_rps": window.get("rps"),
        "tool_rps": run["tool"]["rps"],
        "requests_per_cpu_s": window.get("requests_per_cpu_s"),
        "requests_per_cpu_s_process": run["process"]["requests_per_cpu_s"],
        "p50_us": run["tool"]["p50_us"],
        "p99_us": run["tool"]["p99_us"],
        "client_busy": window.get("client_busy"),
        "server_busy": window.get("server_busy"),
    }


def summarize(runs: list[dict[str, Any]], clients: list[str]) -> dict[str, dict[str, Any]]:
    medians: dict[str, dict[str, Any]] = {}
    for name in clients:
        values: dict[str, list[float]] = {key: [] for key in METRICS}
        for run in (r for r in runs if r["client"] == name):
            for key, value in metrics_of(run).items():
                if value is not None:
                    values[key].append(value)
        medians[name] = {key: spread(v) for key, v in values.items()}
    return medians


def ratios(
    medians: dict[str, dict[str, Any]], clients: list[str], targets: dict[str, float]
) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for peer in (c for c in clients if c != "loadgen"):
        entry: dict[str, Any] = {"target_rps": targets.get(peer)}
        for key in ("server_rps", "tool_rps", "requests_per_cpu_s", "requests_per_cpu_s_process"):
            ours, theirs = medians["loadgen"][key]["median"], medians[peer][key]["median"]
            entry[key] = ours / theirs if ours is not None and theirs else None
        found[f"loadgen/{peer}"] = entry
    return found


def fmt(value: float | None, key: str) -> str:
    if value is None:
        return "not measurable here"
    if key.endswith("_busy"):
        return f"{value:.0%}"
    return f"{value:,.0f}"


def print_summary(
    medians: dict[str, dict[str, Any]],
    found_ratios: dict[str, dict[str, Any]],
    clients: list[str],
    latency_notes: dict[str, str],
) -> None:
    width = max(8, *(len(name) for name in clients))
    for key, label in METRICS.items():
        print(f"\n{label} (median, min-max):")
        for name in clients:
            cell = medians[name][key]
            line = f"  {name:{width}} {fmt(cell['median'], key):>20}"
            if cell["median"] is not None:
                line += f"   ({fmt(cell['min'], key)}-{fmt(cell['max'], key)})"
            print(line)
    print("\nratios of medians:")
    for pair, entry in found_ratios.items():
        parts = []
        for key, label in (
            ("server_rps", "req/s counted by server"),
            ("tool_rps", "req/s tool-reported"),
            ("requests_per_cpu_s", "req per CPU-s"),
        ):
            value = entry[key]
            parts.append(f"{label} {value:.2f}x" if value is not None else f"{label} n/a")
        target = f" (target >= {entry['target_rps']:g}x req/s)" if entry["target_rps"] else ""
        print(f"  {pair}: " + ", ".join(parts) + target)
    print("\nlatency is measured differently by each tool:")
    for name in clients:
        print(f"  {name}: {latency_notes[name]}")
