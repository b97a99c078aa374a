// The camera inventory as administrators see it (every camera, GeoJSON features), by id,
// and a grant's cameras said in a line: by district when there are many.

import { $, api } from "./page.js";
import { lang, t } from "./text.js";

export let cameras = []; // GeoJSON features: administrators see every camera
let byId = new Map();
const listeners = [];

// `use(features)` runs with every inventory the console loads (the pickers).
export function onCameras(use) {
  listeners.push(use);
}

export function cameraName(id) {
  return byId.get(id)?.properties.name || id;
}

export async function loadCameras() {
  const { ok, data } = await api("/api/cameras");
  if (!ok) return;
  cameras = data.features;
  byId = new Map(cameras.map((c) => [c.id, c]));
  for (const use of listeners) use(cameras);
  const select = $("#a-camera_id");
  select.replaceChildren(
    select.options[0],
    ...cameras.map((c) => new Option(`${c.properties.name} (${c.id})`, c.id)),
  );
}

// Taipei's twelve districts in English, for the English console; a district not
// listed shows as the inventory spells it. A city prefix (臺北市, 台北市) is kept out.
const DISTRICTS_EN = {
  中正區: "Zhongzheng", 大同區: "Datong", 中山區: "Zhongshan", 松山區: "Songshan",
  大安區: "Da'an", 萬華區: "Wanhua", 信義區: "Xinyi", 士林區: "Shilin",
  北投區: "Beitou", 內湖區: "Neihu", 南港區: "Nangang", 文山區: "Wenshan",
};

export function districtLabel(district) {
  if (!district) return t("noDistrict");
  if (lang() !== "en") return district;
  const bare = district.replace(/^[臺台]北市/, "");
  return DISTRICTS_EN[bare] ? `${DISTRICTS_EN[bare]} District` : district;
}

// A few cameras by name; more by district, the largest first ("信義區 124 支、大安區 30 支"),
// so that a 900-camera grant takes one line. Cameras no longer in the inventory are
// counted apart (`gone`: their ids).
export const NAMED_UP_TO = 3;
const DISTRICTS_SHOWN = 3;

export function cameraSummary(ids, gone = []) {
  const removed = new Set(gone);
  if (ids.length <= NAMED_UP_TO) {
    return ids.map((id) => cameraName(id) + (removed.has(id) ? t("gone") : "")).join(", ");
  }
  const counts = new Map();
  let goneCount = 0;
  for (const id of ids) {
    if (removed.has(id) || !byId.has(id)) {
      goneCount += 1;
      continue;
    }
    const district = byId.get(id).properties.district || "";
    counts.set(district, (counts.get(district) || 0) + 1);
  }
  const sorted = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  // The largest few districts; the rest in one count, so the line stays short.
  const shown = sorted.length > DISTRICTS_SHOWN + 1 ? sorted.slice(0, DISTRICTS_SHOWN) : sorted;
  const parts = shown.map(([district, n]) => t("inDistrict")(districtLabel(district), n));
  const rest = sorted.slice(shown.length);
  if (rest.length) parts.push(t("otherDistricts")(rest.length, rest.reduce((sum, [, n]) => sum + n, 0)));
  if (goneCount) parts.push(t("goneCount")(goneCount));
  return parts.join(t("listSeparator"));
}
