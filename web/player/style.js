// The tile's look: one constructed stylesheet shared by every tile's shadow root.

const STYLE = `
:host { display: block; position: relative; aspect-ratio: 16 / 9; overflow: hidden;
  background: #0b0f14; color: #f5f7fa; border-radius: 6px;
  font: 14px/1.35 system-ui, "Noto Sans TC", "PingFang TC", sans-serif; }
:host(:fullscreen) { aspect-ratio: auto; border-radius: 0; }
video { display: block; position: absolute; inset: 0; width: 100%; height: 100%; object-fit: contain;
  background: #0b0f14; }
.bar { position: absolute; left: 0; right: 0; display: flex; align-items: center; gap: .5rem;
  padding: 0 0 0 .6rem; min-height: 44px; }
.top { top: 0; background: linear-gradient(#000a, #0000); }
.bottom { bottom: 0; background: linear-gradient(#0000, #000b); }
.label { font-weight: 600; flex: 1; min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.state { display: inline-flex; align-items: center; gap: .4rem; flex: 1; min-width: 0; }
.state::before { content: ""; width: .6rem; height: .6rem; border-radius: 50%; background: #f5b301; flex: none; }
:host([state=live]) .state::before { background: #2ecc71; }
:host([state=revoked]) .state::before, :host([state=denied]) .state::before,
:host([state=error]) .state::before { background: #e74c3c; }
:host([state=ended]) .state::before, :host([state=expired]) .state::before,
:host([state=stopped]) .state::before { background: #95a5a6; }
.stats, .countdown { font-variant-numeric: tabular-nums; white-space: nowrap; opacity: .9; }
.countdown { background: #b9770e; padding: .1rem .45rem; border-radius: 4px; }
.countdown.urgent { background: #c0392b; }
.lite { background: #1f618d; padding: .1rem .45rem; border-radius: 4px; white-space: nowrap; }
.saver { font-size: .8rem; padding: 0 .5rem; white-space: nowrap; opacity: .75; }
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
