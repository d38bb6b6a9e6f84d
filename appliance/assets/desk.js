// The agent desk's script, on every desk page (loaded by the desk_popup.html partial after
// app.js): the one event stream of the agent's session (the server sends the popups not
// saved yet when a page connects, so moving between desk pages loses none), the call bar
// (agent state, call state and timer), the popup with its one save (business record and an
// optional callback), a chime on each new popup, the state buttons, one-click and manual
// dial, and the callback list's 重新编辑 times. Errors appear next to what caused them; no
// alert().
"use strict";

(function () {
  const bar = document.getElementById("call-bar");
  const overlay = document.getElementById("popup");
  if (!bar || !overlay) return;

  const element = (tag, text, className) => {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  };
  const showError = (box, message) => {
    box.textContent = message;
    box.hidden = false;
  };
  const post = (url, body) => postJson(url, body);

  // ---- call bar: agent state, call state, timer ----
  const agentState = document.getElementById("bar-agent-state");
  const callState = document.getElementById("call-state");
  const timer = document.getElementById("call-timer");
  const popupState = overlay.querySelector(".popup-state");
  const popupTimer = overlay.querySelector(".popup-timer");
  const calling = document.getElementById("calling");
  const callResult = document.getElementById("call-result");
  const notice = document.getElementById("notice");
  let since = null;
  let current = null; // attempt id of the call the bar shows
  const two = (n) => String(n).padStart(2, "0");
  const tick = () => {
    if (since === null) return;
    const seconds = Math.max(0, Math.floor((Date.now() - since) / 1000));
    const text = two(Math.floor(seconds / 60)) + ":" + two(seconds % 60);
    timer.textContent = text;
    popupTimer.textContent = text;
  };
  setInterval(tick, 1000);
  const setCall = (state, attemptId) => {
    const words = { idle: bar.dataset.idle, ringing: bar.dataset.ringing, talking: bar.dataset.talking,
      ended: bar.dataset.ended, wrap_up: bar.dataset.wrapUp };
    bar.dataset.state = state;
    callState.textContent = words[state] || state;
    popupState.textContent = words[state] || state;
    if (attemptId !== undefined) current = attemptId;
    if (state === "ringing" || state === "talking") {
      since = Date.now();
    } else if (state === "idle") {
      since = null;
      timer.textContent = "00:00";
    } else {
      since = null; // ended / wrap-up: the timer stops at the call's length
    }
    tick();
  };
  const desk = document.getElementById("desk");
  const currentLabel = document.getElementById("current-state");
  const showAgentState = (state) => {
    const label = bar.getAttribute("data-st-" + state) || state;
    agentState.textContent = label;
    if (desk) desk.dataset.state = state;
    if (currentLabel) currentLabel.textContent = label;
  };

  // A short two-tone chime: the agent may be looking at another window. Browsers let a page
  // sound only after the person interacted with it, so the first click anywhere on a desk
  // page readies the sound; until then the title blinks, and once the agent allowed
  // notifications (asked on the desk's state buttons) a hidden page also shows one.
  let audio = null;
  const readyAudio = () => {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      return audio.state === "running" ? Promise.resolve() : audio.resume();
    } catch (_) {
      return Promise.reject(new Error("no audio"));
    }
  };
  document.addEventListener("pointerdown", () => { readyAudio().catch(() => {}); }, { once: true });
  const tones = () => {
    [880, 1175].forEach((frequency, index) => {
      const oscillator = audio.createOscillator();
      const gain = audio.createGain();
      oscillator.frequency.value = frequency;
      gain.gain.value = 0.15;
      oscillator.connect(gain).connect(audio.destination);
      const start = audio.currentTime + index * 0.22;
      oscillator.start(start);
      oscillator.stop(start + 0.18);
    });
    document.body.dataset.chimes = String(Number(document.body.dataset.chimes || 0) + 1);
  };
  const chime = (popup) => {
    readyAudio().then(tones).catch(() => {}).finally(() => {
      document.body.dataset.audio = audio ? audio.state : "none";
    });
    if (document.hidden && window.Notification && Notification.permission === "granted") {
      try { new Notification(bar.dataset.newCall, { body: popup.phone, tag: "popup-" + popup.attempt_id }); } catch (_) { /* not offered */ }
    }
    const title = document.title.replace(/^【[^】]*】/, "");
    let blinks = 0;
    const blink = setInterval(() => {
      document.title = blinks % 2 === 0 ? "【" + bar.dataset.newCall + "】" + title : title;
      if (++blinks > 9) { clearInterval(blink); document.title = title; }
    }, 600);
  };

  // ---- the popup ----
  const body = overlay.querySelector(".popup-body");
  const queue = [];
  let open = null;
  const ended = new Set();

  const recordForm = (popup) => {
    const form = element("form", undefined, "record");
    form.noValidate = false;
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
      input.dataset.record = "1";
      input.required = field.required;
      label.append(input);
      form.append(label);
    }
    // 预约回访 is part of the same save: filled in, it is scheduled with the record.
    const callback = element("fieldset", undefined, "schedule");
    callback.append(element("legend", overlay.dataset.schedule));
    const input = (label, name, type) => {
      const wrap = element("label", label + " ");
      const node = document.createElement("input");
      node.name = name;
      node.type = type;
      wrap.append(node);
      callback.append(wrap);
      return node;
    };
    const title = input(overlay.dataset.title, "cb_title", "text");
    title.maxLength = 60;
    const due = input(overlay.dataset.due, "cb_due", "datetime-local");
    due.step = "1";
    window.OutpostUi.datePicker(due);
    const note = input(overlay.dataset.note, "cb_note", "text");
    const scopeLabel = element("label", overlay.dataset.scope + " ");
    const scope = document.createElement("select");
    scope.name = "cb_scope";
    for (const [value, text] of [["agent", overlay.dataset.scopeAgent], ["task", overlay.dataset.scopeTask]]) {
      const option = element("option", text);
      option.value = value;
      scope.append(option);
    }
    scopeLabel.append(scope);
    callback.append(scopeLabel);
    form.append(callback);
    const actions = element("div", undefined, "popup-actions");
    const save = element("button", overlay.dataset.save);
    save.type = "submit";
    const error = element("span", "", "form-error");
    error.hidden = true;
    actions.append(save, error);
    form.append(actions);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      const values = {};
      for (const field of form.querySelectorAll("[data-record]")) values[field.name] = field.value;
      const payload = { values };
      if (title.value.trim() || due.value) {
        payload.callback = {
          title: title.value,
          due_at: due.value ? Math.floor(new Date(due.value).getTime() / 1000) : null,
          note: note.value,
          scope: scope.value,
        };
      }
      save.disabled = true;
      try {
        await post("/api/attempts/" + popup.attempt_id + "/record", payload);
        open = null;
        overlay.hidden = true;
        if (current === popup.attempt_id && bar.dataset.state !== "ringing" && bar.dataset.state !== "talking") setCall("idle");
        next();
      } catch (failure) {
        showError(error, failure.message);
      } finally {
        save.disabled = false;
      }
    });
    return form;
  };

  // 当下回访: call the customer back now; what happened shows next to the button.
  const callBackNow = (popup) => {
    const section = element("div", undefined, "callback");
    const now = element("button", overlay.dataset.callBackNow, "call-back-now");
    now.type = "button";
    const status = element("span", "", "hint");
    now.addEventListener("click", async () => {
      status.classList.remove("form-error");
      try {
        const started = await post("/api/attempts/" + popup.attempt_id + "/call-back-now", {});
        status.textContent = bar.dataset.calling + " " + started.phone;
      } catch (failure) {
        status.classList.add("form-error");
        status.textContent = failure.message;
      }
    });
    section.append(now, status);
    return section;
  };

  const show = (popup) => {
    open = popup;
    body.replaceChildren();
    const left = element("div", undefined, "popup-left");
    // A call the customer placed (呼入) says so above the customer's data.
    if (popup.inbound) left.append(element("p", overlay.dataset.inbound, "tag popup-inbound"));
    const facts = element("dl", undefined, "facts");
    facts.append(element("dt", overlay.dataset.phone), element("dd", popup.phone, "phone"));
    for (const field of popup.fields) facts.append(element("dt", field.title), element("dd", field.value));
    left.append(facts);
    if (popup.script) left.append(element("h3", overlay.dataset.script), element("pre", popup.script, "script"));
    const right = element("div", undefined, "popup-right");
    right.append(element("h3", overlay.dataset.record), recordForm(popup), callBackNow(popup));
    body.append(left, right);
    overlay.hidden = false;
    if (current !== popup.attempt_id || bar.dataset.state === "idle") {
      // A popup sent when this page connected may be of a call that ended meanwhile.
      setCall(ended.has(popup.attempt_id) || popup.live === false ? "wrap_up" : "talking", popup.attempt_id);
    }
    chime(popup);
  };

  const next = () => {
    if (open || queue.length === 0) return;
    show(queue.shift());
  };

  // The popup cannot be closed until saved: Escape does nothing and leaving the page warns
  // (the next desk page shows it again anyway).
  document.addEventListener("keydown", (event) => {
    if (open && event.key === "Escape") event.preventDefault();
  });
  window.addEventListener("beforeunload", (event) => {
    if (open) {
      event.preventDefault();
      event.returnValue = overlay.dataset.mustSave;
    }
  });

  // ---- the event stream ----
  const events = new EventSource("/api/agent/events");
  events.addEventListener("state", (event) => showAgentState(JSON.parse(event.data).state));
  events.addEventListener("ringing", (event) => {
    const ringing = JSON.parse(event.data);
    callResult.hidden = true;
    calling.textContent = bar.dataset.calling + " " + ringing.phone;
    calling.hidden = false;
    setCall("ringing", ringing.attempt_id);
  });
  events.addEventListener("talking", (event) => {
    const talking = JSON.parse(event.data);
    calling.hidden = true;
    setCall("talking", talking.attempt_id);
  });
  // A call of the agent's that did not go through says why, until the next call.
  events.addEventListener("ended", (event) => {
    calling.hidden = true;
    const info = JSON.parse(event.data);
    ended.add(info.attempt_id);
    const outcome = info.outcome || "";
    const reason = bar.dataset["ended" + outcome.charAt(0).toUpperCase() + outcome.slice(1)];
    callResult.textContent = reason || "";
    callResult.hidden = !reason;
    if (current === info.attempt_id || current === null) {
      setCall(open && open.attempt_id === info.attempt_id ? "wrap_up" : "ended", info.attempt_id);
    }
  });
  events.addEventListener("callback", (event) => {
    const due = JSON.parse(event.data);
    notice.textContent = bar.dataset.callbackDue + " #" + due.callback_id + (due.phone ? " · " + due.phone : "");
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

  // ---- the desk page: state buttons, one-click, manual dial ----
  const stateError = document.getElementById("state-error");
  for (const button of document.querySelectorAll("#desk button.state")) {
    button.addEventListener("click", async () => {
      stateError.hidden = true;
      // A click is the moment a browser lets a page ask; the answer lasts for the site.
      if (window.Notification && Notification.permission === "default") {
        const asked = Notification.requestPermission();
        if (asked && asked.catch) asked.catch(() => {});
      }
      try {
        const answer = await post("/api/agent/state", { state: button.dataset.state });
        showAgentState(answer.state);
      } catch (failure) {
        showError(stateError, failure.message);
      }
    });
  }
  const started = (answer) => {
    // A call that failed at once may have ended before this answer came back.
    if (!ended.has(answer.attempt_id)) {
      calling.textContent = bar.dataset.calling + " " + answer.phone;
      calling.hidden = false;
      setCall("ringing", answer.attempt_id);
    }
  };
  const dialError = document.getElementById("dial-error");
  for (const button of document.querySelectorAll("button.one-click")) {
    button.addEventListener("click", async () => {
      dialError.hidden = true;
      callResult.hidden = true;
      try {
        started(await post(button.dataset.dial, {}));
      } catch (failure) {
        showError(dialError, failure.message);
      }
    });
  }
  const manual = document.getElementById("manual-dial-form");
  if (manual) {
    const error = document.getElementById("manual-dial-error");
    manual.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      callResult.hidden = true;
      const project = manual.elements.project_id.value;
      try {
        started(await post("/api/agent/dial", { phone: manual.elements.phone.value, project_id: project ? Number(project) : null }));
      } catch (failure) {
        showError(error, failure.message);
      }
    });
  }

  // ---- callback list: 重新编辑 shows the planned time in the browser's zone ----
  for (const input of document.querySelectorAll("input[data-unix-value]")) {
    const at = new Date(Number(input.dataset.unixValue) * 1000);
    // The date picker (ui.js) owns the field by now: through it, the shown text follows too.
    if (input._flatpickr) input._flatpickr.setDate(at, false);
    else input.value = at.getFullYear() + "-" + two(at.getMonth() + 1) + "-" + two(at.getDate()) + "T" +
      two(at.getHours()) + ":" + two(at.getMinutes()) + ":" + two(at.getSeconds());
  }
})();
