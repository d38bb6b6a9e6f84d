// The behaviour both consoles share (HQ hub at /static/ui.js, the site box at /assets/ui.js):
// the confirmation modal, toasts, tabs and the one date format. Loaded before each UI's own
// script; no inline script anywhere (the CSP forbids it), so pages opt in with attributes:
//
// - <form data-confirm="…"> / <button data-confirm="…">: a modal asks first; Cancel leaves
//   everything as it was, Confirm lets the submit / click go on to the page's own handler.
//   data-confirm-if="field=value" asks only when that field of the form holds that value;
//   data-confirm-danger makes the Confirm button red; data-confirm-ok names it;
//   data-confirm-from="select" takes the question from that select's chosen option.
// - [data-tabs] holding sections with data-tab-label: one tab per section, the chosen tab
//   kept across reloads of the same page (a form that reloads stays on its tab); a section's
//   data-tab-id names it in links (page#tab-id). Not an element id: the browser would
//   scroll the page down to it.
// - OutpostUi.toast(text) shows a note that fades; OutpostUi.flash(text) shows it after the
//   next page load (forms that reload the page).
// - Every <input type="date"> and <input type="datetime-local"> gets flatpickr's calendar
//   (vendor/flatpickr, served in front of this file) showing 2026-12-07 / 2026-12-07 15:36 in
//   the page's language, whatever the browser's locale; the form still submits the input's own
//   value format (2026-12-07, 2026-12-07T15:36). Inputs made later call OutpostUi.datePicker.
//   The strict-mode directive sits inside the function because this file is served after
//   flatpickr's, where a file-level directive would no longer be the first statement.

