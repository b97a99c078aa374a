"""Fixtures and helpers live in tests/support/; markers are set from what a test uses."""

from __future__ import annotations

import pytest

pytest_plugins = ["support.fixtures"]

# A test that uses one of these fixtures gets the marker, so
# `pytest -m "not rtsp and not browser"` is the fast subset.
_MARKER_OF_FIXTURE = {"make_rtsp_camera": "rtsp", "browser": "browser"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in _MARKER_OF_FIXTURE.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
