// The site UI's script: JSON forms and buttons (a few lines in place of htmx), the
// attribution rules and the live status page. The agent desk's script is desk.js.
"use strict";

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    credentials: "same-origin",
    body: JSON.stringify(body || {}),
  });
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok) {
    const message = (data && data.error) || ("HTTP " + response.status);
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return data;
}

function then(target) {
  if (!target) return;
  if (target === "reload") window.location.reload();
  else window.location.assign(target);
}

// A form's fields as JSON: numbers as numbers, ticked boxes marked data-array as a list,
// selects marked data-number as a number (or null when blank), fields marked data-bool as
// true / false, datetime-local fields marked
// data-unix as unix seconds; data-wrap="values" nests the lot under "values".
function formBody(form) {
  const body = {};
  for (const element of form.elements) {
    if (!element.name) continue;
    if (element.type === "checkbox" && element.dataset.array) {
      if (!Array.isArray(body[element.name])) body[element.name] = [];
      if (element.checked) {
        body[element.name].push(element.dataset.array === "number" ? Number(element.value) : element.value);
      }
      continue;
    }
    if (element.dataset.bool) {
      body[element.name] = element.value === "true";
    } else if (element.dataset.number) {
      body[element.name] = element.value === "" ? null : Number(element.value);
    } else if (element.dataset.unix) {
      body[element.name] = Math.floor(new Date(element.value).getTime() / 1000);
    } else if (element.name === "all_match") {
      body[element.name] = element.value === "true";
    } else {
      body[element.name] = element.type === "number" ? Number(element.value) : element.value;
    }
  }
  return form.dataset.wrap ? { [form.dataset.wrap]: body } : body;
}

// Times travel as unix seconds and are shown in the browser's own time zone, in the one
// format both consoles use (2026-12-07 15:36, ui.js).
function showTimes(root) {
  for (const node of root.querySelectorAll("time[data-unix]")) {
    const unix = Number(node.dataset.unix);
    if (unix > 0) node.textContent = window.OutpostUi.formatTime(unix);
  }
}

// A success: a toast now, or after the reload.
function saved(target) {
  const text = document.documentElement.lang === "en" ? "Saved" : "已保存";
  if (target) window.OutpostUi.flash(text);
  else window.OutpostUi.toast(text);
}

function wireForms(root) {
  for (const form of root.querySelectorAll("form[data-api]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const errorBox = form.querySelector(".form-error");
      if (errorBox) errorBox.hidden = true;
      try {
        const answer = await postJson(form.dataset.api, formBody(form));
        // data-show: the answer's message stays on the page (a new password, shown once).
        const shown = form.querySelector(".form-result");
        if (form.dataset.show && shown && answer) shown.textContent = answer.message || "";
        // A form that reloads (or stays) changed something here; one that leads elsewhere
        // (signing in) has its answer in the next page.
        else if (!form.dataset.then || form.dataset.then === "reload") saved(form.dataset.then);
        then(form.dataset.then);
      } catch (error) {
        if (errorBox) {
          errorBox.textContent = (error.status === 401 && form.dataset.errorText) || error.message;
          errorBox.hidden = false;
        }
      }
    });
  }
  for (const button of root.querySelectorAll("button[data-post]")) {
    button.addEventListener("click", async () => {
      // The error shows next to the button that caused it (no alert()).
      let errorBox = button.nextElementSibling;
      if (!errorBox || !errorBox.classList.contains("post-error")) {
        errorBox = document.createElement("span");
        errorBox.className = "form-error post-error";
        errorBox.hidden = true;
        button.after(errorBox);
      }
      errorBox.hidden = true;
      try {
        await postJson(button.dataset.post, {});
        then(button.dataset.then);
      } catch (error) {
        errorBox.textContent = error.message;
        errorBox.hidden = false;
      }
    });
  }
}

// ---- state labels (the agent desk's own script is desk.js) ----

function stateLabel(holder, state) {
  return holder.getAttribute("data-st-" + state) || state;
}

// ---- attribution rules ----

