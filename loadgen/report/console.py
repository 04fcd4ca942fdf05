"""The end-of-run summary for a terminal (rich)."""

from __future__ import annotations

from rich import box
from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from loadgen.report import cluster as cluster_text
from loadgen.report.advice import saturation_advice
from loadgen.report.formatting import format_bytes, latency_parts, reason_lines
from loadgen.report.loading import from_result
from loadgen.report.memory import run_memory
from loadgen.result.model import Cluster, LatencySummary, RunResult
from loadgen.result.stop import StopKind

_LATENCY_COLUMNS = ("min", "mean", "p50", "p90", "p99", "p99_9", "max")


def _format_us(value: float | None) -> str:
    """Compact latency, 3 significant digits: 51.3µs, 1.56ms, 2.1s (at most 6 characters, so
    the latency table fits an 80-column terminal)."""
    if value is None:
        return "-"
    number, unit = latency_parts(value)
    return number + unit


def _format_observed(metric: str, value: float | None) -> str:
    if value is None:
        return "not measured"
    if metric in ("error_rate", "failed_rate"):
        return f"{value:.3%}"
    if metric == "throughput":
        return f"{value:,.0f}/s"
    if metric in ("errors", "requests", "failed"):
        return f"{value:,.0f}"
    return _format_us(value * 1e6)


def _codes(codes: dict[str, int] | None) -> str:
    """`` (OS code 10055)`` / `` (OS codes 111 x3, 113 x1)``: what the OS said, if it said."""
    if not codes:
        return ""
    if len(codes) == 1:
        return f" (OS code {next(iter(codes))})"
    return " (OS codes " + ", ".join(f"{code} x{n:,}" for code, n in codes.items()) + ")"


def _latency_row(name: str, latency: LatencySummary) -> list[str]:
    return [name, f"{latency.count:,}"] + [
        _format_us(getattr(latency, c)) for c in _LATENCY_COLUMNS
    ]


def _signed_bytes(value: float) -> str:
    return ("-" if value < 0 else "+") + format_bytes(int(abs(value)))


def memory_line(result: RunResult) -> str | None:
    """``kernel non-pageable +1.2 MiB (system-wide), receives posted 6.25 MiB (64 KiB/conn),
    RSS 62 MiB (peak)``: kernel growth from the first sample to its peak; None without
    samples. (The HTML report's table has every counter, and per connection.)"""
    data = run_memory(from_result(result))
    if data is None:
        return None
    parts = []
    kernel = data.kernel
    if kernel.reason is not None:
        parts.append(f"kernel {kernel.reason}")
    elif kernel.start is not None and kernel.peak is not None:
        growth = _signed_bytes(kernel.peak - kernel.start)
        parts.append(f"kernel non-pageable {growth} (system-wide)")
    if data.posted.peak is not None:
        each, _ = data.per_connection(data.posted)
        per = f" ({format_bytes(int(each))}/conn)" if each is not None and each >= 0 else ""
        parts.append(f"receives posted {format_bytes(data.posted.peak)}{per}")
    if data.rss.peak is not None:
        parts.append(f"RSS {format_bytes(data.rss.peak)}")
    return ", ".join(parts) + " (peak)"


def render_validity(result: RunResult, console: Console) -> None:
    """A red block naming every reason when the generator itself was the bottleneck."""
    check = result.self_check
    if check is None or check.valid:
        return
    console.print(
        "[bold red]INVALID RUN[/]: the load generator itself was the bottleneck; these "
        "numbers measure loadgen, not the target:",
        highlight=False,
    )
    for reason in check.reasons:
        console.print(f"  - {reason}", highlight=False, markup=False)
    console.print("[bold]What to do[/] (any one of):", highlight=False)
    for advice in saturation_advice(result):
        console.print(Text(f"  - {advice}"), highlight=False)


