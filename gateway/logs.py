"""Logging set-up, with a last-line redaction of credentials in URLs."""

from __future__ import annotations

import logging
import re

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")


class RedactCredentials(logging.Filter):
    """Modules never log camera URLs; this catches one that slips through (a library's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "@" in message:
            record.msg, record.args = _USERINFO.sub(r"\1***@", message), None
        return True


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactCredentials())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # aiortc and aioice log every packet at DEBUG and details of peers at INFO.
    for noisy in ("aiortc", "aioice", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
