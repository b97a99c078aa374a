"""What every task of the event loop awaits: the chain of coroutines down to the
future it waits on, for a test that finds something that should have ended."""

from __future__ import annotations

import asyncio
from typing import Any


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """`file:line function` of each coroutine the task is in, outermost first, and
    what the innermost awaits."""
    lines, coro = [], task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            code = frame.f_code
            lines.append(f"  {code.co_filename}:{frame.f_lineno} {code.co_name}")
        awaited = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        if awaited is not None and not hasattr(awaited, "cr_frame"):
            lines.append(f"  awaits {awaited!r}"[:300])
            break
        coro = awaited
    return lines


def pending_tasks() -> str:
    """Every other task of the running loop with its await chain."""
    me = asyncio.current_task()
    return "\n".join(
        "\n".join([repr(task)[:300], *await_chain(task)])
        for task in asyncio.all_tasks()
        if task is not me
    )