def no_success_text(result: RunResult) -> str | None:
    """Why a run in which no request succeeded failed; None when some succeeded."""
    if not result.no_success:
        return None
    summary = result.summary
    errors = ", ".join(f"{kind} {count:,}" for kind, count in summary.errors.items())
    if summary.requests:
        what = f"all {summary.requests:,} responses failed the expectation"
    else:
        what = "no response arrived"
    return (
        f"NO REQUEST SUCCEEDED: {what} ({errors or 'no errors either'}); exit 1 "
        "(unless expect_failures: true)"
    )


def render_no_success(result: RunResult, console: Console) -> None:
    """A red line when no request succeeded (``RunResult.no_success``)."""
    text = no_success_text(result)
    if text is not None:
        console.print(Text(text, style="bold red"))


def render_by_name(result: RunResult, console: Console) -> None:
    """A request set's breakdown: a row per request name."""
    if not result.requests_by_name:
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0, 0, 1))
    for column in ("request", "count", "failed", "p50", "p90", "p99", "max", "errors"):
        table.add_column(column, justify="left" if column in ("request", "errors") else "right")
    for named in result.requests_by_name:
        latency = named.latency_corrected_us or named.latency_us
        failed = f"{named.failed:,}"
        if named.failed_rate:
            failed += f" ({named.failed_rate:.1%})"
        errors = ", ".join(f"{kind} {count:,}" for kind, count in named.errors.items())
        table.add_row(
            Text(named.name),
            f"{named.requests:,}",
            Text(failed, style="red" if named.failed else ""),
            *(_format_us(getattr(latency, key)) for key in ("p50", "p90", "p99", "max")),
            Text(errors or "-", style="red" if errors else ""),
        )
    console.print(table)


def render_cluster(cluster: Cluster, console: Console) -> None:
    """The hosts of a distributed run: one row each, lost hosts in red, then the start skew
    and every warning."""
    console.print(f"[bold]cluster[/] {cluster_text.overview(cluster)}", highlight=False)
    hosts = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0, 0, 1))
    # Narrow enough for 80 columns: the reason a host was lost goes on its own line below.
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("#", "right"),
        ("hostname", "left"),
        ("worker", "left"),
        ("proc", "right"),
        ("share", "right"),
        ("offset ms", "right"),
        ("late ms", "right"),
        ("", "left"),
    )
    for column, justify in columns:
        hosts.add_column(column, justify=justify, overflow="fold", no_wrap=column != "hostname")
    for row in cluster_text.host_rows(cluster):
        cells = [row.index, row.hostname, row.worker, row.processes, row.share]
        cells += [row.clock_offset, row.start_late, "ok" if row.lost is None else "LOST"]
        # Text cells: a host name is shown as is, never read as markup.
        hosts.add_row(
            *(Text(cell) for cell in cells), style="bold red" if row.lost is not None else None
        )
    console.print(hosts)
    console.print(cluster_text.start_skew(cluster), highlight=False)
    render_cluster_problems(cluster, console)


def render_cluster_problems(cluster: Cluster, console: Console) -> None:
    """Each lost host (red, with its reason) and each cluster warning, one line each: the
    part of the cluster block a quiet log should still show."""
    for lost in cluster_text.lost_hosts(cluster):
        console.print(Text(lost, style="bold red"))
    for warning in cluster.warnings:
        console.print(Text.assemble(("warning", "bold yellow"), ": ", warning))


