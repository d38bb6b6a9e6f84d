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
  };
}

if (definition) {
  definition.addEventListener("click", (event) => {
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
      if (row.dataset.key && count > 0 && !window.confirm(list.dataset.warning.replace("{n}", String(count)))) return;
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
