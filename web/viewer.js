// The viewer page: a map and a list of the cameras the user may watch, the user's
// grants, and a grid of <cctv-player> tiles (or a wall of them). Everything about a
// live session is the element's job. It is built for a city's inventory (15,000
// points): the map clusters them and adds them in chunks, the list draws only the
// first matches of a search, and the map follows the search a moment later.

import { gatewayEvents } from "/web/cctv-player.js";
import { fold } from "/web/fold.js";
import { claimsOf } from "/web/player/renewal.js";
import { authorized, embedded, getToken, hasToken } from "/web/signin.js";

const TEXT = {
  "zh-Hant": {
    title: "CCTV 即時影像",
    layout: "版面",
    map: "攝影機地圖",
    search: "搜尋名稱、行政區或路段",
    loading: "載入中…",
    more: (shown, all) => `顯示前 ${shown} 筆，共 ${all} 筆；請輸入更多字縮小範圍`,
    none: "目前沒有可觀看的攝影機",
    nomatch: "沒有符合的攝影機",
    signin: "請由市府儀表板開啟此頁（缺少登入憑證）",
    signinTitle: "需要登入",
    signinText: "此頁的登入憑證只由市府儀表板提供，並只留在這個分頁裡；直接開啟或重新整理後，請再由儀表板開啟「CCTV 即時影像」。",
    signinWaiting: "等待市府儀表板提供登入憑證…",
    grants: "我的授權",
    grantCameras: (n) => `${n} 支攝影機`,
    onlyGrant: "只看這些",
    filtered: (project) => `只顯示「${project}」的攝影機`,
    showAll: "顯示全部",
    left: (clock) => `剩餘 ${clock}`,
    notYet: "尚未開始",
    reopen: "重新開啟",
    zoomIn: "放大",
    zoomOut: "縮小",
    failed: "無法取得攝影機清單：",
    empty: "點選地圖上的點或清單中的攝影機",
    close: "關閉",
    watching: "觀看中",
    until: "授權至",
    wall: "牆面模式",
    wallTitle: "牆面模式：畫面佔滿螢幕（1–4 切換版面，F 全螢幕，Esc 離開）",
    leaveWall: "離開牆面",
    other: "English",
  },
  en: {
    title: "CCTV live view",
    layout: "Layout",
    map: "Camera map",
    search: "Search by name, district or road",
    loading: "Loading…",
    more: (shown, all) => `First ${shown} of ${all}; type more to narrow it down`,
    none: "No cameras you may watch right now",
    nomatch: "No camera matches",
    signin: "Open this page from the city dashboard (no sign-in token)",
    signinTitle: "Sign-in needed",
    signinText: "This page's sign-in comes only from the city dashboard and stays in this tab; opened directly or refreshed, open CCTV live view from the dashboard again.",
    signinWaiting: "Waiting for the city dashboard's sign-in…",
    grants: "My grants",
    grantCameras: (n) => `${n} camera${n === 1 ? "" : "s"}`,
    onlyGrant: "Only these",
    filtered: (project) => `Only the cameras of “${project}”`,
    showAll: "Show all",
    left: (clock) => `${clock} left`,
    notYet: "not yet started",
    reopen: "Reopen",
    zoomIn: "Zoom in",
    zoomOut: "Zoom out",
    failed: "Cannot load the cameras: ",
    empty: "Pick a camera on the map or in the list",
    close: "Close",
    watching: "watching",
    until: "granted until",
    wall: "Wall",
    wallTitle: "Wall mode: tiles fill the screen (1–4 layouts, F fullscreen, Esc leaves)",
    leaveWall: "Leave wall",
    other: "中文",
  },
};
const $ = (selector) => document.querySelector(selector);
const lang = () => (document.documentElement.lang === "en" ? "en" : "zh-Hant");
const t = (key) => TEXT[lang()][key];

// At most this many buttons in the list: drawing 15,000 would take the page seconds
// on every key press, and nobody scrolls through them; the search narrows them down.
const LIST_LIMIT = 200;
const byName = new Intl.Collator("zh-Hant").compare; // one collator: localeCompare makes one per call

// --- state ---------------------------------------------------------------------
let cameras = []; // GeoJSON features, each with .text: what the search looks in
let layout = 2;
const LAYOUTS = [1, 2, 3, 4]; // n×n tiles
const tiles = new Map(); // camera id -> tile element, oldest first
const app = $(".app");
const grid = $("#grid");
const list = $("#cameras");
const search = $("#search");
const notice = $("#notice");

