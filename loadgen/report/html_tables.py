"""The report's plain HTML tables: everything a reader needs, with or without JavaScript.

Every function takes the runs and returns escaped HTML (an empty string for a section that
does not apply). Runs are columns when a table describes each run, rows when it lists values.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from loadgen.report import cluster as cluster_text
from loadgen.report.advice import saturation_advice
from loadgen.report.formatting import (
    MISSING,
    format_bytes,
    format_count,
    format_percent_value,
    format_rate,
    format_seconds,
    format_threshold_value,
    format_us,
    reason_lines,
)
from loadgen.report.html_parts import badge, grid_table, per_run_table
from loadgen.report.loading import LoadedRun
from loadgen.result.model import LatencySummary
from loadgen.result.stop import StopKind

_LATENCY_COLUMNS = (
    ("min", "min"),
    ("mean", "mean"),
    ("p50", "p50"),
    ("p90", "p90"),
    ("p99", "p99"),
    ("p99_9", "p99.9"),
    ("max", "max"),
)


def _status(run: LoadedRun) -> str:
    result = run.result
    if result.stop.kind is StopKind.FAILED:
        status = badge(result.stop_reason, "bad")
        if result.stop.traceback:  # loadgen's own failure: where it happened, for a bug report
            status += (
                f"<details><summary>traceback</summary><pre>"
                f"{escape(result.stop.traceback)}</pre></details>"
            )
        return status
    if result.no_success:
        return badge("no request succeeded", "bad")
    if result.partial:
        return badge(f"partial: {result.stop_reason}", "warn")
    return badge("completed", "good")


def _failed(run: LoadedRun) -> str:
    summary = run.result.summary
    if not summary.failed:
        return "none"
    rate = 100 * (summary.failed_rate or 0.0)
    return badge(f"{format_count(summary.failed)} ({format_percent_value(rate)})", "bad")


def started_text(run: LoadedRun) -> str:
    """``started_at`` (ISO 8601 UTC) as a person writes it: 2024-05-01 12:00:05 UTC."""
    return run.result.started_at.replace("T", " ").split(".")[0].rstrip("Z") + " UTC"


def _thresholds(run: LoadedRun) -> str:
    verdicts = run.result.thresholds
    if not verdicts:
        return "none set"
    failed = sum(not v.passed for v in verdicts)
    if failed:
        return badge(f"{failed} of {len(verdicts)} failed", "bad")
    return badge(f"all {len(verdicts)} passed", "good")


def _validity(run: LoadedRun) -> str:
    check = run.result.self_check
    if check is None:
        return "not checked (result written before loadgen checked itself)"
    if check.valid:
        return badge("valid", "good")
    return badge("INVALID: generator was the bottleneck", "bad")


def invalid_banner(runs: Sequence[LoadedRun]) -> str:
    """A warning box per invalid run, above everything else; empty when all are valid."""
    parts = []
    for run in runs:
        check = run.result.self_check
        if check is None or check.valid:
            continue
        reasons = "".join(f"<li>{escape(reason)}</li>" for reason in check.reasons)
        advice = "".join(f"<li>{escape(line)}</li>" for line in saturation_advice(run.result))
        parts.append(
            f'<div class="invalid" role="alert"><strong>Invalid run: {escape(run.label)}'
            "</strong><p>The load generator itself was the bottleneck, so these numbers "
            f"measure loadgen rather than the target.</p><ul>{reasons}</ul>"
            f"<p>What to do (any one of):</p><ul>{advice}</ul></div>"
        )
    return "".join(parts)


def no_success_banner(runs: Sequence[LoadedRun]) -> str:
    """A red box per run in which no request succeeded; empty otherwise."""
    parts = []
    for run in runs:
        if not run.result.no_success:
            continue
        summary = run.result.summary
        errors = ", ".join(f"{kind} {format_count(n)}" for kind, n in summary.errors.items())
        what = (
            f"all {format_count(summary.requests)} responses failed the expectation"
            if summary.requests
            else "no response arrived"
        )
        parts.append(
            f'<div class="invalid no-success" role="alert"><strong>No request succeeded: '
            f"{escape(run.label)}</strong><p>{escape(what)} "
            f"({escape(errors or 'no errors either')}). <code>loadgen run</code> exits 1 "
            "for such a run unless the scenario sets <code>expect_failures: true</code>.</p>"
            "</div>"
        )
    return "".join(parts)


def self_check_table(runs: Sequence[LoadedRun]) -> str:
    """The self-check's measured values and bounds, one column per run."""

    def value(get: Callable[[Any], str]) -> Callable[[LoadedRun], str]:
        def cell(run: LoadedRun) -> str:
            check = run.result.self_check
            return "not checked" if check is None else get(check)

        return cell

    def percent(number: float | None) -> str:
        return format_percent_value(number) if number is not None else "not measurable here"

    return per_run_table(
        runs,
        [
            ("verdict", _validity),
            (
                "generator CPU (busiest)",
                value(
                    lambda c: f"{percent(c.cpu_percent)} of bound {percent(c.cpu_limit_percent)}"
                ),
            ),
            (
                "loop runnable (running or waiting for a CPU)",
                value(lambda c: percent(c.runnable_percent)),
            ),
            (
                "schedule lag p99 (open model)",
                value(
                    lambda c: (
                        "closed model"
                        if c.schedule_lag_limit_ms is None
                        else f"{format_us(_us(c.schedule_lag_p99_ms))} of bound "
                        f"{c.schedule_lag_limit_ms:g} ms"
                    )
                ),
            ),
            (
                "never sent / waited for a connection",
                value(
                    lambda c: (
                        "closed model"
                        if c.unsent_fraction is None
                        else f"{format_percent_value(100 * c.unsent_fraction)} / "
                        f"{format_percent_value(100 * (c.waited_fraction or 0))}"
                    )
                ),
            ),
            (
                "max loop lag",
                lambda r: f"{r.result.generator.max_loop_lag_ms:.1f} ms (reported, not judged)",
            ),
        ],
    )


