/* The capacity search's charts: uPlot options for each spec of #loadgen-data, drawn by
 * loadgenCharts.drawAll (assets/charts.js, inlined before this script). x is the offered
 * load (x_kind "rate" or "connections", linear) or the percentile (x_kind "percentile", a
 * log scale of 1 / (1 - p)). A spec's "marker" ({x, label, colour}) is drawn as a dashed
 * vertical line: the capacity found. A series with "points_only" draws its points alone;
 * one with "points": false (a bound) its line alone. */
(function () {
  "use strict";
  var charts = window.loadgenCharts;
  var format = charts.format;

  function fmtRate(value) {
    var text = format.rate(value);
    return text === "\u2013" ? text : text + "/s";
  }
  function fmtErrorRate(value) {
    return format.percent(value);
  }
  var FORMATS = { latency: format.latency, rate: fmtRate, percent: fmtErrorRate };
  var X_FORMATS = { rate: fmtRate, connections: format.count, percentile: format.percentile };
  var X_LABELS = {
    rate: "offered load (requests / s)",
    connections: "connections",
    percentile: "percentile (log scale of 1 / (1 - p))",
  };

  function hasPositive(spec) {
    return spec.series.some(function (s) {
      return s.values.some(function (v) { return v != null && v > 0; });
    });
  }

  /* The capacity as a dashed vertical line with its label, over the plot. */
  function markerPlugin(marker) {
    return {
      hooks: {
        draw: [function (u) {
          var x = u.valToPos(marker.x, "x", true);
          if (!isFinite(x)) return;
          var ctx = u.ctx;
          var ratio = uPlot.pxRatio || 1;
          ctx.save();
          ctx.strokeStyle = marker.colour;
          ctx.fillStyle = marker.colour;
          ctx.lineWidth = 2 * ratio;
          ctx.setLineDash([6 * ratio, 4 * ratio]);
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.font = "bold " + Math.round(12 * ratio) + "px sans-serif";
          var width = ctx.measureText(marker.label).width;
          var left = x + 6 * ratio + width > u.bbox.left + u.bbox.width ? x - 6 * ratio - width : x + 6 * ratio;
          ctx.fillText(marker.label, left, u.bbox.top + 14 * ratio);
          ctx.restore();
        }],
      },
    };
  }

  function options(spec) {
    var fmt = FORMATS[spec.y_format] || format.count;
    var xFmt = X_FORMATS[spec.x_kind] || format.count;
    var percentileAxis = spec.x_kind === "percentile";
    var series = [{ label: X_LABELS[spec.x_kind] || "x", value: function (u, v) { return xFmt(v); } }];
    spec.series.forEach(function (s) {
      var points = { show: s.points !== false, size: s.points_only ? 9 : 5, fill: s.colour };
      var line = charts.line(s, fmt, points);
      if (s.points_only) {
        line.paths = function () { return null; };
      }
      series.push(line);
    });
    var xAxis = charts.axis({
      label: X_LABELS[spec.x_kind] || "",
      values: function (u, splits) { return splits.map(xFmt); },
    });
    if (percentileAxis) xAxis.splits = charts.decades;
    var yAxis = charts.axis({
      label: spec.y_label,
      size: 72,
      values: function (u, splits) { return splits.map(fmt); },
    });
    var logY = spec.log_y && hasPositive(spec);
    var yScale = logY
      ? { distr: 3, log: 10 }
      : {
        range: function (u, min, max) {
          return [0, max > 0 ? max * 1.08 : 1];
        },
      };
    var xScale = percentileAxis
      ? { time: false, distr: 3 }
      : {
        time: false,
        range: function (u, min, max) {
          var pad = (max - min) * 0.04 || Math.max(1, max * 0.1);
          return [Math.max(0, min - pad), max + pad];
        },
      };
    return {
      series: series,
      axes: [xAxis, yAxis],
      scales: { x: xScale, y: yScale },
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      plugins: spec.marker ? [markerPlugin(spec.marker)] : [],
    };
  }

  charts.drawAll(options);
})();
