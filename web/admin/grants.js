// The grants tab: the table and the grant form.

import { fillAuthorizationChoices } from "./authorizations.js";
import { NAMED_UP_TO, cameraName, cameraSummary, onCameras } from "./cameras.js";
import { askReason, clearErrors, showFieldError, showFieldErrors, toIso, toLocal } from "./forms.js";
import { memberList, membersProblem } from "./members.js";
import { $, api, button, cell, show } from "./page.js";
import { CameraPicker } from "./picker.js";
import { onLanguage, t, when } from "./text.js";
import { loadWaiting } from "./waiting.js";
import { nameCell, namesNodes } from "./names.js";

let grants = [];
let editing = null; // the grant being edited, or null for a new one
const form = $("#grant-form");
const picker = new CameraPicker($("#f-cameras"), { withMap: true });
onCameras((features) => (picker.cameras = features));

// The police authorization of the grant being edited (the form's choice keeps it).
export const editingAuthorization = () => editing?.authorization_id;

export function drawGrants() {
  const statuses = t("statuses");
  $("#grant-table tbody").replaceChildren(
    ...grants.map((g) => {
      const tr = document.createElement("tr");
      tr.dataset.grant = g.id;
      const project = nameCell(g.project);
      const ref = document.createElement("small");
      ref.textContent = g.authorization_ref;
      project.append(document.createElement("br"), ref);
      const earlier = (g.previous_authorizations || []).map((p) => p.authorization_ref);
      if (earlier.length) {
        const history = document.createElement("small");
        history.className = "earlier-refs";
        history.textContent = t("earlierRefs") + earlier.join(", ");
        project.append(document.createElement("br"), history);
      }
      const status = cell("");
      const badge = document.createElement("span");
      badge.className = `status ${g.status}`;
      badge.textContent = statuses[g.status] || g.status;
      status.append(badge);
      if (g.revoke_reason) status.append(` ${g.revoke_reason}`);
      const actions = cell("", "actions");
      if (g.status !== "revoked") {
        actions.append(
          button(t("edit"), () => editGrant(g), "edit-grant"),
          button(t("revoke"), () => revokeGrant(g), "danger revoke-grant"),
        );
      }
      tr.append(
        project,
        membersCell(g.members),
        camerasCell(g),
        cell(`${when(g.starts_at, "short")} – ${when(g.ends_at, "short")}`),
        status,
        actions,
      );
      return tr;
    }),
  );
}


// Up to a few members by name; more as the first few and how many in all, the whole
// list a click away (the short line is the summary of a <details>): a grant's row
// stays one row high whatever its size.
const MEMBERS_SHOWN = 3;

function membersCell(members) {
  if (members.length <= MEMBERS_SHOWN + 1) return nameCell(members, "members");
  const td = cell("", "members");
  const short = [...namesNodes(members.slice(0, MEMBERS_SHOWN)), ` ${t("moreMembers")(members.length)}`];
  td.append(everything(short, namesNodes(members)));
  return td;
}

function camerasCell(g) {
  const summary = cameraSummary(g.cameras, g.cameras_gone || []);
  if (g.cameras.length <= NAMED_UP_TO) return cell(summary, "cameras");
  const td = cell("", "cameras");
  td.append(everything([summary], [g.cameras.map((id) => `${cameraName(id)} (${id})`).join(", ")]));
  return td;
}

// `short` and `all`: nodes (or text) for the summary line and the whole list.
function everything(short, all) {
  const details = document.createElement("details");
  details.className = "all-names";
  const summary = document.createElement("summary");
  summary.append(...short);
  const names = document.createElement("div");
  names.className = "names";
  names.append(...all);
  details.append(summary, names);
  return details;
}

export async function loadGrants() {
  const include = $("#include-ended").checked;
  const { ok, code, data } = await api(`/api/grants?include_ended=${include}`);
  if (!ok) return { ok, code };
  grants = data.grants;
  drawGrants();
  return { ok, code };
}

