// The tile's look: one constructed stylesheet shared by every tile's shadow root.

const STYLE = `
:host { display: block; position: relative; aspect-ratio: 16 / 9; overflow: hidden;
  background: #0b0f14; color: #f5f7fa; border-radius: 6px; container-type: inline-size;
  font: 14px/1.35 system-ui, "Noto Sans TC", "PingFang TC", sans-serif; }
/* The words grow with the tile: 11 px on a phone's 2×2, 14 px at 480 px, 20 px on a wall. */
.bar, .message { font-size: clamp(11px, 1.6cqi + 7px, 20px); }
:host(:fullscreen) { aspect-ratio: auto; border-radius: 0; }
video { display: block; position: absolute; inset: 0; width: 100%; height: 100%; object-fit: contain;
  background: #0b0f14; }
.bar { position: absolute; left: 0; right: 0; display: flex; align-items: center; gap: .5em;
  padding: 0 0 0 .6em; min-height: 44px; overflow: hidden; white-space: nowrap; }
.bar > *, ::slotted(*) { flex: none; }
.fitting > * { flex-shrink: 0 !important; }
.yield { display: none !important; }
.top.wrap .label { white-space: normal; overflow-wrap: anywhere; min-width: 6em; }
.bottom.wrap { flex-wrap: wrap; row-gap: 0; padding-top: .2em; padding-bottom: .2em; }
.top { top: 0; background: linear-gradient(#000a, #0000); }
.bottom { bottom: 0; background: linear-gradient(#0000, #000b); }
.label { font-weight: 600; flex: 1 1 auto; min-width: 0; overflow: hidden; text-overflow: ellipsis; }
.state { display: inline-flex; align-items: center; flex: 0 1 auto; min-width: 0; overflow: hidden; }
.state::before { content: ""; width: .6em; height: .6em; margin-right: .4em; border-radius: 50%;
  background: #f5b301; flex: none; }
.word, .why { flex: none; }
.clock { font-variant-numeric: tabular-nums; opacity: .85; margin-right: auto; }
.clock.stale { color: #f5b301; opacity: 1; font-weight: 600; }
:host([state=live]) .state::before { background: #2ecc71; }
:host([state=revoked]) .state::before, :host([state=denied]) .state::before,
:host([state=error]) .state::before { background: #e74c3c; }
:host([state=ended]) .state::before, :host([state=expired]) .state::before,
:host([state=stopped]) .state::before { background: #95a5a6; }
.stats, .countdown { font-variant-numeric: tabular-nums; opacity: .9; }
.countdown, .lite, .masks { padding: .1em .45em; border-radius: 4px; }
.countdown { background: #b9770e; }
.countdown.urgent { background: #c0392b; }
.lite { background: #1f618d; }
.masks { background: #8e44ad; font-weight: 600; }
.saver { font-size: .85em; padding: 0 .5em; opacity: .75; }
.saver[aria-pressed=true] { opacity: 1; color: #7fd3ff; }
.saver:disabled { opacity: .35; cursor: not-allowed; }
.message { position: absolute; inset: 25% 8%; display: grid; place-items: center; text-align: center;
  font-size: 1.05rem; white-space: pre-line; pointer-events: none; text-shadow: 0 1px 2px #000; }
.message:empty { display: none; }
button { min-width: 44px; min-height: 44px; border: 0; background: transparent; color: inherit;
  font: inherit; cursor: pointer; display: grid; place-items: center; }
button:focus-visible { outline: 2px solid #5dade2; outline-offset: -4px; }
[hidden] { display: none !important; }
`;

// One constructed stylesheet for every tile. A <style> element is only the fallback
// for browsers without constructable stylesheets (before Safari 16.4).
let sheet = null;
export function adoptStyle(root) {
  if (!("adoptedStyleSheets" in ShadowRoot.prototype)) {
    const style = document.createElement("style");
    style.textContent = STYLE;
    root.prepend(style);
    return;
  }
  if (!sheet) {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(STYLE);
  }
  root.adoptedStyleSheets = [sheet];
}