// --- the map ---------------------------------------------------------------------
const map = L.map("map", { maxZoom: 19, zoomControl: true }).setView(
  [25.04, 121.54],
  12,
);
const mapElement = document.getElementById("map");
const markers = L.markerClusterGroup({
  showCoverageOnHover: false,
  maxClusterRadius: 40,
  // 15,000 points are added in slices of 100 ms, so the page never freezes meanwhile;
  // when all are in, #map[data-points] says how many.
  chunkedLoading: true,
  chunkInterval: 100,
  chunkProgress: (done, total) => {
    if (done === total) mapElement.dataset.points = String(total);
  },
  iconCreateFunction: (cluster) => {
    const count = document.createElement("span");
    count.textContent = cluster.getChildCount();
    return L.divIcon({ html: count, className: "cam-cluster", iconSize: [44, 44] });
  },
}).addTo(map);

new ResizeObserver(() => map.invalidateSize()).observe(mapElement);
// The map's zoom, for a page (or a test) to read: the search zooms to its matches.
map.on("zoomend", () => (mapElement.dataset.zoom = String(map.getZoom())));
mapElement.dataset.zoom = String(map.getZoom());

function pin(feature) {
  const html = document.createElement("span");
  html.className = "cam-pin-dot";
  html.dataset.camera = feature.id;
  return L.divIcon({ html, className: "cam-pin", iconSize: [44, 44] });
}

fetch("/config.json")
  .then((response) => response.json())
  .then(({ map: settings }) => {
    // Offline, the tiles fail and the points stay on a plain background.
    L.tileLayer(settings.tile_url, { attribution: settings.attribution, maxZoom: 19 }).addTo(map);
  })
  .catch(() => {});

// The tooltip's text, made when it is first shown (and never parsed as HTML).
function tooltipText(marker) {
  const text = document.createElement("span");
  text.textContent = marker.options.title;
  return text;
}

// One marker per camera, made when the cameras load; the search shows a subset.
// Pins are not in the tab order: the list is the keyboard's way to every camera
// (15,000 pins would be 15,000 stops before the tiles).
let markerOf = new Map();
let fitted = false;
let zoomedToSearch = false;
const FIT = { paddingTopLeft: [64, 40], paddingBottomRight: [40, 40], maxZoom: 15, animate: false };
const pointOf = (feature) => [feature.geometry.coordinates[1], feature.geometry.coordinates[0]];

function drawMap() {
  markerOf = new Map(
    cameras.map((feature) => {
      const marker = L.marker(pointOf(feature), {
        icon: pin(feature),
        title: feature.properties.name,
        alt: feature.properties.name,
        keyboard: false,
      });
      marker.bindTooltip(tooltipText, { direction: "top", offset: [0, -16] });
      marker.on("click", () => open(feature));
      return [feature.id, marker];
    }),
  );
  filterMap();
  map.invalidateSize();
  if (cameras.length && !fitted) {
    fitted = true; // once: a later refresh (a grant changed) must not move the map
    map.fitBounds(L.latLngBounds(cameras.map(pointOf)), FIT);
  }
}

// The map shows what the list matches, and zooms to it (back to everything when the
// search is cleared). A moment after the last key: the list answers at once, and a
// map of 15,000 points is not redrawn on every key press.
function filterMap() {
  const matches = matching();
  const shown = cameras.filter(matches);
  markers.clearLayers();
  delete mapElement.dataset.points;
  markers.addLayers(shown.map((feature) => markerOf.get(feature.id))); // one clustering pass
  if (!shown.length) mapElement.dataset.points = "0";
  const narrowed = shown.length && shown.length < cameras.length;
  if (narrowed) {
    map.fitBounds(L.latLngBounds(shown.map(pointOf)), { ...FIT, maxZoom: 17 });
    zoomedToSearch = true;
  } else if (zoomedToSearch && shown.length) {
    map.fitBounds(L.latLngBounds(shown.map(pointOf)), FIT);
    zoomedToSearch = false;
  }
}
let mapLater = null;
function filterMapSoon() {
  clearTimeout(mapLater);
  mapLater = setTimeout(filterMap, 250);
}

