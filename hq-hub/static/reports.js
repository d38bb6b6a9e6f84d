// The report pages (数据报表管理): the builder (数据编辑), the preview's filters (统计预览), the
// table with its ECharts chart, and the .xlsx export. The page's settings come as JSON in
// #report-page's data-config; every figure comes from POST /api/reports/run, which applies the
// caller's data scope. Errors name the field (`columns[1].header：…`): they are shown next to it.
"use strict";
(function () {
  const page = document.getElementById("report-page");
  if (!page) return;
  const config = JSON.parse(page.dataset.config);
  const W = config.words;
  const $ = (css, root) => (root || document).querySelector(css);
  const $$ = (css, root) => Array.from((root || document).querySelectorAll(css));
  let editing = null; // the id of the saved report in the editor, if any

  // ---- keys of statistics and subjects as the selects hold them ----
  const statKey = (s) => (s.kind === "field_value" ? "field_value:" + s.key + ":" + s.value : s.kind);
  function statFrom(key) {
    if (!key.startsWith("field_value:")) return { kind: key };
    const [, field, ...rest] = key.split(":");
    return { kind: "field_value", key: field, value: rest.join(":") };
  }
  const subjectKey = (s) => (s.kind === "field" ? "field:" + s.key : s.kind);
  const subjectFrom = (key) => (key.startsWith("field:") ? { kind: "field", key: key.slice(6) } : { kind: key });

  // ---- the builder ----
  function rowFrom(templateId, holder) {
    const row = $(templateId).content.firstElementChild.cloneNode(true);
    $(".remove", row).addEventListener("click", () => row.remove());
    $(holder).appendChild(row);
    return row;
  }
  function addCondition(c) {
    const row = rowFrom("#condition-row", "#conditions");
    if (c) {
      $("[name=subject]", row).value = subjectKey(c.subject);
      $("[name=values]", row).value = c.values.join(",");
      $("[name=negate]", row).checked = !!c.negate;
    }
  }
  function addColumn(col, ratio) {
    const row = rowFrom("#column-row", "#columns");
    const isRatio = col ? !!col.divide_by : ratio;
    row.dataset.ratio = isRatio ? "1" : "";
    $(".ratio-part", row).hidden = !isRatio;
    if (col) {
      $("[name=statistic]", row).value = statKey(col.statistic);
      if (col.divide_by) $("[name=divide_by]", row).value = statKey(col.divide_by);
      $("[name=header]", row).value = col.header;
    }
  }
  function fillEditor(def, id) {
    editing = id === undefined ? null : id;
    $("#report-editor [name=name]").value = def.name;
    $("#conditions").innerHTML = "";
    $("#columns").innerHTML = "";
    for (const c of def.conditions || []) addCondition(c);
    for (const box of $$("#tags input")) box.checked = def.tags.includes(box.value);
    for (const col of def.columns) addColumn(col);
    clearErrors();
  }
  function readEditor() {
    const tags = $$("#tags input").filter((b) => b.checked).map((b) => b.value);
    // Tags keep the order they were first ticked in the definition; new ones go last.
    const before = (config.def.tags || []).filter((t) => tags.includes(t));
    const order = before.concat(tags.filter((t) => !before.includes(t)));
    return {
      name: $("#report-editor [name=name]").value,
      tags: order,
      conditions: $$("#conditions .report-row").map((row) => ({
        subject: subjectFrom($("[name=subject]", row).value),
        values: $("[name=values]", row).value.split(/[,，]/).map((v) => v.trim()).filter((v) => v !== ""),
        negate: $("[name=negate]", row).checked,
      })),
      columns: $$("#columns .report-row").map((row) => ({
        header: $("[name=header]", row).value,
        statistic: statFrom($("[name=statistic]", row).value),
        divide_by: row.dataset.ratio ? statFrom($("[name=divide_by]", row).value) : null,
      })),
    };
  }
  function currentDef() {
    return config.mode === "builder" ? readEditor() : config.def;
  }

  // ---- errors next to their field ----
  function clearErrors() {
    for (const el of $$(".field-error")) el.textContent = "";
    for (const el of $$(".result")) { el.textContent = ""; el.className = "result"; }
  }
  function showError(message, fallback) {
    // The field leads the message: its variable in English (`columns[2].header: …`), its
    // label in Chinese (`数值第 3 项的表头名称：…`).
    let m = /^([a-z_]+)(?:\[(\d+)\])?[^:：\s]*\s*[:：]/.exec(message);
    const zh = /^(标题|标签|数值|数据条件)(?:第 (\d+) 项)?/.exec(message);
    if (!m && zh) {
      const names = { "标题": "name", "标签": "tags", "数值": "columns", "数据条件": "conditions" };
      m = [zh[0], names[zh[1]], zh[2] === undefined ? undefined : String(Number(zh[2]) - 1)];
    }
    let target = null;
    if (m) {
      const [, name, index] = m;
      if ((name === "conditions" || name === "columns") && index !== undefined) {
        const row = $$("#" + name + " .report-row")[Number(index)];
        target = row && $(".field-error", row);
      }
      if (!target) target = $('[data-error-for="' + (name === "from" ? "to" : name) + '"]');
    }
    const el = target || fallback;
    el.className = (el.className.includes("result") ? "result " : "field-error ") + "error";
    el.textContent = message;
  }

  // ---- saved reports (the definitions API of the sub-project) ----
  const defsUrl = () => "/api/projects/" + config.project + "/reports";
  async function listDefs() {
    const response = await fetch(defsUrl());
    if (!response.ok) return;
    const answer = await response.json();
    const items = Array.isArray(answer) ? answer : answer.reports || [];
    const body = $("#report-list tbody");
    body.innerHTML = "";
    if (items.length === 0) { body.innerHTML = "<tr><td colspan=3 class=empty></td></tr>"; body.querySelector("td").textContent = W.no_reports; }
    for (const item of items) {
      const def = item.definition || item.def || item;
      const tr = document.createElement("tr");
      tr.dataset.report = item.id;
      for (const text of [String(item.id), def.name]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      const actions = document.createElement("td");
      actions.className = "actions";
      const edit = document.createElement("button");
      edit.type = "button";
      edit.className = "edit";
      edit.textContent = W.edit + " / " + W.preview;
      edit.addEventListener("click", () => { fillEditor(def, item.id); run(); });
      actions.appendChild(edit);
      tr.appendChild(actions);
      body.appendChild(tr);
    }
  }
  async function save(event) {
    event.preventDefault();
    clearErrors();
    const out = $("#save-result");
    const url = editing === null ? defsUrl() : defsUrl() + "/" + editing;
    const response = await fetch(url, {
      method: editing === null ? "POST" : "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(readEditor()),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) { showError(answer.error || response.statusText, out); return; }
    if (editing === null && answer.id !== undefined) editing = answer.id;
    out.className = "result ok";
    out.textContent = W.saved;
    await listDefs();
  }

  // ---- filters ----
  const chosen = (name) => $$("#report-filters [name=" + name + "] option").filter((o) => o.selected).map((o) => o.value);
  function projects() {
    const box = $("#report-filters [name=projects]");
    return box ? chosen("projects").map(Number) : config.selected;
  }
  function time() {
    const kind = ($("#report-filters [name=time]:checked") || {}).value || "today";
    if (kind !== "custom") return { kind };
    return { kind, from: $("#report-filters [name=from]").value, to: $("#report-filters [name=to]").value };
  }
  function request() {
    return {
      def: currentDef(),
      projects: projects(),
      accounts: chosen("accounts"),
      sites: chosen("sites").map(Number),
      teams: chosen("teams"),
      time: time(),
      rank: config.rank,
    };
  }
  function fill(name, items) {
    const box = $("#report-filters [name=" + name + "]");
    if (!box) return;
    const keep = new Set(chosen(name));
    box.innerHTML = "";
    for (const [value, text] of items) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = text;
      option.selected = keep.has(String(value));
      box.appendChild(option);
    }
  }
  async function loadChoices() {
    if (!$("#report-filters [name=accounts]")) return;
    const accounts = new Set(), teams = new Set(), sites = new Map();
    for (const id of projects()) {
      const response = await fetch("/api/reports/projects/" + id + "/choices");
      if (!response.ok) continue;
      const c = await response.json();
      c.accounts.forEach((a) => accounts.add(a));
      c.teams.forEach((t) => teams.add(t));
      c.sites.forEach((s) => sites.set(s.id, s.name));
    }
    fill("accounts", [...accounts].sort().map((a) => [a, a]));
    fill("teams", [...teams].sort().map((t) => [t, t]));
    fill("sites", [...sites.entries()]);
  }

  // ---- the table and the chart ----
  function cell(value, ratio) {
    if (value === null || value === undefined) return "-";
    return ratio ? (value * 100).toFixed(2) + "%" : String(Math.round(value));
  }
  function drawTable(view) {
    const table = document.createElement("table");
    table.id = "report-result";
    const head = table.createTHead().insertRow();
    for (const h of view.headers) { const th = document.createElement("th"); th.textContent = h; head.appendChild(th); }
    const body = table.createTBody();
    const line = (row, cls) => {
      const tr = body.insertRow();
      if (cls) tr.className = cls;
      for (let i = 0; i < view.tag_count; i++) tr.insertCell().textContent = row.labels[i] || "";
      row.values.forEach((v, i) => { const td = tr.insertCell(); td.textContent = cell(v, view.ratio[i]); td.className = "num"; });
      if (row.project !== undefined && row.project !== null && config.mode === "running") {
        const a = document.createElement("a");
        a.href = "/reports/projects/" + row.project;
        a.textContent = tr.cells[0].textContent;
        tr.cells[0].textContent = "";
        tr.cells[0].appendChild(a);
      }
    };
    view.rows.forEach((row) => line(row, ""));
    if (view.rows.length === 0) {
      const td = body.insertRow().insertCell();
      td.colSpan = view.headers.length;
      td.textContent = W.none;
    }
    line(view.total, "total");
    $("#report-table").replaceChildren(table);
  }
  function drawChart(view) {
    const holder = $("#report-chart");
    if (typeof echarts === "undefined" || view.rows.length === 0 || view.chart.series.length === 0) { holder.hidden = true; return; }
    holder.hidden = false;
    const chart = echarts.getInstanceByDom(holder) || echarts.init(holder);
    chart.setOption({
      title: { text: view.title, textStyle: { fontSize: 14 } },
      tooltip: { trigger: "axis" },
      legend: { top: 24 },
      grid: { top: 64, left: 48, right: 16, bottom: 64 },
      xAxis: { type: "category", data: view.chart.categories, axisLabel: { interval: 0, rotate: view.chart.categories.length > 3 ? 20 : 0 } },
      yAxis: { type: "value" },
      series: view.chart.series.map((i) => ({
        name: view.headers[view.tag_count + i],
        type: view.chart.kind,
        data: view.rows.map((r) => r.values[i]),
      })),
    }, true);
    chart.resize();
    holder.dataset.series = String(view.chart.series.length);
  }
  async function post(url) {
    clearErrors();
    const body = JSON.stringify(request());
    // The last request, for whoever wants to repeat it (the end-to-end test does).
    page.dataset.request = body;
    const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
    if (!response.ok) {
      const answer = await response.json().catch(() => ({}));
      showError(answer.error || response.statusText, $("#run-result"));
      return null;
    }
    return response;
  }
  async function run(event) {
    if (event) event.preventDefault();
    const response = await post("/api/reports/run");
    if (!response) return;
    const view = await response.json();
    $("#report-heading").textContent = view.title + " · " + view.range;
    drawTable(view);
    drawChart(view);
    page.dataset.ran = String(Number(page.dataset.ran || 0) + 1);
  }
  async function exportXlsx() {
    const response = await post("/api/reports/export");
    if (!response) return;
    const blob = await response.blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = (currentDef().name || "report") + ".xlsx";
    document.body.appendChild(a);
    a.click();
    a.remove();
    page.dataset.exported = String(Number(page.dataset.exported || 0) + 1);
  }

  // ---- wiring ----
  $("#report-filters").addEventListener("submit", run);
  $("#report-export").addEventListener("click", exportXlsx);
  const projectBox = $("#report-filters [name=projects]");
  if (projectBox) projectBox.addEventListener("change", loadChoices);
  if (config.mode === "builder") {
    $("#add-condition").addEventListener("click", () => addCondition(null));
    $("#add-column").addEventListener("click", () => addColumn(null, false));
    $("#add-ratio").addEventListener("click", () => addColumn(null, true));
    $("#report-new").addEventListener("click", () => fillEditor(config.def));
    $("#report-editor").addEventListener("submit", save);
    fillEditor(config.def);
    listDefs();
  }
  window.addEventListener("resize", () => { const c = typeof echarts !== "undefined" && echarts.getInstanceByDom($("#report-chart")); if (c) c.resize(); });
  loadChoices().then(() => run());
})();
