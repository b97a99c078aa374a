// The console's privacy masks tab (docs/masks.md): a camera's live picture in the same
// <cctv-player> the viewer page uses, its masks drawn over it, new ones drawn by
// clicking their corners, saved with a reason; and lifts of the masks for one grant,
// asked for here and approved by a second person. Its own module: admin.js only
// shows the tab (data-roles) and hides it with the others.
//
// Watching needs a grant like any picture does (an administrator is no exception):
// without one the tile says so, and the masks are still drawn on an empty frame of
// the camera's proportions.

import { gatewayEvents } from "/web/cctv-player.js";
import { authorized, getToken } from "/web/signin.js";

const TEXT = {
  "zh-Hant": {
    tab: "隱私遮蔽",
    title: "隱私遮蔽",
    camera: "攝影機",
    fromAdmin: (m) => `由管理者設定：${m.changed_by}，${when(m.changed_at)}（${m.reason}）`,
    fromConfig: "依設定檔或攝影機清單",
    none: "此攝影機沒有遮蔽",
    label: "名稱（遮住什麼）",
    fill: "填滿",
    solid: "純色",
    pixelate: "馬賽克",
    remove: "刪除",
    draw: "畫新遮蔽",
    drawing: "在畫面上依序點選遮蔽的各角，完成後按「完成」",
    finish: "完成",
    undo: "復原一點",
    cancel: "取消",
    reason: "變更原因",
    save: "儲存遮蔽",
    saved: "已儲存，所有觀看者的畫面即時套用",
    needThree: "至少需要三個點",
    noPicture: "需有包含此攝影機的授權才能看即時畫面；仍可在空白畫面上繪製。",
    lifts: "暫時解除遮蔽（單一授權，限時）",
    grant: "授權",
    liftReason: "原因（例如：火警，窗後有人受困）",
    why: "原因",
    askLift: "申請解除",
    minutes: (n) => `${n} 分鐘`,
    askedBy: "申請者",
    status: "狀態",
    until: "至",
    approve: "核准",
    decline: "駁回",
    declineReason: "駁回原因",
    end: "提前恢復遮蔽",
    endReason: "提前恢復的原因",
    statuses: { waiting: "待核准", lifted: "解除中", ended: "已恢復", declined: "已駁回" },
    noGrants: "（沒有包含此攝影機的有效授權）",
    failed: "操作失敗：",
  },
  en: {
    tab: "Privacy masks",
    title: "Privacy masks",
    camera: "Camera",
    fromAdmin: (m) => `Set by an administrator: ${m.changed_by}, ${when(m.changed_at)} (${m.reason})`,
    fromConfig: "From the configuration or the camera inventory",
    none: "This camera has no masks",
    label: "Label (what it hides)",
    fill: "Fill",
    solid: "Solid",
    pixelate: "Pixelate",
    remove: "Remove",
    draw: "Draw a mask",
    drawing: "Click the mask's corners on the picture in order, then Finish",
    finish: "Finish",
    undo: "Undo a point",
    cancel: "Cancel",
    reason: "Reason for the change",
    save: "Save masks",
    saved: "Saved; every viewer's picture has it now",
    needThree: "A mask needs at least three points",
    noPicture: "Watching needs a grant that names this camera; you can still draw on an empty frame.",
    lifts: "Lift the masks (one grant, for a while)",
    grant: "Grant",
    liftReason: "Reason (e.g. a fire: someone trapped behind the window)",
    why: "Reason",
    askLift: "Ask to lift",
    minutes: (n) => `${n} min`,
    askedBy: "Asked by",
    status: "Status",
    until: "Until",
    approve: "Approve",
    decline: "Decline",
    declineReason: "Why it is declined",
    end: "Restore the masks now",
    endReason: "Why the masks return early",
    statuses: { waiting: "Waiting", lifted: "Lifted", ended: "Restored", declined: "Declined" },
    noGrants: "(no live grant names this camera)",
    failed: "Failed: ",
  },
};

