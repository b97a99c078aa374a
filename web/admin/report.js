// The governance report: HTML in a frame (to print), CSV and JSON downloads.

import { authorized } from "/web/signin.js";
import { clearErrors, showFieldError } from "./forms.js";
import { $ } from "./page.js";

const reportForm = $("#report-form");
const reportFrame = $("#report-frame");

function reportQuery(format) {
  const f = reportForm.elements;
  const params = new URLSearchParams({ from: f.from.value, to: f.to.value, format });
  if (f.project.value.trim()) params.set("project", f.project.value.trim());
  return `/api/report?${params}`;
}

async function fetchReport(format) {
  clearErrors(reportForm);
  if (!reportForm.reportValidity()) return null;
  const response = await fetch(reportQuery(format), { headers: await authorized() });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    showFieldError(reportForm, { error: data.error || response.statusText, field: "report" });
    return null;
  }
  return response;
}

reportForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetchReport("html");
  if (!response) return;
  // The report is a page of its own (its style inline, allowed by its hash in this
  // page's Content-Security-Policy); it prints from its frame.
  reportFrame.srcdoc = await response.text();
  reportFrame.hidden = false;
  $("#print-report").disabled = false;
});
$("#print-report").addEventListener("click", () => reportFrame.contentWindow?.print());
for (const format of ["csv", "json"]) {
  $(`#report-${format}`).addEventListener("click", async () => {
    const response = await fetchReport(format);
    if (!response) return;
    const url = URL.createObjectURL(await response.blob());
    const link = document.createElement("a");
    link.href = url;
    link.download = `report-${reportForm.elements.from.value}-${reportForm.elements.to.value}.${format}`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  });
}
