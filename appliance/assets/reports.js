// The site report pages' charts: each `.chart[data-chart]` holds its data as JSON
// ({kind: "bar" | "line", categories, series: [{name, data}]}) and is drawn with the
// vendored ECharts beside its table. Loaded with `defer`, after echarts.min.js.
"use strict";

function drawReportCharts() {
  if (typeof echarts === "undefined") return;
  for (const node of document.querySelectorAll(".chart[data-chart]")) {
    let data;
    try { data = JSON.parse(node.dataset.chart); } catch (_) { continue; }
    const chart = echarts.init(node, null, { renderer: "canvas" });
    chart.setOption({
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 40, right: 16, top: 32, bottom: 40 },
      xAxis: { type: "category", data: data.categories, axisLabel: { interval: 0, rotate: data.categories.length > 6 ? 30 : 0 } },
      yAxis: { type: "value", minInterval: 1 },
      series: data.series.map((s) => ({ name: s.name, type: data.kind === "line" ? "line" : "bar", data: s.data })),
    });
    node.dataset.drawn = "1";
    window.addEventListener("resize", () => chart.resize());
  }
}

document.addEventListener("DOMContentLoaded", drawReportCharts);