// --- the list ----------------------------------------------------------------------
// Every word typed must appear in the name, id, district or road ("信義 松仁"),
// folded as web/fold.js does (台/臺 and other variants, full width, case): each
// camera's text is folded once when the cameras load, the query on each key. With a
// grant chosen in "my grants", only its cameras.
let onlyGrant = null; // {id, project, cameras: Set} or null
function matching() {
  const words = fold(search.value).split(/\s+/).filter(Boolean);
  const grant = onlyGrant;
  if (!words.length && !grant) return () => true;
  return (feature) =>
    (!grant || grant.cameras.has(feature.id)) && words.every((word) => feature.text.includes(word));
}

// A tile that plays or is on its way (not one that ended, was revoked or refused).
const ENDED = new Set(["revoked", "ended", "expired", "denied", "error", "stopped"]);
const watching = (id) => tiles.has(id) && !ENDED.has(tiles.get(id).state);

function drawList() {
  const matches = matching();
  const shown = [];
  let count = 0;
  for (const feature of cameras) {
    if (!matches(feature)) continue;
    count += 1;
    if (shown.length < LIST_LIMIT) shown.push(feature);
  }
  list.replaceChildren(
    ...shown.map((feature) => {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.camera = feature.id;
      button.setAttribute("aria-pressed", String(watching(feature.id)));
      // Two lines at most: the name (and 觀看中), then district, road and the grant's end.
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = feature.properties.name;
      const line = document.createElement("span");
      line.className = "line";
      line.append(name);
      if (watching(feature.id)) {
        const meta = document.createElement("span");
        meta.className = "meta";
        meta.textContent = t("watching");
        line.append(meta);
      }
      // The second line: district and road (cut short if need be), then the grant's end, whole.
      const { district, road } = feature.properties;
      const until = feature.properties.granted_until;
      const place = document.createElement("span");
      place.className = "place";
      place.textContent = [district, road].filter(Boolean).join(" · ");
      const second = document.createElement("span");
      second.className = "line second";
      second.append(place);
      if (until) {
        const ends = document.createElement("span");
        ends.className = "until";
        ends.textContent = `${t("until")} ${shortTime(until)}`;
        second.append(ends);
      }
      button.title = [feature.properties.name, second.textContent].filter(Boolean).join("\n");
      button.append(line, second);
      button.addEventListener("click", () => open(feature));
      const item = document.createElement("li");
      item.append(button);
      return item;
    }),
  );
  if (!cameras.length) notice.textContent = t("none");
  else if (!count) notice.textContent = t("nomatch");
  else notice.textContent = count > shown.length ? t("more")(shown.length, count) : "";
}
search.addEventListener("input", () => {
  drawList();
  filterMapSoon();
});

