/* What the run report (report.js) and the receive-mode study (study.js) share; inlined before
 * either page's script as window.loadgenCharts:
 *   drawAll(options)   draws every chart spec in the JSON of #loadgen-data with uPlot, taking
 *                      uPlot's options from the page's options(spec, width) (width, height and
 *                      the draw hook are set here), and redraws at the new width on resize;
 *   format.*           number formatters (latency in microseconds, rate, count, bytes, ...);
 *   axis(fields)       an axis in the pages' style with the given fields added;
 *   line(s, format, points) a series for a spec's line s;
 *   decades            axis splits at the powers of ten (log axes: latency, percentile);
 *   format.percentile  an x of the percentile axis, 1 / (1 - p), as "99.9%";
 *   secondsAxis(axis)  whole-second ticks on a time axis (intervals are 1 s long);
 *   binaryBytes(axis)  byte ticks on binary steps (1 B, 2 B, ... 512 KiB, 1 MiB), never a
 *                      fraction of a byte;
 *   plots              every drawn chart: {plot, holder, spec}.
 * Legends: while no point is hovered, each series shows its spec's "overall" value (the
 * whole run's, or its last point's; or its "overall_text" when that says why there is no
 * value) and the x cell the spec's "overall_label", so a printed
 * page or a screenshot reads without a mouse. Marks progress on <html>: data-charts-drawn counts charts that have drawn at least once
 * (uPlot's draw hook), data-js-errors collects any error (see the script in <head>); a chart
 * that cannot be drawn says so in its place. */
