// The admin console: grants, live sessions (kept current by the event stream)
// and the audit log. Every call carries the admin's token as a Bearer header;
// the gateway decides (403 for accounts without the admin claim).

import { gatewayEvents } from "/web/cctv-player.js";
import { authorized, embedded, getToken, hasToken } from "/web/signin.js";

const TEXT = {
  "zh-Hant": {
    title: "CCTV 管理主控台",
    tabSessions: "即時連線",
    tabGrants: "授權",
    tabAudit: "稽核紀錄",
    liveSessions: "即時連線",
    refresh: "重新整理",
    account: "帳號",
    camera: "攝影機",
    project: "專案",
    started: "開始",
    remote: "來源位址",
    sent: "傳送量",
    node: "節點",
    actions: "操作",
    noSessions: "目前沒有人在觀看",
    grantsTitle: "授權",
    includeEnded: "顯示已結束",
    newGrant: "新增授權",
    editGrant: "修改授權",
    authorizationRef: "警察局同意文號",
    purpose: "用途",
    members: "成員帳號（每行一個）",
    memberList: "成員",
    cameras: "攝影機",
    gone: "（已自清單移除）",
    startsAt: "開始時間",
    endsAt: "結束時間",
    save: "儲存",
    cancel: "取消",
    window: "期間",
    status: "狀態",
    any: "全部",
    event: "事件",
    since: "起",
    until: "迄",
    search: "查詢",
    exportCsv: "匯出 CSV",
    time: "時間",
    detail: "內容",
    reason: "撤銷原因",
    confirmRevoke: "確認撤銷",
    revoke: "撤銷",
    revokeAccount: "撤銷此帳號全部連線",
    edit: "修改",
    revokeSessionTitle: (s) => `撤銷 ${s.account} 觀看「${s.camera_id}」的連線`,
    revokeAccountTitle: (account) => `撤銷帳號 ${account} 的全部連線`,
    revokeGrantTitle: (g) => `撤銷授權「${g.project}」`,
    count: (n) => `${n} 個連線`,
    rows: (n) => `${n} 筆`,
    notAdmin: "此帳號沒有管理權限。管理主控台只開放給具管理者身分的帳號。",
    noToken: "請由市府儀表板開啟此頁（缺少登入憑證）。",
    badToken: "登入憑證無效或已過期，請重新由市府儀表板開啟。",
    saved: "已儲存",
    failed: "操作失敗：",
    earlierRefs: "先前文號：",
    statuses: { active: "生效中", pending: "尚未開始", ended: "已結束", revoked: "已撤銷" },
    events: {
      session_start: "開始觀看",
      session_end: "結束觀看",
      access_denied: "拒絕存取",
      session_revoked: "撤銷連線",
      grant_created: "新增授權",
      grant_updated: "修改授權",
      grant_revoked: "撤銷授權",
      token_rejected: "憑證無效",
      audit_pruned: "清除舊紀錄",
      admin_read: "管理者查閱",
    },
    other: "English",
  },
  en: {
    title: "CCTV admin console",
    tabSessions: "Live sessions",
    tabGrants: "Grants",
    tabAudit: "Audit log",
    liveSessions: "Live sessions",
    refresh: "Refresh",
    account: "Account",
    camera: "Camera",
    project: "Project",
    started: "Started",
    remote: "Remote address",
    sent: "Sent",
    node: "Node",
    actions: "Actions",
    noSessions: "Nobody is watching",
    grantsTitle: "Grants",
    includeEnded: "Show ended",
    newGrant: "New grant",
    editGrant: "Edit grant",
    authorizationRef: "Police authorization ref.",
    purpose: "Purpose",
    members: "Member accounts (one per line)",
    memberList: "Members",
    cameras: "Cameras",
    gone: " (removed from the inventory)",
    startsAt: "Starts",
    endsAt: "Ends",
    save: "Save",
    cancel: "Cancel",
    window: "Window",
    status: "Status",
    any: "Any",
    event: "Event",
    since: "Since",
    until: "Until",
    search: "Search",
    exportCsv: "Export CSV",
    time: "Time",
    detail: "Detail",
    reason: "Reason",
    confirmRevoke: "Revoke",
    revoke: "Revoke",
    revokeAccount: "Revoke all of this account",
    edit: "Edit",
    revokeSessionTitle: (s) => `Revoke ${s.account}'s session on "${s.camera_id}"`,
    revokeAccountTitle: (account) => `Revoke every session of ${account}`,
    revokeGrantTitle: (g) => `Revoke the grant "${g.project}"`,
    count: (n) => `${n} session${n === 1 ? "" : "s"}`,
    rows: (n) => `${n} rows`,
    notAdmin: "This account is not an administrator. The console is for accounts with the admin claim.",
    noToken: "Open this page from the city dashboard (no sign-in token).",
    badToken: "The sign-in token is invalid or expired; open the console from the dashboard again.",
    saved: "Saved",
    failed: "Failed: ",
    earlierRefs: "Earlier: ",
    statuses: { active: "active", pending: "not yet started", ended: "ended", revoked: "revoked" },
    events: {},
    other: "中文",
  },
};
// The gateway's validation words, for the Traditional Chinese form. Display only:
// which field is wrong comes from the 422's `field`, never from these words, and
// words not listed here show as the gateway sent them.
const FIELD_ZH = [
  [/^is required$/, "必填"],
  [/^must be after starts_at$/, "必須晚於開始時間"],
  [/^a grant may run at most (.+) days$/, "授權期間最長 $1 天"],
  [/^at least one .+ is required$/, "至少需要一項"],
  [/^unknown camera id (.+)$/, "沒有這台攝影機：$1"],
  [/^is not an ISO 8601 date and time.*$/, "請輸入日期與時間"],
  [/^must be a date and time.*$/, "請輸入日期與時間"],
  [/^revoked grants cannot be changed$/, "已撤銷的授權不能修改"],
  [/^extending or moving the window needs a new authorization reference$/, "延長或移動期間須填新的同意文號"],
  [/^reviving an ended grant needs a new authorization reference$/, "重新啟用已結束的授權須填新的同意文號"],
  [/^this grant already ran under that reference; give the new one$/, "此文號已用過，請填新的同意文號"],
];

