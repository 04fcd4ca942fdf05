"""The self-contained HTML report: one file, no URL, readable with or without JavaScript.

The page is ``assets/report.html`` with its placeholders filled: the tables are plain HTML
(``html_tables``), the charts are drawn by ``assets/report.js`` (on ``assets/charts.js``) with
the vendored uPlot from a JSON block (``charts``). The scripts and stylesheets are inlined
(``page``); a Content-Security-Policy of ``default-src 'none'`` makes the browser refuse any
load from anywhere, so a report that works once works from disk, from a CI artifact, and
offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from pathlib import Path

from loadgen.report import charts as chart_data
from loadgen.report import html_cluster, html_memory
from loadgen.report import html_tables as tables
from loadgen.report.charts import Chart
from loadgen.report.loading import LoadedRun
from loadgen.report.memory import run_memory
from loadgen.report.page import generated_text, page_section, render_page, script_json
from loadgen.report.series import interval_series
from loadgen.result.files import write_atomically


def _figure(chart: Chart, titled: bool = False) -> str:
    """A chart's frame; ``titled`` when its section holds several charts (one per run)."""
    title = f"<strong>{escape(chart.title)}</strong>" if titled else ""
    return (
        f'<figure class="chart" id="figure-{escape(chart.id)}">'
        f"<figcaption>{title}<span>{escape(chart.description)}</span></figcaption>"
        f'<div class="plot" data-chart="{escape(chart.id)}"></div>'
        '<noscript><p class="note">This chart needs JavaScript; the tables on this page '
        "hold its key numbers.</p></noscript></figure>"
    )


def _sections(runs: Sequence[LoadedRun]) -> tuple[list[tuple[str, str, str]], list[Chart]]:
    series = [interval_series(run) for run in runs]
    throughput = chart_data.throughput_chart(runs, series)
    latency = chart_data.latency_charts(runs, series)
    spectrum = chart_data.spectrum_chart(runs)
    errors = chart_data.error_charts(runs, series)
    connections = chart_data.connections_chart(runs, series)
    generator_cpu = chart_data.generator_cpu_chart(runs)
    memory_data = [run_memory(run) for run in runs]
    memory_charts = chart_data.memory_charts(runs, memory_data)
    optional = [chart for chart in (spectrum, connections, generator_cpu) if chart is not None]
    charts = chart_data.finish([throughput, *latency, *errors, *optional, *memory_charts])
    idle = [run.label for run in runs if not chart_data.has_latency(run)]
    idle_note = (
        f'<p class="note">No request completed in {escape(", ".join(idle))}: '
        "no latency to draw there.</p>"
        if idle
        else ""
    )
    open_model = any(run.result.summary.latency_corrected_us is not None for run in runs)

    sections = [
        page_section(
            "summary",
            "Summary",
            "One column per run. Latency is measured per request, from handing the message "
            "to the kernel to the whole reply having arrived"
            + (
                "; in open-model runs, from the moment the schedule meant it to leave "
                "(corrected for coordinated omission)."
                if open_model
                else "."
            ),
            tables.invalid_banner(runs)
            + tables.no_success_banner(runs)
            + html_cluster.lost_hosts_banner(runs)
            + tables.summary_table(runs)
            + tables.latency_tables(runs),
        )
    ]
    by_name = tables.by_name_section(runs)
    if by_name:
        sections.append(
            page_section(
                "by-name",
                "Requests by name",
                "A request set's requests, each on its own: every response is timed; a "
                "failed one answered outside the expected statuses. Errors of an exchange "
                "that ended without a response (timeout, reset) count against the request "
                "in flight; refused connects belong to no request.",
                by_name,
            )
        )
    thresholds = tables.thresholds_section(runs)
    if thresholds:
        sections.append(page_section("thresholds", "Thresholds", "", thresholds))
    sections += [
        page_section("throughput", "Throughput", "", _figure(throughput)),
        page_section(
            "latency",
            "Latency over time",
            "",
            "".join(_figure(c, titled=len(runs) > 1) for c in latency) + idle_note,
        ),
        page_section(
            "spectrum",
            "Latency percentile spectrum",
            "",
            (_figure(spectrum) if spectrum is not None else "") + idle_note,
        ),
        page_section(
            "errors",
            "Errors",
            "Counted by kind: refused, reset, timeout, eof (the peer closed), verify (a reply "
            "that differs from what was sent), protocol, no_buffers (the kernel ran out of "
            "buffers or pool), unreachable, address_unavailable (no local port or source "
            "address), other; and a response outside the expected statuses by its class "
            "(http_4xx, http_5xx, http_unexpected; redis_error): those are requests too, failed "
            "ones. The JSON keeps the OS's own codes per kind (summary.error_codes).",
            tables.errors_table(runs) + "".join(_figure(c, titled=True) for c in errors),
        ),
    ]
    if connections is not None:
        sections.append(page_section("connections", "Connections", "", _figure(connections)))
    sections.append(
        page_section(
            "self-check",
            "Generator self-check",
            "A generator that runs out of CPU, or cannot send on schedule, reports its own "
            "slowness as the target's; such a run is invalid. Bounds: CPU (or time runnable) "
            "at 90% of the cores the generator can use (one per process), over the run or its "
            "busiest 5 s; in the open model, schedule lag p99 above 20 ms and above the "
            "target's own p99, or more than 1% of the scheduled requests never sent.",
            tables.self_check_table(runs)
            + (_figure(generator_cpu) if generator_cpu is not None else ""),
        )
    )
    if any(data is not None for data in memory_data):
        sections.append(
            page_section(
                "memory",
                "Memory",
                "Sampled once a second during the run. Kernel memory is never paged out on "
                "Linux, so its non-pageable memory is SUnreclaim + TCP socket buffers + VmPin "
                "(the counterpart of Windows' nonpaged pool and locked pages); these counters "
                "are system-wide and noisy. Growth per connection is from the first sample "
                "(before connections opened) to the sample with the most connections open.",
                html_memory.memory_not_measurable(runs, memory_data)
                + "".join(_figure(chart, titled=True) for chart in memory_charts)
                + html_memory.memory_table(runs, memory_data),
            )
        )
    sections.append(
        page_section(
            "environment",
            "Environment",
            "",
            tables.environment_table(runs) + tables.scenario_details(runs),
        )
    )
    cluster = html_cluster.cluster_section(runs)
    if cluster:
        sections.append(page_section("cluster", "Cluster", _CLUSTER_LEAD, cluster))
    return sections, charts


