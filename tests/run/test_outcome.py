"""What a result says about success: failed requests, the rates built on them, and the run
in which no request succeeded (``RunResult.no_success``, which makes ``run`` exit 1)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from loadgen.result.model import RunResult
from tests.report.builders import make_result


def test_rates_count_a_failed_request_once() -> None:
    result = make_result(errors={"http_5xx": 500, "timeout": 100})
    summary = replace(result.summary, failed=500)  # 2,000 requests, 500 of them failed
    assert summary.succeeded == 1500
    assert summary.attempts == 2100  # 2,000 responses + 100 exchanges that got none
    assert summary.error_rate == 600 / 2100
    assert summary.failed_rate == 0.25
    assert replace(summary, requests=0, failed=0).failed_rate is None  # not measured


def test_no_success() -> None:
    refused = make_result(requests=0, errors={"refused": 40})
    assert refused.no_success
    # Failures studied on purpose, or a run that sends nothing (idle phases, rate 0): fine.
    studied = replace(refused, scenario={**refused.scenario, "expect_failures": True})
    assert not studied.no_success
    idle = {"load": {"model": "closed", "phases": [{"duration": 5.0, "idle": True}]}}
    assert not replace(refused, scenario={**refused.scenario, **idle}).no_success
    silent = {"load": {"model": "open", "phases": [{"duration": 5.0, "rate": [0.0, 0.0]}]}}
    assert not replace(refused, scenario={**refused.scenario, **silent}).no_success
    # A stream whose transfers outlast the run moved data: not a dead target.
    streaming = replace(refused.summary, throughput_bytes_per_s=1e6, bytes_sent=10**6)
    assert not replace(refused, summary=streaming).no_success
    assert replace(refused, summary=replace(streaming, bytes_sent=0)).no_success
    # Every response failed: no success either; one success is enough.
    answered = make_result(errors={"http_4xx": 2000})
    assert replace(answered, summary=replace(answered.summary, failed=2000)).no_success
    assert not replace(answered, summary=replace(answered.summary, failed=1999)).no_success


def test_results_before_schema_4_load_with_nothing_failed(tmp_path: Path) -> None:
    data = make_result(errors={"http_4xx": 7}).to_dict()
    data["schema_version"] = 3
    del data["summary"]["failed"], data["requests_by_name"]
    for interval in data["intervals"]:
        del interval["failed"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    result = RunResult.read(old)
    assert result.summary.failed == 0 and result.requests_by_name == []
    # Then a 4xx answer was an error, not a request: the error rate reads as it did.
    assert result.summary.error_rate == 7 / (2000 + 7)