const $ = (selector) => document.querySelector(selector);
const lang = () => (document.documentElement.lang === "en" ? "en" : "zh-Hant");
const t = (key) => TEXT[lang()][key];
const when = (iso, timeStyle = "medium") =>
  iso ? new Date(iso).toLocaleString(lang(), { dateStyle: "short", timeStyle }) : "";
const banner = $("#banner");

function show(message) {
  banner.textContent = message;
  banner.hidden = !message;
}

async function api(path, { method = "GET", body } = {}) {
  const headers = await authorized(body ? { "Content-Type": "application/json" } : {});
  const response = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  // An error's `code` is what to act on; `data.error` is the words to show.
  return { status: response.status, ok: response.ok, code: data.code || "", data };
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (className) td.className = className;
  return td;
}

function button(label, onClick, className = "") {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.className = className;
  b.addEventListener("click", onClick);
  return b;
}

function bytes(n) {
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

// --- the reason dialog -----------------------------------------------------------
const dialog = $("#reason-dialog");
function askReason(title) {
  $("#reason-title").textContent = title;
  $("#reason-input").value = "";
  dialog.querySelector(".field-error").textContent = "";
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => resolve(dialog.returnValue === "confirm" ? $("#reason-input").value.trim() : null),
      { once: true },
    );
  });
}

// --- live sessions ----------------------------------------------------------------
const sessions = new Map();

