"""The report's charts as a reader sees them in Chromium: the open-model page screenshotted
and probed (no clipped tick label, legend values without hover, the schedule drawn)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from loadgen.config.scenario import parse_scenario
from loadgen.report.charts import finish, throughput_chart
from loadgen.report.html import render_html, write_html
from loadgen.report.html_memory import memory_table
from loadgen.report.loading import from_result, load_run
from loadgen.report.memory import Counter, RunMemory, run_memory
from loadgen.report.series import interval_series, scheduled_rates
from loadgen.run.api import run
from tests.shared_targets import SharedTargets

from . import chromium
from .conftest import RunFile

NUMBER = re.compile(r"\d")


@pytest.fixture(scope="module")
def open_page(real_runs: dict[str, RunFile], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("open-page")
    return write_html([load_run(real_runs["open"].path, "open")], folder / "open.html")


@pytest.fixture(scope="module")
def probed(open_page: Path) -> chromium.Probed:
    return chromium.probe(open_page, open_page.parent)


def test_the_open_model_page_screenshot(open_page: Path, tmp_path: Path) -> None:
    """Looked at by hand while writing this: the schedule dashed beside the throughput, the
    legends filled, the percentile axis' last label whole. Asserted: it renders, tall."""
    shot = chromium.screenshot(open_page, tmp_path / "profile", tmp_path / "open.png", 3000)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 3000)


def test_no_tick_label_is_clipped(probed: chromium.Probed) -> None:
    assert probed.clipped_ticks == ""
    assert any(label.endswith("9%") for label in probed.ticks("spectrum", "x"))


def test_legends_show_values_without_hover(probed: chromium.Probed) -> None:
    legends = probed.legends()
    assert set(legends) >= {"throughput", "latency-0", "spectrum", "generator-cpu"}
    for chart, cells in legends.items():
        assert cells[0] in ("whole run", "last", "100% (max)"), (chart, cells)
        assert all(NUMBER.search(cell) for cell in cells[1:]), (chart, cells)
    assert legends["throughput"][0] == "whole run"


def test_the_schedule_is_drawn_beside_the_throughput(
    probed: chromium.Probed, real_runs: dict[str, RunFile]
) -> None:
    intervals = len(real_runs["open"].result.intervals)
    inside = probed.points_inside("throughput")
    assert inside == {"open": intervals, "open: scheduled": intervals}


def test_the_scheduled_rate_follows_the_ramp(real_runs: dict[str, RunFile]) -> None:
    loaded = load_run(real_runs["open"].path)
    rates = scheduled_rates(loaded)
    assert rates is not None
    # 500/s to 2k/s over 2.2 s: the first second's mean is 500 + 1500 * 0.5 / 2.2.
    assert rates[0] == pytest.approx(500 + 1500 * 0.5 / 2.2, rel=1e-6)
    planned = [
        r
        for r, i in zip(rates, loaded.result.intervals, strict=True)
        if i.start_s + i.duration_s <= 2.2
    ]
    assert len(planned) >= 2 and planned == sorted(planned)  # a rising ramp (within its plan)
    assert scheduled_rates(load_run(real_runs["closed"].path)) is None


def test_time_axes_tick_whole_seconds_from_zero(probed: chromium.Probed) -> None:
    ranges = probed.ranges()
    for chart in ("throughput", "latency-0", "generator-cpu", "memory-kernel", "memory-rss"):
        if chart not in ranges:
            continue
        (x_min, x_max), _ = ranges[chart]
        assert x_min == 0 and x_max == ranges["throughput"][0][1], chart
        assert all(re.fullmatch(r"\d+", tick) for tick in probed.ticks(chart, "x")), chart


def test_runs_share_the_latency_scale_and_identical_runs_stay_visible(
    real_runs: dict[str, RunFile], tmp_path: Path
) -> None:
    closed = load_run(real_runs["closed"].path, "closed")
    twin = replace(closed, label="closed again")
    opened = load_run(real_runs["open"].path, "open")
    page = write_html([closed, twin, opened], tmp_path / "three.html")
    seen = chromium.probe(page, tmp_path)
    ranges = seen.ranges()
    latency = {ranges[f"latency-{i}"][1] for i in range(3)}
    assert len(latency) == 1, latency  # one y range for every run's latency chart
    assert seen.clipped_ticks == ""
    charts = finish(
        [throughput_chart([closed, twin], [interval_series(r) for r in (closed, twin)])]
    )
    first, second = charts[0].series
    assert second.label == "closed again (identical to closed)"
    assert first.width > second.width  # the later line lies inside the earlier one


def test_message_size_is_only_shown_for_echo(tmp_path: Path, shared_targets: SharedTargets) -> None:
    target = shared_targets.target("http")
    text = f"name: http-once\ntarget: {target}\nprotocol: http\nconnections: 2\nduration: 1s\n"
    http = from_result(run(parse_scenario(text)), label="http")
    assert "message size" not in render_html([http])


def test_memory_growth_within_noise_is_said_as_such(real_runs: dict[str, RunFile]) -> None:
    loaded = load_run(real_runs["closed"].path, "closed")
    memory = run_memory(loaded)
    assert memory is not None
    # A short run: too few samples with the connections held to tell growth from noise.
    assert "too few samples to tell from noise" in memory_table([loaded], [memory])

    def counter(label: str, values: list[int | None]) -> Counter:
        return Counter("slab_bytes", label, values, None, system_wide=True)

    def row(table: str, label: str) -> str:
        return next(r for r in table.split("<tr>") if f"closed: {label}<" in r)

    held = [None, 100, 100, 100, 100]
    noisy = RunMemory(
        time_s=[0, 1, 2, 3, 4],
        kernel=counter("kernel", [1000, 200_000, 900_000, 100_000, 500_000]),
        posted=counter("posted", [0, 0, 0, 0, 0]),
        rss=counter("rss", [0, 65_536, 65_536, 65_536, 65_536]),
        components=[],
        connections=held,
        os_kind="linux",
    )
    assert noisy.noise(noisy.kernel) == 800_000
    table = memory_table([loaded], [noisy])
    assert "within noise: 487 KiB in all" in row(table, "kernel")
    assert row(table, "posted").endswith("0 B (at 100 connections)</td></tr>")
    assert "655 B (at 100 connections)" in row(table, "rss")  # steady: no noise, a figure
    clear = replace(
        noisy, kernel=counter("kernel", [0, 9_000_000, 9_100_000, 9_050_000, 9_000_000])
    )
    assert "87.9 KiB (at 100 connections)" in row(memory_table([loaded], [clear]), "kernel")
