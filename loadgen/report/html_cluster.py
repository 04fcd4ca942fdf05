"""The report's cluster parts: a warning box per distributed run that lost hosts, and each
run's hosts with their share, clock offset, start skew and status."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from loadgen.report import cluster as cluster_text
from loadgen.report.html_parts import badge, cell
from loadgen.report.loading import LoadedRun
from loadgen.result.model import Cluster


def lost_hosts_banner(runs: Sequence[LoadedRun]) -> str:
    """A warning box per distributed run that lost hosts, naming each; empty otherwise."""
    parts = []
    for run in runs:
        cluster = run.result.cluster
        if cluster is None or not cluster.lost_hosts:
            continue
        lost = "".join(f"<li>{escape(text)}</li>" for text in cluster_text.lost_hosts(cluster))
        parts.append(
            f'<div class="invalid lost-hosts" role="alert"><strong>Hosts lost: '
            f"{escape(run.label)}</strong><p>{len(cluster.lost_hosts)} of "
            f"{len(cluster.hosts)} hosts gave no result; see Cluster.</p><ul>{lost}</ul></div>"
        )
    return "".join(parts)


_CLUSTER_HEADER = (
    "#",
    "hostname",
    "worker",
    "processes",
    "load share",
    "clock offset (ms)",
    "start late (ms)",
    "status",
)


def _cluster_table(cluster: Cluster) -> str:
    head = "".join(cell(escape(h), "th") for h in _CLUSTER_HEADER)
    rows = []
    for row in cluster_text.host_rows(cluster):
        lost = row.lost is not None
        status = badge(row.status, "bad") if lost else badge("reported", "good")
        cells = [
            cell(escape(row.index), "th"),
            cell(escape(row.hostname)),
            cell(f"<code>{escape(row.worker)}</code>"),
            *(
                cell(escape(text), css="num")
                for text in (row.processes, row.share, row.clock_offset, row.start_late)
            ),
            cell(status),
        ]
        klass = ' class="lost"' if lost else ""
        rows.append(f"<tr{klass}>{''.join(cells)}</tr>")
    return (
        f'<table class="grid cluster"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def cluster_section(runs: Sequence[LoadedRun]) -> str:
    """Each distributed run's hosts, start skew and warnings; empty when no run has a
    cluster. In a report of several runs, one titled table per run that has one."""
    parts = []
    single = [run.label for run in runs if run.result.cluster is None]
    for run in runs:
        cluster = run.result.cluster
        if cluster is None:
            continue
        title = f"<h3>{escape(run.label)}</h3>" if len(runs) > 1 else ""
        facts = (
            f'<p class="cluster-facts">{escape(cluster_text.overview(cluster))}; '
            f"{escape(cluster_text.start_skew(cluster))}.</p>"
        )
        warnings = "".join(
            f'<li><span class="badge warn">warning</span> {escape(w)}</li>'
            for w in cluster.warnings
        )
        warning_list = f'<ul class="cluster-warnings">{warnings}</ul>' if warnings else ""
        parts.append(title + facts + warning_list + _cluster_table(cluster))
    if not parts:
        return ""
    if single:
        parts.append(
            f'<p class="note">On one host (not distributed): {escape(", ".join(single))}.</p>'
        )
    return "".join(parts)
