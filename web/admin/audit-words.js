// The audit log in the reader's language (issue 26): every event kind the gateway
// writes, each detail's label, and each value as a person reads it (sizes, durations,
// times, cameras by name, the codes of ended sessions and refusals). Each entry is
// [Traditional Chinese, English]. tests/test_console_audit.py checks that EVENT_NAMES
// holds exactly the kinds the gateway writes (gateway/store/audit.py), so the filter
// cannot miss one.

import { cameraName } from "./cameras.js";
import { bytes } from "./page.js";
import { lang, when } from "./text.js";

export const EVENT_NAMES = {
  session_start: ["開始觀看", "viewing started"],
  session_end: ["結束觀看", "viewing ended"],
  session_renewed: ["延長連線（重新登入）", "session renewed (signed in again)"],
  session_ice: ["連線候選位址", "ICE candidates added"],
  session_revoked: ["撤銷連線", "session revoked"],
  access_denied: ["拒絕存取", "access denied"],
  token_rejected: ["憑證無效", "sign-in token rejected"],
  grant_created: ["新增授權", "grant created"],
  grant_updated: ["修改授權", "grant changed"],
  grant_revoked: ["撤銷授權", "grant revoked"],
  grant_change_requested: ["申請擴大授權", "widening change requested"],
  grant_approved: ["核准授權", "grant approved"],
  grant_declined: ["駁回申請", "request declined"],
  authorization_recorded: ["登錄警察局同意", "police authorization recorded"],
  authorization_confirmed: ["確認警察局同意", "police authorization confirmed"],
  authorization_withdrawn: ["撤回警察局同意", "police authorization withdrawn"],
  authorization_adopted: ["舊文號轉為同意紀錄", "old reference made an authorization"],
  emergency_access: ["緊急調閱", "emergency access opened"],
  emergency_ended: ["結束緊急調閱", "emergency access ended"],
  emergency_reviewed: ["審查緊急調閱", "emergency access reviewed"],
  admin_read: ["管理者查閱", "read by an administrator"],
  report_read: ["產生報告", "report made"],
  audit_pruned: ["清除舊紀錄", "old records pruned"],
  inventory_reloaded: ["重新載入攝影機清單", "camera inventory reloaded"],
  inventory_refused: ["攝影機清單有誤，未載入", "camera inventory refused"],
  masks_changed: ["變更隱私遮蔽", "privacy masks changed"],
  mask_lift_requested: ["申請暫時解除遮蔽", "mask lift requested"],
  mask_lift_approved: ["核准暫時解除遮蔽", "mask lift approved"],
  mask_lift_declined: ["駁回暫時解除遮蔽", "mask lift declined"],
  mask_lift_expired: ["遮蔽解除期滿，已恢復", "mask lift ran out"],
  mask_lift_ended: ["提前恢復遮蔽", "mask lift ended early"],
};