def _us(ms: float | None) -> float | None:
    return None if ms is None else ms * 1000


def _errors(run: LoadedRun) -> str:
    summary = run.result.summary
    total = summary.error_count
    if total == 0:
        return "none"
    rate = 100 * summary.error_rate
    return badge(f"{format_count(total)} ({format_percent_value(rate)})", "bad")


def _latency(run: LoadedRun) -> LatencySummary:
    """The honest latency: corrected in the open model, the only one in the closed model."""
    summary = run.result.summary
    return summary.latency_corrected_us or summary.latency_us


def summary_table(runs: Sequence[LoadedRun]) -> str:
    def scenario(key: str) -> Callable[[LoadedRun], str]:
        return lambda run: escape(str(run.result.scenario.get(key, MISSING)))

    return per_run_table(
        runs,
        [
            ("scenario", scenario("name")),
            ("target", scenario("target")),
            ("started", lambda r: escape(started_text(r))),
            ("status", _status),
            ("duration", lambda r: format_seconds(r.result.summary.duration_s)),
            ("requests", lambda r: format_count(r.result.summary.requests)),
            ("failed requests", _failed),
            ("throughput", lambda r: badge(format_rate(r.result.summary.throughput_rps), "key")),
            ("latency p50", lambda r: format_us(_latency(r).p50)),
            ("latency p99", lambda r: badge(format_us(_latency(r).p99), "key")),
            ("latency max", lambda r: format_us(_latency(r).max)),
            ("errors", _errors),
            ("validity", _validity),
            ("thresholds", _thresholds),
            (
                "connections",
                lambda r: (
                    f"{format_count(r.result.summary.connections)} open at end, "
                    f"{format_count(r.result.summary.connects)} connects"
                ),
            ),
            *(
                [("message size", _message_size)]
                if any(_echo(run) for run in runs)
                else []  # only echo sends messages of a chosen size
            ),
            ("bytes sent", lambda r: format_bytes(r.result.summary.bytes_sent)),
            ("bytes received", lambda r: format_bytes(r.result.summary.bytes_received)),
            ("generator", _generator),
            *([("hosts", _hosts)] if any(run.result.cluster for run in runs) else []),
        ],
    )


