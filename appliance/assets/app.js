// The site UI's only script: JSON forms and buttons (a few lines in place of htmx), the agent
// desk's state buttons and popup (server-sent events), and the live status page.
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
// selects marked data-number as a number (or null when blank), datetime-local fields marked
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
    if (element.dataset.number) {
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

// Times travel as unix seconds and are shown in the browser's own time zone.
function showTimes(root) {
  for (const node of root.querySelectorAll("time[data-unix]")) {
    const unix = Number(node.dataset.unix);
    if (unix > 0) node.textContent = new Date(unix * 1000).toLocaleString(document.documentElement.lang || undefined);
  }
}

function wireForms(root) {
  for (const form of root.querySelectorAll("form[data-api]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const errorBox = form.querySelector(".form-error");
      if (errorBox) errorBox.hidden = true;
      try {
        await postJson(form.dataset.api, formBody(form));
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
      try {
        await postJson(button.dataset.post, {});
        then(button.dataset.then);
      } catch (error) {
        window.alert(error.message);
      }
    });
  }
}

// ---- agent desk ----

function stateLabel(holder, state) {
  return holder.getAttribute("data-st-" + state) || state;
}

function wireDesk(desk) {
  const current = document.getElementById("current-state");
  const showState = (state) => {
    desk.dataset.state = state;
    current.textContent = stateLabel(desk, state);
  };
  for (const button of desk.querySelectorAll("button.state")) {
    button.addEventListener("click", async () => {
      try {
        const answer = await postJson("/api/agent/state", { state: button.dataset.state });
        showState(answer.state);
      } catch (error) {
        window.alert(error.message);
      }
    });
  }

  const overlay = document.getElementById("popup");
  const body = overlay.querySelector(".popup-body");
  const queue = [];
  let open = null;

  const element = (tag, text, className) => {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  };

  const show = (popup) => {
    open = popup;
    body.replaceChildren();
    const facts = element("dl", undefined, "facts");
    facts.append(element("dt", overlay.dataset.phone), element("dd", popup.phone, "phone"));
    for (const field of popup.fields) {
      facts.append(element("dt", field.title), element("dd", field.value));
    }
    body.append(facts);
    if (popup.script) {
      body.append(element("h3", overlay.dataset.script), element("pre", popup.script, "script"));
    }
    body.append(element("h3", overlay.dataset.record));
    const form = element("form", undefined, "record");
    for (const field of popup.record_fields) {
      const label = element("label", field.title + (field.required ? " *" : ""));
      let input;
      if (field.kind === "single_choice") {
        input = document.createElement("select");
        const blank = element("option", overlay.dataset.choose);
        blank.value = "";
        input.append(blank);
        for (const option of field.options) {
          const node = element("option", option);
          node.value = option;
          input.append(node);
        }
      } else {
        input = document.createElement("textarea");
        input.rows = 2;
      }
      input.name = field.key;
      input.required = field.required;
      label.append(input);
      form.append(label);
    }
    const error = element("p", "", "form-error");
    error.hidden = true;
    const save = element("button", overlay.dataset.save);
    save.type = "submit";
    form.append(error, save);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const values = {};
      for (const input of form.elements) {
        if (input.name) values[input.name] = input.value;
      }
      try {
        await postJson("/api/attempts/" + popup.attempt_id + "/record", { values });
        open = null;
        overlay.hidden = true;
        next();
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
      }
    });
    body.append(form);
    body.append(callbackSection(popup));
    overlay.hidden = false;
  };

  // 回访: call back now, or schedule one (title, planned time, note).
  const callbackSection = (popup) => {
    const section = element("div", undefined, "callback");
    const now = element("button", overlay.dataset.callBackNow, "call-back-now");
    now.type = "button";
    const status = element("p", "", "hint");
    now.addEventListener("click", async () => {
      try {
        const started = await postJson("/api/attempts/" + popup.attempt_id + "/call-back-now", {});
        status.textContent = desk.dataset.calling + " " + started.phone;
      } catch (failure) {
        status.textContent = failure.message;
      }
    });
    const schedule = element("form", undefined, "schedule inline");
    const field = (label, name, type) => {
      const wrap = element("label", label + " ");
      const input = document.createElement("input");
      input.name = name;
      input.type = type;
      wrap.append(input);
      schedule.append(wrap);
      return input;
    };
    const title = field(overlay.dataset.title, "title", "text");
    title.required = true;
    const due = field(overlay.dataset.due, "due_at", "datetime-local");
    due.required = true;
    due.step = "1";
    const note = field(overlay.dataset.note, "note", "text");
    const submit = element("button", overlay.dataset.schedule);
    submit.type = "submit";
    schedule.append(submit);
    schedule.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const dueAt = Math.floor(new Date(due.value).getTime() / 1000);
        await postJson("/api/attempts/" + popup.attempt_id + "/callbacks", { title: title.value, due_at: dueAt, note: note.value });
        status.textContent = overlay.dataset.saved;
        schedule.reset();
      } catch (failure) {
        status.textContent = failure.message;
      }
    });
    section.append(element("h3", overlay.dataset.schedule), now, schedule, status);
    return section;
  };

  const next = () => {
    if (open || queue.length === 0) return;
    show(queue.shift());
  };

  // The popup cannot be closed until saved: Escape does nothing and leaving the page warns.
  document.addEventListener("keydown", (event) => {
    if (open && event.key === "Escape") event.preventDefault();
  });
  window.addEventListener("beforeunload", (event) => {
    if (open) {
      event.preventDefault();
      event.returnValue = overlay.dataset.mustSave;
    }
  });

  const calling = document.getElementById("calling");
  const callResult = document.getElementById("call-result");
  const endedAttempts = new Set();
  const notice = document.getElementById("notice");
  const dialError = document.getElementById("dial-error");
  for (const button of document.querySelectorAll("button.one-click")) {
    button.addEventListener("click", async () => {
      dialError.hidden = true;
      callResult.hidden = true;
      try {
        const started = await postJson(button.dataset.dial, {});
        // A call that failed at once may have ended before this answer came back.
        if (!endedAttempts.has(started.attempt_id)) {
          calling.textContent = desk.dataset.calling + " " + started.phone;
          calling.hidden = false;
        }
      } catch (failure) {
        dialError.textContent = failure.message;
        dialError.hidden = false;
      }
    });
  }

  const events = new EventSource("/api/agent/events");
  events.addEventListener("state", (event) => showState(JSON.parse(event.data).state));
  events.addEventListener("ringing", (event) => {
    const ringing = JSON.parse(event.data);
    callResult.hidden = true;
    calling.textContent = desk.dataset.calling + " " + ringing.phone;
    calling.hidden = false;
  });
  // A call of the agent's that did not go through says why, until the next call.
  events.addEventListener("ended", (event) => {
    calling.hidden = true;
    const ended = JSON.parse(event.data);
    endedAttempts.add(ended.attempt_id);
    const outcome = ended.outcome || "";
    const reason = desk.dataset["ended" + outcome.charAt(0).toUpperCase() + outcome.slice(1)];
    callResult.textContent = reason || "";
    callResult.hidden = !reason;
  });
  events.addEventListener("callback", (event) => {
    const due = JSON.parse(event.data);
    notice.textContent = desk.dataset.callbackDue + " #" + due.callback_id + (due.phone ? " · " + due.phone : "");
    notice.hidden = false;
  });
  events.addEventListener("popup", (event) => {
    const popup = JSON.parse(event.data);
    callResult.hidden = true;
    const known = (open && open.attempt_id === popup.attempt_id) ||
      queue.some((queued) => queued.attempt_id === popup.attempt_id);
    if (!known) queue.push(popup);
    next();
  });
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
  const source = new EventSource("/api/monitor/events");
  source.addEventListener("monitor", (event) => {
    const status = JSON.parse(event.data);
    const link = status.link;
    let text = {
      online: panel.dataset.online, offline: panel.dataset.offline,
      connecting: panel.dataset.connecting, not_enrolled: panel.dataset.notEnrolled,
    }[link.state] || link.state;
    if (link.since) text += " (" + panel.dataset.since + " " + new Date(link.since * 1000).toLocaleString() + ")";
    if (link.reason) text += ": " + link.reason;
    field("link").textContent = text;
    field("ringing").textContent = status.ringing;
    field("queued").textContent = status.queued;
    field("offered").textContent = status.offered;
    field("talking").textContent = status.talking;
    field("outbox").textContent = status.outbox;
    field("registered").textContent = status.registered.join(", ") || "-";
    field("problem").textContent = status.problem || "";
    field("counts").textContent = ["available", "one_click_only", "break", "away", "signed_out"]
      .map((state) => stateLabel(panel, state) + " " + (status.agents[state] || 0)).join(" · ");
    field("agents").replaceChildren(...status.agent_list.map((agent) => cells([
      agent.username, agent.extension,
      stateLabel(panel, agent.state) + (agent.on_call ? " · " + panel.dataset.onCall : ""),
    ])));
    const trunks = field("trunks");
    const words = trunks.closest("table").dataset;
    trunks.replaceChildren(...(status.trunks || []).map((trunk) => cells([
      trunk.name, trunk.alive ? words.alive : words.dead,
      trunk.registered === null ? "-" : (trunk.registered ? words.registered : words.unregistered),
      trunk.active_calls + " / " + trunk.channels,
    ])));
    field("calls").replaceChildren(...status.calls.map((call) => cells([
      call.attempt_id, panel.getAttribute("data-call-" + call.state) || call.state, call.phone,
      call.agent || "-", panel.getAttribute("data-kind-" + call.kind) || call.kind, call.seconds,
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
    when.textContent = new Date(notice.published_at * 1000).toLocaleString();
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

document.addEventListener("DOMContentLoaded", () => {
  wireAutoSubmit(document);
  const notices = document.getElementById("announcements");
  if (notices) showAnnouncements(notices);
  wireForms(document);
  showTimes(document);
  const rules = document.getElementById("rules");
  if (rules) wireRules(rules);
  const desk = document.getElementById("desk");
  if (desk) wireDesk(desk);
  const status = document.getElementById("live-status");
  if (status) wireStatus(status);
});
