"""Headless Chromium (Debian's ``chromium``) as the tests' browser: load a page, dump its DOM."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

# Flags: no sandbox (root in CI), no GPU, and nothing that would talk to the network by itself.
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
    "--window-size=1280,2000",
)


@dataclass(frozen=True)
class LoadedPage:
    dom: str
    log: str  # Chromium's stderr: page console messages appear as ":CONSOLE(line)]" entries

    def root_attribute(self, name: str) -> str | None:
        """An attribute of the dumped page's <html> element."""
        tag = re.search(r"<html\b[^>]*>", self.dom)
        assert tag is not None, self.dom[:500]
        match = re.search(rf'\s{re.escape(name)}="([^"]*)"', tag.group(0))
        return match.group(1) if match else None

    @property
    def console_messages(self) -> list[str]:
        return [line for line in self.log.splitlines() if ":CONSOLE(" in line]


def browser() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    return path


def load(page: Path, profile: Path, *extra: str) -> LoadedPage:
    """Open ``page`` from disk, let its scripts run, and return the DOM as they left it."""
    completed = subprocess.run(
        [browser(), *_FLAGS, f"--user-data-dir={profile}", *extra, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return LoadedPage(completed.stdout, completed.stderr)


#: A script appended to a copy of a page (the page's CSP allows inline scripts) that, once
#: the charts are drawn, writes onto <html> what a reader would see: every chart's x tick
#: labels that do not fit inside its canvas (data-clipped-ticks), its legend as it rests
#: without a pointer (data-legends: "chart|cell;cell;..." per chart) and, for each series,
#: how many of its points lie inside the plotted area (data-series: "chart|label=N;..."),
#: each axis's tick labels (data-ticks: "chart|x|label;label" and "chart|y|..."), each
#: chart's scale ranges (data-ranges: "chart|xmin,xmax|ymin,ymax") and how many tables are
#: wider than the box that holds them (data-overflowing-tables).
PROBE = """
<script>
window.addEventListener("load", function () {
  var root = document.documentElement;
  var clipped = [], legends = [], series = [], ticks = [], ranges = [];
  (window.loadgenCharts ? window.loadgenCharts.plots : []).forEach(function (entry) {
    var u = entry.plot, id = entry.spec.id, ctx = u.ctx;
    u.axes.forEach(function (axis, a) {
      if (!axis._values || !axis._splits || axis.side % 2 === 1) return;
      ctx.save();
      ctx.font = Array.isArray(axis.font) ? axis.font[0] : axis.font;
      axis._splits.forEach(function (split, i) {
        var label = String(axis._values[i]);
        var x = u.valToPos(split, axis.scale, true);
        var half = ctx.measureText(label).width / 2;
        if (x - half < -0.5 || x + half > ctx.canvas.width + 0.5) clipped.push(id + ":" + label);
      });
      ctx.restore();
    });
    var cells = Array.prototype.map.call(
      u.root.querySelectorAll(".u-legend .u-series .u-value"),
      function (cell) { return cell.textContent; });
    legends.push(id + "|" + cells.join(";"));
    var counts = u.series.slice(1).map(function (s, i) {
      var inside = 0;
      (u.data[i + 1] || []).forEach(function (v, j) {
        if (v == null || !s.show) return;
        var x = u.valToPos(u.data[0][j], "x"), y = u.valToPos(v, s.scale || "y");
        if (x >= 0 && x <= u.bbox.width / devicePixelRatio + 1 &&
            y >= 0 && y <= u.bbox.height / devicePixelRatio + 1) inside += 1;
      });
      return s.label + "=" + inside;
    });
    series.push(id + "|" + counts.join(";"));
    u.axes.forEach(function (axis, a) {
      ticks.push(id + "|" + (a === 0 ? "x" : "y") + "|" + (axis._values || []).join(";"));
    });
    ranges.push(id + "|" + u.scales.x.min + "," + u.scales.x.max + "|" +
      u.scales.y.min + "," + u.scales.y.max);
  });
  var overflowing = 0;
  document.querySelectorAll("table").forEach(function (table) {
    var box = table.parentElement;
    if (table.scrollWidth > box.clientWidth + 1) overflowing += 1;
  });
  root.setAttribute("data-overflowing-tables", String(overflowing));
  root.setAttribute("data-ticks", ticks.join("\\n"));
  root.setAttribute("data-ranges", ranges.join("\\n"));
  root.setAttribute("data-clipped-ticks", clipped.join(" "));
  root.setAttribute("data-legends", legends.join("\\n"));
  root.setAttribute("data-series", series.join("\\n"));
});
</script>
"""


def probed_copy(page: Path, folder: Path) -> Path:
    """A copy of ``page`` with ``PROBE`` before ``</body>``."""
    copy = folder / f"probed-{page.name}"
    copy.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    return copy


def screenshot(page: Path, profile: Path, out: Path, height: int = 4000) -> Path:
    """A PNG of ``page`` at 1280 px wide (the full ``height``), as a reader would see it."""
    completed = subprocess.run(
        [
            browser(),
            *(flag for flag in _FLAGS if not flag.startswith("--window-size")),
            f"--window-size=1280,{height}",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={out}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert completed.returncode == 0 and out.exists(), completed.stderr[-2000:]
    return out


@dataclass(frozen=True)
class Probed:
    """What ``PROBE`` saw on a page, per chart id."""

    page: LoadedPage

    def _lines(self, name: str) -> list[list[str]]:
        text = self.page.root_attribute(name) or ""
        return [line.split("|") for line in text.split("\n") if line]

    @property
    def clipped_ticks(self) -> str:
        return self.page.root_attribute("data-clipped-ticks") or ""

    @property
    def overflowing_tables(self) -> int:
        return int(self.page.root_attribute("data-overflowing-tables") or "0")

    def legend(self, chart: str) -> list[str]:
        return next(line[1].split(";") for line in self._lines("data-legends") if line[0] == chart)

    def legends(self) -> dict[str, list[str]]:
        return {line[0]: line[1].split(";") for line in self._lines("data-legends")}

    def points_inside(self, chart: str) -> dict[str, int]:
        line = next(line for line in self._lines("data-series") if line[0] == chart)
        return {k: int(v) for k, v in (item.rsplit("=", 1) for item in line[1].split(";"))}

    def ticks(self, chart: str, axis: str) -> list[str]:
        line = next(ln for ln in self._lines("data-ticks") if ln[0] == chart and ln[1] == axis)
        return [t for t in line[2].split(";") if t]

    def ranges(self) -> dict[str, tuple[tuple[float, float], tuple[float, float]]]:
        out = {}
        for chart, x, y in self._lines("data-ranges"):
            xs, ys = x.split(","), y.split(",")
            out[chart] = ((float(xs[0]), float(xs[1])), (float(ys[0]), float(ys[1])))
        return out


def probe(page: Path, folder: Path) -> Probed:
    """Load ``page`` with ``PROBE`` in Chromium and return what it saw (and assert every
    chart drew without a script error)."""
    loaded = load(probed_copy(page, folder), folder / "probe-profile")
    assert loaded.root_attribute("data-js-errors") is None, loaded.root_attribute("data-js-errors")
    expected = loaded.root_attribute("data-charts-expected")
    assert loaded.root_attribute("data-charts-drawn") == expected
    return Probed(loaded)
