// The audit tab: filters, rows and the CSV export.

import { authorized } from "/web/signin.js";
import { clearErrors, showFieldError, toIso } from "./forms.js";
import { $, api, cell } from "./page.js";
import { TEXT, onLanguage, t, when } from "./text.js";

const filters = $("#audit-filters");
export const EVENTS = Object.keys(TEXT["zh-Hant"].events);

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

function summary(detail) {
  if (!detail || typeof detail !== "object") return detail ?? "";
  return Object.entries(detail)
    .map(([key, value]) => `${key}: ${typeof value === "object" ? JSON.stringify(value) : value}`)
    .join("; ");
}

export async function loadAudit() {
  clearErrors(filters);
  const { ok, data } = await api(`/api/audit?${auditQuery({ limit: 500 })}`);
  if (!ok) return showFieldError(filters, { error: data.error, field: "audit" });
  const names = t("events");
  $("#audit-table tbody").replaceChildren(
    ...data.rows.map((row) => {
      const tr = document.createElement("tr");
      tr.dataset.event = row.event;
      tr.append(
        cell(when(row.at)),
        cell(names[row.event] || row.event),
        cell(row.account),
        cell(row.camera_id),
        cell(row.project),
        cell(row.remote),
        cell(summary(row.detail), "detail"),
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
  const names = t("events");
  select.replaceChildren(select.options[0], ...EVENTS.map((e) => new Option(names[e] || e, e)));
  select.value = keep;
});