def render_summary(result: RunResult, console: Console) -> None:
    summary = result.summary
    env = result.environment
    status = "completed"
    if result.stop.kind is StopKind.FAILED:
        status = "[red]partial[/] — " + escape(result.stop_reason)
    elif result.partial:
        status = "[yellow]partial[/] — " + escape(result.stop_reason)
    if result.no_success:
        status += ", [bold red]no request succeeded[/]"
    console.print(
        f"[bold]{result.scenario['name']}[/] on {env.backend} ({env.recv_mode} receives), "
        f"{summary.duration_s:.2f} s, {status}"
    )
    overview = Table(show_header=False, box=None, pad_edge=False)
    requests = f"{summary.requests:,}"
    if summary.failed:
        rate = summary.failed_rate or 0.0
        requests += f", [red]{summary.failed:,} failed ({rate:.2%})[/]"
    overview.add_row("requests", requests)
    overview.add_row("throughput", f"{summary.throughput_rps:,.0f} req/s")
    connections = f"{summary.connections:,} open at end, {summary.connects:,} connects"
    if summary.connects > summary.connections and summary.duration_s > 0:
        # Churn (or reconnects): how fast connections were made and what a connect cost.
        connect = summary.connect_latency_us
        connections += (
            f" ({summary.connects / summary.duration_s:,.0f}/s; connect p50 "
            f"{_format_us(connect.p50)}, p99 {_format_us(connect.p99)})"
        )
    overview.add_row("connections", connections)
    overview.add_row("bytes", f"{summary.bytes_sent:,} sent, {summary.bytes_received:,} received")
    if summary.throughput_bytes_per_s is not None:  # stream runs
        overview.add_row(
            "bandwidth",
            f"{summary.throughput_bytes_per_s / 2**20:,.1f} MiB/s "
            f"({summary.throughput_bytes_per_s * 8 / 1e9:,.2f} Gbit/s), both directions",
        )
    errors = ", ".join(
        f"{kind} {count:,}{_codes(summary.error_codes.get(kind))}"
        for kind, count in summary.errors.items()
    )
    overview.add_row("errors", f"[red]{errors}[/]" if errors else "none")
    for reason in reason_lines(summary.error_reasons):
        overview.add_row("", Text(reason, style="red"))
    if summary.tls_handshake_us is not None:
        overview.add_row(
            "tls",
            f"{summary.tls_handshake_us.count:,} handshakes, {summary.tls_resumed or 0:,} resumed",
        )
    generator = result.generator
    generator_text = (
        f"{generator.cpu_percent:.0f}% CPU, max loop lag {generator.max_loop_lag_ms:.1f} ms"
    )
    if generator.start_late_ms is not None and (env.processes > 1 or result.cluster):
        # Several shards share one start instant: how late the last of them woke up.
        generator_text += f", last start {cluster_text.format_ms(generator.start_late_ms)} ms late"
    overview.add_row("generator", generator_text)
    memory = memory_line(result)
    if memory is not None:
        overview.add_row("memory", memory)
    console.print(overview)
    if result.cluster is not None:
        render_cluster(result.cluster, console)
    # 80 columns hold it: 9 columns (cells of at most 6 characters but the first two), each
    # after a divider and a space, no outer edge. Narrower terminals fold a cell, never cut it.
    latency = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0, 0, 1))
    for column in ("latency", "count", *_LATENCY_COLUMNS):
        latency.add_column(column.replace("_", "."), justify="right", overflow="fold")
    if summary.latency_corrected_us is not None:
        latency.add_row(*_latency_row("corrected", summary.latency_corrected_us))
        latency.add_row(*_latency_row("raw", summary.latency_us))
    else:
        latency.add_row(*_latency_row("request", summary.latency_us))
    latency.add_row(*_latency_row("connect", summary.connect_latency_us))
    if summary.tls_handshake_us is not None:
        latency.add_row(*_latency_row("handshake", summary.tls_handshake_us))
    if summary.schedule_lag_us is not None:
        latency.add_row(*_latency_row("sched lag", summary.schedule_lag_us))
    console.print(latency)
    render_by_name(result, console)
    if summary.unsent is not None:
        console.print(
            f"open model: {summary.waited_for_connection:,} requests waited for a free "
            f"connection, {summary.unsent:,} due but never sent"
        )
    if result.thresholds:
        verdicts = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("threshold", "observed", "verdict"):
            verdicts.add_column(column)
        for verdict in result.thresholds:
            observed = _format_observed(verdict.metric, verdict.value)
            verdicts.add_row(
                verdict.expression,
                observed,
                "[green]pass[/]" if verdict.passed else "[red]FAIL[/]",
            )
        console.print(verdicts)
    render_validity(result, console)
    render_no_success(result, console)