function wireRules(section) {
  // The rules as saved. A change is tried on a copy and kept only once the site accepts
  // it, so a refused rule never stays behind to make every later save fail.
  let rules = JSON.parse(section.dataset.rules || "[]");
  const error = section.querySelector(".form-error");
  const save = async (candidate) => {
    error.hidden = true;
    try {
      await postJson("/api/projects/" + section.dataset.project + "/rules", { rules: candidate });
      rules = candidate;
      window.location.reload();
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    }
  };
  for (const button of section.querySelectorAll("button.remove-rule")) {
    button.addEventListener("click", () => {
      save(rules.filter((_, index) => index !== Number(button.dataset.index)));
    });
  }
  const form = section.querySelector("form.add-rule");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = form.elements.values.value.split(/[,，]/).map((v) => v.trim()).filter((v) => v);
    save(rules.concat([{
      conditions: [[form.elements.field.value, values]],
      all_match: form.elements.all_match.value === "true",
      agent: form.elements.agent.value,
    }]));
  });
  for (const button of document.querySelectorAll("button.allocate")) {
    button.addEventListener("click", async () => {
      const out = button.parentElement.querySelector(".allocation");
      try {
        const report = await postJson("/api/tasks/" + button.dataset.batch + "/allocate", {});
        out.textContent = button.dataset.attributed + "：" + report.attributed + "；" + button.dataset.notFound + "：" + report.not_found;
      } catch (failure) {
        out.textContent = failure.message;
      }
    });
  }
}

// ---- live queue monitor (server-sent events, no reloads) ----

function wireStatus(panel) {
  const field = (name) => panel.querySelector('[data-field="' + name + '"]');
  const cells = (values) => {
    const row = document.createElement("tr");
    for (const value of values) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.append(cell);
    }
    return row;
  };
  // A table with no row says so (its tbody's data-empty), as the page first drew it.
  const fill = (name, rows) => {
    const body = field(name);
    if (rows.length > 0) {
      body.replaceChildren(...rows);
      return;
    }
    const cell = document.createElement("td");
    cell.className = "empty";
    cell.colSpan = body.closest("table").querySelectorAll("thead th").length;
    cell.textContent = body.dataset.empty || "";
    const row = document.createElement("tr");
    row.append(cell);
    body.replaceChildren(row);
  };
  const source = new EventSource("/api/monitor/events");
  source.addEventListener("monitor", (event) => {
    const status = JSON.parse(event.data);
    const link = status.link;
    let text = {
      online: panel.dataset.online, offline: panel.dataset.offline,
      connecting: panel.dataset.connecting, not_enrolled: panel.dataset.notEnrolled,
    }[link.state] || link.state;
    if (link.since) text += " (" + panel.dataset.since + " " + window.OutpostUi.formatTime(link.since) + ")";
    if (link.reason) text += ": " + link.reason;
    field("link").textContent = text;
    field("ringing").textContent = status.ringing;
    field("queued").textContent = status.queued;
    field("offered").textContent = status.offered;
    field("talking").textContent = status.talking;
    field("outbox").textContent = status.outbox;
    field("registered").textContent = status.registered.join(", ") || "-";
    field("problem").textContent = status.problem || "";
    const recording = field("recording");
    const stopped = status.recording_stopped;
    recording.textContent = stopped
      ? recording.dataset.stopped.replace("{free}", stopped.free_mb).replace("{floor}", stopped.floor_mb) : "";
    const recordingState = field("recording-state");
    recordingState.textContent = stopped ? recording.textContent : recordingState.dataset.on;
    // The panel is redrawn each second too; a new query defeats the browser's cache.
    field("panel").src = "/admin/status/panel.png?at=" + Date.now();
    field("counts").textContent = ["available", "one_click_only", "break", "away", "signed_out"]
      .map((state) => stateLabel(panel, state) + " " + (status.agents[state] || 0)).join(" · ");
    fill("agents", status.agent_list.map((agent) => cells([
      agent.username, agent.extension,
      stateLabel(panel, agent.state) + (agent.on_call ? " · " + panel.dataset.onCall : ""),
    ])));
    const trunks = field("trunks");
    const words = trunks.closest("table").dataset;
    fill("trunks", (status.trunks || []).map((trunk) => cells([
      trunk.name, trunk.alive ? words.alive : words.dead,
      trunk.registered === null ? "-" : (trunk.registered ? words.registered : words.unregistered),
      trunk.active_calls + " / " + trunk.channels,
    ])));
    fill("calls", status.calls.map((call) => cells([
      call.attempt_id, panel.getAttribute("data-call-" + call.state) || call.state, call.phone,
      call.agent || "-", panel.getAttribute("data-kind-" + call.kind) || call.kind, call.seconds,
    ])));
    const leg = (figures) => figures ? figures[0].toFixed(1) + "% / " + figures[1].toFixed(2) : "-";
    fill("poor-calls", (status.poor_calls || []).map((call) => cells([
      call.attempt_id, call.phone, call.agent || "-", leg(call.customer), leg(call.agent_leg),
    ])));
  });
}

