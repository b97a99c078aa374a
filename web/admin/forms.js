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

// A 422 {error, field, fields}: every field's message next to it (`fields` names each
// field found wrong, when the gateway sends it), the first one focused.
export function showFieldError(root, { error, field, fields }) {
  showFieldErrors(root, fields && Object.keys(fields).length ? fields : { [field || ""]: error || "" });
}

// `problems`: field -> message. A field without a place of its own shows under the form.
export function showFieldErrors(root, problems) {
  let first = null;
  for (const [field, error] of Object.entries(problems)) {
    const slot =
      root.querySelector(`.field-error[data-for="${field}"]`) ||
      root.querySelector(".field-error[data-for=grant], .field-error[data-for=authorization]");
    const message = fieldMessage(error, field);
    slot.textContent = slot.textContent ? `${slot.textContent} ${message}` : message;
    // The field's input, or the fieldset that holds a picker (its search takes the focus).
    const input =
      root.querySelector(`[name="${field}"]:not([type=checkbox])`) ||
      root.querySelector(`fieldset[id$="-${field}"]`);
    if (!input) continue;
    input.setAttribute("aria-invalid", "true");
    first ??= input.matches("fieldset") ? input.querySelector("input[type=search]") : input;
  }
  first?.focus();
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
