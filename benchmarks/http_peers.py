"""HTTP keep-alive GET: loadgen against wrk and Locust, side by side on one nginx.

Every client does the same work against the same server: N keep-alive connections (50 by
default), closed loop (each connection sends its next GET when the last response is in),
``GET /bytes/128`` (a 128-byte static file), one client process, S seconds per run.

* Server: Debian's nginx, started here in the foreground (``master_process off``, one
  worker process) with its own config in a temp dir on a free 127.0.0.1 port; it counts
  every request it answers (``stub_status``). Without nginx, loadgen's built-in HTTP
  target (``loadgen serve http``, one process) stands in; the output says so, and the
  server-side counts are then not measurable.
* Clients, each a fresh process, in a shuffled order per round:
  ``loadgen`` (``loadgen run`` on an http scenario, closed model, ``--processes 1`` when
  the CLI has that option), ``wrk`` (``-t1 -cN -dS --latency``), ``locust`` (FastHttpUser,
  no wait time, headless, one process, ``-u N``).
* Pinning (when at least two cores are allowed): the server on the first allowed core,
  each client on the second, this script on the server's core (it only samples, ~10
  times a second). Nothing else on the machine is kept off those cores.

Measured per run:

* requests/s counted by nginx over the steady part of the run (from 20% of the run, at
  most 1 s, after the first request, to the last sample before requests stop), the same
  ruler for every client; and requests/s as each tool reports it (whole run);
* client CPU: requests per client CPU-second over the same steady window (user + system
  time of the client's process tree from /proc, steadier than wall-clock rates on a shared
  machine), and the whole process's CPU from ``os.wait4`` (start-up included);
* how busy the client and the server core were in the window (a server near 100% means
  the server, not the client, set the rate);
* latency p50/p99 as each tool reports it. They measure differently: loadgen from just
  before a request is handed to the engine to the completion that finishes its response
  (HdrHistogram, ns); wrk from the request's write to the parsed response in its event
  loop (us); Locust around the client call in a gevent greenlet (its scheduling
  included), in ms, with response times under 100 ms rounded to whole ms before its
  percentiles are taken, so sub-millisecond latencies read as 0 or 1 ms.

``--tls``: the same over HTTPS (``https_peers`` in the result's file name). nginx serves the
same file on a TLS listener (TLS 1.3, an EC P-256 certificate made by this script from a
throw-away CA) and counts requests on a plain listener of the same server; every client
speaks TLS to it over keep-alive connections, so each connection does one handshake and the
run measures TLS's per-request cost: ``loadgen`` with ``tls: {enabled: true, ca_file: CA}``
(it verifies the certificate, once per connection), ``wrk`` on the ``https://`` URL (it does
not verify), ``locust`` on the ``https://`` host (FastHttpUser: it does not verify either).

The latency floor: after the rounds, loadgen and wrk run again at one connection (the same
number of alternated rounds), where latency is the round trip through both stacks and the
server and nothing else; the ratio of their p50s (loadgen's over wrk's, target at most
``_floor.FLOOR_TARGET``) shows what loadgen's own path adds per request. Printed, and kept as
``floor`` in the result; ``--no-floor`` skips it (so does a run without wrk).

Prints medians of the rounds (with min-max) and the ratios loadgen/peer; writes everything
as JSON under benchmarks/results/ (format: benchmarks/results/README.md).

    python benchmarks/http_peers.py [--rounds 5] [--seconds 5] [--connections 50] [--tls]
        [--no-floor]
"""

from __future__ import annotations

