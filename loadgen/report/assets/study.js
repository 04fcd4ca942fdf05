/* The receive-mode study's charts: uPlot options for each spec of #loadgen-data, drawn by
 * loadgenCharts.drawAll (assets/charts.js, inlined before this script). x is the connection
 * count, one line per receive mode; idle: solid line and filled points, under traffic (or
 * p99): dashed line and hollow points, so the two read apart even where a chart has a single
 * connection count and so no line at all. Bytes ticks are whole, binary steps. */
(function () {
  "use strict";
  var charts = window.loadgenCharts;
  var format = charts.format;

  function fmtRate(value) {
    var text = format.rate(value);
    return text === "\u2013" ? text : text + "/s";
  }
  var FORMATS = { bytes: format.bytes, latency: format.latency, rate: fmtRate };
  var HOLLOW = "#ffffff";

  function options(spec) {
    var fmt = FORMATS[spec.y_format] || format.bytes;
    var series = [{ label: "connections", value: function (u, v) { return format.count(v); } }];
    spec.series.forEach(function (s) {
      var fill = s.dash ? HOLLOW : s.colour;
      series.push(charts.line(s, fmt, { show: true, size: 9, width: 2, stroke: s.colour, fill: fill }));
    });
    var yAxis = charts.axis({
      label: spec.y_label,
      size: 80,
      values: function (u, splits) { return splits.map(fmt); },
    });
    if (spec.y_format === "bytes") charts.binaryBytes(yAxis);
    return {
      series: series,
      axes: [
        charts.axis({
          label: "connections",
          values: function (u, splits) { return splits.map(format.count); },
        }),
        yAxis,
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
      legend: {
        live: true,
        markers: {
          width: 2,
          dash: function (u, i) { return spec.series[i - 1] && spec.series[i - 1].dash ? "dashed" : "solid"; },
          fill: function (u, i) {
            var s = spec.series[i - 1];
            return s && s.dash ? HOLLOW : (s ? s.colour : "transparent");
          },
        },
      },
      padding: [null, 24, null, null],
    };
  }

  charts.drawAll(options);
})();
