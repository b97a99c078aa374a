// The viewer page: a map and a list of the cameras the user may watch, and a grid
// of <cctv-player> tiles. Everything about a live session is the element's job.
// It is built for a city's inventory (15,000 points): the map clusters them and
// adds them in chunks, and the list draws only the first matches of a search.

import { gatewayEvents } from "/web/cctv-player.js";
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

let fitted = false;
function drawMap() {
  markers.clearLayers();
  delete mapElement.dataset.points;
  const all = cameras.map((feature) => {
    const [lon, lat] = feature.geometry.coordinates;
    const marker = L.marker([lat, lon], {
      icon: pin(feature),
      title: feature.properties.name,
      alt: feature.properties.name,
      keyboard: true,
    });
    marker.bindTooltip(tooltipText, { direction: "top", offset: [0, -16] });
    marker.on("click", () => open(feature));
    return marker;
  });
  markers.addLayers(all); // one clustering pass, not 15,000
  if (!all.length) mapElement.dataset.points = "0";
  map.invalidateSize();
  if (cameras.length && !fitted) {
    fitted = true; // once: a later refresh (a grant changed) must not move the map
    const bounds = L.latLngBounds(cameras.map((f) => [f.geometry.coordinates[1], f.geometry.coordinates[0]]));
    map.fitBounds(bounds, {
      paddingTopLeft: [64, 40], // clear of the zoom buttons
      paddingBottomRight: [40, 40],
      maxZoom: 15,
      animate: false,
    });
  }
}

// --- the list ----------------------------------------------------------------------
// Every word typed must appear in the name, id, district or road ("信義 松仁").
function matching(query) {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return () => true;
  return (feature) => words.every((word) => feature.text.includes(word));
}

function drawList() {
  const matches = matching(search.value);
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
      button.setAttribute("aria-pressed", String(tiles.has(feature.id)));
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = feature.properties.name;
      const { district, road } = feature.properties;
      const place = document.createElement("span");
      place.className = "place";
      place.textContent = [district, road].filter(Boolean).join(" · ");
      const meta = document.createElement("span");
      meta.className = "meta";
      const until = feature.properties.granted_until;
      meta.textContent = tiles.has(feature.id)
        ? t("watching")
        : until
          ? `${t("until")} ${new Date(until).toLocaleString(lang(), { dateStyle: "short", timeStyle: "short" })}`
          : "";
      const words = document.createElement("span");
      words.className = "words";
      words.append(name, place);
      button.append(words, meta);
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
search.addEventListener("input", drawList);

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
      feature.text = `${name} ${feature.id} ${district || ""} ${road || ""}`.toLowerCase();
    }
    cameras = body.features.sort((a, b) => byName(a.properties.name, b.properties.name));
    drawMap();
    drawList();
    reopenSaved();
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
  player.append(close);
  tiles.set(feature.id, player);
  while (tiles.size > layout * layout) closeTile(tiles.keys().next().value);
  drawGrid();
  drawList();
  saveWall();
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
if (!hasToken() && !embedded) notice.textContent = t("signin");
getToken().then((token) => {
  restoreWall(token);
  loadCameras();
  // The page's one event stream; the tiles listen to it too. A grant that
  // starts, changes or ends changes which cameras may be watched.
  const events = gatewayEvents("/", getToken);
  for (const type of ["grant_created", "grant_updated", "grant_revoked"]) {
    events.addEventListener(type, () => loadCameras());
  }
  // The inventory was reloaded: every open page asks again, spread over a second so
  // that they do not all fetch 15,000 cameras at the same moment.
  events.addEventListener("cameras_changed", () => setTimeout(loadCameras, Math.random() * 1000));
});
