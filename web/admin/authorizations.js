// The police's consents: the table, the form, confirm and withdraw.

import { cameraSummary, onCameras } from "./cameras.js";
import { askReason, clearErrors, showFieldError, toIso, toLocal } from "./forms.js";
import { editingAuthorization } from "./grants.js";
import { $, api, button, cell, show } from "./page.js";
import { CameraPicker } from "./picker.js";
import { has } from "./roles.js";
import { onLanguage, t, when } from "./text.js";
import { nameNodes } from "./names.js";

let authorizations = [];
const authorizationForm = $("#authorization-form");
const picker = new CameraPicker($("#z-cameras"));
onCameras((features) => (picker.cameras = features));

export function scopeText(a) {
  // By district when many: a consent for every camera is one short line, not 15,000 names.
  return [cameraSummary(a.cameras), ...a.districts].filter(Boolean).join(", ");
}

export function drawAuthorizations() {
  const statuses = t("authStatuses");
  $("#authorization-table tbody").replaceChildren(
    ...authorizations.map((a) => {
      const tr = document.createElement("tr");
      tr.dataset.authorization = a.id;
      tr.dataset.status = a.status;
      const reference = cell(a.reference);
      const purpose = document.createElement("small");
      purpose.textContent = a.purpose_class ? t(a.purpose_class === "legal_duty" ? "legalDuty" : "imminentDanger") : "—";
      reference.append(document.createElement("br"), purpose);
      const status = cell("");
      const badge = document.createElement("span");
      badge.className = `status ${a.status}`;
      badge.textContent = statuses[a.status] || a.status;
      status.append(badge);
      if (a.withdraw_reason) status.append(` ${a.withdraw_reason}`);
      const by = cell("");
      if (a.confirmed_by) by.append(...nameNodes(a.confirmed_by), ` ${when(a.confirmed_at, "short")}`);
      else {
        by.append(...nameNodes(a.entered_by));
        if (a.on_behalf_of) by.append(" → ", ...nameNodes(a.on_behalf_of));
        by.append(` (${t("unconfirmedNote")})`);
      }
      const under = cell("");
      for (const [i, g] of a.grants.entries()) {
        if (i) under.append("; ");
        under.append(...nameNodes(g.project), ` (${t("statuses")[g.status] || g.status})`);
      }
      const actions = cell("", "actions");
      if (has("police_liaison") && a.status === "unconfirmed") {
        actions.append(button(t("confirm"), () => confirmAuthorization(a), "primary confirm-authorization"));
      }
      if (has("police_liaison") && a.status !== "withdrawn") {
        actions.append(button(t("withdraw"), () => withdrawAuthorization(a), "danger withdraw-authorization"));
      }
      tr.append(
        reference,
        status,
        cell(scopeText(a)),
        cell(`${when(a.starts_at, "short")} – ${when(a.ends_at, "short")}`),
        by,
        under,
        actions,
      );
      return tr;
    }),
  );
}

export async function loadAuthorizations() {
  if (!has("admin", "police_liaison", "auditor")) return;
  const { ok, data } = await api("/api/authorizations");
  if (!ok) return;
  authorizations = data.authorizations;
  drawAuthorizations();
  fillAuthorizationChoices(editingAuthorization());
}

// The grant form's authorization: those a grant may still go under.
export function fillAuthorizationChoices(selected) {
  const select = $("#f-authorization_id");
  const usable = authorizations.filter((a) => ["confirmed", "unconfirmed"].includes(a.status) || a.id === selected);
  const statuses = t("authStatuses");
  select.replaceChildren(
    ...(usable.length ? [] : [new Option(t("noAuthorization"), "")]),
    ...usable.map((a) => new Option(`${a.reference} — ${statuses[a.status]} — ${scopeText(a)}`, a.id)),
  );
  if (selected) select.value = String(selected);
}

function openAuthorizationForm() {
  clearErrors(authorizationForm);
  authorizationForm.reset();
  picker.reset();
  authorizationForm.hidden = false;
  $("#on-behalf-note").hidden = has("police_liaison");
  const now = new Date();
  authorizationForm.elements.starts_at.value = toLocal(now.toISOString());
  authorizationForm.elements.ends_at.value = toLocal(new Date(now.getTime() + 7 * 86400000).toISOString());
  authorizationForm.elements.reference.focus();
}

authorizationForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(authorizationForm);
  const f = authorizationForm.elements;
  const body = {
    reference: f.reference.value,
    purpose_class: f.purpose_class.value,
    cameras: picker.value,
    districts: f.districts.value.split(/[\n,]/).map((d) => d.trim()).filter(Boolean),
    starts_at: toIso(f.starts_at.value),
    ends_at: toIso(f.ends_at.value),
    note: f.note.value,
  };
  if (!has("police_liaison") && f.on_behalf_of.value.trim()) body.on_behalf_of = f.on_behalf_of.value.trim();
  const { ok, code, data } = await api("/api/authorizations", { method: "POST", body });
  if (code === "invalid_field") return showFieldError(authorizationForm, data);
  if (!ok) return showFieldError(authorizationForm, { error: data.error, field: "authorization" });
  authorizationForm.hidden = true;
  loadAuthorizations();
});
$("#new-authorization").addEventListener("click", openAuthorizationForm);
$("#cancel-authorization").addEventListener("click", () => (authorizationForm.hidden = true));

async function confirmAuthorization(a) {
  const body = a.purpose_class ? {} : { purpose_class: "legal_duty" };
  const { ok, data } = await api(`/api/authorizations/${a.id}/confirm`, { method: "POST", body });
  if (!ok) show(t("failed") + data.error);
  loadAuthorizations();
}

async function withdrawAuthorization(a) {
  const reason = await askReason(t("withdrawTitle")(a), t("confirmWithdraw"));
  if (!reason) return;
  const { ok, data } = await api(`/api/authorizations/${a.id}/withdraw`, { method: "POST", body: { reason } });
  if (!ok) show(t("failed") + data.error);
  loadAuthorizations();
}

onLanguage(() => {
  drawAuthorizations();
  fillAuthorizationChoices(Number($("#f-authorization_id").value) || null);
});