import argparse
import csv
import http.client
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from _floor import latency_floor
from _peers import (
    Sampled,
    ToolFigures,
    accepting,
    add_arguments,
    child_env,
    choose_clients,
    free_port,
    loadgen_has_processes_option,
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BODY_BYTES = 128
PATH = f"/bytes/{BODY_BYTES}"
CLIENTS = ("loadgen", "wrk", "locust")
#: Issue 7's targets for loadgen's requests/s against each peer.
TARGETS = {"wrk": 0.7, "locust": 5.0}
#: The other peers the field uses, and why they are not compared here.
NOT_HERE = {
    "vegeta": "not packaged by Debian, PyPI or npm here (a Go binary from its releases)",
    "k6": "not packaged by Debian here; npm's 'k6' is a dummy package for script completion",
    "tcpkali": "not packaged by Debian, PyPI or npm here",
    "wrk2": "not packaged by Debian here (wrk is)",
}

#: What --tls records in the result's config.
TLS_NOTE = (
    "HTTPS to nginx's TLS listener (TLS 1.3 negotiated, EC P-256 certificate from a "
    "throw-away CA), keep-alive: one handshake per connection; loadgen verifies the "
    "certificate (tls.ca_file), wrk and locust do not"
)

LATENCY_NOTES = {
    "loadgen": "from just before the request is handed to the engine to the completion that "
    "finishes its response; HdrHistogram in ns (JSON result, summary.latency_us)",
    "wrk": "from the request's write to the parsed response, in its event loop, in us "
    "(--latency distribution)",
    "locust": "around the client call in a gevent greenlet (scheduling included), in ms; "
    "times under 100 ms are rounded to whole ms before percentiles (CSV stats)",
}


@dataclass
class Target:
    kind: str  # "nginx" or "builtin"
    label: str
    version: str
    port: int  # where the clients go (TLS with --tls)
    pid: int
    core: int | None
    status_port: int | None = None  # nginx's stub_status, plain HTTP
    ca_file: Path | None = None  # with --tls: the CA that signed the server's certificate

    @property
    def scheme(self) -> str:
        return "http" if self.ca_file is None else "https"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{PATH}"


NGINX_CONF = """\
# Written by benchmarks/http_peers.py: everything nginx writes stays in {root}.
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile {nofile};
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections {worker_connections}; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    default_type application/octet-stream;
    keepalive_requests 1000000000;
    keepalive_timeout 1h;
    open_file_cache max=16 inactive=1h;
    server {{
        listen 127.0.0.1:{port}{tls};
        listen 127.0.0.1:{status_port};
{certificate}
        location /bytes/ {{ alias {root}/static/; }}
        location = /nginx_status {{ stub_status; }}
    }}
}}
"""
CERTIFICATE_CONF = """\
        ssl_certificate {root}/server.pem;
        ssl_certificate_key {root}/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;"""


def write_certificates(root: Path) -> Path:
    """A throw-away CA and a server certificate it signs for 127.0.0.1 (EC P-256), as
    ``root``/server.pem (with the CA) and server.key; returns the CA's file."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "http_peers CA")])

    def certificate(
        subject: x509.Name, public: ec.EllipticCurvePublicKey, ca: bool
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            address = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
            builder = builder.add_extension(x509.SubjectAlternativeName([address]), False)
        return builder.sign(ca_key, hashes.SHA256())

    pem = serialization.Encoding.PEM
    ca_cert = certificate(ca_name, ca_key.public_key(), ca=True)
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    leaf = certificate(leaf_name, key.public_key(), ca=False)
    (root / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (root / "server.pem").write_bytes(leaf.public_bytes(pem) + ca_cert.public_bytes(pem))
    (root / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return root / "ca.pem"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


@contextmanager
def nginx(workdir: Path, core: int | None, connections: int, tls: bool) -> Iterator[Target]:
    binary = nginx_binary()
    assert binary is not None
    root = workdir / "nginx"
    (root / "tmp").mkdir(parents=True)
    (root / "static").mkdir()
    (root / "static" / str(BODY_BYTES)).write_bytes(b"x" * BODY_BYTES)
    ca_file = write_certificates(root) if tls else None
    version = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip()
    conf = root / "nginx.conf"
    for _ in range(3):  # the free port can be taken before nginx binds it
        port = status_port = free_port()
        while status_port == port:  # a port just freed may be handed out again at once
            status_port = free_port()
        conf.write_text(
            NGINX_CONF.format(
                root=root,
                port=port,
                status_port=status_port,
                tls=" ssl" if tls else "",
                certificate=CERTIFICATE_CONF.format(root=root) if tls else "",
                worker_connections=connections + 64,
                nofile=2 * (connections + 64),
            )
        )
        with (root / "stdout.log").open("ab") as log:
            process = subprocess.Popen(
                [binary, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=pin(core),
            )
        try:
            if accepting(process, port) and accepting(process, status_port):
                label = f"{version}, 1 worker process" + (", TLS 1.3" if tls else "")
                yield Target("nginx", label, version, port, process.pid, core, status_port, ca_file)
                return
        finally:
            stop(process)
    raise SystemExit(f"nginx did not start; its log:\n{(root / 'error.log').read_text()[-2000:]}")


@contextmanager
def builtin(core: int | None, why: str) -> Iterator[Target]:
    command = [sys.executable, "-m", "loadgen", "serve", "http"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, env=child_env(), preexec_fn=pin(core)
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        port = int(line.rsplit(":", 1)[1])
        label = f"loadgen's built-in HTTP target, 1 process ({why})"
        yield Target("builtin", label, "loadgen serve http", port, process.pid, core)
    finally:
        stop(process)


class NginxCounter:
    """nginx's request and accept counters (stub_status), less this counter's own requests."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.asked = 0
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    def read(self) -> tuple[int, int]:
        for attempt in range(2):
            try:
                self.connection.request("GET", "/nginx_status")
                body = self.connection.getresponse().read().decode()
                break
            except (OSError, http.client.HTTPException):
                self.connection.close()  # reopened by the next request
                if attempt:
                    raise
        self.asked += 1
        # "Active connections: 1 \nserver accepts handled requests\n 7 7 42 \nReading: ..."
        accepts, _handled, requests = (int(v) for v in body.splitlines()[2].split())
        return requests - self.asked, accepts


# --- the clients -------------------------------------------------------------------------


def availability() -> dict[str, str | None]:
    """Each client: None when it can run here, else why not."""
    return {
        "loadgen": None,
        "wrk": None if shutil.which("wrk") else "wrk not found: install the Debian package 'wrk'",
        "locust": None
        if importlib.util.find_spec("locust")
        else "locust not importable: pip install locust (pinned in the test extra)",
    }


def versions(available: list[str]) -> dict[str, str]:
    found = {"loadgen": loadgen_version()}
    if "wrk" in available:
        banner = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
        found["wrk"] = banner.split(" Copyright")[0].strip()  # "wrk debian/4.1.0-3+b2 [epoll]"
    if "locust" in available:
        banner = subprocess.run(
            [sys.executable, "-m", "locust", "--version"], capture_output=True, text=True
        ).stdout
        found["locust"] = banner.split(" from ")[0].strip()  # "locust 2.47.0"
    return found


LOCUSTFILE = """\
import gevent
from locust import FastHttpUser, constant, task

# gevent's loop clock was last read when the hub was made, before Locust's imports finished
# (0.5-1 s on a busy machine); --run-time's timer counts from it, so without this refresh
# Locust stops that much early (a 1 s run can end before its first request).
gevent.get_hub().loop.update_now()


class Get(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self) -> None:
        self.client.get({path!r})
"""

SCENARIO = """\
name: http-peers
description: written by benchmarks/http_peers.py
target: 127.0.0.1:{port}
protocol: {{http: {{method: GET, path: {path}}}}}
connections: {connections}
duration: {seconds}s
"""
TLS_SCENARIO = """\
tls: {{enabled: true, ca_file: {ca_file}}}
"""


def client_command(
    name: str, target: Target, args: argparse.Namespace, run_dir: Path, processes_option: bool
) -> list[str]:
    n, seconds = args.connections, args.seconds
    if name == "loadgen":
        scenario = run_dir / "scenario.yaml"
        text = SCENARIO.format(port=target.port, path=PATH, connections=n, seconds=seconds)
        if target.ca_file is not None:
            text += TLS_SCENARIO.format(ca_file=target.ca_file)
        scenario.write_text(text)
        command = [sys.executable, "-m", "loadgen", "run", str(scenario), "--quiet"]
        command += ["--json", str(run_dir / "result.json")]
        return command + (["--processes", "1"] if processes_option else [])
    if name == "wrk":
        return ["wrk", "-t1", f"-c{n}", f"-d{seconds}s", "--latency", target.url]
    if name == "locust":
        (run_dir / "locustfile.py").write_text(LOCUSTFILE.format(path=PATH))
        return [
            sys.executable, "-m", "locust", "-f", str(run_dir / "locustfile.py"),
            "--headless", "--only-summary", "--loglevel", "WARNING",
            "--users", str(n), "--spawn-rate", str(n * 100), "--run-time", f"{seconds}s",
            "--stop-timeout", "0", "--host", f"{target.scheme}://127.0.0.1:{target.port}",
            "--csv", str(run_dir / "locust"),
        ]  # fmt: skip
    raise ValueError(name)


_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def _wrk_time_us(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS_US[unit]


def parse_wrk(output: str) -> ToolFigures:
    done = re.search(r"^\s*(\d+) requests in ([\d.]+\w+),", output, re.MULTILINE)
    if done is None:
        raise ValueError(f"no request count in wrk's output:\n{output}")
    requests = int(done[1])
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)\s*$", output, re.MULTILINE))
    errors = sum(int(v) for v in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors += int(non_2xx[1]) if non_2xx else 0
    return ToolFigures(
        requests=requests,
        rps=requests / (_wrk_time_us(done[2]) / 1e6),
        p50_us=_wrk_time_us(latency["50"]) if "50" in latency else None,
        p99_us=_wrk_time_us(latency["99"]) if "99" in latency else None,
        errors=errors,
    )


def parse_locust(run_dir: Path) -> ToolFigures:
    with (run_dir / "locust_stats.csv").open() as file:
        row = next(r for r in csv.DictReader(file) if r["Name"] == "Aggregated")

    def ms_to_us(value: str) -> float | None:
        return None if value in ("", "N/A") else float(value) * 1000

    return ToolFigures(
        requests=int(row["Request Count"]),
        rps=float(row["Requests/s"]),
        p50_us=ms_to_us(row["50%"]),
        p99_us=ms_to_us(row["99%"]),
        errors=int(row["Failure Count"]),
    )


def run_client(
    name: str,
    target: Target,
    counter: NginxCounter | None,
    args: argparse.Namespace,
    run_dir: Path,
    processes_option: bool,
    client_core: int | None,
) -> dict[str, Any]:
    run_dir.mkdir(parents=True)
    command = client_command(name, target, args, run_dir, processes_option)

    def parse(run: Sampled) -> ToolFigures:
        if name == "wrk":
            return parse_wrk(run.output)
        if name == "locust":
            return parse_locust(run_dir)
        tool = parse_loadgen(run_dir)
        if run.exit_code == 3:  # loadgen's own check: the generator was the limit
            tool.note += "; exit 3: loadgen marked the run invalid (its CPU was the limit)"
        return tool

    # wrk exits 0, loadgen 0 (or 3 once it marks a saturated generator; expected at full
    # closed-loop speed), locust 1 when any request failed (counted as errors).
    exit_codes = {"loadgen": (0, 3), "wrk": (0,), "locust": (0, 1)}[name]
    return run_client_process(
        name, command, run_dir, counter, target.pid, args.seconds, client_core, exit_codes, parse
    )


# --- the orchestration -------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, CLIENTS, seconds="per run (whole seconds: wrk)")
    parser.add_argument(
        "--server", choices=("auto", "nginx", "builtin"), default="auto",
        help="auto: nginx when installed, else loadgen's built-in HTTP target",
    )  # fmt: skip
    parser.add_argument(
        "--tls", action="store_true", help="HTTPS: every client over TLS to nginx (see above)"
    )
    parser.add_argument(
        "--no-floor", action="store_true", help="skip the 1-connection latency floor (see above)"
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds < 1 or args.connections < 1:
        parser.error("--rounds, --seconds and --connections must be at least 1")
    clients, skipped = choose_clients(parser, args.clients, CLIENTS, availability())
    use_nginx = args.server == "nginx" or (args.server == "auto" and nginx_binary() is not None)
    if use_nginx and nginx_binary() is None:
        parser.error("--server nginx: nginx not found (install the Debian package 'nginx')")
    if args.tls and not use_nginx:
        parser.error("--tls needs nginx (the built-in HTTP target speaks plain HTTP)")

    processes_option = loadgen_has_processes_option()
    runs: list[dict[str, Any]] = []
    with (
        session(clients, skipped) as this,
        tempfile.TemporaryDirectory(prefix="http-peers-") as tmp,
    ):
        workdir = Path(tmp)
        why = "--server builtin" if args.server == "builtin" else "nginx not found"
        server_cm = (
            nginx(workdir, this.server_core, args.connections, args.tls)
            if use_nginx
            else builtin(this.server_core, why)
        )
        with server_cm as target:
            counter = NginxCounter(target.status_port) if target.status_port else None
            print(f"server: {target.label} on 127.0.0.1:{target.port}, GET {target.url}")
            if counter is None:
                print("  (no nginx: server-side request counts are not measurable here)")
            print(f"pinning: {this.pin_note}")
            print(
                f"{args.connections} keep-alive connections, closed loop, one client process, "
                f"{args.seconds} s per run, {args.rounds} rounds; load average {this.load_text()}"
            )
            print(
                "loadgen: "
                + ("--processes 1" if processes_option else "no --processes option (one process)")
            )
            for name, reason in skipped.items():
                print(f"skipped {name}: {reason}")

            def play(round_number: int, name: str) -> dict[str, Any]:
                run_dir = workdir / f"round{round_number}-{name}"
                return run_client(
                    name, target, counter, args, run_dir, processes_option, this.client_core
                )

            for round_number in range(1, args.rounds + 1):
                runs += play_round(
                    clients,
                    partial(play, round_number),
                    f"round {round_number}",
                    "server_rps" if counter else "tool_rps",
                    "req/s",
                    round=round_number,
                )
            floor_clients = [] if args.no_floor else [c for c in ("loadgen", "wrk") if c in clients]
            floor_runs: list[dict[str, Any]] = []
            if len(floor_clients) == 2:
                one = argparse.Namespace(**{**vars(args), "connections": 1})

                def play_floor(round_number: int, name: str) -> dict[str, Any]:
                    run_dir = workdir / f"floor{round_number}-{name}"
                    return run_client(
                        name, target, counter, one, run_dir, processes_option, this.client_core
                    )

                print("\nlatency floor: 1 connection, p50 as each tool reports it")
                for round_number in range(1, args.rounds + 1):
                    floor_runs += play_round(
                        floor_clients,
                        partial(play_floor, round_number),
                        f"floor round {round_number}",
                        "p50_us",
                        "us p50",
                        round=round_number,
                    )
    medians = summarize(runs, clients)
    found_ratios = ratios(medians, clients, TARGETS)
    print_summary(medians, found_ratios, clients, LATENCY_NOTES)
    floor = latency_floor(floor_runs) if floor_runs else None
    config = {
        "path": PATH,
        "body_bytes": BODY_BYTES,
        "model": "closed loop, keep-alive, one client process",
        "loadgen_processes_option": processes_option,
        "tls": TLS_NOTE if args.tls else None,
    }
    server = {"kind": target.kind, "label": target.label, "version": target.version}
    this.write(
        "https_peers" if args.tls else "http_peers",
        args,
        config,
        server,
        LATENCY_NOTES,
        versions(clients),
        not_compared=NOT_HERE,
        medians=medians,
        ratios=found_ratios,
        runs=runs,
        floor=floor,
    )


if __name__ == "__main__":
    main()
