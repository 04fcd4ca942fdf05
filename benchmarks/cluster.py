"""What a distributed run costs: the same load on H processes of one host, run locally
(`loadgen run -p H`) and through a Dask cluster of H workers with one process each
(`loadgen run --cluster ADDR -p 1`), against one echo target, rounds in a shuffled order.

The cluster path adds a Dask task per host that only relays, a host process per host, ticks
through the scheduler's queue, and a clock offset per host; the load itself runs in the same
spawned shard processes. So the requests/s of the two should be the same within noise, and
what the cluster costs shows in the wall time of a run (start-up: connecting, checking the
workers, starting host processes) and in nothing else. Both use full-speed closed loops on
the same machine, so both saturate it (``--allow-saturated``: the ratio is the point).

    python benchmarks/cluster.py --rounds 5 --seconds 5 --hosts 2

Writes ``benchmarks/results/<time>-cluster.json`` (format: benchmarks/results/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from _results import spread, write_result

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("local", "cluster")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_accepting(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing accepted on port {port} within {timeout_s:.0f} s")


@contextmanager
def started(command: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_workers(address: str, count: int, timeout_s: float = 60.0) -> None:
    import distributed

    with distributed.Client(address, timeout=30, set_as_default=False) as client:
        deadline = time.monotonic() + timeout_s
        while len(client.scheduler_info(n_workers=-1)["workers"]) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"fewer than {count} Dask workers within {timeout_s:.0f} s")
            time.sleep(0.2)


def run_once(variant: str, scenario: Path, hosts: int, address: str, out: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "loadgen", "run", str(scenario), "-q", "--json", str(out)]
    command += ["--allow-saturated"]
    if variant == "local":
        command += ["--processes", str(hosts)]
    else:
        command += ["--cluster", address, "--processes", "1"]
    began = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    wall_s = time.monotonic() - began
    if completed.returncode not in (0, 3):
        raise SystemExit(f"{variant} run failed ({completed.returncode}): {completed.stderr}")
    result = json.loads(out.read_text())
    summary = result["summary"]
    cluster = result.get("cluster") or {}
    return {
        "variant": variant,
        "requests": summary["requests"],
        "rps": summary["throughput_rps"],
        "p99_us": summary["latency_us"]["p99"],
        "errors": sum(summary["errors"].values()),
        "wall_s": round(wall_s, 3),
        "start_skew_ms": cluster.get("start_skew_ms"),
        "processes": result["environment"]["processes"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--hosts", type=int, default=2, help="workers, and local processes")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--results-dir", type=Path, default=None)
    args = parser.parse_args()
    load_at_start = list(os.getloadavg())
    runs: list[dict[str, Any]] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory() as scratch:
        target_port = free_port()
        stack.enter_context(
            started([sys.executable, "-m", "loadgen", "serve", "echo", "--port", str(target_port)])
        )
        wait_accepting(target_port)
        scheduler_port = free_port()
        address = f"tcp://127.0.0.1:{scheduler_port}"
        scheduler = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host"]
        scheduler += ["127.0.0.1", "--port", str(scheduler_port), "--no-dashboard"]
        stack.enter_context(started(scheduler))
        worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers"]
        worker += ["1", "--nthreads", "1", "--resources", "loadgen=1", "--no-dashboard"]
        for _ in range(args.hosts):
            stack.enter_context(started(worker))
        wait_for_workers(address, args.hosts)
        scenario = Path(scratch) / "full-speed.yaml"
        scenario.write_text(
            f"name: cluster-bench\ntarget: 127.0.0.1:{target_port}\nmessage_size: 64B\n"
            f"load: {{model: closed, connections: {args.connections}, "
            f"phases: [{{duration: {args.seconds}s}}]}}\n"
        )
        for round_number in range(1, args.rounds + 1):
            order = list(VARIANTS)
            random.shuffle(order)
            for variant in order:
                run = run_once(variant, scenario, args.hosts, address, Path(scratch) / "r.json")
                run["round"] = round_number
                runs.append(run)
                print(
                    f"round {round_number} {variant:8} {run['rps']:>10,.0f} req/s  "
                    f"p99 {run['p99_us'] or 0:>9,.0f} µs  wall {run['wall_s']:.2f} s",
                    flush=True,
                )
    figures = ("rps", "p99_us", "wall_s")
    medians = {
        variant: {
            figure: spread([r[figure] for r in runs if r["variant"] == variant])
            for figure in figures
        }
        for variant in VARIANTS
    }
    ratios = {
        figure: medians["cluster"][figure]["median"] / medians["local"][figure]["median"]
        for figure in figures
        if medians["local"][figure]["median"]
    }
    for figure, ratio in ratios.items():
        print(f"cluster/local {figure}: {ratio:.3f}")
    skews = [r["start_skew_ms"] for r in runs if r["start_skew_ms"] is not None]
    path = write_result(
        "cluster",
        {
            "load_average_at_start": load_at_start,
            "config": {
                "rounds": args.rounds,
                "seconds": args.seconds,
                "hosts": args.hosts,
                "connections": args.connections,
                "load": "closed, full speed, 64 B echo",
            },
            "server": {"label": "loadgen serve echo (one process)"},
            "clients": [f"loadgen -p {args.hosts}", f"loadgen --cluster ({args.hosts} x -p 1)"],
            "medians": medians,
            "ratios": {f"cluster/local {figure}": ratio for figure, ratio in ratios.items()},
            "start_skew_ms": spread(skews),
            "runs": runs,
        },
        args.results_dir,
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
