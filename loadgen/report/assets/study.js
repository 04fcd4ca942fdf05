/* Draws the receive-mode study's charts with uPlot from the JSON in #loadgen-data:
 * x is the connection count, one line per receive mode (idle solid, under traffic dashed).
 * Marks progress on <html> like report.js: data-charts-drawn counts charts drawn at least
 * once (uPlot's draw hook), data-js-errors collects any error (see the script in <head>). */
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
  function fmtBytes(value) {
    if (value == null || !isFinite(value)) return "\u2013";
    var sign = value < 0 ? "-" : "";
    var size = Math.abs(value);
    var units = ["B", "KiB", "MiB", "GiB"];
    for (var i = 0; i < units.length; i++) {
      if (size < 1024 || i === units.length - 1) {
        return sign + (i === 0 ? String(Math.round(size)) : sig3(size)) + " " + units[i];
      }
      size /= 1024;
    }
    return "\u2013";
  }
  function fmtLatency(us) {
    if (us == null || !isFinite(us)) return "\u2013";
    if (us >= 1e6) return sig3(us / 1e6) + " s";
    if (us >= 1e3) return sig3(us / 1e3) + " ms";
    return sig3(us) + " \u00b5s";
  }
  function fmtRate(value) {
    if (value == null || !isFinite(value)) return "\u2013";
    if (Math.abs(value) >= 1e6) return sig3(value / 1e6) + "M/s";
    if (Math.abs(value) >= 1e3) return sig3(value / 1e3) + "k/s";
    return sig3(value) + "/s";
  }
  function fmtConnections(value) {
    return value == null ? "\u2013" : Math.round(value).toLocaleString("en-US");
  }
  var FORMATS = { bytes: fmtBytes, latency: fmtLatency, rate: fmtRate };

  function countDraw(u) {
    var id = u.root.parentNode.getAttribute("data-chart");
    if (!drawnIds[id]) {
      drawnIds[id] = true;
      drawnCount += 1;
      root.setAttribute("data-charts-drawn", String(drawnCount));
    }
  }

  function options(spec, width) {
    var format = FORMATS[spec.y_format] || fmtBytes;
    var series = [{ label: "connections", value: function (u, v) { return fmtConnections(v); } }];
    spec.series.forEach(function (s) {
      series.push({
        label: s.label,
        stroke: s.colour,
        width: 2,
        dash: s.dash ? [7, 5] : undefined,
        spanGaps: true,
        points: { show: true, size: 7, fill: s.colour },
        value: function (u, v) { return format(v); },
      });
    });
    return {
      width: width,
      height: HEIGHT,
      series: series,
      axes: [
        {
          label: "connections",
          labelSize: 26,
          stroke: "#5b6475",
          grid: { stroke: "#edf0f4" },
          values: function (u, splits) { return splits.map(fmtConnections); },
        },
        {
          label: spec.y_label,
          labelSize: 26,
          size: 80,
          stroke: "#5b6475",
          grid: { stroke: "#edf0f4" },
          values: function (u, splits) { return splits.map(format); },
        },
      ],
      scales: {
        x: { time: false },
        y: {
          range: function (u, min, max) {
            var low = Math.min(0, min);
            return [low, max > 0 ? max * 1.08 : low + 1];
          },
        },
      },
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
