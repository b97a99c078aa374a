"""Names people read in the console: account and project names that cannot deceive.

NFKC folds compatibility forms (full-width letters, ligatures, circled digits) into
one spelling, so "viewer" in full-width letters and "viewer" are one account, in a
token and in a grant alike. Characters of Unicode's format category (Cf) are refused: the
bidirectional controls, which reorder what the console displays ("evil\u202egnp"),
and the zero-width characters, which make two different names look the same.
Look-alike letters of other scripts (a Cyrillic "a" for a Latin one) are not refused,
since Traditional Chinese names mix scripts by right; the console marks a word that
mixes them (web/admin/names.js).

An account name is one word: letters, marks and digits of any script, and the signs of
e-mail and directory names (`. _ - @ + '`). A member named "not a valid account!!"
names nobody, so a grant refuses it (the console's form checks the same rule, by the
same Unicode categories: web/admin/members.js).
"""

from __future__ import annotations

import unicodedata


class NameRefused(ValueError):
    """A name with characters that could deceive whoever reads it; says which."""


def readable_name(text: str) -> str:
    """`text` in NFKC; NameRefused if it has bidirectional controls, zero-width or other
    invisible formatting characters."""
    text = unicodedata.normalize("NFKC", text)
    for ch in text:
        if unicodedata.category(ch) == "Cf":
            name = unicodedata.name(ch, "a formatting character")
            raise NameRefused(f"contains U+{ord(ch):04X} ({name.lower()}), which is invisible")
    return text


ACCOUNT_SIGNS = "._-@+'"


def account_problem(name: str) -> str | None:
    """What keeps `name` (already readable_name'd) from being an account name, or None."""
    for ch in name:
        if unicodedata.category(ch)[0] not in "LMN" and ch not in ACCOUNT_SIGNS:
            shown = "a space" if ch.isspace() else repr(ch)
            return f"has {shown}; an account name is one word of letters, digits and . _ - @ + '"
    return None
