// Emergency access: the table, the form that opens a camera, the alarm, reviews.

import { getToken } from "/web/signin.js";
import { cameraName } from "./cameras.js";
import { askReason, clearErrors, showFieldError } from "./forms.js";
import { $, api, button, cell, show } from "./page.js";
import { has, me } from "./roles.js";
import { lang, onLanguage, t, when } from "./text.js";
import { drawWaiting } from "./waiting.js";
import { nameCell } from "./names.js";

export let emergencies = [];
const reviewDialog = $("#review-dialog");

function reviewText(e) {
  if (e.justified === null) return t("notReviewed");
  return `${t(e.justified ? "justified" : "notJustified")} (${e.reviewed_by}): ${e.review_note}`;
}

export function drawEmergencies() {
  const statuses = t("emergencyStatuses");
  $("#emergency-table tbody").replaceChildren(
    ...emergencies.map((e) => {
      const tr = document.createElement("tr");
      tr.dataset.emergency = e.id;
      tr.dataset.status = e.status;
      const actions = cell("", "actions");
      if (has("admin", "police_liaison") && e.status === "active") {
        actions.append(button(t("endEmergency"), () => endEmergency(e), "danger end-emergency"));
      }
      if (has("admin", "police_liaison") && e.justified === null && e.account !== me.account) {
        actions.append(button(t("review"), () => reviewEmergency(e), "review-emergency"));
      }
      tr.append(
        nameCell(e.account),
        cell(cameraName(e.camera_id)),
        cell(`${when(e.starts_at, "short")} – ${when(e.ended_at || e.ends_at, "short")}`),
        cell(e.danger),
        cell(statuses[e.status] || e.status),
        cell(reviewText(e)),
        actions,
      );
      return tr;
    }),
  );
}

export async function loadEmergencies() {
  if (!has("admin", "police_liaison", "auditor", "emergency")) return;
  const { ok, data } = await api("/api/emergency");
  if (!ok) return;
  emergencies = data.emergencies;
  drawEmergencies();
  drawWaiting();
  if (data.cameras) {
    const select = $("#e-camera");
    if (!select.options.length) {
      select.replaceChildren(...data.cameras.map((c) => new Option(`${c.name} (${c.id})`, c.id)));
    }
    // Until the list has arrived there is no camera to name: nothing to submit.
    $("#e-submit").disabled = !select.options.length;
    const minutes = $("#e-minutes");
    minutes.max = data.limits.minutes;
    if (!minutes.value) minutes.value = data.limits.minutes;
  }
}

export function reviewEmergency(e) {
  $("#review-title").textContent = t("reviewTitle")(e);
  reviewDialog.querySelector("form").reset();
  reviewDialog.returnValue = "";
  reviewDialog.showModal();
  reviewDialog.addEventListener(
    "close",
    async () => {
      if (reviewDialog.returnValue !== "confirm") return;
      const choice = reviewDialog.querySelector("input[name=justified]:checked");
      const body = { justified: choice?.value === "yes", note: $("#review-note").value.trim() };
      const { ok, data } = await api(`/api/emergency/${e.id}/review`, { method: "POST", body });
      if (!ok) show(t("failed") + data.error);
      loadEmergencies();
    },
    { once: true },
  );
}

async function endEmergency(e) {
  const reason = await askReason(t("endTitle")(e), t("confirmEnd"));
  if (!reason) return;
  const { ok, data } = await api(`/api/emergency/${e.id}/end`, { method: "POST", body: { reason } });
  if (!ok) show(t("failed") + data.error);
  loadEmergencies();
}

// An account allowed emergency access opens a camera by stating the danger; the
// picture plays here, in the same <cctv-player> the viewer page uses (WHEP as usual).
export const emergencyForm = $("#emergency-form");
emergencyForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(emergencyForm);
  const f = emergencyForm.elements;
  const camera = f.camera.value;
  if (!camera) return; // the list has not arrived (the button is disabled until it has)
  const body = { danger: f.danger.value, minutes: Number(f.minutes.value) || undefined };
  const { ok, code, data } = await api(`/api/emergency/${encodeURIComponent(camera)}`, { method: "POST", body });
  if (data.field) return showFieldError(emergencyForm, data);
  if (!ok) return showFieldError(emergencyForm, { error: data.error || code, field: "emergency" });
  const player = document.createElement("cctv-player");
  player.setAttribute("camera", camera);
  player.setAttribute("label", cameraName(camera));
  player.setAttribute("ends-at", data.emergency.ends_at);
  player.setAttribute("lang", lang());
  player.tokenProvider = getToken;
  $("#emergency-players").replaceChildren(player);
  loadEmergencies();
});

// Every administrator's and liaison's console hears an emergency access at once: a
// banner that stays until dismissed, and a sound (WebAudio: no file to fetch).
export function alarm(emergency) {
  $("#alarm-text").textContent = t("emergencyAlarm")(emergency);
  $("#alarm").hidden = false;
  try {
    const audio = new AudioContext();
    for (const [at, pitch] of [[0, 880], [0.35, 660], [0.7, 880]]) {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = pitch;
      gain.gain.value = 0.2;
      tone.connect(gain).connect(audio.destination);
      tone.start(audio.currentTime + at);
      tone.stop(audio.currentTime + at + 0.3);
    }
    document.body.dataset.alarmSounded = String(Number(document.body.dataset.alarmSounded || 0) + 1);
  } catch {
    // No audio device: the banner stays.
  }
}
$("#alarm-close").addEventListener("click", () => ($("#alarm").hidden = true));

onLanguage(drawEmergencies);
