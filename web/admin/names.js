// Names that could deceive (issue 27): the gateway refuses invisible characters in
// account and project names and folds look-alike forms (gateway/access/names.py), but
// it keeps letters of other scripts, since names here mix Han and Latin by right. A
// word that mixes the look-alike alphabets, Latin with Cyrillic or Greek ("аdmin" with
// a Cyrillic а), is shown with a ⚠ and a title that says so, wherever the console
// shows a name people tell apart by reading.

import { lang } from "./text.js";

const LOOK_ALIKE = [
  ["Latin", "拉丁", /\p{Script=Latin}/u],
  ["Cyrillic", "西里爾", /\p{Script=Cyrillic}/u],
  ["Greek", "希臘", /\p{Script=Greek}/u],
];

// The look-alike scripts mixed inside one word of `name`, or [] (each [en, zh]).
export function mixedScripts(name) {
  const found = new Map();
  for (const word of String(name ?? "").split(/[^\p{L}\p{M}]+/u)) {
    const scripts = LOOK_ALIKE.filter(([, , pattern]) => [...word].some((ch) => pattern.test(ch)));
    if (scripts.length > 1) for (const [en, zh] of scripts) found.set(en, zh);
  }
  return [...found];
}

function warning(scripts) {
  const mark = document.createElement("span");
  mark.className = "mixed-script";
  mark.textContent = "⚠";
  mark.title =
    lang() === "en"
      ? `This name mixes ${scripts.map(([en]) => en).join(" and ")} letters in one word: it may imitate another name`
      : `此名稱在同一個詞中混用${scripts.map(([, zh]) => zh).join("與")}字母，可能是仿冒其他名稱`;
  mark.setAttribute("role", "img");
  mark.setAttribute("aria-label", mark.title);
  return mark;
}

// A name as nodes: its text, and a ⚠ after it when a word mixes look-alike scripts.
export function nameNodes(name) {
  const text = document.createTextNode(name ?? "");
  const scripts = mixedScripts(name);
  return scripts.length ? [text, " ", warning(scripts)] : [text];
}

// Several names, comma-separated, each marked on its own.
export function namesNodes(names, separator = ", ") {
  const nodes = [];
  for (const name of names) {
    if (nodes.length) nodes.push(document.createTextNode(separator));
    nodes.push(...nameNodes(name));
  }
  return nodes;
}

// A table cell holding one name (or several, given an array).
export function nameCell(name, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.append(...(Array.isArray(name) ? namesNodes(name) : nameNodes(name)));
  return td;
}