const SVG = "http://www.w3.org/2000/svg";
const panel = document.querySelector("#masks");
const tab = document.querySelector("[data-tab='masks']");
const lang = () => (document.documentElement.lang === "en" ? "en" : "zh-Hant");
const t = (key) => TEXT[lang()][key];
const when = (iso) => (iso ? new Date(iso).toLocaleString(lang(), { dateStyle: "short", timeStyle: "short" }) : "");

let me = { account: "", roles: [], approval: "second_admin" };
let cameras = []; // [{id, name}]
let current = null; // GET /api/cameras/{id}/masks
let masks = []; // what is being edited: [{label, polygon, fill}]
let drawing = null; // the points of the mask being drawn, or null
let lifts = [];
let grants = [];
let loaded = false;

const has = (...roles) => roles.some((r) => me.roles.includes(r));
const mayApprove = () => has(me.approval === "police_liaison" ? "police_liaison" : "admin");

async function api(path, { method = "GET", body } = {}) {
  const headers = await authorized(body ? { "Content-Type": "application/json" } : {});
  const response = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  return { status: response.status, ok: response.ok, data };
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children);
  return node;
}

// --- the panel, built once ------------------------------------------------------------
const ui = {};
function build() {
  ui.heading = el("h2");
  ui.cameraLabel = el("label", { htmlFor: "m-camera" });
  ui.camera = el("select", { id: "m-camera" });
  ui.stage = el("div", { class: "mask-stage", id: "m-stage" });
  ui.overlay = document.createElementNS(SVG, "svg");
  ui.overlay.id = "m-overlay";
  ui.overlay.setAttribute("viewBox", "0 0 1 1");
  ui.overlay.setAttribute("preserveAspectRatio", "none");
  ui.noPicture = el("p", { class: "note", id: "m-no-picture", hidden: true });
  ui.source = el("p", { class: "note", id: "m-source" });
  ui.list = el("ol", { class: "mask-list", id: "m-list" });
  ui.draw = el("button", { type: "button", id: "m-draw" });
  ui.finish = el("button", { type: "button", id: "m-finish", class: "primary", hidden: true });
  ui.undo = el("button", { type: "button", id: "m-undo", hidden: true });
  ui.cancel = el("button", { type: "button", id: "m-cancel", hidden: true });
  ui.hint = el("p", { class: "note", id: "m-hint", hidden: true });
  ui.reasonLabel = el("label", { htmlFor: "m-reason" });
  ui.reason = el("input", { id: "m-reason", maxLength: 500, autocomplete: "off" });
  ui.error = el("p", { class: "field-error", id: "m-error" });
  ui.save = el("button", { type: "button", id: "m-save", class: "primary" });
  ui.editing = el(
    "div",
    { class: "mask-editing" },
    el("div", { class: "buttons" }, ui.draw, ui.finish, ui.undo, ui.cancel),
    ui.hint,
    el("div", { class: "field" }, ui.reasonLabel, ui.reason),
    ui.error,
    el("div", { class: "buttons" }, ui.save),
  );
  ui.liftsTitle = el("h3");
  ui.grant = el("select", { id: "m-grant" });
  ui.grantLabel = el("label", { htmlFor: "m-grant" });
  ui.liftReasonLabel = el("label", { htmlFor: "m-lift-reason" });
  ui.liftReason = el("input", { id: "m-lift-reason", maxLength: 500, autocomplete: "off" });
  ui.askLift = el("button", { type: "submit", class: "primary", id: "m-ask-lift" });
  ui.liftError = el("p", { class: "field-error", id: "m-lift-error" });
  ui.liftForm = el(
    "form",
    { id: "m-lift-form", class: "fields", noValidate: true },
    el("div", { class: "field" }, ui.grantLabel, ui.grant),
    el("div", { class: "field" }, ui.liftReasonLabel, ui.liftReason),
    el("div", { class: "buttons" }, ui.askLift),
  );
  ui.liftRows = el("tbody");
  ui.liftHead = el("tr");
  ui.liftTable = el(
    "table",
    { id: "m-lift-table" },
    el("thead", {}, ui.liftHead),
    ui.liftRows,
  );
  ui.stage.append(ui.overlay);
  panel.append(
    el("div", { class: "toolbar" }, ui.heading, ui.cameraLabel, ui.camera),
    el(
      "div",
      { class: "mask-editor" },
      el("div", {}, ui.stage, ui.noPicture),
      el("div", { class: "card mask-side" }, ui.source, ui.list, ui.editing),
    ),
    el(
      "div",
      { class: "card", id: "m-lifts" },
      ui.liftsTitle,
      ui.liftForm,
      ui.liftError,
      el("div", { class: "table-wrap" }, ui.liftTable),
    ),
  );

  ui.camera.addEventListener("change", () => openCamera(ui.camera.value));
  ui.overlay.addEventListener("click", addPoint);
  ui.draw.addEventListener("click", () => {
    drawing = [];
    redraw();
  });
  ui.undo.addEventListener("click", () => {
    drawing?.pop();
    redraw();
  });
  ui.cancel.addEventListener("click", () => {
    drawing = null;
    redraw();
  });
  ui.finish.addEventListener("click", finishMask);
  ui.save.addEventListener("click", saveMasks);
  ui.liftForm.addEventListener("submit", askLift);
}

