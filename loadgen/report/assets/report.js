/* Draws the report's charts with uPlot from the JSON in #loadgen-data.
 * Marks progress on <html>: data-charts-drawn counts charts that have drawn at least once
 * (uPlot's draw hook), data-js-errors collects any error (see the script in <head>). */
(function () {
  "use strict";
  var root = document.documentElement;
  var payload = JSON.parse(document.getElementById("loadgen-data").textContent);
  var drawnIds = {};
  var drawnCount = 0;
  var plots = [];
  var HEIGHT = 320;

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
  /* x on the spectrum axis is 1 / (1 - p): 10 is 90%, 100 is 99%, 1000 is 99.9%. */
  function fmtPercentile(x) {
    if (x == null || !isFinite(x)) return "\u2013";
    if (x <= 1) return "0%";
    var digits = Math.max(0, Math.ceil(Math.log10(x) - 1e-9) - 2);
    return (100 * (1 - 1 / x)).toFixed(digits) + "%";
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
  var FORMATS = {
    latency: fmtLatency, rate: fmtRate, count: fmtCount, bytes: fmtBytes, percent: fmtPercent,
  };

  function decades(u, axisIndex, min, max) {
    var splits = [];
    for (var e = Math.floor(Math.log10(min)); Math.pow(10, e) <= max * 1.000001; e++) {
      var v = Math.pow(10, e);
      if (v >= min * 0.999999) splits.push(v);
    }
    return splits;
  }

  function hasPositive(spec) {
    return spec.series.some(function (s) {
      return s.values.some(function (v) { return v != null && v > 0; });
    });
  }

  function countDraw(u) {
    var id = u.root.parentNode.getAttribute("data-chart");
    if (!drawnIds[id]) {
      drawnIds[id] = true;
      drawnCount += 1;
      root.setAttribute("data-charts-drawn", String(drawnCount));
    }
  }

  function options(spec, width) {
    var format = FORMATS[spec.y_format] || fmtCount;
    var percentileAxis = spec.x_kind === "percentile";
    var logY = spec.log_y && hasPositive(spec);
    var series = [{
      label: percentileAxis ? "percentile" : "time",
      value: function (u, v) { return percentileAxis ? fmtPercentile(v) : fmtSeconds(v); },
    }];
    spec.series.forEach(function (s) {
      series.push({
        label: s.label,
        stroke: s.colour,
        width: 2,
        dash: s.dash ? [7, 5] : undefined,
        spanGaps: true,
        points: s.points ? { show: true, size: 6, fill: s.colour } : {},
        value: function (u, v) { return format(v); },
      });
    });
    var xAxis = {
      label: percentileAxis ? "percentile (log scale of 1 / (1 - p))" : "seconds since start",
      labelSize: 26,
      stroke: "#5b6475",
      grid: { stroke: "#edf0f4" },
    };
    if (percentileAxis) {
      xAxis.splits = decades;
      xAxis.values = function (u, splits) { return splits.map(fmtPercentile); };
    }
    var yAxis = {
      label: spec.y_label,
      labelSize: 26,
      size: 72,
      stroke: "#5b6475",
      grid: { stroke: "#edf0f4" },
      values: function (u, splits) { return splits.map(format); },
    };
    if (spec.y_format === "bytes") {
      /* Ticks on binary steps (256 KiB, 512 KiB, 1 MiB, ...), as the labels are binary units. */
      var steps = [];
      for (var power = 0; power <= 50; power++) steps.push(Math.pow(2, power));
      yAxis.incrs = steps;
    }
    var yScale = logY
      ? { distr: 3, log: 10 }
      : {
        range: function (u, min, max) {
          var low = min < 0 ? min * 1.08 : 0;
          return [low, max > 0 ? max * 1.08 : (low < 0 ? 0 : 1)];
        },
      };
    return {
      width: width,
      height: HEIGHT,
      series: series,
      axes: [xAxis, yAxis],
      scales: { x: { time: false, distr: percentileAxis ? 3 : 1 }, y: yScale },
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      hooks: { draw: [countDraw] },
    };
  }

  function draw(spec) {
    var holder = document.querySelector('[data-chart="' + spec.id + '"]');
    if (!holder) throw new Error("no element for chart " + spec.id);
    var data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
    var width = Math.max(320, holder.clientWidth || 900);
    plots.push({ plot: new uPlot(options(spec, width), data, holder), holder: holder });
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
})();
