/* The receive-mode study's charts: uPlot options for each spec of #loadgen-data, drawn by
 * loadgenCharts.drawAll (assets/charts.js, inlined before this script). x is the connection
 * count, one line per receive mode (idle solid, under traffic dashed), every point marked. */
(function () {
  "use strict";
  var charts = window.loadgenCharts;
  var format = charts.format;

  function fmtRate(value) {
    var text = format.rate(value);
    return text === "\u2013" ? text : text + "/s";
  }
  var FORMATS = { bytes: format.bytes, latency: format.latency, rate: fmtRate };

  function options(spec) {
    var fmt = FORMATS[spec.y_format] || format.bytes;
    var series = [{ label: "connections", value: function (u, v) { return format.count(v); } }];
    spec.series.forEach(function (s) {
      series.push(charts.line(s, fmt, { show: true, size: 7, fill: s.colour }));
    });
    return {
      series: series,
      axes: [
        charts.axis({
          label: "connections",
          values: function (u, splits) { return splits.map(format.count); },
        }),
        charts.axis({
          label: spec.y_label,
          size: 80,
          values: function (u, splits) { return splits.map(fmt); },
        }),
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
    };
  }

  charts.drawAll(options);
})();
