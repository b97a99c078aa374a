// A camera picker for inventories of 15,000 cameras (issue 26): a search over names,
// districts, roads and ids (web/fold.js: 台/臺 and other variants are one), whole
// districts and roads at a click, "select all matches", a lasso on the map, and a
// count of what is chosen. Only the rows in view exist (a list of fixed-height rows
// in a scroll box), and the map's points are drawn on one canvas: no 15,000
// checkboxes, no 15,000 markers.

import { fold, matcher } from "/web/fold.js";
import { districtLabel } from "./cameras.js";
import { lang, onLanguage, t } from "./text.js";

const ROW = 44; // px: a row is a touch target, and every row has this height
const SPARE_ROWS = 8; // drawn above and below the visible ones, for smooth scrolling
const MAX_ROAD_CHIPS = 12;
const MAX_DISTRICT_CHIPS = 40;

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function chipButton(className, onClick) {
  const b = element("button", className);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

export class CameraPicker {
  // `root`: the form's fieldset; `withMap`: a map to lasso on (the grant form's).
  constructor(root, { withMap = false } = {}) {
    this.root = root;
    this.all = []; // {id, name, district, road, lat, lon, text}
    this.matches = [];
    this.selected = new Set();
    this.onlySelected = false;
    this.build(withMap);
    onLanguage(() => this.translate());
  }

  build(withMap) {
    const bar = element("div", "picker-bar");
    this.search = element("input", "picker-search");
    this.search.type = "search";
    this.search.autocomplete = "off";
    this.search.addEventListener("input", () => this.refilter());
    this.pickMatches = chipButton("pick-matches", () => this.selectMatches());
    this.pickNone = chipButton("pick-none", () => this.set([]));
    this.onlyBox = element("input", "only-selected");
    this.onlyBox.type = "checkbox";
    this.onlyBox.addEventListener("change", () => {
      this.onlySelected = this.onlyBox.checked;
      this.refilter();
    });
    this.onlyLabel = element("span");
    const only = element("label", "check");
    only.append(this.onlyBox, " ", this.onlyLabel);
    bar.append(this.search, this.pickMatches, this.pickNone, only);

    this.districts = element("div", "picker-chips districts");
    this.districts.setAttribute("role", "group");
    this.roads = element("div", "picker-chips roads");
    this.roads.setAttribute("role", "group");

    const body = element("div", "picker-body");
    // One tab stop for the whole list (a listbox): the arrow keys move through it,
    // Space picks; the rows come and go as it scrolls, the focus stays on the list.
    this.list = element("div", "picker-list");
    this.list.tabIndex = 0;
    this.list.setAttribute("role", "listbox");
    this.list.setAttribute("aria-multiselectable", "true");
    this.active = 0;
    this.spacer = element("div", "picker-spacer");
    this.list.append(this.spacer);
    this.list.addEventListener("scroll", () => this.drawRows());
    this.list.addEventListener("keydown", (event) => this.key(event));
    this.list.addEventListener("change", (event) => {
      const box = event.target;
      if (box.name !== "cameras") return;
      this.active = Number(box.closest(".pick-row").dataset.index);
      if (box.checked) this.selected.add(box.value);
      else this.selected.delete(box.value);
      this.changed();
    });
    new ResizeObserver(() => this.drawRows()).observe(this.list);
    body.append(this.list);
    if (withMap && window.L) {
      this.mapBox = element("div", "picker-map");
      body.append(this.mapBox);
      body.classList.add("with-map");
    }
    this.count = element("p", "picker-count");
    this.count.setAttribute("aria-live", "polite");

    const slot = this.root.querySelector(".camera-checks");
    slot.replaceWith(bar, this.districts, this.roads, body, this.count);
    if (this.mapBox) this.map = new PickerMap(this.mapBox, this);
    this.translate();
  }

  translate() {
    this.search.placeholder = t("pickerSearch");
    this.search.setAttribute("aria-label", t("pickerSearch"));
    this.pickNone.textContent = t("clearSelection");
    this.onlyLabel.textContent = t("onlySelected");
    this.districts.setAttribute("aria-label", t("districtChips"));
    this.roads.setAttribute("aria-label", t("roadChips"));
    this.list.setAttribute("aria-label", t("cameras"));
    this.map?.translate();
    this.refresh();
  }

  // The inventory (GeoJSON features); what was chosen stays chosen.
  set cameras(features) {
    this.all = features.map((f) => {
      const p = f.properties;
      return {
        id: f.id,
        name: p.name || f.id,
        district: p.district || "",
        road: p.road || "",
        lat: f.geometry.coordinates[1],
        lon: f.geometry.coordinates[0],
        // Folded once, here: a search then folds only the query (fold is idempotent).
        text: fold(`${p.name} ${p.district || ""} ${p.road || ""} ${f.id}`),
      };
    });
    this.byDistrict = groupBy(this.all, "district");
    this.byRoad = groupBy(this.all, "road");
    this.refilter();
    this.map?.fit();
  }

  get value() {
    return [...this.selected];
  }

  set(ids) {
    this.selected = new Set(ids);
    this.changed();
  }

  // A new form: no search, nothing chosen but `ids`, the list at its top.
  reset(ids = []) {
    this.search.value = "";
    this.onlyBox.checked = this.onlySelected = false;
    this.selected = new Set(ids);
    this.list.scrollTop = 0;
    this.refilter();
    this.map?.fit();
  }

  selectMatches() {
    for (const c of this.matches) this.selected.add(c.id);
    this.changed();
  }

  // All or none of `cameras`: all unless every one is chosen already.
  toggleGroup(cameras) {
    const all = cameras.every((c) => this.selected.has(c.id));
    for (const c of cameras) {
      if (all) this.selected.delete(c.id);
      else this.selected.add(c.id);
    }
    this.changed();
  }

  add(cameras) {
    for (const c of cameras) this.selected.add(c.id);
    this.changed();
  }

  changed() {
    if (this.onlySelected) this.refilter();
    else this.refresh();
    this.root.dispatchEvent(new Event("change", { bubbles: true }));
  }

  refilter() {
    const match = matcher(this.search.value);
    this.matches = this.all.filter((c) => match(c.text) && (!this.onlySelected || this.selected.has(c.id)));
    this.active = 0;
    this.refresh();
  }

  refresh() {
    this.drawRows(true);
    this.drawChips();
    const n = this.selected.size;
    this.count.textContent = t("pickedCount")(n, this.matches.length, this.all.length);
    this.root.dataset.selected = String(n);
    this.root.dataset.matches = String(this.matches.length);
    this.pickMatches.textContent = t("selectMatches")(this.matches.length);
    this.pickMatches.disabled = !this.matches.length;
    this.map?.draw();
  }

  // Only the rows in view (and a few spare) exist; each sits at its index × ROW. A
  // scroll keeps the rows still in view as they are (one may have the keyboard's focus)
  // and adds the others before or after them, so the DOM order is the list's order.
  drawRows(force = false) {
    const height = this.list.clientHeight || ROW * 6;
    const first = Math.max(0, Math.floor(this.list.scrollTop / ROW) - SPARE_ROWS);
    const last = Math.min(this.matches.length, Math.ceil((this.list.scrollTop + height) / ROW) + SPARE_ROWS);
    if (!force && first === this.first && last === this.last) return;
    this.first = first;
    this.last = last;
    this.spacer.style.height = `${this.matches.length * ROW}px`;
    const rows = (from, to) => {
      const made = [];
      for (let i = from; i < to; i++) made.push(this.row(this.matches[i], i));
      return made;
    };
    if (!force) {
      for (const el of [...this.spacer.children]) {
        const i = Number(el.dataset.index);
        if (i < first || i >= last) el.remove();
      }
      const kept = this.spacer.children;
      if (kept.length) {
        this.spacer.prepend(...rows(first, Number(kept[0].dataset.index)));
        this.spacer.append(...rows(Number(kept[kept.length - 1].dataset.index) + 1, last));
        return;
      }
    }
    this.spacer.replaceChildren(...rows(first, last));
    const active = first <= this.active && this.active < last;
    if (active) this.list.setAttribute("aria-activedescendant", `${this.root.id}-row-${this.active}`);
    else this.list.removeAttribute("aria-activedescendant");
  }

  row(camera, index) {
    const label = element("label", "pick-row check");
    label.style.top = `${index * ROW}px`;
    label.dataset.index = String(index);
    label.id = `${this.root.id}-row-${index}`;
    label.setAttribute("role", "option");
    label.setAttribute("aria-selected", String(this.selected.has(camera.id)));
    label.classList.toggle("active", index === this.active);
    const box = element("input");
    box.type = "checkbox";
    box.name = "cameras";
    box.value = camera.id;
    box.tabIndex = -1; // the list is the tab stop
    box.checked = this.selected.has(camera.id);
    const place = [camera.district, camera.road, camera.id].filter(Boolean).join(" · ");
    label.append(box, element("span", "name", camera.name), element("small", "place", place));
    label.title = `${camera.name} (${place})`;
    return label;
  }

  // The list's keys: arrows, Page Up/Down, Home and End move; Space or Enter picks.
  key(event) {
    const page = Math.max(1, Math.floor(this.list.clientHeight / ROW) - 1);
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page };
    const n = this.matches.length;
    if (!n) return;
    let to = this.active;
    if (event.key in moves) to += moves[event.key];
    else if (event.key === "Home") to = 0;
    else if (event.key === "End") to = n - 1;
    else if (event.key === " " || event.key === "Enter") {
      event.preventDefault();
      this.toggleGroup([this.matches[this.active]]);
      return;
    } else return;
    event.preventDefault();
    this.active = Math.max(0, Math.min(n - 1, to));
    const top = this.active * ROW;
    if (top < this.list.scrollTop) this.list.scrollTop = top;
    else if (top + ROW > this.list.scrollTop + this.list.clientHeight) {
      this.list.scrollTop = top + ROW - this.list.clientHeight;
    }
    this.drawRows(true);
  }

  // Whole districts always; the roads among the matches once something is searched.
  drawChips() {
    const districts = [...(this.byDistrict || [])]
      .filter(([district]) => district)
      .sort((a, b) => a[0].localeCompare(b[0], "zh-Hant"))
      .slice(0, MAX_DISTRICT_CHIPS);
    this.districts.replaceChildren(
      ...districts.map(([district, members]) => this.chip("district", district, districtLabel(district), members)),
    );
    const roads = new Map();
    if (this.search.value.trim()) {
      for (const c of this.matches) if (c.road) roads.set(c.road, (roads.get(c.road) || 0) + 1);
    }
    this.roads.replaceChildren(
      ...[...roads]
        .sort((a, b) => b[1] - a[1])
        .slice(0, MAX_ROAD_CHIPS)
        .map(([road]) => this.chip("road", road, road, this.byRoad.get(road))),
    );
    this.roads.hidden = !roads.size;
  }

  chip(kind, key, label, members) {
    const total = members.length;
    const chosen = members.reduce((n, c) => n + this.selected.has(c.id), 0);
    const b = chipButton(`chip ${kind}`, () => this.toggleGroup(members));
    b.dataset[kind] = key;
    b.setAttribute("aria-pressed", String(chosen === total && total > 0));
    b.textContent = `${label} ${chosen}/${total.toLocaleString(lang())}`;
    b.title = t(chosen === total ? "chipNone" : "chipAll")(label);
    return b;
  }
}

