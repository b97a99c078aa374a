"""Waiting for a condition or an event, always with a deadline, so a regression fails
its test instead of hanging it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(predicate: Callable[[], object], timeout: float, what: str = "condition") -> float:
    """Poll `predicate` until it is true; the seconds it took. AssertionError at `timeout`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def event(flag: asyncio.Event, timeout: float, what: str = "event") -> float:
    """Wait for `flag` to be set; the seconds it took. AssertionError at `timeout`."""
    started = time.monotonic()
    try:
        await asyncio.wait_for(flag.wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}") from None
    return time.monotonic() - started
