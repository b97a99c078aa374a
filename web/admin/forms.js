// Forms: local times to ISO 8601 and back, a field's error next to it, and the
// reason dialog (revoke, withdraw, decline, end).

import { $ } from "./page.js";
import { FIELD_ZH, lang, t } from "./text.js";

// datetime-local inputs hold local time; the API wants ISO 8601 with a timezone.
export const toIso = (local) => (local ? new Date(local).toISOString() : "");
export function toLocal(iso) {
  const d = new Date(iso);
  return new Date(d - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

export function clearErrors(root) {
  for (const p of root.querySelectorAll(".field-error")) p.textContent = "";
  for (const el of root.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

export function fieldMessage(error, field) {
  const message = error.startsWith(`${field}: `) ? error.slice(field.length + 2) : error;
  if (lang() === "en") return message;
  for (const [pattern, zh] of FIELD_ZH) if (pattern.test(message)) return message.replace(pattern, zh);
  return message;
}

// A 422 {error, field}: the message goes next to that field.
export function showFieldError(root, { error, field }) {
  const slot = root.querySelector(`.field-error[data-for="${field}"]`) || root.querySelector(".field-error[data-for=grant]");
  slot.textContent = fieldMessage(error || "", field || "");
  const input = root.querySelector(`[name="${field}"]`);
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

// --- the reason dialog -----------------------------------------------------------
const dialog = $("#reason-dialog");
export function askReason(title, confirmLabel = t("confirmRevoke")) {
  $("#reason-title").textContent = title;
  $("#reason-confirm").textContent = confirmLabel;
  $("#reason-input").value = "";
  dialog.querySelector(".field-error").textContent = "";
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => resolve(dialog.returnValue === "confirm" ? $("#reason-input").value.trim() : null),
      { once: true },
    );
  });
}
