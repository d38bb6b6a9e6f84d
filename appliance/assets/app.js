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

function formBody(form) {
  const body = {};
  for (const element of form.elements) {
    if (!element.name) continue;
    body[element.name] = element.type === "number" ? Number(element.value) : element.value;
  }
  return body;
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
    overlay.hidden = false;
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

  const events = new EventSource("/api/agent/events");
  events.addEventListener("state", (event) => showState(JSON.parse(event.data).state));
  events.addEventListener("popup", (event) => {
    const popup = JSON.parse(event.data);
    const known = (open && open.attempt_id === popup.attempt_id) ||
      queue.some((queued) => queued.attempt_id === popup.attempt_id);
    if (!known) queue.push(popup);
    next();
  });
}

// ---- live status ----

function wireStatus(panel) {
  const field = (name) => panel.querySelector('[data-field="' + name + '"]');
  const refresh = async () => {
    try {
      const response = await fetch("/api/status", { credentials: "same-origin" });
      if (!response.ok) return;
      const status = await response.json();
      const link = status.link;
      let text = {
        online: panel.dataset.online, offline: panel.dataset.offline,
        connecting: panel.dataset.connecting, not_enrolled: panel.dataset.notEnrolled,
      }[link.state] || link.state;
      if (link.since) text += " (" + panel.dataset.since + " " + new Date(link.since * 1000).toLocaleString() + ")";
      if (link.reason) text += ": " + link.reason;
      field("link").textContent = text;
      field("ringing").textContent = status.lines.ringing;
      field("queued").textContent = status.lines.queued + status.lines.offered;
      field("talking").textContent = status.lines.talking;
      field("outbox").textContent = status.outbox;
      field("registered").textContent = status.lines.registered_extensions.join(", ") || "-";
      field("problem").textContent = status.lines.problem || "";
      const rows = (status.agent_list || []).map((agent) => {
        const row = document.createElement("tr");
        for (const value of [agent.username, agent.extension, stateLabel(panel, agent.state)]) {
          const cell = document.createElement("td");
          cell.textContent = value;
          row.append(cell);
        }
        return row;
      });
      field("agents").replaceChildren(...rows);
    } catch (_) {
      // The box may be restarting; the next tick tries again.
    }
  };
  refresh();
  window.setInterval(refresh, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  wireForms(document);
  const desk = document.getElementById("desk");
  if (desk) wireDesk(desk);
  const status = document.getElementById("live-status");
  if (status) wireStatus(status);
});