const shortTime = (iso) =>
  new Date(iso).toLocaleString(lang(), { month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit" });

let loading = 0; // the newest request wins when the cameras change twice quickly
async function loadCameras() {
  const mine = ++loading;
  try {
    const response = await fetch("/api/cameras", { headers: await authorized() });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    if (mine !== loading) return;
    for (const feature of body.features) {
      const { name, district, road } = feature.properties;
      feature.text = fold(`${name} ${feature.id} ${district || ""} ${road || ""}`);
    }
    cameras = body.features.sort((a, b) => byName(a.properties.name, b.properties.name));
    drawMap();
    drawList();
    reopenSaved();
    offerReopen();
    reloadWhenAGrantEnds();
  } catch (error) {
    if (mine === loading) notice.textContent = t("failed") + error.message;
  }
}

// --- the grid ------------------------------------------------------------------------
function open(feature) {
  const existing = tiles.get(feature.id);
  if (existing) {
    existing.classList.remove("flash");
    void existing.offsetWidth; // restart the animation
    existing.classList.add("flash");
    return;
  }
  const player = document.createElement("cctv-player");
  player.setAttribute("camera", feature.id);
  player.setAttribute("label", feature.properties.name);
  player.tokenProvider = getToken;
  const close = document.createElement("button");
  close.type = "button";
  close.slot = "actions";
  close.className = "close";
  close.textContent = "✕";
  close.addEventListener("click", () => closeTile(feature.id));
  // An ended tile offers to open the camera again where that can work: while it is
  // still listed (another grant, or a grant extended since).
  const reopen = document.createElement("button");
  reopen.type = "button";
  reopen.slot = "actions";
  reopen.className = "reopen";
  reopen.hidden = true;
  reopen.textContent = t("reopen");
  reopen.addEventListener("click", () => reopenTile(feature.id));
  player.append(reopen, close);
  player.addEventListener("statechange", () => {
    offerReopen();
    drawListSoon();
  });
  tiles.set(feature.id, player);
  while (tiles.size > layout * layout) closeTile(tiles.keys().next().value);
  drawGrid();
  drawList();
  saveWall();
}

function reopenTile(id) {
  const feature = cameras.find((f) => f.id === id);
  const old = tiles.get(id);
  if (!feature || !old) return;
  // A new element in the same place: a fresh start, its own session.
  tiles.delete(id);
  open(feature);
  const fresh = tiles.get(id);
  old.replaceWith(fresh);
  drawGrid();
}

function offerReopen() {
  const listed = new Set(cameras.map((f) => f.id));
  for (const [id, player] of tiles) {
    const button = player.querySelector(".reopen");
    button.hidden = !(ENDED.has(player.state) && player.state !== "stopped" && listed.has(id));
    button.textContent = t("reopen");
  }
}

let listLater = 0;
function drawListSoon() {
  cancelAnimationFrame(listLater);
  listLater = requestAnimationFrame(drawList);
}

// A grant that runs out says nothing on the event stream: the list asks again when
// the first listed camera's grant ends, so its cameras leave the list on time.
let grantEndTimer = null;
function reloadWhenAGrantEnds() {
  clearTimeout(grantEndTimer);
  const ends = cameras.map((f) => Date.parse(f.properties.granted_until)).filter((t) => t > Date.now());
  if (!ends.length) return;
  const wait = Math.min(Math.min(...ends) - Date.now() + 500, 2 ** 31 - 1);
  grantEndTimer = setTimeout(loadCameras, wait);
}

function closeTile(id) {
  tiles.get(id)?.remove(); // the element ends its session when it leaves the page
  tiles.delete(id);
  drawGrid();
  drawList();
  saveWall();
}

function drawGrid() {
  grid.style.setProperty("--n", layout);
  grid.dataset.layout = layout;
  const cells = [...tiles.values()];
  for (const player of cells) {
    player.querySelector(".close").ariaLabel = t("close");
    player.querySelector(".close").title = t("close");
  }
  const empty = Math.max(0, layout * layout - cells.length);
  const placeholders = Array.from({ length: empty }, () => {
    const slot = document.createElement("div");
    slot.className = "empty";
    slot.textContent = t("empty");
    return slot;
  });
  // Keep live tiles in place (moving them would not end their sessions, but why move).
  for (const old of grid.querySelectorAll(".empty")) old.remove();
  for (const player of cells) if (player.parentNode !== grid) grid.append(player);
  grid.append(...placeholders);
}

function setLayout(n) {
  if (!LAYOUTS.includes(n)) return;
  layout = n;
  app.dataset.tiles = String(n); // the page's columns follow (viewer.css)
  for (const button of document.querySelectorAll("[data-layout]")) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.layout) === n));
  }
  // Fewer places than tiles: the oldest close (and end their sessions).
  while (tiles.size > n * n) closeTile(tiles.keys().next().value);
  drawGrid();
  saveWall();
}
for (const button of document.querySelectorAll("[data-layout]")) {
  button.addEventListener("click", () => setLayout(Number(button.dataset.layout)));
}

// --- the wall ------------------------------------------------------------------------
// Wall mode: the tiles fill the screen and the map and list fold away. Keys: 1–4 the
// layout, F fullscreen, W the wall, Esc leaves it (in fullscreen, the browser's Esc
// leaves fullscreen first).
const wallButton = $("#wall");
function setWall(on) {
  document.body.toggleAttribute("data-wall", on);
  wallButton.setAttribute("aria-pressed", String(on));
  wallButton.textContent = t(on ? "leaveWall" : "wall");
  saveWall();
}
const inWall = () => document.body.hasAttribute("data-wall");
wallButton.addEventListener("click", () => setWall(!inWall()));

function toggleFullscreen() {
  if (document.fullscreenElement) return document.exitFullscreen().catch(() => {});
  return document.documentElement.requestFullscreen?.().catch(() => {});
}

addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
  const typing = event.target.closest?.("input, textarea, select, [contenteditable]");
  if (typing) return;
  const key = event.key.toLowerCase();
  if (LAYOUTS.includes(Number(key))) setLayout(Number(key));
  else if (key === "f") toggleFullscreen();
  else if (key === "w") setWall(!inWall());
  else if (key === "escape" && inWall()) setWall(false);
  else return;
  event.preventDefault();
});

// The layout, the wall and its cameras survive a refresh: kept in this browser per
// account (the token's account_id; never the token), and put back once the cameras
// are known. Cameras no longer listed (a grant ended) are left out.
let savedFor = null; // the account whose wall this page shows, once known
let restoring = null; // the saved cameras, until the list has loaded
const storeKey = (account) => `cctv-wall:${account}`;

function saveWall() {
  if (!savedFor || restoring) return;
  const wall = { layout, wall: inWall(), cameras: [...tiles.keys()] };
  try {
    localStorage.setItem(storeKey(savedFor), JSON.stringify(wall));
  } catch {
    /* storage full or refused: the wall still works, it is only not kept */
  }
}

function restoreWall(token) {
  const account = claimsOf(token)?.account_id;
  if (account === undefined || account === null) return;
  savedFor = String(account);
  let saved = null;
  try {
    saved = JSON.parse(localStorage.getItem(storeKey(savedFor)) || "null");
  } catch {
    saved = null;
  }
  if (!saved || typeof saved !== "object") return;
  restoring = Array.isArray(saved.cameras) ? saved.cameras.map(String) : [];
  if (LAYOUTS.includes(saved.layout)) setLayout(saved.layout);
  document.body.toggleAttribute("data-wall", saved.wall === true);
  wallButton.setAttribute("aria-pressed", String(saved.wall === true));
}

// The cameras have loaded: open the saved ones that may still be watched.
function reopenSaved() {
  if (!restoring) return;
  const wanted = restoring;
  restoring = null;
  const byId = new Map(cameras.map((feature) => [feature.id, feature]));
  for (const id of wanted.slice(-layout * layout)) {
    const feature = byId.get(id);
    if (feature) open(feature);
  }
  saveWall();
}

// --- my grants -----------------------------------------------------------------------
// The account's grants as the event stream tells them (hello, then grant_*): the
// project, its window, the time left, and its cameras ("only these" narrows the list
// and the map to them). The countdown ticks each second.
let grantEvents = null;
const grantsPanel = $("#grants");
const grantList = $("#grant-list");
const filterNote = $("#filter");

function liveGrants() {
  if (!grantEvents) return [];
  const now = Date.now();
  return [...grantEvents.grants.values()]
    .filter((g) => g.status !== "revoked" && !g.revoked_at && Date.parse(g.ends_at) > now)
    .sort((a, b) => Date.parse(a.ends_at) - Date.parse(b.ends_at));
}

function clockOf(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const hms = [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60];
  const text = hms.map((n, i) => (i ? String(n).padStart(2, "0") : String(n))).join(":");
  return s >= 86400 ? `${Math.floor(s / 86400)}d ${text}` : text;
}

function drawGrants() {
  const grants = liveGrants();
  grantsPanel.hidden = !grants.length;
  if (onlyGrant && !grants.some((g) => g.id === onlyGrant.id)) showAll();
  const names = new Map(cameras.map((f) => [f.id, f.properties.name]));
  grantList.replaceChildren(
    ...grants.map((grant) => {
      const item = document.createElement("li");
      item.dataset.grant = grant.id;
      const project = document.createElement("strong");
      project.className = "project";
      project.textContent = grant.project;
      const window_ = document.createElement("span");
      window_.className = "window";
      window_.textContent = `${shortTime(grant.starts_at)} – ${shortTime(grant.ends_at)}`;
      const left = document.createElement("span");
      left.className = "left";
      const which = document.createElement("span");
      which.className = "which";
      const listed = grant.cameras.filter((id) => names.has(id));
      which.textContent = t("grantCameras")(grant.cameras.length);
      which.title = listed.slice(0, 30).map((id) => names.get(id)).join("、");
      const only = document.createElement("button");
      only.type = "button";
      only.className = "only";
      only.textContent = t("onlyGrant");
      only.setAttribute("aria-pressed", String(onlyGrant?.id === grant.id));
      only.addEventListener("click", () => (onlyGrant?.id === grant.id ? showAll() : showGrant(grant)));
      item.append(project, window_, left, which, only);
      return item;
    }),
  );
  tickGrants();
}