_CLUSTER_LEAD = (
    "Where the load came from: a distributed run's hosts, each a Dask worker that ran its "
    "share of the load in its own client processes, all starting at one shared instant. "
    "Clock offset: the host's wall clock minus the scheduler's, from the sample with the "
    "shortest round trip, ± half that round trip. Start late: how long after the "
    "shared instant the host's last process began. Start skew: the spread of the hosts' "
    "actual starts on the scheduler's clock. A dash: not measured (a host lost first)."
)


def render_html(runs: Sequence[LoadedRun], generated: datetime | None = None) -> str:
    """The whole report for one or more runs, as one HTML document."""
    if not runs:
        raise ValueError("a report needs at least one run")
    sections, charts = _sections(runs)
    names = list(dict.fromkeys(str(run.result.scenario.get("name", "run")) for run in runs))
    heading = f"loadgen report: {', '.join(names)}"
    count = f"{len(runs)} runs" if len(runs) > 1 else f"started {tables.started_text(runs[0])}"
    when = generated_text(generated)
    values = {
        "title": escape(f"{heading} ({count})"),
        "heading": escape(heading),
        "meta": escape(
            " · ".join(
                [
                    count,
                    *dict.fromkeys(
                        f"{run.result.environment.backend}, {run.result.environment.recv_mode} "
                        "receives"
                        for run in runs
                    ),
                ]
            )
        ),
        "toc": "".join(f'<a href="#{anchor}">{escape(title)}</a>' for anchor, title, _ in sections),
        "body": "\n".join(html for _, _, html in sections),
        "chart_count": str(len(charts)),
        "data": script_json({"charts": [chart.to_json() for chart in charts]}),
        "generated": escape(when),
    }
    return render_page(values, "report.js")


def write_html(runs: Sequence[LoadedRun], path: str | Path) -> Path:
    return write_atomically(path, render_html(runs))
