// The admin console: grants, live sessions (kept current by the event stream), the
// police's consents, what waits for approval, emergency access, the governance
// report and the audit log. Which tabs show depends on the caller's roles (/api/me):
// administrators, police liaisons, auditors, accounts allowed emergency access.
// Every call carries the token as a Bearer header; the gateway decides (403 for a
// role the account does not have).

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
    tabAuthorizations: "警察局同意",
    tabEmergency: "緊急調閱",
    tabReport: "報告",
    dismiss: "知道了",
    waitingApproval: "待核准",
    unreviewedTitle: "待審查的緊急調閱",
    authorization: "警察局同意",
    authorizationsTitle: "警察局同意",
    newAuthorization: "登錄同意",
    onBehalfNote: "由管理者代為登錄者，須待警察局聯絡人確認。",
    reference: "同意文號",
    purposeClass: "目的（要點第五條）",
    legalDuty: "執行法定職務",
    imminentDanger: "防止急迫危險",
    districts: "行政區（每行一個）",
    validFrom: "效期開始",
    validUntil: "效期結束",
    onBehalfOf: "代哪位聯絡人登錄",
    note: "備註",
    scope: "範圍",
    validity: "效期",
    consentedBy: "同意者",
    grantedUnder: "依此同意的授權",
    confirm: "確認",
    withdraw: "撤回同意",
    withdrawTitle: (a) => `撤回警察局同意 ${a.reference}（其下所有授權立即終止）`,
    confirmWithdraw: "確認撤回",
    openEmergency: "緊急調閱（要點第五條：防止急迫危險）",
    minutes: "分鐘",
    danger: "急迫危險（請具體說明）",
    openCamera: "開啟攝影機",
    review: "審查",
    justified: "有正當理由",
    notJustified: "無正當理由",
    notReviewed: "尚未審查",
    reviewTitle: (e) => `審查緊急調閱 #${e.id}（${e.account}，${e.camera_id}）`,
    endEmergency: "結束緊急調閱",
    endTitle: (e) => `結束 ${e.account} 對「${e.camera_id}」的緊急調閱`,
    confirmEnd: "確認結束",
    emergencyAlarm: (e) => `緊急調閱：${e.account} 開啟「${e.camera_id}」— ${e.danger}`,
    from: "起（日期）",
    to: "迄（日期，含）",
    makeReport: "產生報告",
    print: "列印",
    downloadCsv: "下載 CSV",
    downloadJson: "下載 JSON",
    approve: "核准",
    decline: "駁回",
    declineTitle: (g) => `駁回「${g.project}」的申請`,
    confirmDecline: "確認駁回",
    askedBy: "申請者",
    newRequest: "新授權",
    changeRequest: "擴大變更",
    added: "增加",
    removed: "移除",
    unconfirmedNote: "待確認",
    noAuthorization: "（沒有可用的警察局同意，請先由聯絡人登錄）",
    noRole: "此帳號沒有使用主控台的權限。",
    authStatuses: { unconfirmed: "待警察局確認", confirmed: "已確認", withdrawn: "已撤回", expired: "已逾期" },
    emergencyStatuses: { active: "進行中", ended: "已結束" },
    statuses: { active: "生效中", pending: "待核准", scheduled: "尚未開始", ended: "已結束", revoked: "已撤銷" },
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
      grant_change_requested: "申請擴大授權",
      grant_approved: "核准授權",
      grant_declined: "駁回申請",
      authorization_recorded: "登錄警察局同意",
      authorization_confirmed: "確認警察局同意",
      authorization_withdrawn: "撤回警察局同意",
      authorization_adopted: "舊文號轉為同意紀錄",
      emergency_access: "緊急調閱",
      emergency_ended: "結束緊急調閱",
      emergency_reviewed: "審查緊急調閱",
      report_read: "產生報告",
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
    tabAuthorizations: "Police authorizations",
    tabEmergency: "Emergency access",
    tabReport: "Report",
    dismiss: "Dismiss",
    waitingApproval: "Waiting for approval",
    unreviewedTitle: "Emergency access not yet reviewed",
    authorization: "Police authorization",
    authorizationsTitle: "Police authorizations",
    newAuthorization: "Record a consent",
    onBehalfNote: "Entered by an administrator on a liaison's behalf: unconfirmed until a liaison confirms it.",
    reference: "Reference",
    purposeClass: "Purpose (point 5)",
    legalDuty: "legal duty",
    imminentDanger: "imminent danger",
    districts: "Districts (one per line)",
    validFrom: "Valid from",
    validUntil: "Valid until",
    onBehalfOf: "On behalf of (liaison)",
    note: "Note",
    scope: "Scope",
    validity: "Validity",
    consentedBy: "Consented by",
    grantedUnder: "Grants under it",
    confirm: "Confirm",
    withdraw: "Withdraw",
    withdrawTitle: (a) => `Withdraw authorization ${a.reference} (every grant under it ends now)`,
    confirmWithdraw: "Withdraw",
    openEmergency: "Emergency access (point 5: imminent danger)",
    minutes: "Minutes",
    danger: "The imminent danger, in words",
    openCamera: "Open the camera",
    review: "Review",
    justified: "justified",
    notJustified: "not justified",
    notReviewed: "not reviewed",
    reviewTitle: (e) => `Review emergency access #${e.id} (${e.account}, ${e.camera_id})`,
    endEmergency: "End",
    endTitle: (e) => `End ${e.account}'s emergency access to "${e.camera_id}"`,
    confirmEnd: "End it",
    emergencyAlarm: (e) => `Emergency access: ${e.account} opened "${e.camera_id}" — ${e.danger}`,
    from: "From (date)",
    to: "To (date, included)",
    makeReport: "Make the report",
    print: "Print",
    downloadCsv: "Download CSV",
    downloadJson: "Download JSON",
    approve: "Approve",
    decline: "Decline",
    declineTitle: (g) => `Decline the request on "${g.project}"`,
    confirmDecline: "Decline",
    askedBy: "Asked by",
    newRequest: "new grant",
    changeRequest: "widening change",
    added: "added",
    removed: "removed",
    unconfirmedNote: "unconfirmed",
    noAuthorization: "(no police authorization to choose: a liaison records one first)",
    noRole: "This account has no role in the console.",
    authStatuses: { unconfirmed: "unconfirmed", confirmed: "confirmed", withdrawn: "withdrawn", expired: "expired" },
    emergencyStatuses: { active: "active", ended: "ended" },
    statuses: { active: "active", pending: "waiting for approval", scheduled: "not yet started", ended: "ended", revoked: "revoked" },
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
  [/^outside authorization (.+)'s scope: (.+)$/, "超出警察局同意 $1 的範圍：$2"],
  [/^before authorization (.+) starts .*$/, "早於警察局同意 $1 的效期"],
  [/^after authorization (.+) ends .*$/, "晚於警察局同意 $1 的效期"],
  [/^authorization (.+) has expired$/, "警察局同意 $1 已逾期"],
  [/^authorization (.+) was withdrawn$/, "警察局同意 $1 已撤回"],
  [/^name the police authorization$/, "請選擇警察局同意"],
  [/^no such police authorization$/, "沒有這項警察局同意"],
  [/^name at least one camera or district$/, "至少需要一台攝影機或一個行政區"],
  [/^emergency access lasts at most (.+) minutes$/, "緊急調閱最長 $1 分鐘"],
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
function askReason(title, confirmLabel = t("confirmRevoke")) {
  $("#reason-title").textContent = title;
  $("#reason-confirm").textContent = confirmLabel;
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
  // The grant form's and the authorization form's camera choices.
  for (const list of document.querySelectorAll("#f-cameras .camera-checks, #z-cameras .camera-checks")) {
    list.replaceChildren(
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
  }
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
  fillAuthorizationChoices(values.authorization_id);
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
  const { ok, code, data } = editing
    ? await api(`/api/grants/${editing.id}`, { method: "PATCH", body })
    : await api("/api/grants", { method: "POST", body });
  if (code === "invalid_field") return showFieldError(form, data);
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

// --- roles ----------------------------------------------------------------------------
let me = { account: "", roles: [], approval: "second_admin" };
const has = (...roles) => roles.some((r) => me.roles.includes(r));
const mayApprove = () => has(me.approval === "police_liaison" ? "police_liaison" : "admin");

// Elements marked data-roles show only to accounts with one of those roles.
function showByRole() {
  for (const el of document.querySelectorAll("[data-roles]")) {
    const wanted = el.dataset.roles.split(" ");
    if (el.id === "emergency-form" || el.id === "waiting") continue; // shown by their owners
    el.hidden = !has(...wanted);
  }
}

// --- police authorizations -------------------------------------------------------------
let authorizations = [];
const authorizationForm = $("#authorization-form");

function scopeText(a) {
  return [...a.cameras.map(cameraName), ...a.districts].join(", ");
}

function drawAuthorizations() {
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
      const by = a.confirmed_by
        ? `${a.confirmed_by} ${when(a.confirmed_at, "short")}`
        : `${a.entered_by}${a.on_behalf_of ? ` → ${a.on_behalf_of}` : ""} (${t("unconfirmedNote")})`;
      const under = a.grants.map((g) => `${g.project} (${(t("statuses")[g.status] || g.status)})`).join("; ");
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
        cell(by),
        cell(under),
        actions,
      );
      return tr;
    }),
  );
}

