"""JUnit XML, the format every CI system shows as test results: one testcase per check."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from loadgen.config.thresholds import ThresholdVerdict
from loadgen.report import cluster as cluster_text
from loadgen.report.compare import Comparison, MetricComparison, Verdict
from loadgen.report.formatting import (
    format_change,
    format_interval,
    format_metric,
    format_threshold_value,
)
from loadgen.result.model import Cluster
from loadgen.result.stop import StopKind, StopReason


@dataclass(frozen=True)
class Check:
    """One pass/fail/skip check. ``details`` goes to the testcase's output."""

    classname: str
    name: str
    outcome: str  # "passed", "failed" or "skipped"
    message: str
    details: str
    kind: str = "regression"  # the <failure> type


def junit_xml(suite: str, checks: Sequence[Check]) -> str:
    failures = sum(c.outcome == "failed" for c in checks)
    skipped = sum(c.outcome == "skipped" for c in checks)
    root = ET.Element("testsuites", name=suite, tests=str(len(checks)), failures=str(failures))
    element = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(checks)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    for check in checks:
        case = ET.SubElement(element, "testcase", classname=check.classname, name=check.name)
        if check.outcome == "failed":
            failure = ET.SubElement(case, "failure", message=check.message, type=check.kind)
            failure.text = check.details
        elif check.outcome == "skipped":
            ET.SubElement(case, "skipped", message=check.message)
        ET.SubElement(case, "system-out").text = f"{check.message}\n{check.details}"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _metric_check(metric: MetricComparison) -> Check:
    unit = metric.metric.unit
    details = "\n".join(
        [
            "baseline: " + ", ".join(format_metric(v, unit) for v in metric.baseline),
            "current: " + ", ".join(format_metric(v, unit) for v in metric.current),
            f"change of medians: {format_change(metric.change)}",
            *(
                [f"p (one-sided, toward worse): {metric.p_value:.4g}"]
                if metric.p_value is not None
                else []
            ),
            *(
                [f"bootstrap interval: {format_interval(metric.ci)}"]
                if metric.ci is not None
                else []
            ),
        ]
    )
    outcome = (
        "failed" if metric.failed else "skipped" if metric.verdict is Verdict.NO_DATA else "passed"
    )
    return Check(
        classname="loadgen.compare",
        name=metric.metric.label,
        outcome=outcome,
        message=f"{metric.metric.label}: {metric.verdict.value}: {metric.reason}",
        details=details,
    )


def _threshold_check(label: str, verdict: ThresholdVerdict) -> Check:
    observed = format_threshold_value(verdict.metric, verdict.value)
    outcome = "passed" if verdict.passed else "failed"
    return Check(
        classname="loadgen.config.thresholds",
        name=f"{label}: {verdict.expression}",
        outcome=outcome,
        message=f"{verdict.expression}: {outcome} (observed {observed})",
        details=f"run: {label}",
        kind="threshold",
    )


def validity_check(label: str, reasons: Sequence[str]) -> Check:
    """A run whose generator was the bottleneck: a failed testcase naming every reason."""
    return Check(
        classname="loadgen.validity",
        name=f"{label}: generator not saturated",
        outcome="failed" if reasons else "passed",
        message=(
            f"{label}: invalid run: " + "; ".join(reasons) if reasons else f"{label}: valid run"
        ),
        details=f"run: {label}",
        kind="invalid-run",
    )


def cluster_check(label: str, cluster: Cluster) -> Check:
    """A distributed run: failed when a host gave no result (its share of the load counts
    only what it reported before it was lost), naming each lost host; the output lists every
    host, the start skew and the cluster's warnings either way."""
    lost = sorted(cluster.lost_hosts, key=lambda host: host.index)
    details = [
        f"run: {label}",
        f"cluster: {cluster_text.overview(cluster)}",
        *(
            cluster_text.host_sentence(host)
            for host in sorted(cluster.hosts, key=lambda h: h.index)
        ),
        cluster_text.start_skew(cluster),
        *(f"warning: {warning}" for warning in cluster.warnings),
    ]
    return Check(
        classname="loadgen.cluster",
        name=f"{label}: every host reported",
        outcome="failed" if lost else "passed",
        message=(
            f"{label}: {len(lost)} of {len(cluster.hosts)} hosts lost: "
            + "; ".join(f"host {host.index} ({host.hostname}): {host.lost}" for host in lost)
            if lost
            else f"{label}: all {len(cluster.hosts)} hosts reported"
        ),
        details="\n".join(details),
        kind="lost-host",
    )


def stop_check(label: str, stop: StopReason, gating: bool = False) -> Check:
    """A run that did not complete: failed when loadgen itself failed (the output holds
    the detail and any traceback kept), or when it is a current run a gate cannot pass
    (``gating``: ``compare`` without ``--allow-partial``); skipped when a signal or its
    coordinator stopped it."""
    failed = stop.kind is StopKind.FAILED or gating
    return Check(
        classname="loadgen.run",
        name=f"{label}: ran to its end",
        outcome="failed" if failed else "skipped",
        message=f"{label}: {stop}",
        details="\n".join([f"run: {label}", *([stop.traceback] if stop.traceback else [])]),
        kind="failed-run",
    )


def comparison_junit(comparison: Comparison) -> str:
    """One testcase per run that did not complete, per invalid run, per distributed run
    (failed when it lost a host), per metric, then per threshold of each current run."""
    gating = {label for label, _ in comparison.incomplete}
    checks = [stop_check(label, stop, label in gating) for label, stop in comparison.stopped_runs]
    checks += [validity_check(label, reasons) for label, reasons in comparison.invalid_runs]
    checks += [cluster_check(label, cluster) for label, cluster in comparison.clusters]
    checks += [_metric_check(m) for m in comparison.metrics]
    checks += [_threshold_check(label, v) for label, v in comparison.thresholds]
    return junit_xml("loadgen compare", checks)
