"""Shutdown never waits on a task that lost its cancellation.

A test gateway's teardown hung (issue 24): its grant sweep, cancelled by the
cleanup, went on sweeping for ever. In Python 3.11 `asyncio.wait_for` returns the
answer of what it awaits when its caller is cancelled in the same turn of the event
loop as the answer arrives, and the cancellation is lost. The sweep awaits a
database read twice a second, so a loaded machine hit that turn now and then.
These tests make the cancellation and the answer arrive together, every time: the
job itself, in the store's thread, asks the event loop to cancel its caller a given
number of turns after it returns. A task cancelled before it finished must end
cancelled.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.store import Store


@pytest.fixture
async def store(tmp_path: Any) -> Any:
    made = Store(str(tmp_path / "gw.sqlite3"), ["cam"], 14)
    yield made
    await made.close()


class Caller:
    """The task that runs a store call, and a store job that has it cancelled `turns`
    turns of the event loop after the job hands back its answer, while the answer
    makes its way to the task (the thread's result to the loop, the writer's queue,
    the future the task awaits)."""

    def __init__(self, turns: int) -> None:
        self.turns = turns
        self.task: asyncio.Task[Any] | None = None
        self.cancelled_while_pending = False
        self._loop = asyncio.get_running_loop()

    def job(self, grants: Any, audit: Any) -> int:
        self._loop.call_soon_threadsafe(self._cancel, self.turns)  # before the answer
        return 1

    def _cancel(self, left: int) -> None:
        if left:
            self._loop.call_soon(self._cancel, left - 1)
        else:
            assert self.task is not None
            self.cancelled_while_pending = self.task.cancel()

    async def outcome(self, call: Any) -> str:
        self.task = asyncio.ensure_future(call)
        try:
            await self.task
        except asyncio.CancelledError:
            return "cancelled"
        return "answered"


# Turns 0 to 6 span the answer's way to the task: a read's takes two or three turns,
# a queued write's up to five.
@pytest.mark.parametrize("turns", range(7))
async def test_a_read_cancelled_as_its_answer_arrives_is_cancelled(
    store: Store, turns: int
) -> None:
    caller = Caller(turns)
    outcome = await caller.outcome(store.read(caller.job))
    assert outcome == ("cancelled" if caller.cancelled_while_pending else "answered")


@pytest.mark.parametrize("turns", range(7))
async def test_a_wait_for_a_record_cancelled_as_it_lands_is_cancelled(
    store: Store, turns: int
) -> None:
    caller = Caller(turns)
    outcome = await caller.outcome(store.landed(store.submit(caller.job)))
    assert outcome == ("cancelled" if caller.cancelled_while_pending else "answered")
