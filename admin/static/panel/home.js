// The home page's chart: the outcomes of the last days, drawn with uPlot from the JSON
// the server embedded in `<script type="application/json" data-outcomes-data>` (the
// Content-Security-Policy runs no inline script, so the data travels as data, not code).
(function () {
  "use strict";

  var COLOURS = { completed: "#28a745", partially_completed: "#fd7e14", failed: "#dc3545" };
  var DAY_SECONDS = 86400;

  function draw() {
    var holder = document.querySelector("[data-outcomes-chart]");
    var source = document.querySelector("[data-outcomes-data]");
    if (!holder || !source || typeof window.uPlot !== "function") { return; }
    var chart = JSON.parse(source.textContent);
    // Each day as the Unix second of its UTC midnight; shown as UTC days, not local ones.
    var days = chart.days.map(function (day) { return Date.parse(day + "T00:00:00Z") / 1000; });
    var series = [{}].concat(chart.series.map(function (one) {
      return {
        label: one.label,
        stroke: COLOURS[one.status] || "#6c757d",
        width: 2,
        points: { show: true, size: 5 },
      };
    }));
    var data = [days].concat(chart.series.map(function (one) { return one.counts; }));
    var options = {
      width: Math.max(holder.clientWidth, 320),
      height: 240,
      series: series,
      tzDate: function (seconds) { return window.uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC"); },
      scales: { x: { time: true }, y: { range: function (_u, _min, max) { return [0, Math.max(max, 1)]; } } },
      axes: [
        { space: 60, incrs: [DAY_SECONDS, 7 * DAY_SECONDS] },
        { label: "rows", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000] },
      ],
    };
    holder.dataset.drawn = "true";
    return new window.uPlot(options, data, holder);
  }

  var plot = draw();
  if (plot) {
    window.addEventListener("resize", function () {
      var holder = document.querySelector("[data-outcomes-chart]");
      plot.setSize({ width: Math.max(holder.clientWidth, 320), height: 240 });
    });
  }
})();