function drawSessions() {
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
        cell(s.account),
        camera,
        cell(s.project),
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

async function loadSessions() {
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

// --- grants -------------------------------------------------------------------------
let grants = [];
let cameras = []; // GeoJSON features: administrators see every camera
let editing = null; // the grant being edited, or null for a new one
const form = $("#grant-form");

function drawGrants() {
  const statuses = t("statuses");
  $("#grant-table tbody").replaceChildren(
    ...grants.map((g) => {
      const tr = document.createElement("tr");
      tr.dataset.grant = g.id;
      const project = cell(g.project);
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
        cell(g.members.join(", ")),
        cell(g.cameras.map((id) => cameraName(id) + (g.cameras_gone?.includes(id) ? t("gone") : "")).join(", ")),
        cell(`${when(g.starts_at, "short")} – ${when(g.ends_at, "short")}`),
        status,
        actions,
      );
      return tr;
    }),
  );
}

function cameraName(id) {
  return cameras.find((c) => c.id === id)?.properties.name || id;
}

async function loadGrants() {
  const include = $("#include-ended").checked;
  const { ok, code, data } = await api(`/api/grants?include_ended=${include}`);
  if (!ok) return { ok, code };
  grants = data.grants;
  drawGrants();
  return { ok, code };
}

async function loadCameras() {
  const { ok, data } = await api("/api/cameras");
  if (!ok) return;
  cameras = data.features;
  $("#f-cameras .camera-checks").replaceChildren(
    ...cameras.map((c) => {
      const label = document.createElement("label");
      label.className = "check";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.name = "cameras";
      box.value = c.id;
      label.append(box, ` ${c.properties.name} (${c.id})`);
      return label;
    }),
  );
  const select = $("#a-camera_id");
  select.replaceChildren(
    select.options[0],
    ...cameras.map((c) => new Option(`${c.properties.name} (${c.id})`, c.id)),
  );
}

// datetime-local inputs hold local time; the API wants ISO 8601 with a timezone.
const toIso = (local) => (local ? new Date(local).toISOString() : "");
function toLocal(iso) {
  const d = new Date(iso);
  return new Date(d - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function clearErrors(root) {
  for (const p of root.querySelectorAll(".field-error")) p.textContent = "";
  for (const el of root.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

function fieldMessage(error, field) {
  const message = error.startsWith(`${field}: `) ? error.slice(field.length + 2) : error;
  if (lang() === "en") return message;
  for (const [pattern, zh] of FIELD_ZH) if (pattern.test(message)) return message.replace(pattern, zh);
  return message;
}

// A 422 {error, field}: the message goes next to that field.
function showFieldError(root, { error, field }) {
  const slot = root.querySelector(`.field-error[data-for="${field}"]`) || root.querySelector(".field-error[data-for=grant]");
  slot.textContent = fieldMessage(error || "", field || "");
  const input = root.querySelector(`[name="${field}"]`);
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
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
  form.elements.authorization_ref.value = values.authorization_ref || "";
  form.elements.purpose.value = values.purpose || "";
  form.elements.members.value = values.members.join("\n");
  for (const box of form.querySelectorAll("input[name=cameras]")) {
    box.checked = values.cameras.includes(box.value);
  }
  form.elements.starts_at.value = toLocal(values.starts_at);
  form.elements.ends_at.value = toLocal(values.ends_at);
  form.elements[grant ? "purpose" : "project"].focus();
}

function editGrant(grant) {
  openForm(grant);
  form.scrollIntoView({ block: "nearest" });
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  const f = form.elements;
  const body = {
    purpose: f.purpose.value,
    members: f.members.value.split(/[\n,]/).map((m) => m.trim()).filter(Boolean),
    cameras: [...form.querySelectorAll("input[name=cameras]:checked")].map((box) => box.value),
    starts_at: toIso(f.starts_at.value),
    ends_at: toIso(f.ends_at.value),
  };
  if (!editing) Object.assign(body, { project: f.project.value, authorization_ref: f.authorization_ref.value });
  else {
    // Only what was changed: the inputs hold whole minutes, so an untouched start
    // sent back would move a few seconds earlier, a window that grows.
    for (const name of ["starts_at", "ends_at"]) {
      if (f[name].value === toLocal(editing[name])) delete body[name];
    }
    if (f.authorization_ref.value.trim() !== editing.authorization_ref) body.authorization_ref = f.authorization_ref.value;
  }
  const { ok, code, data } = editing
    ? await api(`/api/grants/${editing.id}`, { method: "PATCH", body })
    : await api("/api/grants", { method: "POST", body });
  if (code === "invalid_field") return showFieldError(form, data);
  if (!ok) return showFieldError(form, { error: data.error, field: "grant" });
  form.hidden = true;
  editing = null;
  loadGrants();
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

// --- audit log ------------------------------------------------------------------------
const filters = $("#audit-filters");
const EVENTS = Object.keys(TEXT["zh-Hant"].events);

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

async function loadAudit() {
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

// --- tabs, language ------------------------------------------------------------------
function selectTab(name) {
  for (const tab of document.querySelectorAll("[data-tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  }
  for (const panel of document.querySelectorAll("[role=tabpanel]")) panel.hidden = panel.id !== name;
  if (name === "audit") loadAudit();
}
for (const tab of document.querySelectorAll("[data-tab]")) {
  tab.addEventListener("click", () => selectTab(tab.dataset.tab));
}

function translate() {
  document.title = t("title");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  const select = $("#a-event");
  const names = t("events");
  select.replaceChildren(select.options[0], ...EVENTS.map((e) => new Option(names[e] || e, e)));
  const toggle = $("#lang");
  toggle.textContent = t("other");
  toggle.lang = lang() === "en" ? "zh-Hant" : "en";
  drawSessions();
  drawGrants();
}
$("#lang").addEventListener("click", () => {
  const keep = $("#a-event").value;
  document.documentElement.lang = lang() === "en" ? "zh-Hant" : "en";
  translate();
  $("#a-event").value = keep;
});

// --- start ------------------------------------------------------------------------------
translate();
if (!hasToken() && !embedded) {
  show(t("noToken"));
  document.body.classList.add("locked");
}
getToken().then(async () => {
  const { ok, code } = await loadGrants();
  if (!ok) {
    const why = { invalid_token: "badToken", not_admin: "notAdmin" };
    show(t(why[code] || "failed"));
    document.body.classList.add("locked");
    return;
  }
  const me = await api("/api/me");
  if (me.ok) $("#who").textContent = me.data.account;
  await loadCameras();
  drawGrants();
  drawSessions();
  // Live: who starts and stops watching, and every grant change, as it happens.
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
  for (const type of ["grant_created", "grant_updated", "grant_revoked"]) {
    events.addEventListener(type, loadGrants);
  }
  $("#refresh-sessions").addEventListener("click", loadSessions);
  // The bytes column, while someone looks at it: each read is an audit row.
  setInterval(() => {
    if (!document.hidden && !$("#sessions").hidden) loadSessions();
  }, 10_000);
  loadSessions();
});
