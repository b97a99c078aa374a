// The console's privacy masks tab (docs/masks.md): a camera's live picture in the same
// <cctv-player> the viewer page uses, its masks drawn over it, new ones drawn by
// clicking their corners, saved with a reason; and lifts of the masks for one grant,
// asked for here and approved by a second person (here, or in the waiting box).
// admin.js opens it with the tab (openMasks) and passes on the event stream's
// mask events (heardLifts, heardMasks); its words are in text.js.
//
// Watching needs a grant like any picture does (an administrator is no exception):
// without one the tile says so, and the masks are still drawn on an empty frame of
// the camera's proportions.

import { getToken } from "/web/signin.js";
import { cameraName, cameras, onCameras } from "./cameras.js";
import { askReason } from "./forms.js";
import { $, api, button, show } from "./page.js";
import { has, mayApprove, me } from "./roles.js";
import { lang, onLanguage, t, when } from "./text.js";
import { loadWaiting } from "./waiting.js";

const SVG = "http://www.w3.org/2000/svg";
const panel = $("#masks");
let current = null; // GET /api/cameras/{id}/masks
let masks = []; // what is being edited: [{label, polygon, fill}]
let drawing = null; // the points of the mask being drawn, or null
let lifts = [];
let grants = [];
let loaded = false;

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
  player.setAttribute("label", cameraName(id));
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
  ui.source.textContent = !current
    ? ""
    : current.source === "administrator"
      ? t("masksFromAdmin")(current, when(current.changed_at, "short"))
      : t("masksFromConfig");
  if (!masks.length) {
    ui.list.replaceChildren(el("li", { class: "empty-note" }, t("noMasks")));
    return;
  }
  const editable = has("admin");
  ui.list.replaceChildren(
    ...masks.map((m, i) => {
      const label = el("input", { value: m.label, maxLength: 100, disabled: !editable, "data-index": i });
      label.setAttribute("aria-label", t("maskLabel"));
      label.placeholder = t("maskLabel");
      label.addEventListener("input", () => (m.label = label.value));
      const fill = el(
        "select",
        { disabled: !editable },
        new Option(t("maskSolid"), "solid", false, m.fill === "solid"),
        new Option(t("maskPixelate"), "pixelate", false, m.fill === "pixelate"),
      );
      fill.setAttribute("aria-label", t("maskFill"));
      fill.addEventListener("change", () => {
        m.fill = fill.value;
        redraw();
      });
      const remove = button(t("removeMask"), () => {
        masks.splice(i, 1);
        redraw();
      }, "remove-mask");
      remove.hidden = !editable;
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
  ui.source.textContent = t("masksSaved");
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
    ...(live.length
      ? live.map((g) => new Option(`${g.project} (#${g.id})`, g.id))
      : [new Option(t("noLiveGrants"), "")]),
  );
  ui.liftForm.hidden = !has("admin") || !current?.masks.length;
}

function drawLifts() {
  ui.liftHead.replaceChildren(
    ...[t("camera"), t("grant"), t("why"), t("askedBy"), t("status"), t("until"), ""].map((h) => el("th", {}, h)),
  );
  const statuses = t("liftStatuses");
  ui.liftRows.replaceChildren(
    ...lifts.map((lift) => {
      const actions = el("td", { class: "actions" }, ...liftActions(lift));
      const status = el("span", { class: `status ${lift.status}` }, statuses[lift.status] || lift.status);
      return el(
        "tr",
        { "data-lift": lift.id, "data-status": lift.status },
        el("td", {}, cameraName(lift.camera_id)),
        el("td", {}, `#${lift.grant_id}`),
        el("td", {}, lift.reason),
        el("td", {}, lift.asked_by),
        el("td", {}, status),
        el("td", {}, lift.until ? when(lift.until, "short") : t("liftMinutes")(lift.minutes)),
        actions,
      );
    }),
  );
}

// A lift's buttons, here and in the waiting box: Approve for who may approve, never
// for the one who asked; Decline (a waiting one) and Restore (one in force) for who
// may approve and administrators. Classes: approve-lift, decline-lift, end-lift.
export function liftActions(lift) {
  const found = [];
  const decides = mayApprove() || has("admin");
  if (lift.status === "waiting") {
    if (mayApprove() && lift.asked_by !== me.account) {
      found.push(button(t("approve"), () => decide(lift, "approve"), "primary approve-lift"));
    }
    if (decides) found.push(button(t("decline"), () => decide(lift, "decline"), "decline-lift"));
  }
  if (lift.status === "lifted" && decides) {
    found.push(button(t("endLift"), () => decide(lift, "end"), "danger end-lift"));
  }
  return found;
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
  heardLifts();
}

// Decline and end ask their reason in the console's reason dialog (forms.js).
async function decide(lift, how) {
  let body;
  if (how !== "approve") {
    const named = { ...lift, camera: cameraName(lift.camera_id) };
    const reason =
      how === "end"
        ? await askReason(t("endLiftTitle")(named), t("confirmEndLift"))
        : await askReason(t("declineLiftTitle")(named), t("confirmDecline"));
    if (!reason) return;
    body = { reason };
  }
  const { ok, data } = await api(`/api/mask-lifts/${lift.id}/${how}`, { method: "POST", body: body || {} });
  if (!ok) show(t("failed") + (data.error || ""));
  heardLifts();
}

// --- language, start, what the event stream says -------------------------------------------------
function translateMasks() {
  if (!ui.heading) return;
  ui.heading.textContent = t("masksTitle");
  ui.cameraLabel.textContent = t("camera");
  ui.draw.textContent = t("drawMask");
  ui.finish.textContent = t("finishMask");
  ui.undo.textContent = t("undoPoint");
  ui.cancel.textContent = t("cancel");
  ui.hint.textContent = t("drawingHint");
  ui.reasonLabel.textContent = t("maskReason");
  ui.save.textContent = t("saveMasks");
  ui.noPicture.textContent = t("maskNoPicture");
  ui.liftsTitle.textContent = t("liftsTitle");
  ui.grantLabel.textContent = t("grant");
  ui.liftReasonLabel.textContent = t("liftReason");
  ui.askLift.textContent = t("askLift");
  ui.stage.querySelector("cctv-player")?.setAttribute("lang", lang());
  drawCameras();
  drawList();
  drawLiftForm();
  drawLifts();
}
onLanguage(translateMasks);

function drawCameras() {
  const chosen = ui.camera.value;
  ui.camera.replaceChildren(...cameras.map((c) => new Option(`${cameraName(c.id)} (${c.id})`, c.id)));
  if (chosen) ui.camera.value = chosen;
}
onCameras(() => ui.camera && drawCameras());

// The tab, opened: built once, then the first camera's picture and the lifts.
export async function openMasks() {
  if (loaded || !me.account) return; // before sign-in, admin.js selects the first tab anyway
  loaded = true;
  build();
  ui.editing.hidden = !has("admin");
  translateMasks();
  await loadGrants();
  openCamera(ui.camera.value);
  loadLifts();
}

// A lift asked, decided or over (mask_lift_requested, mask_lift_declined,
// masks_lifted, masks_restored), or decided here: the table and the waiting box.
export function heardLifts() {
  if (loaded) loadLifts();
  loadWaiting();
}

// masks_changed: another administrator's change, unless one is being drawn here.
export function heardMasks(camera) {
  if (loaded && camera?.camera_id === ui.camera.value && !drawing) loadMasks(ui.camera.value);
}