// --- the picture and the masks on it ------------------------------------------------------
function openCamera(id) {
  drawing = null;
  ui.error.textContent = "";
  ui.stage.querySelector("cctv-player")?.remove();
  ui.stage.dataset.aspect = "";
  ui.stage.style.aspectRatio = "";
  ui.noPicture.hidden = true;
  if (!id) return;
  const player = document.createElement("cctv-player");
  player.setAttribute("camera", id);
  player.setAttribute("label", cameras.find((c) => c.id === id)?.name || id);
  player.setAttribute("lang", lang());
  player.tokenProvider = getToken;
  player.addEventListener("statechange", (event) => {
    ui.noPicture.hidden = event.detail.state !== "denied";
  });
  ui.stage.prepend(player);
  // The overlay covers exactly the picture: the stage takes the video's proportions
  // (the video fills its player, "contain"), so a click's fraction is the picture's.
  player.video.addEventListener("resize", () => {
    const { videoWidth: w, videoHeight: h } = player.video;
    if (w && h) {
      ui.stage.style.aspectRatio = `${w} / ${h}`;
      ui.stage.dataset.aspect = `${w}x${h}`;
    }
  });
  loadMasks(id);
  drawLiftForm();
}

async function loadMasks(id) {
  const { ok, data } = await api(`/api/cameras/${encodeURIComponent(id)}/masks`);
  if (ui.camera.value !== id) return;
  if (!ok) {
    ui.error.textContent = t("failed") + (data.error || "");
    return;
  }
  current = data;
  masks = data.masks.map((m) => ({ ...m, polygon: m.polygon.map((p) => [...p]) }));
  redraw();
  drawLiftForm();
}

function point(event) {
  const box = ui.overlay.getBoundingClientRect();
  const clamp = (v) => Math.min(1, Math.max(0, Math.round(v * 10000) / 10000));
  return [clamp((event.clientX - box.left) / box.width), clamp((event.clientY - box.top) / box.height)];
}

function addPoint(event) {
  if (!drawing) return;
  drawing.push(point(event));
  redraw();
}

function finishMask() {
  if (!drawing || drawing.length < 3) {
    ui.error.textContent = t("needThree");
    return;
  }
  masks.push({ label: "", polygon: drawing, fill: "solid" });
  drawing = null;
  ui.error.textContent = "";
  redraw();
  ui.list.querySelector("li:last-child input")?.focus();
}