// The picker's map: every match a dot on one canvas (chosen ones filled), redrawn on
// each move; in lasso mode a drag draws a loop and the matches inside it are chosen.
class PickerMap {
  constructor(box, picker) {
    this.picker = picker;
    this.map = L.map(box, { zoomControl: false, zoomAnimation: false, zoomSnap: 0.25, maxZoom: 19 }).setView([25.04, 121.54], 12);
    this.zoom = null;
    this.canvas = element("canvas", "picker-points");
    box.append(this.canvas);
    this.lassoButton = chipButton("lasso", () => this.setLasso(!this.lassoOn));
    this.lassoButton.setAttribute("aria-pressed", "false");
    const bar = picker.root.querySelector(".picker-bar");
    bar.append(this.lassoButton);
    this.map.on("move zoom resize viewreset", () => this.draw());
    new ResizeObserver(() => {
      this.map.invalidateSize();
      if (!this.fitted) this.fit();
      this.draw();
    }).observe(box);
    fetch("/config.json")
      .then((response) => response.json())
      .then(({ map: settings }) => {
        // Offline, the tiles fail and the points stay on a plain background.
        L.tileLayer(settings.tile_url, { attribution: settings.attribution, maxZoom: 19 }).addTo(this.map);
      })
      .catch(() => {});
    this.canvas.addEventListener("pointerdown", (event) => this.startLoop(event));
    this.canvas.addEventListener("pointermove", (event) => this.extendLoop(event));
    this.canvas.addEventListener("pointerup", () => this.closeLoop());
    this.canvas.addEventListener("pointercancel", () => (this.loop = null));
    this.translate();
  }

