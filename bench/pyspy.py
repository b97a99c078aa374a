"""py-spy profiles of the gateway process, and the functions they spend most samples in."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from log import log
from project import OUT, ROOT


async def profile_gateway(pid: int, level: int) -> dict[str, Any]:
    """Two py-spy recordings of the gateway: all active samples, then only GIL holders.

    On loopback, a `sendto` runs the receiver's network stack and wakes the viewer
    process, which on 2 cores often preempts the gateway mid-call: py-spy counts that
    runnable time too. The GIL-only view shows where the interpreter's CPU goes.
    """
    spy = ROOT / ".venv" / "bin" / "py-spy"
    if not spy.exists():
        return {"error": "py-spy not installed (.venv/bin/pip install py-spy)"}
    OUT.mkdir(exist_ok=True)
    result: dict[str, Any] = {}
    for view, extra in (("active", []), ("gil", ["--gil"])):
        out = OUT / f"profile-{level}-{view}.txt"
        log(f"profiling the gateway with py-spy at {level} viewers ({view}, 8 s)")
        proc = await asyncio.create_subprocess_exec(
            str(spy), "record", "--pid", str(pid), "--duration", "8", "--rate", "200",
            "--nonblocking", "--format", "raw", "--output", str(out), *extra,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await proc.communicate()
        if proc.returncode != 0 or not out.exists():
            result[view] = {"error": err.decode(errors="replace")[-300:]}
        else:
            result[view] = {"file": str(out.relative_to(ROOT)), **summarize_profile(out)}
    return result


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """py-spy raw (collapsed) stacks: the functions with most own and total samples."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        samples += n
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        own[_short(frames[-1])] += n
        for f in {_short(f) for f in frames}:
            if not any(g in f for g in _GENERIC_FILES):
                total[f] += n

    def rows(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": f, "pct": round(100 * n / max(1, samples), 1)}
            for f, n in counter.most_common(top)
        ]

    return {"samples": samples, "top_own": rows(own), "top_total": rows(total)}


# Frames every stack has (the event loop, the entry point): left out of the "total" ranking.
_GENERIC_FILES = ("base_events.py)", "events.py)", "web.py)", "gateway/__main__.py)", "runpy>)")


def _short(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)": one row per function
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = where.split("/")
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    elif "gateway" in parts:
        parts = parts[parts.index("gateway") :]
    else:
        parts = parts[-1:]
    return f"{name} ({'/'.join(parts)})"
