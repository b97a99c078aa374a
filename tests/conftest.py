"""Fixtures and helpers live in tests/support/; markers are set from what a test uses."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from typing import Any

import pytest
from support.tasks import pending_tasks

pytest_plugins = ["support.fixtures"]

# A test that uses one of these fixtures gets the marker, so
# `pytest -m "not rtsp and not browser"` is the fast subset.
_MARKER_OF_FIXTURE = {"make_rtsp_camera": "rtsp", "browser": "browser"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in _MARKER_OF_FIXTURE.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


def _print_tasks_before(handler: Any, item: pytest.Item) -> Callable[..., Any]:
    def on_timeout(signum: int, frame: Any) -> Any:
        __tracebackhide__ = True
        with contextlib.suppress(RuntimeError):  # no loop running: threads say enough
            writer = item.config.get_terminal_writer()
            writer.sep("+", title="asyncio tasks")
            writer.write(pending_tasks() + "\n")
        return handler(signum, frame)

    return on_timeout


@pytest.hookimpl(wrapper=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> Any:
    """pytest-timeout dumps only thread stacks, and an async test that hangs is its
    event loop idle in select(): print what each task awaits as well."""
    installed = yield
    if settings.method == "signal":
        handler = signal.getsignal(signal.SIGALRM)
        if callable(handler):
            signal.signal(signal.SIGALRM, _print_tasks_before(handler, item))
    return installed