const OutpostUi = (() => {
  "use strict";
  const en = () => (document.documentElement.lang || "").startsWith("en");
  const two = (n) => String(n).padStart(2, "0");

  // 2026-12-07 15:36, in the browser's time zone: the one format of both consoles.
  function formatTime(unix) {
    const at = new Date(unix * 1000);
    return at.getFullYear() + "-" + two(at.getMonth() + 1) + "-" + two(at.getDate()) + " " + two(at.getHours()) + ":" + two(at.getMinutes());
  }

  function toasts() {
    let box = document.querySelector(".toasts");
    if (!box) {
      box = document.createElement("div");
      box.className = "toasts";
      box.setAttribute("role", "status");
      document.body.appendChild(box);
    }
    return box;
  }

  function toast(text, kind) {
    const item = document.createElement("div");
    item.className = "toast" + (kind === "error" ? " error" : "");
    item.textContent = text;
    toasts().appendChild(item);
    setTimeout(() => item.remove(), 4000);
  }

  function flash(text) {
    try { sessionStorage.setItem("outpost-flash", text); } catch (_) { /* private mode: no toast */ }
  }

  // Resolves true on Confirm, false on Cancel, Escape or a click beside the dialog.
  function confirmBox(message, options) {
    const opts = options || {};
    return new Promise((resolve) => {
      const back = document.createElement("div");
      back.className = "modal-back";
      back.innerHTML = '<div class="modal" role="dialog" aria-modal="true"><h2></h2><p></p><div class="actions">'
        + '<button type="button" class="secondary" data-answer="no"></button><button type="button" data-answer="yes"></button></div></div>';
      back.querySelector("h2").textContent = opts.title || (en() ? "Please confirm" : "请确认");
      back.querySelector("p").textContent = message;
      const no = back.querySelector("[data-answer=no]");
      const yes = back.querySelector("[data-answer=yes]");
      no.textContent = en() ? "Cancel" : "取消";
      yes.textContent = opts.ok || (en() ? "Confirm" : "确定");
      if (opts.danger) yes.classList.add("danger");
      const done = (answer) => {
        back.remove();
        document.removeEventListener("keydown", onKey, true);
        resolve(answer);
      };
      const onKey = (event) => { if (event.key === "Escape") { event.preventDefault(); done(false); } };
      back.addEventListener("click", (event) => {
        if (event.target === back) done(false);
        else if (event.target.dataset.answer) done(event.target.dataset.answer === "yes");
      });
      document.addEventListener("keydown", onKey, true);
      document.body.appendChild(back);
      no.focus();
    });
  }

  // Whether `holder` (a form or a button) asks before acting this time.
  function asks(holder) {
    if (!holder.dataset.confirm || holder.dataset.confirmed) return false;
    const only = holder.dataset.confirmIf;
    if (!only) return true;
    const [name, value] = only.split("=");
    const form = holder.form || holder.closest("form") || holder;
    const field = form.elements ? form.elements.namedItem(name) : null;
    return !!field && String(field.value).trim() === value;
  }

  // The question: the form's own, or with data-confirm-from="field" the data-confirm of
  // that select's chosen option (the server words each choice, counts included).
  function question(holder) {
    const from = holder.dataset.confirmFrom;
    const field = from && holder.elements ? holder.elements.namedItem(from) : null;
    const option = field && field.selectedOptions ? field.selectedOptions[0] : null;
    return (option && option.dataset.confirm) || holder.dataset.confirm;
  }

  async function ask(holder, go) {
    const ok = await confirmBox(question(holder), {
      title: holder.dataset.confirmTitle,
      ok: holder.dataset.confirmOk,
      danger: holder.dataset.confirmDanger !== undefined,
    });
    if (!ok) return;
    holder.dataset.confirmed = "1";
    try { go(); } finally { delete holder.dataset.confirmed; }
  }

  // Capture phase on the document: runs before any page handler of the submit or click.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!asks(form)) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    const submitter = event.submitter;
    ask(form, () => (form.requestSubmit ? form.requestSubmit(submitter || undefined) : form.submit()));
  }, true);
  document.addEventListener("click", (event) => {
    const button = event.target.closest ? event.target.closest("button[data-confirm]") : null;
    if (!button || !asks(button)) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    ask(button, () => button.click());
  }, true);

  function tabs(holder) {
    const panes = Array.from(holder.querySelectorAll(":scope > [data-tab-label]"));
    if (panes.length < 2) return;
    const key = "outpost-tab:" + location.pathname;
    const bar = document.createElement("div");
    bar.className = "tabbar";
    bar.setAttribute("role", "tablist");
    const show = (index) => {
      panes.forEach((pane, i) => { pane.hidden = i !== index; });
      bar.querySelectorAll("button").forEach((b, i) => b.setAttribute("aria-selected", String(i === index)));
      try { sessionStorage.setItem(key, panes[index].dataset.tabId || String(index)); } catch (_) { /* no memory */ }
    };
    panes.forEach((pane, i) => {
      const button = document.createElement("button");
      button.type = "button";
      button.setAttribute("role", "tab");
      button.textContent = pane.dataset.tabLabel;
      if (pane.dataset.tabId) button.dataset.tabFor = pane.dataset.tabId;
      button.addEventListener("click", () => show(i));
      bar.appendChild(button);
    });
    holder.insertBefore(bar, holder.firstChild);
    holder.classList.add("tabbed");
    let wanted = location.hash ? location.hash.slice(1) : null;
    try { wanted = wanted || sessionStorage.getItem(key); } catch (_) { /* no memory */ }
    const found = panes.findIndex((pane, i) => pane.dataset.tabId === wanted || String(i) === wanted);
    show(found >= 0 ? found : 0);
    // A link to another tab of the same page (#tab-…) switches to it.
    window.addEventListener("hashchange", () => {
      const index = panes.findIndex((pane) => pane.dataset.tabId && "#" + pane.dataset.tabId === location.hash);
      if (index >= 0) show(index);
    });
  }

  // The calendar on a date or date-time input; a no-op without flatpickr or when done already.
  function datePicker(input) {
    if (!window.flatpickr || input._flatpickr) return;
    const withTime = input.type === "datetime-local";
    const seconds = withTime && input.step === "1";
    // An empty field says the format it takes (the calendar also fills it in).
    if (!input.placeholder) input.placeholder = (en() ? "YYYY-MM-DD" : "年-月-日") + (withTime ? (en() ? " HH:MM" : " 时:分") : "");
    window.flatpickr(input, {
      locale: en() ? "default" : "zh",
      allowInput: true,
      disableMobile: true,
      enableTime: withTime,
      enableSeconds: false,
      time_24hr: true,
      // The value the form sends keeps the native input's format; only the shown text changes.
      dateFormat: withTime ? (seconds ? "Y-m-d\\TH:i:S" : "Y-m-d\\TH:i") : "Y-m-d",
      altInput: withTime,
      altFormat: "Y-m-d H:i",
      altInputClass: input.className,
    });
  }

  function start() {
    for (const holder of document.querySelectorAll("[data-tabs]")) tabs(holder);
    for (const input of document.querySelectorAll("input[type=date], input[type=datetime-local]")) datePicker(input);
    for (const node of document.querySelectorAll("time[data-unix]")) {
      const unix = Number(node.dataset.unix);
      if (unix > 0) node.textContent = formatTime(unix);
    }
    let note = null;
    try { note = sessionStorage.getItem("outpost-flash"); sessionStorage.removeItem("outpost-flash"); } catch (_) { /* none */ }
    if (note) toast(note);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();

  return { confirm: confirmBox, toast, flash, formatTime, datePicker };
})();
window.OutpostUi = OutpostUi;
