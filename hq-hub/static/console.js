// The console's only script: forms marked data-api post their fields as JSON to the JSON API
// (the same API scripts use), then show the answer or reload. Plain forms work without it.
"use strict";

// The fields of `scope` (a form, or one [data-row] of it) as a JSON object:
// - checkbox: true / false; with data-list, checked values gather in an array
//   (data-list="int" makes them numbers);
// - number input, or data-type="int": a number (left out when empty);
// - textarea data-lines: the non-empty lines as an array;
// - textarea data-windows: "09:00-12:00" lines as [{start, end}];
// - anything else: its text, left out when empty unless data-keep-empty.
function collect(scope, owner) {
  const body = {};
  for (const el of scope.querySelectorAll("input, select, textarea")) {
    if (!el.name || el.type === "file") continue;
    // Fields inside a row belong to that row, not to the whole form.
    const row = el.closest("[data-row]");
    if (owner.matches("[data-row]") ? row !== owner : row !== null) continue;
    if (el.type === "checkbox" && el.dataset.list !== undefined) {
      if (!body[el.name]) body[el.name] = [];
      if (el.checked) body[el.name].push(el.dataset.list === "int" ? Number(el.value) : el.value);
      continue;
    }
    if (el.type === "checkbox") { body[el.name] = el.checked; continue; }
    if (el.type === "number" || el.dataset.type === "int") { if (el.value !== "") body[el.name] = Number(el.value); continue; }
    if (el.dataset.lines !== undefined) { body[el.name] = el.value.split("\n").map((l) => l.trim()).filter((l) => l); continue; }
    if (el.dataset.windows !== undefined) {
      body[el.name] = el.value.split("\n").map((l) => l.trim()).filter((l) => l).map((l) => {
        const [start, end] = l.split(/[-~～—]/).map((t) => (t || "").trim());
        return { start, end };
      });
      continue;
    }
    if (el.value !== "" || el.dataset.keepEmpty) body[el.name] = el.value;
  }
  return body;
}
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!form.dataset.api) return;
  event.preventDefault();
  // A form marked data-confirm reached here only after its modal was confirmed (ui.js).
  const body = collect(form, form);
  if (form.dataset.rows) {
    body[form.dataset.rows] = [];
    for (const row of form.querySelectorAll("[data-row]")) {
      const item = collect(row, row);
      const need = row.dataset.require;
      if (need && (item[need] === undefined || item[need] === "" || (Array.isArray(item[need]) && item[need].length === 0))) continue;
      body[form.dataset.rows].push(item);
    }
  }
  const out = form.querySelector(".result");
  const response = await fetch(form.dataset.api, {
    method: form.dataset.method || "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (out) { out.className = "result error"; out.textContent = answer.error || response.statusText; }
    return;
  }
  if (form.dataset.then === "reload") { savedToast(answer); window.location.reload(); return; }
  if (form.dataset.then === "file" && answer.file_id) { window.location.href = "/files/" + answer.file_id; return; }
  if (out) { out.className = "result ok"; out.textContent = answer.message || savedText(); }
  if (window.OutpostUi) window.OutpostUi.toast(answer.message || savedText());
});

// The word a success toast says when the server's answer has no message of its own.
function savedText() {
  return document.documentElement.lang === "en" ? "Saved" : "已保存";
}

// Shows the success toast after the reload that lists what changed.
function savedToast(answer) {
  if (window.OutpostUi) window.OutpostUi.flash(answer.message || savedText());
}

// Background import with a progress bar: the form posts to /api/projects/{id}/imports and
// the page polls the job until it is done, then opens the file.
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!form.dataset.import) return;
  event.preventDefault();
  const bar = form.querySelector("progress");
  const out = form.querySelector(".result");
  const response = await fetch(form.dataset.import, { method: "POST", body: new FormData(form) });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) { out.className = "result error"; out.textContent = answer.error || response.statusText; return; }
  bar.hidden = false;
  for (;;) {
    await new Promise((r) => setTimeout(r, 300));
    const job = await (await fetch("/api/imports/" + answer.job_id)).json();
    if (job.rows_total > 0) { bar.max = job.rows_total; bar.value = job.rows_done; }
    out.textContent = job.rows_done + " / " + job.rows_total;
    if (job.state === "done") { window.location.href = "/files/" + job.file_id; return; }
    if (job.state === "failed") {
      out.className = "result error";
      out.textContent = document.documentElement.lang === "en" ? job.error : job.error_zh;
      return;
    }
  }
});

// A file sent to a JSON endpoint (list imports, voice files): the answer is shown, or with
// data-then="reload" the page reloads to list what was added.
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!form.dataset.upload) return;
  event.preventDefault();
  const out = form.querySelector(".result");
  const response = await fetch(form.dataset.upload, { method: "POST", body: new FormData(form) });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) { out.className = "result error"; out.textContent = answer.error || response.statusText; return; }
  if (form.dataset.then === "reload") { savedToast(answer); window.location.reload(); return; }
  out.className = "result ok";
  out.textContent = answer.message || JSON.stringify(answer);
  const list = form.querySelector("ul.bad");
  if (list) {
    list.replaceChildren(...(answer.bad || []).map((b) => {
      const li = document.createElement("li");
      li.textContent = b.row + " " + b.column + ": " + (document.documentElement.lang === "en" ? b.reason : b.reason_zh);
      return li;
    }));
  }
});

// The monitoring wall and a site's page: [data-wall-stream] names the server-sent event
// stream; each `cards` event lists elements rendered by the server ({target, html}) that
// replace the element of that id (a site new to the wall is added to it).
for (const holder of document.querySelectorAll("[data-wall-stream]")) {
  const source = new EventSource(holder.dataset.wallStream);
  source.addEventListener("cards", (event) => {
    const items = JSON.parse(event.data).items || [];
    for (const item of items) {
      const old = document.getElementById(item.target);
      if (old) {
        old.outerHTML = item.html;
      } else if (holder.id === "wall") {
        holder.querySelector(":scope > p")?.remove();
        holder.insertAdjacentHTML("beforeend", item.html);
      }
    }
    holder.dataset.updates = String(Number(holder.dataset.updates || 0) + 1);
  });
}

// The home page's chart of dials and connects per hour (ECharts, vendored), from the
// numbers the server put in the element's data attributes.
const hourly = document.getElementById("hourly-chart");
if (hourly && window.echarts) {
  const numbers = (text) => text.split(",").map(Number);
  const chart = window.echarts.init(hourly);
  chart.setOption({
    animation: false,
    tooltip: { trigger: "axis" },
    legend: { data: [hourly.dataset.labelDials, hourly.dataset.labelConnects] },
    grid: { left: 40, right: 20, top: 30, bottom: 25 },
    xAxis: { type: "category", data: hourly.dataset.hours.split(",") },
    yAxis: { type: "value", minInterval: 1 },
    series: [
      { name: hourly.dataset.labelDials, type: "bar", data: numbers(hourly.dataset.dials), itemStyle: { color: "#2563eb" } },
      { name: hourly.dataset.labelConnects, type: "bar", data: numbers(hourly.dataset.connects), itemStyle: { color: "#067647" } },
    ],
  });
  window.addEventListener("resize", () => chart.resize());
  hourly.dataset.drawn = "true";
}
