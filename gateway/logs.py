"""Logging: one JSON object per line, with session and camera ids, credentials masked."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import TextIO

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
# Ids our modules pass with `extra=`; a log collector can filter on them.
CONTEXT_FIELDS = ("session_id", "camera_id")


def redact(text: str) -> str:
    return _USERINFO.sub(r"\1***@", text) if "@" in text else text


class RedactCredentials(logging.Filter):
    """Modules never log camera URLs; this catches one that slips through (a library's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "@" in message:
            record.msg, record.args = redact(message), None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            if (value := getattr(record, field, None)) is not None:
                entry[field] = value
        if record.exc_info:
            # Only the exception's class and our frames: messages can carry a URL.
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Plain lines, masked like the JSON ones: a library's traceback can carry a URL."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def log_handler(log_format: str = "json", stream: TextIO | None = None) -> logging.Handler:
    """The gateway's log handler: JSON or text lines, credentials masked (stderr by default)."""
    handler = logging.StreamHandler(stream)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactCredentials())
    return handler


def setup_logging(log_format: str = "json", level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, handlers=[log_handler(log_format)], force=True)
    # aiortc and aioice log every packet at DEBUG and peers' details at INFO. The
    # access log is off: event-stream URLs carry a (single-use) ticket.
    for noisy in ("aiortc", "aioice", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
