// The audit tab: filters, rows and the CSV export.

import { authorized } from "/web/signin.js";
import { clearErrors, showFieldError, toIso } from "./forms.js";
import { EVENT_NAMES, detailNodes, eventName } from "./audit-words.js";
import { cameraName } from "./cameras.js";
import { $, api, cell } from "./page.js";
import { onLanguage, when } from "./text.js";
import { nameCell } from "./names.js";

const filters = $("#audit-filters");
// Every kind the gateway writes (audit-words.js, checked against the gateway by a test).
export const EVENTS = Object.keys(EVENT_NAMES);
let rows = []; // the rows shown, drawn again in the other language

function auditQuery(extra = {}) {
  const params = new URLSearchParams();
  for (const name of ["account", "camera_id", "project", "event"]) {
    const value = filters.elements[name].value.trim();
    if (value) params.set(name, value);
  }
  for (const name of ["since", "until"]) {
    if (filters.elements[name].value) params.set(name, toIso(filters.elements[name].value));
  }
  for (const [key, value] of Object.entries(extra)) params.set(key, value);
  return params; // filters only: the token travels in the Authorization header
}

export async function loadAudit() {
  clearErrors(filters);
  const { ok, data } = await api(`/api/audit?${auditQuery({ limit: 500 })}`);
  if (!ok) return showFieldError(filters, { error: data.error, field: "audit" });
  rows = data.rows;
  drawAudit();
}

// A camera by its name, with its id beneath.
function cameraCell(id) {
  const td = cell(id ? cameraName(id) : "");
  if (id && td.textContent !== id) {
    const small = document.createElement("small");
    small.textContent = id;
    td.append(document.createElement("br"), small);
  }
  return td;
}

function drawAudit() {
  $("#audit-table tbody").replaceChildren(
    ...rows.map((row) => {
      const tr = document.createElement("tr");
      tr.dataset.event = row.event;
      const detail = cell("", "detail");
      detail.append(...detailNodes(row.detail));
      tr.append(
        cell(when(row.at)),
        cell(eventName(row.event)),
        nameCell(row.account),
        cameraCell(row.camera_id),
        nameCell(row.project),
        cell(row.remote),
        detail,
      );
      return tr;
    }),
  );
}

filters.addEventListener("submit", (event) => {
  event.preventDefault();
  loadAudit();
});

// CSV: fetched with the Bearer header, then saved from a Blob (no token in a link).
$("#export-csv").addEventListener("click", async () => {
  const response = await fetch(`/api/audit?${auditQuery({ format: "csv", limit: 100000 })}`, {
    headers: await authorized(),
  });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    return showFieldError(filters, { error: data.error || response.statusText, field: "audit" });
  }
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = `audit-${new Date().toISOString().slice(0, 19).replaceAll(":", "")}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
});

// The event filter's choices, in the page's language (the choice made stays).
onLanguage(() => {
  const select = $("#a-event");
  const keep = select.value;
  select.replaceChildren(select.options[0], ...EVENTS.map((e) => new Option(eventName(e), e)));
  select.value = keep;
  drawAudit();
});