// A detail's label, and how its value shows.
const DETAILS = {
  authorization_ref: ["警察局同意文號", "authorization ref.", "text"],
  authorization_id: ["警察局同意編號", "authorization no.", "text"],
  authorization_hash: ["同意紀錄雜湊", "authorization hash", "hash"],
  authorization_hashes: ["同意紀錄雜湊（移出）", "authorization hashes carried", "count"],
  grant_hash: ["授權紀錄雜湊", "grant hash", "hash"],
  grant_hashes: ["授權紀錄雜湊（移出）", "grant hashes carried", "count"],
  emergency_hash: ["緊急調閱紀錄雜湊", "emergency hash", "hash"],
  emergency_hashes: ["緊急調閱紀錄雜湊（移出）", "emergency hashes carried", "count"],
  anchor_hash: ["錨點雜湊", "anchor hash", "hash"],
  turn_username: ["TURN 帳號", "TURN user name", "text"],
  reason: ["原因", "reason", "text"],
  code: ["代碼", "code", "code"],
  duration_seconds: ["時長", "duration", "seconds"],
  bytes_sent: ["傳送量", "sent", "bytes"],
  ended_by: ["結束者", "ended by", "text"],
  by: ["操作者", "by", "text"],
  signed_in_until: ["登入效期至", "signed in until", "time"],
  candidates_added: ["新增候選位址", "candidates added", "text"],
  members: ["成員", "members", "list"],
  cameras: ["攝影機", "cameras", "cameras"],
  districts: ["行政區", "districts", "list"],
  starts_at: ["開始", "starts", "time"],
  ends_at: ["結束", "ends", "time"],
  purpose: ["用途", "purpose", "text"],
  pending: ["待核准", "waits for approval", "bool"],
  changes: ["變更", "changes", "changes"],
  change: ["申請變更", "change asked", "change"],
  kind: ["類別", "kind", "code"],
  asked_by: ["申請者", "asked by", "list"],
  reference: ["同意文號", "reference", "text"],
  purpose_class: ["目的", "purpose", "code"],
  state: ["狀態", "state", "code"],
  on_behalf_of: ["代為登錄的聯絡人", "on behalf of", "text"],
  grants: ["授權", "grants", "list"],
  emergency_id: ["緊急調閱編號", "emergency no.", "text"],
  user: ["調閱者", "opened by", "text"],
  danger: ["急迫危險", "imminent danger", "text"],
  minutes: ["分鐘", "minutes", "text"],
  justified: ["有正當理由", "justified", "bool"],
  note: ["備註", "note", "text"],
  count: ["次數", "count", "text"],
  reasons: ["原因與次數", "reasons", "counts"],
  minute: ["時段（分鐘）", "minute", "time"],
  what: ["查閱", "read", "code"],
  format: ["格式", "format", "text"],
  filters: ["條件", "filters", "filters"],
  rows: ["筆數", "rows", "text"],
  since: ["起", "since", "time"],
  until: ["迄", "until", "time"],
  through_seq: ["清除至序號", "through row", "text"],
  added: ["新增", "added", "text"],
  removed: ["移除", "removed", "text"],
  changed: ["變更", "changed", "text"],
  via: ["經由", "via", "text"],
  error: ["錯誤", "error", "text"],
  path: ["路徑", "path", "text"],
  account: ["帳號", "account", "text"],
  camera_id: ["攝影機", "camera", "camera"],
  project: ["專案", "project", "text"],
  event: ["事件", "event", "event"],
  limit: ["上限", "limit", "text"],
  project_filter: ["專案", "project", "text"],
  invalid_json: ["無法解讀的內容", "unreadable detail", "text"],
  value: ["內容", "value", "text"],
  before: ["變更前", "before", "masks"],
  after: ["變更後", "after", "masks"],
  lift_id: ["解除申請編號", "lift no.", "text"],
  grant_id: ["授權編號", "grant no.", "text"],
  decline_reason: ["駁回原因", "reason declined", "text"],
  end_reason: ["提前恢復原因", "reason ended", "text"],
};

// Codes that appear as values: why a session ended or a view was refused, and others.
const CODES = {
  viewer_left: ["觀看者關閉", "viewer left"],
  viewer_closed: ["觀看者關閉連線", "viewer closed"],
  shutdown: ["閘道關閉", "gateway shut down"],
  not_recorded: ["無法寫入稽核紀錄", "not recorded"],
  grant_ended: ["授權期間結束", "grant ended"],
  grant_removed: ["授權已不存在", "grant removed"],
  grant_revoked: ["授權已撤銷", "grant revoked"],
  grant_pending: ["授權待核准", "grant waits for approval"],
  not_yet_started: ["授權尚未開始", "grant not yet started"],
  removed_from_grant: ["已自授權移除", "removed from the grant"],
  camera_removed_from_grant: ["攝影機已自授權移除", "camera removed from the grant"],
  camera_removed: ["攝影機已自清單移除", "camera removed from the inventory"],
  emergency_ended: ["緊急調閱結束", "emergency access ended"],
  authorization_withdrawn: ["警察局撤回同意", "authorization withdrawn"],
  token_expired: ["登入已過期", "sign-in expired"],
  connection_lost: ["連線中斷", "connection lost"],
  never_connected: ["未能連線", "never connected"],
  negotiation_failed: ["連線協商失敗", "negotiation failed"],
  media_failed: ["影像傳送失敗", "sending media failed"],
  mask_failed: ["遮蔽無法套用", "privacy mask failed"],
  revoked: ["管理者撤銷", "revoked by an administrator"],
  no_grant: ["沒有授權", "no grant"],
  invalid_token: ["憑證無效", "invalid token"],
  not_admin: ["非管理者", "not an administrator"],
  role_required: ["沒有所需角色", "role required"],
  unknown_camera: ["沒有這台攝影機", "unknown camera"],
  unknown_rendition: ["沒有這種畫質", "unknown rendition"],
  camera_unavailable: ["攝影機無法連線", "camera unavailable"],
  capacity: ["閘道已滿載", "at capacity"],
  too_many: ["連線數已達上限", "too many"],
  bad_offer: ["連線要求無效", "bad offer"],
  record_pending: ["紀錄尚待寫入", "record pending"],
  audit_unavailable: ["稽核紀錄無法寫入", "audit unavailable"],
  database_unavailable: ["資料庫無法使用", "database unavailable"],
  node_lost: ["節點失聯", "node lost"],
  node_isolated: ["節點孤立", "node isolated"],
  new: ["新授權", "new grant"],
  legal_duty: ["執行法定職務", "legal duty"],
  imminent_danger: ["防止急迫危險", "imminent danger"],
  unconfirmed: ["待確認", "unconfirmed"],
  confirmed: ["已確認", "confirmed"],
  withdrawn: ["已撤回", "withdrawn"],
  sessions: ["即時連線", "live sessions"],
  audit: ["稽核紀錄", "audit log"],
  emergencies: ["緊急調閱", "emergency access"],
  authorizations: ["警察局同意", "police authorizations"],
  change: ["擴大變更", "widening change"],
};

