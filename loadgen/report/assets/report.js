/* The run report's charts: uPlot options for each spec of #loadgen-data, drawn by
 * loadgenCharts.drawAll (assets/charts.js, inlined before this script). x is seconds since
 * start, or the percentile (x_kind "percentile", a log scale of 1 / (1 - p)). */
(function () {
  "use strict";
  var charts = window.loadgenCharts;
  var format = charts.format;
  var FORMATS = {
    latency: format.latency,
    rate: format.rate,
    count: format.count,
    bytes: format.bytes,
    percent: format.percent,
  };

  var fmtPercentile = format.percentile;
  var decades = charts.decades;

  function hasPositive(spec) {
    return spec.series.some(function (s) {
      return s.values.some(function (v) { return v != null && v > 0; });
    });
  }

  function options(spec) {
    var fmt = FORMATS[spec.y_format] || format.count;
    var percentileAxis = spec.x_kind === "percentile";
    var logY = spec.log_y && hasPositive(spec);
    var series = [{
      label: percentileAxis ? "percentile" : "time",
      value: function (u, v) { return percentileAxis ? fmtPercentile(v) : format.seconds(v); },
    }];
    spec.series.forEach(function (s) {
      series.push(charts.line(s, fmt, s.points ? { show: true, size: 6, fill: s.colour } : {}));
    });
    var xAxis = charts.axis({
      label: percentileAxis ? "percentile (log scale of 1 / (1 - p))" : "seconds since start",
    });
    if (percentileAxis) {
      xAxis.splits = decades;
      xAxis.values = function (u, splits) { return splits.map(fmtPercentile); };
    } else {
      charts.secondsAxis(xAxis);
    }
    var yAxis = charts.axis({
      label: spec.y_label,
      size: 72,
      values: function (u, splits) { return splits.map(fmt); },
    });
    if (spec.y_format === "bytes") {
      /* Ticks on binary steps (256 KiB, 512 KiB, 1 MiB, ...), as the labels are binary units. */
      charts.binaryBytes(yAxis);
    }
    var yScale = logY
      ? { distr: 3, log: 10 }
      : {
        range: function (u, min, max) {
          var low = min < 0 ? min * 1.08 : 0;
          return [low, max > 0 ? max * 1.08 : (low < 0 ? 0 : 1)];
        },
      };
    if (logY && spec.y_range) {
      /* Every run's latency chart on one scale: whole decades around all of them. */
      var low = Math.pow(10, Math.floor(Math.log10(spec.y_range[0])));
      var high = Math.pow(10, Math.ceil(Math.log10(spec.y_range[1])));
      yScale.range = function () { return [low, high]; };
    }
    return {
      series: series,
      axes: [xAxis, yAxis],
      scales: { x: { time: false, distr: percentileAxis ? 3 : 1 }, y: yScale },
      cursor: { drag: { x: true, y: false } },
      legend: {
        live: true,
        markers: {
          dash: function (u, i) {
            return spec.series[i - 1] && spec.series[i - 1].dash ? "dashed" : "solid";
          },
        },
      },
      /* Room right of the plot for half the last x label ("99.9999%" is ~60 px wide). */
      padding: [null, percentileAxis ? 44 : 20, null, null],
    };
  }

  charts.drawAll(options);
})();