  // Leaflet's own controls in the page's language: its zoom buttons are remade.
  translate() {
    this.zoom?.remove();
    this.zoom = L.control.zoom({ zoomInTitle: t("zoomIn"), zoomOutTitle: t("zoomOut") }).addTo(this.map);
    this.lassoButton.textContent = t("lasso");
    this.lassoButton.title = t("lassoHint");
    this.map.getContainer().setAttribute("aria-label", t("pickerMap"));
  }

  fit() {
    const points = this.picker.all;
    const size = this.map.getSize();
    if (!points.length || !size.x || !size.y) return;
    let [s, w, n, e] = [90, 180, -90, -180];
    for (const c of points) {
      s = Math.min(s, c.lat);
      n = Math.max(n, c.lat);
      w = Math.min(w, c.lon);
      e = Math.max(e, c.lon);
    }
    this.map.fitBounds([[s, w], [n, e]], { padding: [16, 16], maxZoom: 16, animate: false });
    this.fitted = true;
  }

  setLasso(on) {
    this.lassoOn = on;
    this.lassoButton.setAttribute("aria-pressed", String(on));
    this.canvas.classList.toggle("lasso-on", on);
    if (on) this.map.dragging.disable();
    else this.map.dragging.enable();
  }

  point(event) {
    const r = this.canvas.getBoundingClientRect();
    return [event.clientX - r.left, event.clientY - r.top];
  }

