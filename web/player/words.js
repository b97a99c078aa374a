// The tile's words in both languages: its states and labels, and the reason for
// every code the gateway (a JSON error's `code`, session_ended's `code`) or the
// player itself (no_token, network_error, turn_*) gives. A code not listed here
// shows the gateway's own words, in either language.

export const TEXT = {
  "zh-Hant": {
    idle: "待命",
    connecting: "連線中…",
    waiting: "等待畫面…",
    live: "直播中",
    reconnecting: "重新連線中…",
    revoked: "觀看權限已撤銷",
    ended: "授權期間已結束",
    expired: "登入已逾時",
    denied: "沒有觀看權限",
    error: "無法播放",
    stopped: "已停止",
    left: "授權剩餘",
    fullscreen: "全螢幕",
    latency: "延遲",
    in: (s) => `${s} 秒後重試`,
    saver: "省流量",
    saverTitle: "省流量：較小、較省頻寬的畫面",
    lite: "省流量",
    liteAuto: "連線不佳・省流量",
    toLite: "切換至省流量…",
    toFull: "恢復原畫質…",
    noLite: "此閘道器未提供省流量畫面",
    lastFrame: "最後畫面",
    masksLifted: "遮蔽已暫時解除",
    masksLiftedTitle: "此專案授權期間暫時解除隱私遮蔽",
  },
  en: {
    idle: "Idle",
    connecting: "Connecting…",
    waiting: "Waiting for picture…",
    live: "Live",
    reconnecting: "Reconnecting…",
    revoked: "Access revoked",
    ended: "Grant ended",
    expired: "Sign-in expired",
    denied: "No access",
    error: "Cannot play",
    stopped: "Stopped",
    left: "Grant ends in",
    fullscreen: "Fullscreen",
    latency: "latency",
    in: (s) => `retry in ${s} s`,
    saver: "Data saver",
    saverTitle: "Data saver: a smaller picture that needs less bandwidth",
    lite: "Data saver",
    liteAuto: "Weak link · data saver",
    toLite: "Switching to data saver…",
    toFull: "Back to full quality…",
    noLite: "This gateway offers no data-saver picture",
    lastFrame: "last frame",
    masksLifted: "Masks lifted",
    masksLiftedTitle: "Privacy masks are lifted for this grant for now",
  },
};

const UNAVAILABLE = ["攝影機暫時無法連線", "Camera unavailable for now"];
// [Traditional Chinese, English] by code.
const REASONS = {
  // The grant's rules (a refused offer's 403, or why a session ended).
  grant_ended: ["授權期間已結束", "The grant's period has ended"],
  grant_revoked: ["專案授權已撤銷", "The project's grant was revoked"],
  grant_pending: ["授權等待第二人核准", "The grant waits for a second person's approval"],
  grant_removed: ["授權已刪除", "The grant was removed"],
  authorization_withdrawn: ["警察局已撤回授權", "The police withdrew their authorization"],
  emergency_ended: ["緊急調閱已結束", "Emergency access has ended"],
  removed_from_grant: ["已自授權名單移除", "You were removed from the grant"],
  camera_removed_from_grant: ["此攝影機已自授權移除", "This camera was removed from the grant"],
  camera_removed: ["此攝影機已自清單移除", "This camera was removed from the inventory"],
  no_grant: ["沒有有效的授權", "No active grant for this camera"],
  not_yet_started: ["授權尚未開始", "The grant has not started yet"],
  revoked: ["管理員撤銷", "Revoked by an administrator"], // followed by the administrator's own words
  // Sign-in.
  no_token: ["未取得登入憑證", "No sign-in token"],
  token_error: ["無法取得登入憑證", "Could not get a sign-in token"],
  invalid_token: ["登入憑證無效或已過期", "Sign-in token invalid or expired"],
  token_expired: ["登入已逾時", "Sign-in expired"],
  not_owner: ["此連線屬於其他帳號", "This session belongs to another account"],
  unknown_session: ["此連線已不存在", "This session no longer exists"],
  // The network and the gateway: the tile tries again.
  network_error: ["網路中斷", "Network error"],
  connection_lost: ["連線中斷", "Connection lost"],
  never_connected: ["未能建立連線", "Could not connect"],
  negotiation_failed: ["連線協商失敗", "Connection setup failed"],
  viewer_closed: ["連線已關閉", "Connection closed"],
  media_failed: ["影像傳送中斷", "Sending the picture failed"],
  mask_failed: ["隱私遮蔽無法套用，暫停畫面", "Privacy masks could not be applied: no picture for now"],
  not_recorded: ["稽核紀錄暫時無法寫入", "The audit record could not be written yet"],
  record_pending: ["稽核紀錄暫時無法寫入", "The audit record could not be written yet"],
  shutdown: ["閘道器重新啟動", "Gateway restarting"],
  node_lost: ["閘道器節點失聯", "A gateway node was lost"],
  node_isolated: ["閘道器節點與叢集斷線", "A gateway node lost its cluster"],
  node_unavailable: ["另一閘道器節點暫時無法接手", "Another gateway node cannot take this camera now"],
  bad_spread: ["轉往其他節點的連結已失效", "The link to another gateway node has expired"],
  database_unavailable: ["閘道器資料庫暫時無法使用", "The gateway's database is unavailable for now"],
  camera_unavailable: UNAVAILABLE,
  capacity: UNAVAILABLE,
  audit_unavailable: UNAVAILABLE,
  too_many: UNAVAILABLE,
  internal: UNAVAILABLE,
  unavailable: UNAVAILABLE, // such a refusal without a JSON body, say from a proxy
  // The offer itself: trying again will not help.
  unknown_camera: ["沒有這支攝影機", "No such camera"],
  bad_offer: ["瀏覽器的連線要求無效", "The browser's offer was refused"],
  bad_answer: ["閘道器的回應無效", "The gateway's answer was not usable"],
  unknown_rendition: ["此閘道器未提供省流量畫面", "This gateway offers no data-saver picture"],
  bad_request: ["閘道器無法處理此要求", "The gateway could not take the request"],
  too_large: ["要求內容過大", "The request was too large"],
  unsupported_media_type: ["要求格式不符", "The request's format was refused"],
  body_timeout: ["要求傳送逾時", "The request took too long to arrive"],
  // TURN.
  turn_refused: ["中繼伺服器 (TURN) 拒絕了連線憑證", "The TURN server refused the credentials"],
  turn_unreachable: ["無法連上中繼伺服器 (TURN)", "The TURN server cannot be reached"],
  relay_unavailable: ["閘道器未提供中繼伺服器 (TURN)", "The gateway offers no TURN server"],
};

// The words for a code, or undefined when none are listed.
export function reasonWords(code, lang) {
  return REASONS[code]?.[lang === "en" ? 1 : 0];
}

// Why, in the tile's language: the listed words for the code (with an
// administrator's own words after them), else the gateway's words as sent.
export function translateReason({ code, reason, note }, lang) {
  const words = reasonWords(code, lang);
  if (!words) return reason || "";
  if (!note) return words;
  return lang === "en" ? `${words}: ${note}` : `${words}：${note}`;
}

// The administrator's own words, when one ended the session (code "revoked"): the
// event's `note`; from a gateway that sends none, what follows the first ": " of
// its reason ("revoked by an administrator: <words>"). Words only, never a decision.
export function noteOf({ code, reason, note }) {
  if (typeof note === "string") return note;
  const at = code === "revoked" && reason ? reason.indexOf(": ") : -1;
  return at < 0 ? "" : reason.slice(at + 2);
}
