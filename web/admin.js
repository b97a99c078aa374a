// The admin console: grants, live sessions (kept current by the event stream), the
// police's consents, what waits for approval, emergency access, privacy masks, the
// governance report and the audit log. Which tabs show depends on the caller's roles
// (/api/me): administrators, police liaisons, auditors, accounts allowed emergency access.
// Every call carries the token as a Bearer header; the gateway decides (403 for a
// role the account does not have).
//
// This module starts the console: tabs, language, sign-in and the event stream. Each
// tab is a module of its own under web/admin/ (no build step).

import { gatewayEvents } from "/web/cctv-player.js";
import { embedded, getToken, hasToken } from "/web/signin.js";
import { loadAudit } from "./admin/audit.js";
import { loadAuthorizations } from "./admin/authorizations.js";
import { loadCameras } from "./admin/cameras.js";
import { alarm, emergencyForm, loadEmergencies } from "./admin/emergency.js";
import { loadGrants } from "./admin/grants.js";
import { heardLifts, heardMasks, openMasks } from "./admin/masks.js";
import { $, api, show } from "./admin/page.js";
import "./admin/report.js";
import { has, me, showByRole } from "./admin/roles.js";
import { drawSessions, loadSessions, sessions } from "./admin/sessions.js";
import { lang, t, translate } from "./admin/text.js";
import { loadWaiting } from "./admin/waiting.js";

// --- tabs, language ------------------------------------------------------------------
function selectTab(name) {
  for (const tab of document.querySelectorAll("[data-tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  }
  for (const panel of document.querySelectorAll("[role=tabpanel]")) panel.hidden = panel.id !== name;
  if (name === "audit") loadAudit();
  if (name === "authorizations") loadAuthorizations();
  if (name === "emergency") loadEmergencies();
  if (name === "masks") openMasks();
}
for (const tab of document.querySelectorAll("[data-tab]")) {
  tab.addEventListener("click", () => selectTab(tab.dataset.tab));
}
$("#lang").addEventListener("click", () => {
  document.documentElement.lang = lang() === "en" ? "zh-Hant" : "en";
  translate();
});

// --- start ------------------------------------------------------------------------------
translate();
if (!hasToken() && !embedded) {
  show(t("noToken"));
  document.body.classList.add("locked");
}
getToken().then(async () => {
  const who = await api("/api/me");
  if (!who.ok) {
    show(t(who.code === "invalid_token" ? "badToken" : "failed"));
    document.body.classList.add("locked");
    return;
  }
  Object.assign(me, who.data);
  $("#who").textContent = me.account;
  if (!has("admin", "police_liaison", "auditor", "emergency")) {
    show(t("notAdmin"));
    document.body.classList.add("locked");
    return;
  }
  showByRole();
  emergencyForm.hidden = !has("emergency");
  // The first tab this account may see.
  const first = [...document.querySelectorAll("[data-tab]")].find((tab) => !tab.hidden);
  selectTab(first.dataset.tab);
  await loadCameras();
  await loadAuthorizations();
  if (has("admin")) await loadGrants();
  await Promise.all([loadWaiting(), loadEmergencies()]);
  drawSessions();
  // Live: who starts and stops watching, every grant change, what waits for approval,
  // the police's consents and emergency access, as they happen.
  const events = gatewayEvents("/", getToken);
  events.addEventListener("hello", (event) => {
    sessions.clear();
    for (const s of event.detail.sessions) sessions.set(s.id, s);
    drawSessions();
  });
  events.addEventListener("session_started", (event) => {
    sessions.set(event.detail.session.id, event.detail.session);
    drawSessions();
  });
  events.addEventListener("session_ended", (event) => {
    sessions.delete(event.detail.session_id);
    drawSessions();
  });
  for (const type of ["grant_created", "grant_updated", "grant_revoked", "approval_requested"]) {
    events.addEventListener(type, () => {
      if (has("admin")) loadGrants();
      loadWaiting();
    });
  }
  for (const type of ["authorization_recorded", "authorization_confirmed", "authorization_withdrawn"]) {
    events.addEventListener(type, loadAuthorizations);
  }
  events.addEventListener("emergency_started", (event) => {
    if (has("admin", "police_liaison")) alarm(event.detail.emergency);
    loadEmergencies();
  });
  for (const type of ["emergency_ended", "emergency_reviewed"]) {
    events.addEventListener(type, loadEmergencies);
  }
  // Privacy masks: a lift asked, decided or over; masks another administrator changed.
  for (const type of ["mask_lift_requested", "mask_lift_declined", "masks_lifted", "masks_restored"]) {
    events.addEventListener(type, heardLifts);
  }
  events.addEventListener("masks_changed", (event) => heardMasks(event.detail.camera));
  if (!has("admin")) return;
  $("#refresh-sessions").addEventListener("click", loadSessions);
  // The bytes column, while someone looks at it: each read is an audit row.
  setInterval(() => {
    if (!document.hidden && !$("#sessions").hidden) loadSessions();
  }, 10_000);
  loadSessions();
});
