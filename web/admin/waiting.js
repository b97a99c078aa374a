// What waits for someone: approvals (a grant's change as a diff; a lift of a camera's
// privacy masks, decided with the masks tab's own buttons) and unreviewed emergencies.

import { cameraName, cameraSummary } from "./cameras.js";
import { askReason } from "./forms.js";
import { loadGrants } from "./grants.js";
import { emergencies, reviewEmergency } from "./emergency.js";
import { liftActions } from "./masks.js";
import { $, api, button, show } from "./page.js";
import { has, mayApprove, me } from "./roles.js";
import { onLanguage, t, when } from "./text.js";
import { nameNodes, namesNodes } from "./names.js";

let waiting = [];
let waitingLifts = []; // mask lifts asked for, oldest first (/api/approvals mask_lifts)

function diffLines(grant) {
  const approval = grant.approval;
  if (approval.kind === "new") {
    return [
      [`${t("memberList")}: `, ...namesNodes(grant.members)],
      `${t("cameras")}: ${cameraSummary(grant.cameras)}`,
      `${t("window")}: ${when(grant.starts_at, "short")} – ${when(grant.ends_at, "short")}`,
      `${t("authorization")}: ${grant.authorization_ref}`,
    ];
  }
  return Object.entries(approval.diff || {}).map(([field, change]) => {
    if ("added" in change) {
      // Members as names (marked when a word mixes look-alike scripts), cameras by name.
      const names = (list) => (field === "cameras" ? [list.map(cameraName).join(", ")] : namesNodes(list));
      const line = [`${field}: `];
      if (change.added.length) line.push(`+ ${t("added")} `, ...names(change.added));
      if (change.added.length && change.removed.length) line.push("; ");
      if (change.removed.length) line.push(`− ${t("removed")} `, ...names(change.removed));
      return line;
    }
    const show = (v) => (/_at$/.test(field) ? when(v, "short") : v ?? "—");
    return `${field}: ${show(change.from)} → ${show(change.to)}`;
  });
}

export function drawWaiting() {
  const box = $("#waiting");
  const unreviewed = emergencies.filter((e) => e.justified === null);
  const asked = waiting.length + waitingLifts.length;
  $("#approvals-box").hidden = !asked;
  $("#unreviewed-box").hidden = !unreviewed.length;
  box.hidden = !has("admin", "police_liaison", "auditor") || !(asked || unreviewed.length);
  $("#approvals").replaceChildren(
    ...waiting.map((g) => {
      const li = document.createElement("li");
      li.dataset.grant = g.id;
      const title = document.createElement("strong");
      title.append(...nameNodes(g.project), ` — ${t(g.approval.kind === "new" ? "newRequest" : "changeRequest")}`);
      const who = document.createElement("small");
      who.append(` ${t("askedBy")}: `, ...namesNodes(g.approval.asked_by), ` ${when(g.approval.asked_at, "short")}`);
      const diff = document.createElement("ul");
      diff.className = "diff";
      diff.append(
        ...diffLines(g).map((line) => {
          const item = document.createElement("li");
          item.append(...(Array.isArray(line) ? line : [line]));
          return item;
        }),
      );
      li.append(title, who, diff);
      if (mayApprove()) {
        const buttons = document.createElement("div");
        buttons.className = "buttons";
        buttons.append(
          button(t("approve"), () => approve(g), "primary approve-grant"),
          button(t("decline"), () => decline(g), "decline-grant"),
        );
        li.append(buttons);
      }
      return li;
    }),
    ...waitingLifts.map(liftItem),
  );
  $("#unreviewed").replaceChildren(
    ...unreviewed.map((e) => {
      const li = document.createElement("li");
      li.dataset.emergency = e.id;
      li.textContent = `#${e.id} ${e.account} — ${cameraName(e.camera_id)} — ${when(e.starts_at, "short")} — ${e.danger} `;
      if (has("admin", "police_liaison") && e.account !== me.account) {
        li.append(button(t("review"), () => reviewEmergency(e), "review-emergency"));
      }
      return li;
    }),
  );
}

// A lift waits: which camera, for which grant, why, by whom; Approve never for its asker.
function liftItem(lift) {
  const li = document.createElement("li");
  li.dataset.lift = lift.id;
  const title = document.createElement("strong");
  title.textContent = `${cameraName(lift.camera_id)} — ${t("liftRequest")}`;
  const who = document.createElement("small");
  who.append(` ${t("askedBy")}: `, ...namesNodes([lift.asked_by]), ` ${when(lift.asked_at, "short")}`);
  const lines = document.createElement("ul");
  lines.className = "diff";
  for (const line of [
    [t("liftFor")(lift.project, lift.grant_id)],
    [`${t("why")}: ${lift.reason}`],
    [`${t("window")}: ${t("liftMinutes")(lift.minutes)}`],
  ]) {
    const item = document.createElement("li");
    item.append(...line);
    lines.append(item);
  }
  li.append(title, who, lines);
  const actions = liftActions(lift);
  if (actions.length) {
    const buttons = document.createElement("div");
    buttons.className = "buttons";
    buttons.append(...actions);
    li.append(buttons);
  }
  return li;
}

export async function loadWaiting() {
  if (!has("admin", "police_liaison", "auditor")) return;
  const { ok, data } = await api("/api/approvals");
  if (ok) {
    waiting = data.grants;
    waitingLifts = data.mask_lifts || [];
  }
  drawWaiting();
}

async function approve(grant) {
  const { ok, data } = await api(`/api/grants/${grant.id}/approve`, { method: "POST", body: {} });
  if (!ok) show(t("failed") + data.error);
  loadWaiting();
  if (has("admin")) loadGrants();
}

async function decline(grant) {
  const reason = await askReason(t("declineTitle")(grant), t("confirmDecline"));
  if (!reason) return;
  const { ok, data } = await api(`/api/grants/${grant.id}/decline`, { method: "POST", body: { reason } });
  if (!ok) show(t("failed") + data.error);
  loadWaiting();
  if (has("admin")) loadGrants();
}

onLanguage(drawWaiting);
