// The sub-project editor (/projects/{id}/edit): field rows move up and down, are added from
// their list's <template> and deleted — after a warning saying how many customer rows or
// business records the project already holds — and saving sends the whole definition as
// JSON. Errors are shown next to the save button; a success reloads the page with a note.
"use strict";

const definition = document.getElementById("definition");

// One field row as the API's FieldSpec; a new row has no key (the hub gives it one).
function fieldOf(row) {
  const el = (name) => row.querySelector(`[name="${name}"]`);
  return {
    key: row.dataset.key || "",
    title: el("title").value,
    kind: el("kind").value,
    options: el("options").value.split("\n").map((o) => o.trim()).filter((o) => o),
    default: el("default").value,
    required: el("required").checked,
    read_only: el("read_only").checked,
    hidden: el("hidden").checked,
    filterable: el("filterable").checked,
    listed: el("listed").checked,
  };
}

if (definition) {
  definition.addEventListener("click", async (event) => {
    const button = event.target.closest("button[type=button]");
    if (!button) return;
    const list = button.closest("[data-list]");
    const row = button.closest("tr[data-field]");
    if (button.dataset.add !== undefined) {
      const blank = list.querySelector("template").content.querySelector("tr").cloneNode(true);
      list.querySelector("tbody").appendChild(blank);
      blank.querySelector("[name=title]").focus();
    } else if (button.dataset.move === "-1" && row.previousElementSibling) {
      row.parentNode.insertBefore(row, row.previousElementSibling);
    } else if (button.dataset.move === "1" && row.nextElementSibling) {
      row.parentNode.insertBefore(row.nextElementSibling, row);
    } else if (button.dataset.remove !== undefined) {
      const count = Number(list.dataset.count || 0);
      // A field that was never saved holds no data: no warning.
      // The consoles' own question (ui.js), not the browser's confirm().
      const warning = list.dataset.warning.replace("{n}", String(count));
      if (row.dataset.key && count > 0 && !(await window.OutpostUi.confirm(warning, { danger: true }))) return;
      row.remove();
    }
  });

  definition.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      name: definition.querySelector("[name=name]").value,
      script: definition.querySelector("[name=script]").value,
      hide_middle_digits: definition.querySelector("[name=hide_middle_digits]").checked,
    };
    for (const list of definition.querySelectorAll("[data-list]")) {
      body[list.dataset.list] = [...list.querySelectorAll("tbody > tr[data-field]")].map(fieldOf);
    }
    const out = definition.querySelector(".result");
    const response = await fetch(definition.dataset.definition, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      out.className = "result error";
      out.textContent = answer.error || response.statusText;
      return;
    }
    window.location.href = definition.dataset.saved;
  });
}

// The dispatch form (文件管理 → 数据下发): only the chosen kind's section shows; exclusive
// batches say how many rows stay in the file as counts are typed; the form is sent as JSON,
// so a refusal is shown next to the button with every typed batch name still in place.
const dispatchForm = document.querySelector("form[data-dispatch]");
if (dispatchForm) {
  const kind = dispatchForm.querySelector("[name=kind]");
  const left = dispatchForm.querySelector("[data-left]");
  const total = Number(dispatchForm.dataset.rows || 0);
  const updateLeft = () => {
    let asked = 0;
    for (const input of dispatchForm.querySelectorAll("[name^=part_count_]")) asked += Number(input.value || 0);
    left.textContent = left.dataset.template.replace("{total}", String(total)).replace("{asked}", String(asked)).replace("{n}", String(Math.max(total - asked, 0)));
    left.classList.toggle("error", asked > total);
  };
  const show = () => {
    for (const el of dispatchForm.querySelectorAll("[data-kinds]")) el.hidden = !el.dataset.kinds.split(" ").includes(kind.value);
    updateLeft();
  };
  kind.addEventListener("change", show);
  dispatchForm.addEventListener("input", updateLeft);
  show();

  dispatchForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = (name) => dispatchForm.querySelector(`[name="${name}"]`).value;
    const body = {
      kind: kind.value,
      name: value("name"),
      priority: Number(value("priority")),
      description: value("description"),
      update_existing: dispatchForm.querySelector("[name=update_existing]").checked,
      site_ids: [],
      parts: [],
    };
    if (kind.value === "shared") {
      body.site_ids = [...dispatchForm.querySelectorAll("input[data-site]:checked")].map((el) => Number(el.dataset.site));
      // The pool's lease settings; an empty field takes HQ's default.
      for (const name of ["lease_hours", "lease_lifetime_s", "min_block"]) {
        if (value(name) !== "") body[name] = Number(value(name));
      }
    }
    if (kind.value === "exclusive") {
      for (const row of dispatchForm.querySelectorAll("tr[data-part]")) {
        const count = row.querySelector("[name^=part_count_]").value;
        if (count === "") continue;
        body.parts.push({
          name: row.querySelector("[name^=part_name_]").value,
          count: Number(count),
          site_id: Number(row.querySelector("[name^=part_site_]").value),
        });
      }
    }
    const out = dispatchForm.querySelector(".result");
    const response = await fetch(dispatchForm.dataset.dispatch, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      out.className = "result error";
      out.textContent = answer.error || response.statusText;
      return;
    }
    out.className = "result ok";
    out.textContent = answer.message;
    document.getElementById("dispatch-done").hidden = false;
  });
}

// 归属设置: "add a row" appends an empty rule row (a copy of the last, cleared), so a
// project with many rules is not limited to the blank rows the page came with.
for (const button of document.querySelectorAll("button[data-add-rule]")) {
  button.addEventListener("click", () => {
    const body = button.closest("form").querySelector("tbody");
    const last = body.querySelector("tr[data-row]:last-of-type");
    if (!last) return;
    const row = last.cloneNode(true);
    for (const input of row.querySelectorAll("input")) input.value = "";
    body.appendChild(row);
    row.querySelector("input[name=value]").focus();
  });
}
