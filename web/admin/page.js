// What every tab uses: the banner, the API call (Bearer header), table cells and buttons.



import { authorized } from "/web/signin.js";

export const $ = (selector) => document.querySelector(selector);
const banner = $("#banner");

export function show(message) {
  banner.textContent = message;
  banner.hidden = !message;
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = await authorized(body ? { "Content-Type": "application/json" } : {});
  const response = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  // An error's `code` is what to act on; `data.error` is the words to show.
  return { status: response.status, ok: response.ok, code: data.code || "", data };
}

export function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (className) td.className = className;
  return td;
}

export function button(label, onClick, className = "") {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.className = className;
  b.addEventListener("click", onClick);
  return b;
}

export function bytes(n) {
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
