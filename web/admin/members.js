// A grant's members, checked in the form by the gateway's own rule before anything is
// sent (gateway/access/names.py `account_problem`, grants.py `_string_set`): NFKC, no
// invisible formatting characters, one word of letters, marks and digits of any script
// and . _ - @ + ' , at most 256 characters, each once, 1 to 500 of them. The messages
// are the gateway's words, so one translation (text.js FIELD_ZH) serves both.

const ACCOUNT_MAX = 256;
const MEMBERS_MAX = 500;
const ACCOUNT_CHAR = /[\p{L}\p{M}\p{N}._\-@+']/u;
const INVISIBLE = /\p{Cf}/u;

const clip = (text, limit = 40) => ([...text].length <= limit ? text : `${[...text].slice(0, limit - 1).join("")}…`);
const hex = (ch) => ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");

// The member lines of the form's textarea (one per line, or comma-separated).
export function memberList(text) {
  return text.split(/[\n,]/).map((m) => m.trim()).filter(Boolean);
}

// What is wrong with `members` (an array of names), in the gateway's words, or null.
export function membersProblem(members) {
  if (!members.length) return "at least one account name is required";
  if (members.length > MEMBERS_MAX) return `at most ${MEMBERS_MAX} account names`;
  const seen = new Set();
  for (const [index, raw] of members.entries()) {
    const i = index + 1;
    const name = raw.normalize("NFKC").trim();
    const hidden = name.match(INVISIBLE);
    if (hidden) return `item ${i} contains U+${hex(hidden[0])}, which is invisible`;
    if (!name) return `item ${i} is empty`;
    if ([...name].length > ACCOUNT_MAX) return `item ${i} is longer than ${ACCOUNT_MAX} characters`;
    const odd = [...name].find((ch) => !ACCOUNT_CHAR.test(ch));
    if (odd !== undefined) {
      const shown = /\s/u.test(odd) ? "a space" : `'${odd}'`;
      return `item ${i} '${clip(name)}' has ${shown}; an account name is one word of letters, digits and . _ - @ + '`;
    }
    if (seen.has(name)) return `'${clip(name)}' is listed twice`;
    seen.add(name);
  }
  return null;
}