function shape(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

function redraw() {
  const points = (polygon) => polygon.map(([x, y]) => `${x},${y}`).join(" ");
  const shapes = masks.map((m, i) =>
    shape("polygon", { points: points(m.polygon), class: `mask ${m.fill}`, "data-index": i }),
  );
  if (drawing) {
    shapes.push(shape("polyline", { points: points(drawing), class: "drawing" }));
    for (const [x, y] of drawing) shapes.push(shape("circle", { cx: x, cy: y, r: 0.008, class: "corner" }));
  }
  ui.overlay.replaceChildren(...shapes);
  ui.overlay.classList.toggle("drawing", Boolean(drawing));
  ui.draw.hidden = Boolean(drawing);
  for (const b of [ui.finish, ui.undo, ui.cancel, ui.hint]) b.hidden = !drawing;
  drawList();
}

function drawList() {
  const T = TEXT[lang()];
  ui.source.textContent = !current
    ? ""
    : current.source === "administrator"
      ? T.fromAdmin(current)
      : T.fromConfig;
  if (!masks.length) {
    ui.list.replaceChildren(el("li", { class: "empty-note" }, T.none));
    return;
  }
  const editable = has("admin");
  ui.list.replaceChildren(
    ...masks.map((m, i) => {
      const label = el("input", { value: m.label, maxLength: 100, disabled: !editable, "data-index": i });
      label.setAttribute("aria-label", T.label);
      label.placeholder = T.label;
      label.addEventListener("input", () => (m.label = label.value));
      const fill = el(
        "select",
        { disabled: !editable },
        new Option(T.solid, "solid", false, m.fill === "solid"),
        new Option(T.pixelate, "pixelate", false, m.fill === "pixelate"),
      );
      fill.setAttribute("aria-label", T.fill);
      fill.addEventListener("change", () => {
        m.fill = fill.value;
        redraw();
      });
      const remove = el("button", { type: "button", class: "remove-mask", hidden: !editable }, T.remove);
      remove.addEventListener("click", () => {
        masks.splice(i, 1);
        redraw();
      });
      return el("li", { "data-index": i }, label, fill, remove);
    }),
  );
}

async function saveMasks() {
  ui.error.textContent = "";
  const id = ui.camera.value;
  const body = { masks, reason: ui.reason.value.trim() };
  const { ok, data } = await api(`/api/cameras/${encodeURIComponent(id)}/masks`, { method: "PUT", body });
  if (!ok) {
    // The gateway names the field (e.g. masks[1].polygon); mark that mask's row.
    ui.error.textContent = data.error || t("failed");
    ui.error.dataset.field = data.field || "";
    const index = /^masks\[(\d+)\]/.exec(data.field || "")?.[1];
    for (const li of ui.list.children) li.classList.toggle("invalid", li.dataset.index === index);
    return;
  }
  current = data;
  ui.reason.value = "";
  ui.error.dataset.field = "";
  ui.error.textContent = "";
  ui.source.textContent = t("saved");
  drawLiftForm();
}

// --- lifts ------------------------------------------------------------------------------------
async function loadLifts() {
  const { ok, data } = await api("/api/mask-lifts");
  if (ok) lifts = data.lifts;
  drawLifts();
}

async function loadGrants() {
  if (!has("admin")) return;
  const { ok, data } = await api("/api/grants?include_ended=false");
  if (ok) grants = data.grants;
  drawLiftForm();
}

function drawLiftForm() {
  const camera = ui.camera.value;
  const live = grants.filter((g) => g.cameras.includes(camera) && ["active", "scheduled"].includes(g.status));
  ui.grant.replaceChildren(
    ...(live.length ? live.map((g) => new Option(`${g.project} (#${g.id})`, g.id)) : [new Option(t("noGrants"), "")]),
  );
  ui.liftForm.hidden = !has("admin") || !current?.masks.length;
}

function drawLifts() {
  const T = TEXT[lang()];
  ui.liftHead.replaceChildren(
    ...[T.camera, T.grant, T.why, T.askedBy, T.status, T.until, ""].map((h) => el("th", {}, h)),
  );
  ui.liftRows.replaceChildren(
    ...lifts.map((lift) => {
      const actions = el("td");
      if (lift.status === "waiting") {
        if (mayApprove() && lift.asked_by !== me.account) {
          actions.append(button(T.approve, () => decide(lift, "approve"), "primary approve-lift"));
        }
        if (mayApprove() || has("admin")) actions.append(button(T.decline, () => decide(lift, "decline"), "decline-lift"));
      }
      if (lift.status === "lifted" && (mayApprove() || has("admin"))) {
        actions.append(button(T.end, () => decide(lift, "end"), "end-lift"));
      }
      const status = el("span", { class: `status ${lift.status}` }, T.statuses[lift.status] || lift.status);
      return el(
        "tr",
        { "data-lift": lift.id, "data-status": lift.status },
        el("td", {}, lift.camera_id),
        el("td", {}, `#${lift.grant_id}`),
        el("td", {}, lift.reason),
        el("td", {}, lift.asked_by),
        el("td", {}, status),
        el("td", {}, lift.until ? when(lift.until) : T.minutes(lift.minutes)),
        actions,
      );
    }),
  );
}

function button(label, onClick, className) {
  const b = el("button", { type: "button", class: className }, label);
  b.addEventListener("click", onClick);
  return b;
}

async function askLift(event) {
  event.preventDefault();
  ui.liftError.textContent = "";
  const body = { grant_id: Number(ui.grant.value), reason: ui.liftReason.value.trim() };
  const path = `/api/cameras/${encodeURIComponent(ui.camera.value)}/masks/lifts`;
  const { ok, data } = await api(path, { method: "POST", body });
  if (!ok) {
    ui.liftError.textContent = data.error || t("failed");
    return;
  }
  ui.liftReason.value = "";
  loadLifts();
}

async function decide(lift, how) {
  let body;
  if (how !== "approve") {
    const reason = prompt(t(how === "end" ? "endReason" : "declineReason"));
    if (!reason) return;
    body = { reason };
  }
  const { ok, data } = await api(`/api/mask-lifts/${lift.id}/${how}`, { method: "POST", body });
  ui.liftError.textContent = ok ? "" : data.error || t("failed");
  loadLifts();
}

// --- language, start --------------------------------------------------------------------------
function translate() {
  const T = TEXT[lang()];
  tab.textContent = T.tab;
  if (!ui.heading) return;
  ui.heading.textContent = T.title;
  ui.cameraLabel.textContent = T.camera;
  ui.draw.textContent = T.draw;
  ui.finish.textContent = T.finish;
  ui.undo.textContent = T.undo;
  ui.cancel.textContent = T.cancel;
  ui.hint.textContent = T.drawing;
  ui.reasonLabel.textContent = T.reason;
  ui.save.textContent = T.save;
  ui.noPicture.textContent = T.noPicture;
  ui.liftsTitle.textContent = T.lifts;
  ui.grantLabel.textContent = T.grant;
  ui.liftReasonLabel.textContent = T.liftReason;
  ui.askLift.textContent = T.askLift;
  drawList();
  drawLifts();
}
new MutationObserver(translate).observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });

async function start() {
  if (loaded) return;
  loaded = true;
  build();
  translate();
  const who = await api("/api/me");
  if (who.ok) me = who.data;
  ui.editing.hidden = !has("admin");
  const found = await api("/api/cameras");
  cameras = (found.data.features || []).map((f) => ({ id: f.properties.id, name: f.properties.name }));
  ui.camera.replaceChildren(...cameras.map((c) => new Option(`${c.name} (${c.id})`, c.id)));
  await loadGrants();
  openCamera(ui.camera.value);
  loadLifts();
  // Live: a lift asked, decided or over; masks changed by another administrator.
  const events = gatewayEvents("/", getToken);
  for (const type of ["mask_lift_requested", "mask_lift_declined", "masks_lifted", "masks_restored"]) {
    events.addEventListener(type, loadLifts);
  }
  events.addEventListener("masks_changed", (event) => {
    if (event.detail.camera?.camera_id === ui.camera.value && !drawing) loadMasks(ui.camera.value);
  });
}

translate();
tab.addEventListener("click", start);
