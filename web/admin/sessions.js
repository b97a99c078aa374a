// The live sessions tab: who watches what now, kept current by the event stream.

import { cameraName } from "./cameras.js";
import { askReason } from "./forms.js";
import { $, api, bytes, button, cell, show } from "./page.js";
import { onLanguage, t, when } from "./text.js";
import { nameCell } from "./names.js";

export const sessions = new Map();

export function drawSessions() {
  const rows = [...sessions.values()].sort((a, b) => b.started_at.localeCompare(a.started_at));
  $("#session-table tbody").replaceChildren(
    ...rows.map((s) => {
      const tr = document.createElement("tr");
      tr.dataset.session = s.id;
      tr.dataset.account = s.account;
      const actions = cell("", "actions");
      actions.append(
        button(t("revoke"), () => revokeSession(s), "danger revoke-session"),
        button(t("revokeAccount"), () => revokeAccount(s.account), "revoke-account"),
      );
      const camera = cell(cameraName(s.camera_id));
      if (camera.textContent !== s.camera_id) {
        const id = document.createElement("small");
        id.textContent = s.camera_id;
        camera.append(document.createElement("br"), id);
      }
      tr.append(
        nameCell(s.account),
        camera,
        nameCell(s.project),
        cell(when(s.started_at)),
        cell(s.remote),
        // Another node's session comes from the cluster's directory, without a count.
        cell(s.bytes_sent == null ? "—" : bytes(s.bytes_sent), "num"),
        cell(s.node || "", "node-col"),
        actions,
      );
      return tr;
    }),
  );
  // The node column, only with several gateways (sessions carry their node then).
  $("#session-table").classList.toggle("clustered", rows.some((s) => s.node));
  $("#session-count").textContent = t("count")(rows.length);
  $("#no-sessions").hidden = rows.length > 0;
}

export async function loadSessions() {
  const { ok, data } = await api("/api/sessions");
  if (!ok) return;
  sessions.clear();
  for (const s of data.sessions) sessions.set(s.id, s);
  drawSessions();
}

async function revokeSession(session) {
  const reason = await askReason(t("revokeSessionTitle")(session));
  if (!reason) return;
  const { ok, data } = await api(`/api/sessions/${encodeURIComponent(session.id)}/revoke`, {
    method: "POST",
    body: { reason },
  });
  if (!ok) show(t("failed") + data.error);
}

async function revokeAccount(account) {
  const reason = await askReason(t("revokeAccountTitle")(account));
  if (!reason) return;
  const { ok, data } = await api(`/api/accounts/${encodeURIComponent(account)}/revoke`, {
    method: "POST",
    body: { reason },
  });
  if (!ok) show(t("failed") + data.error);
}

onLanguage(drawSessions);
