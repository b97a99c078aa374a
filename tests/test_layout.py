"""The README's "Layout" and DESIGN.md's "Shape", read from the code itself."""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = ROOT / "gateway"


def allowed_imports() -> dict[str, set[str]]:
    """The README's layout table: each part and the parts it may import. Control flows
    down (http -> control -> access, store, relay, signaling), media one way (relay ->
    egress -> signaling's sessions); nothing imports upward."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("| part | what it holds | may import |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \|[^|]*\| (.+?) \|$", table, re.MULTILINE)
    everything = {part for part, _ in rows}
    return {
        part: everything - {part}
        if imports == "everything"
        else set(re.findall(r"`(\w+)`", imports))
        for part, imports in rows
    }


ALLOWED = allowed_imports()
WEBRTC = {"aiortc", "aioice", "pylibsrtp"}


def modules() -> Iterator[tuple[str, Path, ast.Module]]:
    """(part, file, syntax tree) of every module: the part is its package or module."""
    for path in sorted(GATEWAY.rglob("*.py")):
        relative = path.relative_to(GATEWAY)
        part = relative.parts[0].removesuffix(".py")
        if part == "__init__":
            continue
        yield part, path, ast.parse(path.read_text(encoding="utf-8"))


def imported(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_the_readme_table_names_every_part():
    parts = {part for part, _, _ in modules()}
    assert parts == set(ALLOWED), (parts ^ set(ALLOWED), "the README's layout table")


def test_nothing_imports_upward():
    wrong = []
    for part, path, tree in modules():
        for name in imported(tree):
            if name.startswith("gateway."):
                target = name.split(".")[1]
                if target != part and target not in ALLOWED[part]:
                    wrong.append(f"{path.relative_to(GATEWAY)} imports {name}")
    assert not wrong, wrong


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imports_of(path: Path, tree: ast.Module, modules: set[str]) -> set[str]:
    """The gateway modules `path` imports at its top level, under TYPE_CHECKING too (a
    cycle of types is a cycle of design), relative imports resolved: `from pkg import
    name` is the module pkg.name if there is one, else pkg itself."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    found: set[str] = set()
    top = [
        *tree.body,
        *(n for s in tree.body if isinstance(s, ast.If) for n in s.body),
    ]
    for node in top:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = (f"{base}.{node.module}" if node.module else base) if node.level else ""
            module = module or node.module or ""
            for alias in node.names:
                found.add(
                    f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module
                )
    return found & modules


def test_no_module_imports_itself_through_others():
    """No import cycles between modules (a cycle makes import order matter and hides
    which module owns what)."""
    paths = {module_name(p): p for p in sorted(GATEWAY.rglob("*.py"))}
    names = set(paths)
    graph = {
        name: imports_of(path, ast.parse(path.read_text()), names) for name, path in paths.items()
    }
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node] - {node}):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for name in sorted(names):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles


def test_relay_and_access_know_nothing_of_webrtc_or_http():
    # relay/: media in, no WebRTC. access/: pure decisions, no aiohttp, no WebRTC.
    forbidden = {"relay": WEBRTC | {"aiohttp"}, "access": WEBRTC | {"aiohttp", "av"}}
    wrong = [
        f"{path.relative_to(GATEWAY)} imports {name}"
        for part, path, tree in modules()
        for name in imported(tree)
        if name.split(".")[0] in forbidden.get(part, ())
    ]
    assert not wrong, wrong


def private_names_of_subclassed_webrtc_classes() -> set[str]:
    """The private attributes of the aiortc classes the gateway subclasses, as reached on
    `self` (a double underscore mangled with its class name)."""
    from aiortc import MediaStreamTrack, RTCRtpSender

    names = set()
    for subclassed in (RTCRtpSender, MediaStreamTrack):
        for cls in subclassed.__mro__:
            if cls.__module__.split(".")[0] not in WEBRTC:
                continue
            found = {n for n in vars(cls) if n.startswith("_")}
            found |= set(re.findall(r"self\.(_\w+)", inspect.getsource(cls)))
            for name in found:
                if name.endswith("__"):
                    continue  # __init__ and the like: Python's own
                names.add(f"_{cls.__name__}{name}" if name.startswith("__") else name)
    return names


def test_private_webrtc_names_are_used_only_in_the_compatibility_module():
    """Every private aiortc/aioice/pylibsrtp name sits in egress/compat.py. Elsewhere a
    `_name` is reached only on the gateway's own objects (self, cls, a ViewerSession),
    and never one that aiortc's own classes use."""
    own, theirs = {"self", "cls", "session"}, private_names_of_subclassed_webrtc_classes()
    wrong = []
    for _, path, tree in modules():
        if path.name == "compat.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in WEBRTC:
                wrong += [f"{path.name}: imports {a.name}" for a in node.names if a.name[0] == "_"]
            elif (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.endswith("__")  # __init__, __class__: Python's own
                and (
                    not (isinstance(node.value, ast.Name) and node.value.id in own)
                    or node.attr in theirs
                    or re.fullmatch(r"_[A-Za-z0-9]+__\w+", node.attr)  # another class's
                )
            ):
                wrong.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert not wrong, wrong


def test_camera_sources_are_read_in_config_and_used_only_in_the_source():
    users = {
        str(path.relative_to(GATEWAY))
        for _, path, tree in modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "source"
    }
    # config.py and inventory.py read them (the settings and the inventory file).
    assert users <= {"config.py", "inventory.py", "relay/source.py"}, users


# SQL as the store writes it: upper-case keywords that start a statement or clause.
SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
    r"(CREATE|DROP|ALTER)\s+(TABLE|INDEX|TRIGGER|FUNCTION)|PRAGMA\s+\w+|"
    r"BEGIN\s+IMMEDIATE|SAVEPOINT\s|ROLLBACK|COMMIT|LISTEN\s|NOTIFY\s)\b",
    re.S,
)
DATABASE_DRIVERS = {"sqlite3", "psycopg"}


def test_sql_and_database_connections_stay_in_the_store():
    """Only store/ speaks to the database: no SQL in a string, no database driver,
    and no `.db` (a store's connection) anywhere else."""
    wrong = []
    for part, path, tree in modules():
        if part == "store":
            continue
        where = path.relative_to(GATEWAY)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found = SQL.search(node.value)
                if found:
                    wrong.append(f"{where}:{node.lineno}: SQL {found.group(0)[:40]!r}")
            elif isinstance(node, ast.Attribute) and node.attr == "db":
                wrong.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
        wrong += [
            f"{where}: imports {name}"
            for name in imported(tree)
            if name.split(".")[0] in DATABASE_DRIVERS
        ]
    assert not wrong, wrong
