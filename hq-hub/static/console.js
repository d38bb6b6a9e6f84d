// The console's only script: forms marked data-api post their fields as JSON to the JSON API
// (the same API scripts use), then show the answer or reload. Plain forms work without it.
"use strict";
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!form.dataset.api) return;
  event.preventDefault();
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
  const body = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === "checkbox") { body[el.name] = el.checked; continue; }
    if (el.type === "number") { if (el.value !== "") body[el.name] = Number(el.value); continue; }
    if (el.value !== "" || el.dataset.keepEmpty) body[el.name] = el.value;
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
  if (form.dataset.then === "reload") { window.location.reload(); return; }
  if (form.dataset.then === "file" && answer.file_id) { window.location.href = "/files/" + answer.file_id; return; }
  if (out) { out.className = "result ok"; out.textContent = answer.message || JSON.stringify(answer); }
});

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