def _generator(run: LoadedRun) -> str:
    generator = run.result.generator
    text = f"{generator.cpu_percent:.0f}% CPU, max loop lag {generator.max_loop_lag_ms:.1f} ms"
    several = run.result.environment.processes > 1 or run.result.cluster is not None
    if generator.start_late_ms is not None and several:
        # Several shards share one start instant: how late the last of them woke up.
        text += f", last start {cluster_text.format_ms(generator.start_late_ms)} ms late"
    return text


def _hosts(run: LoadedRun) -> str:
    """A distributed run's host count (lost ones flagged); "1" for a run on one host."""
    cluster = run.result.cluster
    if cluster is None:
        return "1"
    lost = len(cluster.lost_hosts)
    if lost:
        return badge(f"{len(cluster.hosts)}, {lost} lost", "bad")
    return format_count(len(cluster.hosts))


def _echo(run: LoadedRun) -> bool:
    protocol = run.result.scenario.get("protocol")
    return (
        protocol is None
        or protocol == "echo"
        or (isinstance(protocol, dict) and "echo" in protocol)
    )


def _message_size(run: LoadedRun) -> str:
    if not _echo(run):
        return MISSING  # http, redis, stream: the request is what their protocol sends
    return _size(run.result.scenario.get("message_size"))


def _size(value: Any) -> str:
    return format_bytes(value) if isinstance(value, int) else escape(str(value or MISSING))


LatencyPick = Callable[[LoadedRun], LatencySummary | None]

#: (title, which summary) of each latency table; a table shows only when some run has it.
LATENCY_TABLES: tuple[tuple[str, LatencyPick], ...] = (
    (
        "Request latency, corrected (from each request's intended send time)",
        lambda run: run.result.summary.latency_corrected_us,
    ),
    ("Request latency", lambda run: run.result.summary.latency_us),
    ("Schedule lag (how late requests left)", lambda run: run.result.summary.schedule_lag_us),
    ("Connect latency", lambda run: run.result.summary.connect_latency_us),
    (
        "TLS handshake (from the TCP connect to the handshake's end)",
        lambda run: run.result.summary.tls_handshake_us,
    ),
)


def latency_tables(runs: Sequence[LoadedRun]) -> str:
    """One table per kind of latency a run recorded: a row per run, a column per statistic."""
    open_model = any(run.result.summary.latency_corrected_us is not None for run in runs)
    parts = []
    for title, pick in LATENCY_TABLES:
        rows = []
        for run in runs:
            latency = pick(run)
            if latency is None:
                continue
            rows.append(
                [
                    escape(run.label),
                    format_count(latency.count),
                    *(format_us(getattr(latency, key)) for key, _ in _LATENCY_COLUMNS),
                ]
            )
        if not rows:
            continue
        if title == "Request latency" and open_model:
            title = "Request latency, raw (from each request's actual send)"
        header = ["run", "count", *(h for _, h in _LATENCY_COLUMNS)]
        parts.append(f"<h3>{escape(title)}</h3>" + grid_table(header, rows))
    return "".join(parts)