(function () {
  "use strict";
  var root = document.documentElement;
  var HEIGHT = 320;
  var drawnIds = {};
  var drawnCount = 0;

  function sig3(value) {
    return String(Number(value.toPrecision(3)));
  }
  function fmtLatency(us) {
    if (us == null || !isFinite(us)) return "\u2013";
    if (us >= 1e6) return sig3(us / 1e6) + " s";
    if (us >= 1e3) return sig3(us / 1e3) + " ms";
    if (us >= 1) return sig3(us) + " \u00b5s";
    return sig3(us * 1e3) + " ns";
  }
  function fmtRate(value) {
    if (value == null || !isFinite(value)) return "\u2013";
    if (Math.abs(value) >= 1e6) return sig3(value / 1e6) + "M";
    if (Math.abs(value) >= 1e3) return sig3(value / 1e3) + "k";
    return sig3(value);
  }
  function fmtCount(value) {
    if (value == null || !isFinite(value)) return "\u2013";
    return Math.round(value).toLocaleString("en-US");
  }
  function fmtBytes(value) {
    if (value == null || !isFinite(value)) return "\u2013";
    var size = Math.abs(value);
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var unit = 0;
    while (size >= 1024 && unit < units.length - 1) { size /= 1024; unit += 1; }
    return (value < 0 ? "-" : "") + (unit === 0 ? String(Math.round(size)) : sig3(size)) +
      " " + units[unit];
  }
  function fmtPercent(value) {
    return value == null || !isFinite(value) ? "\u2013" : sig3(value) + "%";
  }
  function fmtSeconds(value) {
    return value == null ? "\u2013" : sig3(value) + " s";
  }
  /* x on the spectrum axis is 1 / (1 - p): 10 is 90%, 100 is 99%, 1000 is 99.9%. */
  function fmtPercentile(x) {
    if (x == null || !isFinite(x)) return "\u2013";
    if (x <= 1) return "0%";
    var digits = Math.max(0, Math.ceil(Math.log10(x) - 1e-9) - 2);
    return (100 * (1 - 1 / x)).toFixed(digits) + "%";
  }

  function decades(u, axisIndex, min, max) {
    var splits = [];
    for (var e = Math.floor(Math.log10(min)); Math.pow(10, e) <= max * 1.000001; e++) {
      var v = Math.pow(10, e);
      if (v >= min * 0.999999) splits.push(v);
    }
    return splits;
  }

  function axis(fields) {
    var result = { labelSize: 26, stroke: "#5b6475", grid: { stroke: "#edf0f4" } };
    Object.keys(fields).forEach(function (key) { result[key] = fields[key]; });
    return result;
  }

  function line(s, format, points) {
    return {
      label: s.label,
      stroke: s.colour,
      width: s.width || 2,
      dash: s.dash ? [7, 5] : undefined,
      spanGaps: true,
      points: points,
      value: function (u, v) { return format(v); },
    };
  }

  var SECOND_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
  function secondsAxis(axisOptions) {
    axisOptions.incrs = SECOND_STEPS;
    axisOptions.values = function (u, splits) {
      return splits.map(function (v) { return String(Math.round(v)); });
    };
    return axisOptions;
  }

  var BINARY_STEPS = [];
  for (var power = 0; power <= 50; power++) BINARY_STEPS.push(Math.pow(2, power));
  function binaryBytes(axisOptions) {
    axisOptions.incrs = BINARY_STEPS;
    return axisOptions;
  }

  /* The legend at rest (no point hovered): the spec's overall values. */
  function showOverall(u, spec) {
    if (u.cursor.idx != null) return;
    var rows = u.root.querySelectorAll(".u-legend .u-series");
    for (var i = 0; i < rows.length; i++) {
      var cell = rows[i].querySelector(".u-value");
      if (!cell) continue;
      if (i === 0) {
        cell.textContent = spec.overall_label || "last";
      } else {
        var s = spec.series[i - 1];
        var value = s && s.overall;
        cell.textContent = s && s.overall_text ? s.overall_text
          : u.series[i].value(u, value == null ? null : value, i, null);
      }
    }
  }

  function countDraw(u) {
    var id = u.root.parentNode.getAttribute("data-chart");
    if (!drawnIds[id]) {
      drawnIds[id] = true;
      drawnCount += 1;
      root.setAttribute("data-charts-drawn", String(drawnCount));
    }
  }

  function drawAll(options) {
    var payload = JSON.parse(document.getElementById("loadgen-data").textContent);
    var plots = window.loadgenCharts.plots;

    function draw(spec) {
      var holder = document.querySelector('[data-chart="' + spec.id + '"]');
      if (!holder) throw new Error("no element for chart " + spec.id);
      var data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
      var width = Math.max(320, holder.clientWidth || 900);
      var opts = options(spec, width);
      opts.width = width;
      opts.height = HEIGHT;
      opts.hooks = {
        draw: [countDraw],
        setLegend: [function (u) { showOverall(u, spec); }],
      };
      if (spec.x_range) {
        var range = spec.x_range;
        opts.scales.x.range = function () { return [range[0], range[1]]; };
      }
      var plot = new uPlot(opts, data, holder);
      showOverall(plot, spec);
      plots.push({ plot: plot, holder: holder, spec: spec });
    }

    payload.charts.forEach(function (spec) {
      try {
        draw(spec);
      } catch (error) {
        window.loadgenNoteError("chart " + spec.id + ": " + (error && error.message));
        var holder = document.querySelector('[data-chart="' + spec.id + '"]');
        if (holder) {
          holder.innerHTML = '<p class="chart-error">This chart could not be drawn.</p>';
        }
      }
    });

    var resizeTimer = null;
    window.addEventListener("resize", function () {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () {
        plots.forEach(function (entry) {
          entry.plot.setSize({ width: Math.max(320, entry.holder.clientWidth), height: HEIGHT });
        });
      }, 150);
    });
  }

  window.loadgenCharts = {
    drawAll: drawAll,
    axis: axis,
    line: line,
    decades: decades,
    secondsAxis: secondsAxis,
    binaryBytes: binaryBytes,
    plots: [],
    sig3: sig3,
    format: {
      latency: fmtLatency,
      rate: fmtRate,
      count: fmtCount,
      bytes: fmtBytes,
      percent: fmtPercent,
      seconds: fmtSeconds,
      percentile: fmtPercentile,
    },
  };
})();