function openForm(grant) {
  editing = grant;
  clearErrors(form);
  form.reset();
  form.hidden = false;
  $("#grant-form-title").textContent = t(grant ? "editGrant" : "newGrant");
  // The project stays; a new authorization reference may be given (and must be, for
  // a window that starts earlier or ends later), and the old one is kept.
  form.elements.project.disabled = Boolean(grant);
  const now = new Date();
  const values = grant || {
    starts_at: now.toISOString(),
    ends_at: new Date(now.getTime() + 8 * 3600 * 1000).toISOString(),
    members: [],
    cameras: [],
  };
  form.elements.project.value = values.project || "";
  fillAuthorizationChoices(values.authorization_id);
  form.elements.purpose.value = values.purpose || "";
  form.elements.members.value = values.members.join("\n");
  picker.reset(values.cameras);
  form.elements.starts_at.value = toLocal(values.starts_at);
  form.elements.ends_at.value = toLocal(values.ends_at);
  form.elements[grant ? "purpose" : "project"].focus();
}

function editGrant(grant) {
  openForm(grant);
  form.scrollIntoView({ block: "nearest" });
}

// What the form can tell is wrong without asking the gateway, in the gateway's words
// (the window's length limit and the authorization's scope are the gateway's to say).
function formProblems(body, f) {
  const problems = {};
  if (!editing && !f.project.value.trim()) problems.project = "is required";
  if (!editing && !body.authorization_id) problems.authorization_id = "name the police authorization";
  if (!body.purpose.trim()) problems.purpose = "is required";
  const members = membersProblem(body.members);
  if (members) problems.members = members;
  if (!body.cameras.length) problems.cameras = "at least one camera id is required";
  else if (body.cameras.length > CAMERAS_MAX) problems.cameras = `at most ${CAMERAS_MAX} camera ids`;
  if (!f.starts_at.value) problems.starts_at = "is required";
  if (!f.ends_at.value) problems.ends_at = "is required";
  else if (f.starts_at.value && new Date(f.ends_at.value) <= new Date(f.starts_at.value)) {
    problems.ends_at = "must be after starts_at";
  }
  return problems;
}
const CAMERAS_MAX = 1000; // gateway/access/grants.py

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  const f = form.elements;
  const body = {
    purpose: f.purpose.value,
    members: memberList(f.members.value),
    cameras: picker.value,
    starts_at: toIso(f.starts_at.value),
    ends_at: toIso(f.ends_at.value),
  };
  const authorizationId = Number(f.authorization_id.value) || null;
  if (!editing) Object.assign(body, { project: f.project.value, authorization_id: authorizationId });
  else {
    // Only what was changed: the inputs hold whole minutes, so an untouched start
    // sent back would move a few seconds earlier, a window that grows.
    for (const name of ["starts_at", "ends_at"]) {
      if (f[name].value === toLocal(editing[name])) delete body[name];
    }
    if (authorizationId && authorizationId !== editing.authorization_id) body.authorization_id = authorizationId;
  }
  // Every field the form can check, at once, before anything is sent.
  const problems = formProblems(body, f);
  if (Object.keys(problems).length) return showFieldErrors(form, problems);
  const { ok, code, data } = editing
    ? await api(`/api/grants/${editing.id}`, { method: "PATCH", body })
    : await api("/api/grants", { method: "POST", body });
  if (code === "invalid_field" || data.field) return showFieldError(form, data);
  if (!ok) return showFieldError(form, { error: data.error, field: "grant" });
  form.hidden = true;
  editing = null;
  loadGrants();
  loadWaiting();
});
$("#cancel-grant").addEventListener("click", () => {
  form.hidden = true;
  editing = null;
});
$("#new-grant").addEventListener("click", () => openForm(null));
$("#include-ended").addEventListener("change", loadGrants);

async function revokeGrant(grant) {
  const reason = await askReason(t("revokeGrantTitle")(grant));
  if (!reason) return;
  const { ok, data } = await api(`/api/grants/${grant.id}/revoke`, {
    method: "POST",
    body: { reason },
  });
  if (!ok) show(t("failed") + data.error);
  loadGrants();
}

onLanguage(drawGrants);
