// The camera inventory as administrators see it (every camera, GeoJSON features).

import { $, api } from "./page.js";

export let cameras = []; // GeoJSON features: administrators see every camera

export function cameraName(id) {
  return cameras.find((c) => c.id === id)?.properties.name || id;
}

export async function loadCameras() {
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