const pick = (pair) => pair[lang() === "en" ? 1 : 0];
const SEP = () => (lang() === "en" ? "; " : "；");
const COLON = () => (lang() === "en" ? ": " : "：");

export const eventName = (kind) => (EVENT_NAMES[kind] ? pick(EVENT_NAMES[kind]) : kind);

function seconds(n) {
  const total = Math.round(Number(n));
  const [m, s] = [Math.floor(total / 60), total % 60];
  if (lang() === "en") return m ? `${m} min ${s} s` : `${s} s`;
  return m ? `${m} 分 ${s} 秒` : `${s} 秒`;
}

function plain(value) {
  if (value === null || value === undefined) return "—";
  if (Array.isArray(value)) return value.map(plain).join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// `key`'s value as a person reads it.
function shown(key, value) {
  const format = DETAILS[key]?.[2] || "text";
  if (value === null || value === undefined) return "—";
  switch (format) {
    case "bytes":
      return bytes(Number(value));
    case "seconds":
      return seconds(value);
    case "time":
      return typeof value === "string" && !Number.isNaN(Date.parse(value)) ? when(value) : plain(value);
    case "hash":
      return `${String(value).slice(0, 12)}…`;
    case "bool":
      return value ? (lang() === "en" ? "yes" : "是") : lang() === "en" ? "no" : "否";
    case "code":
      return CODES[value] ? pick(CODES[value]) : plain(value);
    case "camera":
      return `${cameraName(value)} (${value})`;
    case "event":
      return eventName(value);
    case "cameras":
      if (!Array.isArray(value)) return plain(value);
      return value.length > 10
        ? `${value.slice(0, 10).map(cameraName).join(", ")} … (${value.length})`
        : value.map(cameraName).join(", ");
    case "masks": // a camera's masks: how many, and what each hides
      if (!Array.isArray(value)) return plain(value);
      if (!value.length) return lang() === "en" ? "none" : "無";
      return `${value.length}${lang() === "en" ? ": " : " 個："}${value.map((m) => m?.label).join(", ")}`;
    case "list":
      return Array.isArray(value) ? value.map(plain).join(", ") : plain(value);
    case "count":
      return typeof value === "object" && value ? String(Object.keys(value).length) : plain(value);
    case "counts":
      return typeof value === "object" && value
        ? Object.entries(value).map(([reason, n]) => `${reason} ×${n}`).join(", ")
        : plain(value);
    case "filters":
    case "change":
      return typeof value === "object" && value
        ? Object.entries(value).map(([k, v]) => `${label(k)}${COLON()}${shown(k, v)}`).join(", ")
        : plain(value);
    case "changes":
      return typeof value === "object" && value
        ? Object.entries(value)
            .map(([k, v]) => `${label(k)}${COLON()}${shown(k, v?.from)} → ${shown(k, v?.to)}`)
            .join(", ")
        : plain(value);
    default:
      return plain(value);
  }
}

// A detail's label in the reader's language; one not listed shows in words, not as a key.
export function label(key) {
  return DETAILS[key] ? pick(DETAILS[key]) : key.replaceAll("_", " ");
}

// A row's detail as a cell's content: "label: value" pieces, each label in a span of
// its own (data-key names the key it stands for; data-unknown marks one not listed).
export function detailNodes(detail) {
  if (!detail || typeof detail !== "object") return [document.createTextNode(plain(detail ?? ""))];
  const nodes = [];
  for (const [key, value] of Object.entries(detail)) {
    if (nodes.length) nodes.push(document.createTextNode(SEP()));
    const name = document.createElement("span");
    name.className = "k";
    name.dataset.key = key;
    if (!DETAILS[key]) name.dataset.unknown = "";
    name.textContent = label(key);
    const text = document.createTextNode(`${COLON()}${shown(key, value)}`);
    if (DETAILS[key]?.[2] === "hash") {
      const full = document.createElement("span");
      full.title = String(value);
      full.append(text);
      nodes.push(name, full);
    } else nodes.push(name, text);
  }
  return nodes;
}
