"""TLS session resumption: what it saves when every request opens a connection.

loadgen runs against nginx over TLS (the server and its throw-away certificates are
http_peers.py's, ``--tls``) with ``requests_per_connection: 1``, so every request is a TCP
connect and a TLS handshake, once with ``tls.session_resumption: true`` (each slot resumes
its last session: TLS 1.3 tickets) and once with ``false`` (a full handshake every time),
rounds alternating which goes first. Per run, from loadgen's own result: handshakes, how many
resumed, the handshake's p50 and p99 (``tls_handshake_us``: from the TCP connect completing
to the handshake completing), requests/s, and requests per CPU-second of loadgen's loop.

    python benchmarks/tls_resumption.py [--rounds 5] [--seconds 3] [--connections 4]

Writes ``benchmarks/results/<time>-tls_resumption.json`` (format: benchmarks/results/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _results import spread, write_result
from http_peers import nginx, nginx_binary

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {"resumed": True, "full": False}

SCENARIO = """\
name: tls-resumption
description: written by benchmarks/tls_resumption.py
target: 127.0.0.1:{port}
protocol: {{http: {{method: GET, path: /bytes/128}}}}
load:
  connections: {connections}
  requests_per_connection: 1
  phases: [{{duration: {seconds}s}}]
close: rst
tls: {{enabled: true, ca_file: {ca_file}, session_resumption: {resumption}}}
"""


def run_once(
    variant: str, port: int, ca_file: Path, args: argparse.Namespace, run_dir: Path
) -> dict[str, Any]:
    run_dir.mkdir(parents=True)
    scenario = run_dir / "scenario.yaml"
    scenario.write_text(
        SCENARIO.format(
            port=port,
            connections=args.connections,
            seconds=args.seconds,
            ca_file=ca_file,
            resumption=str(VARIANTS[variant]).lower(),
        )
    )
    command = [sys.executable, "-m", "loadgen", "run", str(scenario), "-q", "-p", "1"]
    command += ["--json", str(run_dir / "result.json"), "--allow-saturated"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if completed.returncode not in (0, 3):
        raise SystemExit(f"loadgen exited {completed.returncode}:\n{completed.stderr[-2000:]}")
    result = json.loads((run_dir / "result.json").read_text())
    summary, generator = result["summary"], result["generator"]
    handshake = summary["tls_handshake_us"]
    return {
        "variant": variant,
        "requests": summary["requests"],
        "errors": summary["errors"],
        "rps": summary["throughput_rps"],
        "handshakes": handshake["count"],
        "resumed": summary["tls_resumed"],
        "handshake_p50_us": handshake["p50"],
        "handshake_p99_us": handshake["p99"],
        "connect_p50_us": summary["connect_latency_us"]["p50"],
        "requests_per_cpu_s": summary["requests"] / generator["cpu_s"]
        if generator["cpu_s"]
        else None,
    }


FIGURES = ("rps", "handshake_p50_us", "handshake_p99_us", "requests_per_cpu_s", "resumed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--results-dir", type=Path, default=None, help="default benchmarks/results")
    args = parser.parse_args()
    if nginx_binary() is None:
        parser.error("nginx not found (install the Debian package 'nginx')")
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tls-resumption-") as tmp:
        workdir = Path(tmp)
        with nginx(workdir, None, args.connections, tls=True) as target:
            assert target.ca_file is not None
            print(f"server: {target.label} on 127.0.0.1:{target.port}")
            print(
                f"{args.connections} connections, one request each, {args.seconds:g} s per run, "
                f"{args.rounds} rounds; load average {' '.join(f'{v:.2f}' for v in load_before)}"
            )
            for number in range(1, args.rounds + 1):
                order = list(VARIANTS) if number % 2 else list(reversed(VARIANTS))
                for variant in order:
                    run_dir = workdir / f"round{number}-{variant}"
                    run = run_once(variant, target.port, target.ca_file, args, run_dir)
                    run["round"] = number
                    runs.append(run)
                    print(
                        f"round {number} {variant:8} {run['rps']:8,.0f} req/s, "
                        f"{run['resumed']:,} of {run['handshakes']:,} handshakes resumed, "
                        f"handshake p50 {run['handshake_p50_us'] or 0:,.0f} us"
                    )
    medians = {
        variant: {
            key: spread([r[key] for r in runs if r["variant"] == variant and r[key] is not None])
            for key in FIGURES
        }
        for variant in VARIANTS
    }
    print("\nmedians (min-max):")
    for key in FIGURES:
        cells = [
            f"{v} {medians[v][key]['median'] or 0:,.0f} "
            f"({medians[v][key]['min'] or 0:,.0f}-{medians[v][key]['max'] or 0:,.0f})"
            for v in VARIANTS
        ]
        print(f"  {key:20} " + ", ".join(cells))
    config = {
        "rounds": args.rounds,
        "seconds": args.seconds,
        "connections": args.connections,
        "requests_per_connection": 1,
        "tls": "TLS 1.3 to nginx, certificate verified with the CA (tls.ca_file), close: rst",
    }
    path = write_result(
        "tls_resumption",
        {
            "config": config,
            "load_average_at_start": list(load_before),
            "server": {"label": target.label},
            "medians": medians,
            "runs": runs,
        },
        args.results_dir,
    )
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