function tickGrants() {
  const now = Date.now();
  const byId = new Map(liveGrants().map((g) => [String(g.id), g])); // dataset holds strings
  for (const item of grantList.children) {
    const grant = byId.get(item.dataset.grant);
    if (!grant) continue;
    const starts = Date.parse(grant.starts_at);
    item.querySelector(".left").textContent =
      starts > now ? t("notYet") : t("left")(clockOf(Date.parse(grant.ends_at) - now));
  }
  // A grant that ran out leaves the panel (and its cameras the list: loadCameras).
  if (grantEvents && liveGrants().length !== grantList.children.length) drawGrants();
}
setInterval(tickGrants, 1000);

function showGrant(grant) {
  onlyGrant = { id: grant.id, project: grant.project, cameras: new Set(grant.cameras) };
  filterNote.hidden = false;
  filterNote.querySelector("span").textContent = t("filtered")(grant.project);
  drawList();
  drawGrants();
  filterMap();
}

function showAll() {
  if (!onlyGrant) return;
  onlyGrant = null;
  filterNote.hidden = true;
  drawList();
  drawGrants();
  filterMap();
}
filterNote.querySelector("button").addEventListener("click", showAll);

// --- signing in ----------------------------------------------------------------------
// Without a token (opened directly with none, or refreshed: the token lives only in
// this tab's memory) the page says so in full, instead of tiles asking for a camera.
// Framed by the dashboard, a refresh asks it again (signin.js) and stays signed in;
// only when it does not answer does the same state show.
const SIGN_IN_WAIT_MS = 10000;
function signedOut(waiting) {
  document.body.toggleAttribute("data-signed-out", true);
  $("#signin").hidden = false;
  $("#signin p").textContent = t(waiting ? "signinWaiting" : "signinText");
}

function signedIn() {
  document.body.toggleAttribute("data-signed-out", false);
  $("#signin").hidden = true;
}

// --- language ----------------------------------------------------------------------
function translate() {
  document.title = t("title");
  for (const el of document.querySelectorAll("[data-i18n]")) {
    if (el.id !== "notice") el.textContent = t(el.dataset.i18n);
  }
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of document.querySelectorAll("[data-i18n-label]")) {
    el.ariaLabel = t(el.dataset.i18nLabel);
  }
  wallButton.textContent = t(inWall() ? "leaveWall" : "wall");
  wallButton.title = t("wallTitle");
  // Leaflet's own controls speak the page's language too.
  for (const [selector, key] of [[".leaflet-control-zoom-in", "zoomIn"], [".leaflet-control-zoom-out", "zoomOut"]]) {
    const control = mapElement.querySelector(selector);
    if (control) control.title = control.ariaLabel = t(key);
  }
  if (onlyGrant) filterNote.querySelector("span").textContent = t("filtered")(onlyGrant.project);
  if (document.body.hasAttribute("data-signed-out")) signedOut(!hasToken() && embedded);
  drawGrants();
  offerReopen();
  const toggle = $("#lang");
  toggle.textContent = t("other");
  toggle.lang = lang() === "en" ? "zh-Hant" : "en";
  drawList();
  drawGrid();
}
$("#lang").addEventListener("click", () => {
  document.documentElement.lang = lang() === "en" ? "zh-Hant" : "en"; // players follow
  translate();
});

// --- start ---------------------------------------------------------------------------
translate();
if (!hasToken() && !embedded) {
  notice.textContent = t("signin");
  signedOut(false);
} else if (!hasToken()) {
  setTimeout(() => !hasToken() && signedOut(false), SIGN_IN_WAIT_MS);
}
getToken().then((token) => {
  signedIn();
  restoreWall(token);
  loadCameras();
  // The page's one event stream; the tiles listen to it too. A grant that
  // starts, changes or ends changes which cameras may be watched, and the panel.
  const events = gatewayEvents("/", getToken);
  grantEvents = events;
  for (const type of ["grant_created", "grant_updated", "grant_revoked"]) {
    events.addEventListener(type, () => {
      loadCameras();
      drawGrants();
    });
  }
  events.addEventListener("hello", drawGrants);
  // The inventory was reloaded: every open page asks again, spread over a second so
  // that they do not all fetch 15,000 cameras at the same moment.
  events.addEventListener("cameras_changed", () => setTimeout(loadCameras, Math.random() * 1000));
});
