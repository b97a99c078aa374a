"""The manual keeps up with the code: every configuration key is documented, and no
relative link in README.md, docs/ or tests/README.md leads nowhere."""

from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"
CONFIGURATION = ROOT / "docs" / "configuration.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS, ROOT / "tests" / "README.md"]

# config.example.toml, read as a person reads it: a table header or a `key = value`,
# written out or commented out (`# [police_api]`, `# node_id = "gw1"`), and the
# "Keys:" lists of array tables (`#   name   - required; ...`), which describe the
# table whose header comes next.
HEADER = re.compile(r"#?\s*\[\[?([a-z0-9_.]+)\]\]?\s*")
ASSIGNMENT = re.compile(r"#?\s*([a-z0-9_]+)\s*=")
KEY_LIST = re.compile(r"#\s{2,}([a-z0-9_]+(?:,\s*[a-z0-9_]+)*)\s+- ")


def example_keys() -> dict[str, set[str]]:
    """Table name -> its keys, from config.example.toml."""
    keys: dict[str, set[str]] = defaultdict(set)
    table, listed = "", set[str]()
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if header := HEADER.fullmatch(line):
            table = header[1]
            keys[table] |= listed
            listed = set()
        elif key_list := KEY_LIST.match(line):
            listed |= {key.strip() for key in key_list[1].split(",")}
        elif assignment := ASSIGNMENT.match(line):
            keys[table].add(assignment[1])
    assert not listed, f"a key list with no table after it: {listed}"
    # What TOML itself reads must be among them, or the scan above is missing things.
    for table, key in _parsed(tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))):
        keys[table].add(key)
    return keys


def _parsed(data: dict, table: str = "") -> Iterator[tuple[str, str]]:
    for key, value in data.items():
        name = f"{table}.{key}" if table else key
        if isinstance(value, dict) and set(value) != {"env"}:  # { env = "VAR" } is a value
            yield from _parsed(value, name)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                yield from _parsed(item, name)
        else:
            yield table, key


MD_HEADING = re.compile(r"(#{1,6})\s+(.*?)\s*#*\s*")
TABLE_HEADING = re.compile(r"`\[\[?([a-z0-9_.]+)\]\]?`")
KEY_CELL = re.compile(r"`([a-z0-9_]+)`")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def documented_keys() -> dict[str, set[str]]:
    """Table name -> the keys docs/configuration.md documents under its heading: as
    `key` in the first cell of a table row, or as a heading."""
    documented: dict[str, set[str]] = defaultdict(set)
    table = None
    for line in FENCE.sub("", CONFIGURATION.read_text(encoding="utf-8")).splitlines():
        if heading := MD_HEADING.fullmatch(line):
            if named := TABLE_HEADING.fullmatch(heading[2]):
                table = named[1]
                documented[table]  # a table with a heading is documented, keys or not
            elif table and (key := KEY_CELL.fullmatch(heading[2])):
                documented[table].add(key[1])
            elif len(heading[1]) <= 2:
                table = None  # another section: its rows are not this table's keys
        elif (
            table
            and line.startswith("|")
            and (key := KEY_CELL.fullmatch(line.split("|")[1].strip()))
        ):
            documented[table].add(key[1])
    return documented


def test_the_scan_of_the_example_finds_the_commented_and_listed_keys():
    keys = example_keys()
    assert {"node_id", "node_timeout_seconds"} <= keys["cluster"]  # one commented out
    assert {"url", "ca_file"} <= keys["police_api"]  # a table commented out whole
    assert {"district", "road", "lat", "lon"} <= keys["cameras"]  # from its key list
    assert {"urls", "username", "credential"} <= keys["webrtc.ice_servers"]
    assert keys["relay.renditions"] == {"name", "size", "fps", "bitrate_kbps"}


def test_every_key_of_the_example_is_documented_under_its_table():
    documented = documented_keys()
    missing = [f"[{table}]" for table in example_keys() if table not in documented]
    missing += [
        f"[{table}] {key}"
        for table, keys in example_keys().items()
        for key in sorted(keys - documented[table])
    ]
    assert not missing, f"not documented in docs/configuration.md: {missing}"


# --- links ---------------------------------------------------------------------------

CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def prose(path: Path) -> str:
    """The page without its code: a link written in a code block is no link."""
    return CODE_SPAN.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the text as shown, lower case, punctuation
    dropped (letters of any script, digits, _ and - stay), spaces made hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    # HTML outside code spans shows untagged; inside one, as written.
    parts = text.split("`")
    text = "".join(part if i % 2 else re.sub(r"<[^>]+>", "", part) for i, part in enumerate(parts))
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found, seen = set(), defaultdict(int)
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        if heading := MD_HEADING.fullmatch(line):
            base = slug(heading[2])
            found.add(f"{base}-{seen[base]}" if seen[base] else base)
            seen[base] += 1
    return found


def relative_links(page: Path) -> Iterator[str]:
    for link in LINK.finditer(prose(page)):
        if not re.match(r"[a-z][a-z0-9+.-]*:", link[1], re.IGNORECASE):  # no scheme
            yield link[1]


def test_slugs_are_githubs():
    assert slug("`[[relay.renditions]]`") == "relayrenditions"
    assert slug("TURN: a venue's Wi-Fi, or TLS") == "turn-a-venues-wi-fi-or-tls"
    assert slug("WHEP (draft-ietf-wish-whep)") == "whep-draft-ietf-wish-whep"
    assert slug("`<cctv-player>`") == "cctv-player"


def test_the_readme_links_every_docs_page():
    readme = ROOT / "README.md"
    linked = {(ROOT / link.partition("#")[0]).resolve() for link in relative_links(readme)}
    assert not set(DOCS) - linked, set(DOCS) - linked


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for link in relative_links(page):
        path, _, fragment = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif fragment and target.suffix == ".md" and fragment not in anchors(target):
            broken.append(f"{link}: no heading #{fragment} in {target.name}")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"