def by_name_section(runs: Sequence[LoadedRun]) -> str:
    """Each request set's breakdown: a row per request name (one table per run that has a
    breakdown); empty when no run has one."""
    parts = []
    for run in runs:
        named = run.result.requests_by_name
        if not named:
            continue
        rows = []
        for item in named:
            latency = item.latency_corrected_us or item.latency_us
            failed = format_count(item.failed)
            if item.failed:
                rate = format_percent_value(100 * (item.failed_rate or 0.0))
                failed = badge(f"{failed} ({rate})", "bad")
            errors = ", ".join(
                f"{escape(kind)} {format_count(count)}" for kind, count in item.errors.items()
            )
            rows.append(
                [
                    escape(item.name),
                    format_count(item.requests),
                    failed,
                    *(format_us(getattr(latency, key)) for key, _ in _LATENCY_COLUMNS),
                    errors or "none",
                ]
            )
        header = ["request", "count", "failed", *(h for _, h in _LATENCY_COLUMNS), "errors"]
        title = f"<h3>{escape(run.label)}</h3>" if len(runs) > 1 else ""
        parts.append(title + grid_table(header, rows, css="grid by-name"))
    return "".join(parts)


def errors_table(runs: Sequence[LoadedRun]) -> str:
    kinds = sorted({kind for run in runs for kind in run.result.summary.errors})
    if not kinds:
        return '<p class="note">No errors in any run.</p>'
    rows = [[escape(kind), *(_errors_cell(run, kind) for run in runs)] for kind in kinds]
    rows.append(["total", *(format_count(run.result.summary.error_count) for run in runs)])
    table = grid_table(["kind", *(escape(run.label) for run in runs)], rows)
    reasons = [
        f"<li>{escape(f'{run.label}: {line}' if len(runs) > 1 else line)}</li>"
        for run in runs
        for line in reason_lines(run.result.summary.error_reasons)
    ]
    return table + (f'<ul class="note">{"".join(reasons)}</ul>' if reasons else "")


def _errors_cell(run: LoadedRun, kind: str) -> str:
    """The count of one error kind, with the OS codes behind it: ``3 (10055: 3)``."""
    summary = run.result.summary
    cell = format_count(summary.errors.get(kind, 0))
    codes = summary.error_codes.get(kind)
    if codes:
        cell += " (" + ", ".join(f"{escape(c)}: {format_count(n)}" for c, n in codes.items()) + ")"
    return cell


def thresholds_section(runs: Sequence[LoadedRun]) -> str:
    """Threshold verdicts of each run that has thresholds; empty when none has any."""
    parts = []
    for run in runs:
        verdicts = run.result.thresholds
        if not verdicts:
            continue
        rows = [
            [
                f"<code>{escape(v.expression)}</code>",
                format_threshold_value(v.metric, v.value),
                badge("pass", "good") if v.passed else badge("fail", "bad"),
            ]
            for v in verdicts
        ]
        title = f"<h3>{escape(run.label)}</h3>" if len(runs) > 1 else ""
        parts.append(title + grid_table(["threshold", "observed", "verdict"], rows, "grid per-run"))
    return "".join(parts)


def environment_table(runs: Sequence[LoadedRun]) -> str:
    def env(key: str) -> Callable[[LoadedRun], str]:
        return lambda run: escape(str(getattr(run.result.environment, key)))

    return per_run_table(
        runs,
        [
            ("backend", env("backend")),
            ("receive mode", env("recv_mode")),
            ("os", env("os")),
            ("python", env("python")),
            ("loadgen", env("loadgen_version")),
            ("processes", env("processes")),
            ("CPUs", env("cpu_count")),
            ("host", _host),
            ("source", lambda run: escape(run.source or "this run")),
        ],
    )


def _host(run: LoadedRun) -> str:
    cluster = run.result.cluster
    if cluster is None:
        return escape(run.result.environment.hostname)
    return f'<a href="#cluster">{escape(cluster_text.overview(cluster))}</a>'


def scenario_details(runs: Sequence[LoadedRun]) -> str:
    parts = []
    for run in runs:
        text = json.dumps(run.result.scenario, indent=2, sort_keys=True)
        parts.append(
            f"<details><summary>Scenario of {escape(run.label)} (as resolved: seconds, "
            f"bytes)</summary><pre>{escape(text)}</pre></details>"
        )
    return "".join(parts)