async function loadAuthorizations() {
  if (!has("admin", "police_liaison", "auditor")) return;
  const { ok, data } = await api("/api/authorizations");
  if (!ok) return;
  authorizations = data.authorizations;
  drawAuthorizations();
  fillAuthorizationChoices(editing?.authorization_id);
}

// The grant form's authorization: those a grant may still go under.
function fillAuthorizationChoices(selected) {
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
    cameras: [...authorizationForm.querySelectorAll("input[name=cameras]:checked")].map((box) => box.value),
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

// --- what waits: approvals (with the change as a diff) and unreviewed emergencies ----------
let waiting = [];
let emergencies = [];

function diffLines(grant) {
  const approval = grant.approval;
  if (approval.kind === "new") {
    return [
      `${t("memberList")}: ${grant.members.join(", ")}`,
      `${t("cameras")}: ${grant.cameras.map(cameraName).join(", ")}`,
      `${t("window")}: ${when(grant.starts_at, "short")} – ${when(grant.ends_at, "short")}`,
      `${t("authorization")}: ${grant.authorization_ref}`,
    ];
  }
  return Object.entries(approval.diff || {}).map(([field, change]) => {
    if ("added" in change) {
      const name = field === "cameras" ? cameraName : (x) => x;
      const parts = [];
      if (change.added.length) parts.push(`+ ${t("added")} ${change.added.map(name).join(", ")}`);
      if (change.removed.length) parts.push(`− ${t("removed")} ${change.removed.map(name).join(", ")}`);
      return `${field}: ${parts.join("; ")}`;
    }
    const show = (v) => (/_at$/.test(field) ? when(v, "short") : v ?? "—");
    return `${field}: ${show(change.from)} → ${show(change.to)}`;
  });
}

function drawWaiting() {
  const box = $("#waiting");
  const unreviewed = emergencies.filter((e) => e.justified === null);
  $("#approvals-box").hidden = !waiting.length;
  $("#unreviewed-box").hidden = !unreviewed.length;
  box.hidden = !has("admin", "police_liaison", "auditor") || !(waiting.length || unreviewed.length);
  $("#approvals").replaceChildren(
    ...waiting.map((g) => {
      const li = document.createElement("li");
      li.dataset.grant = g.id;
      const title = document.createElement("strong");
      title.textContent = `${g.project} — ${t(g.approval.kind === "new" ? "newRequest" : "changeRequest")}`;
      const who = document.createElement("small");
      who.textContent = ` ${t("askedBy")}: ${g.approval.asked_by.join(", ")} ${when(g.approval.asked_at, "short")}`;
      const diff = document.createElement("ul");
      diff.className = "diff";
      diff.append(
        ...diffLines(g).map((line) => {
          const item = document.createElement("li");
          item.textContent = line;
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

async function loadWaiting() {
  if (!has("admin", "police_liaison", "auditor")) return;
  const { ok, data } = await api("/api/approvals");
  if (ok) waiting = data.grants;
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

// --- emergency access ---------------------------------------------------------------------
const reviewDialog = $("#review-dialog");

function reviewText(e) {
  if (e.justified === null) return t("notReviewed");
  return `${t(e.justified ? "justified" : "notJustified")} (${e.reviewed_by}): ${e.review_note}`;
}

function drawEmergencies() {
  const statuses = t("emergencyStatuses");
  $("#emergency-table tbody").replaceChildren(
    ...emergencies.map((e) => {
      const tr = document.createElement("tr");
      tr.dataset.emergency = e.id;
      tr.dataset.status = e.status;
      const actions = cell("", "actions");
      if (has("admin", "police_liaison") && e.status === "active") {
        actions.append(button(t("endEmergency"), () => endEmergency(e), "danger end-emergency"));
      }
      if (has("admin", "police_liaison") && e.justified === null && e.account !== me.account) {
        actions.append(button(t("review"), () => reviewEmergency(e), "review-emergency"));
      }
      tr.append(
        cell(e.account),
        cell(cameraName(e.camera_id)),
        cell(`${when(e.starts_at, "short")} – ${when(e.ended_at || e.ends_at, "short")}`),
        cell(e.danger),
        cell(statuses[e.status] || e.status),
        cell(reviewText(e)),
        actions,
      );
      return tr;
    }),
  );
}

async function loadEmergencies() {
  if (!has("admin", "police_liaison", "auditor", "emergency")) return;
  const { ok, data } = await api("/api/emergency");
  if (!ok) return;
  emergencies = data.emergencies;
  drawEmergencies();
  drawWaiting();
  if (data.cameras) {
    const select = $("#e-camera");
    if (!select.options.length) {
      select.replaceChildren(...data.cameras.map((c) => new Option(`${c.name} (${c.id})`, c.id)));
    }
    const minutes = $("#e-minutes");
    minutes.max = data.limits.minutes;
    if (!minutes.value) minutes.value = data.limits.minutes;
  }
}

function reviewEmergency(e) {
  $("#review-title").textContent = t("reviewTitle")(e);
  reviewDialog.querySelector("form").reset();
  reviewDialog.returnValue = "";
  reviewDialog.showModal();
  reviewDialog.addEventListener(
    "close",
    async () => {
      if (reviewDialog.returnValue !== "confirm") return;
      const choice = reviewDialog.querySelector("input[name=justified]:checked");
      const body = { justified: choice?.value === "yes", note: $("#review-note").value.trim() };
      const { ok, data } = await api(`/api/emergency/${e.id}/review`, { method: "POST", body });
      if (!ok) show(t("failed") + data.error);
      loadEmergencies();
    },
    { once: true },
  );
}

async function endEmergency(e) {
  const reason = await askReason(t("endTitle")(e), t("confirmEnd"));
  if (!reason) return;
  const { ok, data } = await api(`/api/emergency/${e.id}/end`, { method: "POST", body: { reason } });
  if (!ok) show(t("failed") + data.error);
  loadEmergencies();
}

// An account allowed emergency access opens a camera by stating the danger; the
// picture plays here, in the same <cctv-player> the viewer page uses (WHEP as usual).
const emergencyForm = $("#emergency-form");
emergencyForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(emergencyForm);
  const f = emergencyForm.elements;
  const camera = f.camera.value;
  const body = { danger: f.danger.value, minutes: Number(f.minutes.value) || undefined };
  const { ok, code, data } = await api(`/api/emergency/${encodeURIComponent(camera)}`, { method: "POST", body });
  if (data.field) return showFieldError(emergencyForm, data);
  if (!ok) return showFieldError(emergencyForm, { error: data.error || code, field: "emergency" });
  const player = document.createElement("cctv-player");
  player.setAttribute("camera", camera);
  player.setAttribute("label", cameraName(camera));
  player.setAttribute("ends-at", data.emergency.ends_at);
  player.setAttribute("lang", lang());
  player.tokenProvider = getToken;
  $("#emergency-players").replaceChildren(player);
  loadEmergencies();
});

// Every administrator's and liaison's console hears an emergency access at once: a
// banner that stays until dismissed, and a sound (WebAudio: no file to fetch).
function alarm(emergency) {
  $("#alarm-text").textContent = t("emergencyAlarm")(emergency);
  $("#alarm").hidden = false;
  try {
    const audio = new AudioContext();
    for (const [at, pitch] of [[0, 880], [0.35, 660], [0.7, 880]]) {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = pitch;
      gain.gain.value = 0.2;
      tone.connect(gain).connect(audio.destination);
      tone.start(audio.currentTime + at);
      tone.stop(audio.currentTime + at + 0.3);
    }
    document.body.dataset.alarmSounded = String(Number(document.body.dataset.alarmSounded || 0) + 1);
  } catch {
    // No audio device: the banner stays.
  }
}
$("#alarm-close").addEventListener("click", () => ($("#alarm").hidden = true));

// --- the governance report -------------------------------------------------------------------
const reportForm = $("#report-form");
const reportFrame = $("#report-frame");

function reportQuery(format) {
  const f = reportForm.elements;
  const params = new URLSearchParams({ from: f.from.value, to: f.to.value, format });
  if (f.project.value.trim()) params.set("project", f.project.value.trim());
  return `/api/report?${params}`;
}

async function fetchReport(format) {
  clearErrors(reportForm);
  if (!reportForm.reportValidity()) return null;
  const response = await fetch(reportQuery(format), { headers: await authorized() });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    showFieldError(reportForm, { error: data.error || response.statusText, field: "report" });
    return null;
  }
  return response;
}

reportForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetchReport("html");
  if (!response) return;
  // The report is a page of its own (its style inline, allowed by its hash in this
  // page's Content-Security-Policy); it prints from its frame.
  reportFrame.srcdoc = await response.text();
  reportFrame.hidden = false;
  $("#print-report").disabled = false;
});
$("#print-report").addEventListener("click", () => reportFrame.contentWindow?.print());
for (const format of ["csv", "json"]) {
  $(`#report-${format}`).addEventListener("click", async () => {
    const response = await fetchReport(format);
    if (!response) return;
    const url = URL.createObjectURL(await response.blob());
    const link = document.createElement("a");
    link.href = url;
    link.download = `report-${reportForm.elements.from.value}-${reportForm.elements.to.value}.${format}`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  });
}

// --- tabs, language ------------------------------------------------------------------
function selectTab(name) {
  for (const tab of document.querySelectorAll("[data-tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  }
  for (const panel of document.querySelectorAll("[role=tabpanel]")) panel.hidden = panel.id !== name;
  if (name === "audit") loadAudit();
  if (name === "authorizations") loadAuthorizations();
  if (name === "emergency") loadEmergencies();
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
  drawAuthorizations();
  drawEmergencies();
  drawWaiting();
  fillAuthorizationChoices(Number($("#f-authorization_id").value) || null);
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
  const who = await api("/api/me");
  if (!who.ok) {
    show(t(who.code === "invalid_token" ? "badToken" : "failed"));
    document.body.classList.add("locked");
    return;
  }
  me = who.data;
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
  drawGrants();
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
  if (!has("admin")) return;
  $("#refresh-sessions").addEventListener("click", loadSessions);
  // The bytes column, while someone looks at it: each read is an audit row.
  setInterval(() => {
    if (!document.hidden && !$("#sessions").hidden) loadSessions();
  }, 10_000);
  loadSessions();
});