  startLoop(event) {
    if (!this.lassoOn) return;
    this.canvas.setPointerCapture(event.pointerId);
    this.loop = [this.point(event)];
  }

  extendLoop(event) {
    if (!this.loop) return;
    this.loop.push(this.point(event));
    this.draw();
  }

  closeLoop() {
    const loop = this.loop;
    this.loop = null;
    if (!loop || loop.length < 3) return this.draw();
    const inside = this.picker.matches.filter((c) => {
      const p = this.map.latLngToContainerPoint([c.lat, c.lon]);
      return insidePolygon(p.x, p.y, loop);
    });
    this.picker.add(inside);
  }

  draw() {
    const size = this.map.getSize();
    const ratio = window.devicePixelRatio || 1;
    if (this.canvas.width !== size.x * ratio || this.canvas.height !== size.y * ratio) {
      this.canvas.width = size.x * ratio;
      this.canvas.height = size.y * ratio;
      this.canvas.style.width = `${size.x}px`;
      this.canvas.style.height = `${size.y}px`;
    }
    const g = this.canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, size.x, size.y);
    const selected = this.picker.selected;
    const chosen = new Path2D();
    const other = new Path2D();
    let shown = 0;
    for (const c of this.picker.matches) {
      const p = this.map.latLngToContainerPoint([c.lat, c.lon]);
      if (p.x < -4 || p.y < -4 || p.x > size.x + 4 || p.y > size.y + 4) continue;
      const path = selected.has(c.id) ? chosen : other;
      path.moveTo(p.x + 3.5, p.y);
      path.arc(p.x, p.y, 3.5, 0, 2 * Math.PI);
      shown += 1;
    }
    g.fillStyle = "#7d8a99";
    g.fill(other);
    g.fillStyle = "#0b5cad";
    g.strokeStyle = "#fff";
    g.fill(chosen);
    g.stroke(chosen);
    if (this.loop) {
      g.beginPath();
      g.moveTo(...this.loop[0]);
      for (const p of this.loop) g.lineTo(...p);
      g.closePath();
      g.fillStyle = "#0b5cad22";
      g.fill();
      g.strokeStyle = "#0b5cad";
      g.setLineDash([6, 4]);
      g.stroke();
      g.setLineDash([]);
    }
    this.canvas.dataset.shown = String(shown);
  }
}

function groupBy(cameras, key) {
  const groups = new Map();
  for (const c of cameras) {
    if (!groups.has(c[key])) groups.set(c[key], []);
    groups.get(c[key]).push(c);
  }
  return groups;
}

// Even-odd ray casting: is (x, y) inside the polygon of [x, y] points?
function insidePolygon(x, y, polygon) {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, yi] = polygon[i];
    const [xj, yj] = polygon[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}