// HQ's notices, on every page of a signed-in account; text only, never markup.
async function showAnnouncements(box) {
  let notices = [];
  try {
    const response = await fetch("/api/announcements", { headers: { accept: "application/json" } });
    if (!response.ok) return;
    notices = await response.json();
  } catch (_) {
    return;
  }
  box.replaceChildren(...notices.map((notice) => {
    const item = document.createElement("article");
    const title = document.createElement("strong");
    title.textContent = notice.title;
    const when = document.createElement("time");
    when.textContent = window.OutpostUi.formatTime(notice.published_at);
    const body = document.createElement("p");
    body.textContent = notice.body;
    item.append(title, " ", when, body);
    return item;
  }));
  box.hidden = notices.length === 0;
}

// A select marked data-autosubmit sends its form when changed (the page's CSP allows no
// inline onchange).
function wireAutoSubmit(root) {
  root.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form && select.form.submit());
  });
}

// The site admin's form of calls under no project: one row per field (label, kind, the
// options of a single choice, required), moved up or down, deleted, added; saved whole in
// the order shown. The refusal names the field by its place and label.
function wireFormEditor(form) {
  const w = form.dataset;
  const list = form.querySelector(".form-fields");
  const errorBox = form.querySelector(".form-error");
  const labelled = (text, node) => {
    const wrap = document.createElement("label");
    wrap.append(text + " ", node);
    return wrap;
  };
  const button = (text, css, action) => {
    const node = document.createElement("button");
    node.type = "button";
    node.className = css;
    node.textContent = text;
    node.addEventListener("click", action);
    return node;
  };
  const row = (field) => {
    const item = document.createElement("li");
    item.className = "form-field";
    const label = document.createElement("input");
    label.name = "label";
    label.value = field.label || "";
    const kind = document.createElement("select");
    kind.name = "kind";
    for (const [value, text] of [["text", w.wText], ["single_choice", w.wChoice]]) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = text;
      kind.append(option);
    }
    kind.value = field.kind || "text";
    const options = document.createElement("input");
    options.name = "options";
    options.value = (field.options || []).join("，");
    const optionsBox = labelled(w.wOptions, options);
    // The page's label style would show a [hidden] label: the row hides it itself.
    const shown = () => { optionsBox.style.display = kind.value === "single_choice" ? "" : "none"; };
    kind.addEventListener("change", shown);
    shown();
    const required = document.createElement("input");
    required.type = "checkbox";
    required.name = "required";
    required.checked = !!field.required;
    item.append(
      labelled(w.wLabel, label), labelled(w.wKind, kind), optionsBox, labelled(w.wRequired, required),
      button(w.wUp, "move-up", () => item.previousElementSibling && item.previousElementSibling.before(item)),
      button(w.wDown, "move-down", () => item.nextElementSibling && item.nextElementSibling.after(item)),
      button(w.wRemove, "remove", () => item.remove()),
    );
    return item;
  };
  for (const field of JSON.parse(w.fields || "[]")) list.append(row(field));
  form.querySelector(".add-field").addEventListener("click", () => {
    const item = row({ kind: "text" });
    list.append(item);
    item.querySelector("input[name=label]").focus();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    const fields = [...list.querySelectorAll(".form-field")].map((item) => {
      const kind = item.querySelector("select[name=kind]").value;
      const options = item.querySelector("input[name=options]").value.split(/[,，、]/).map((o) => o.trim()).filter(Boolean);
      return {
        label: item.querySelector("input[name=label]").value,
        kind,
        options: kind === "single_choice" ? options : [],
        required: item.querySelector("input[name=required]").checked,
      };
    });
    try {
      await postJson(w.save, { record_fields: fields });
      saved("reload");
      then("reload");
    } catch (error) {
      errorBox.textContent = error.message;
      errorBox.hidden = false;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  wireAutoSubmit(document);
  const notices = document.getElementById("announcements");
  if (notices) showAnnouncements(notices);
  wireForms(document);
  showTimes(document);
  const rules = document.getElementById("rules");
  if (rules) wireRules(rules);
  const status = document.getElementById("live-status");
  if (status) wireStatus(status);
  const formEditor = document.getElementById("default-form-editor");
  if (formEditor) wireFormEditor(formEditor);
});
