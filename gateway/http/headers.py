"""Security headers on every answer, and the pages' Content-Security-Policy.

One `on_response_prepare` hook, so nothing escapes it: handlers' answers, the
JSON errors, static files, CORS preflights and aiohttp's own 404s all pass here
just before their headers are sent.

- Every answer: `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
  `Vary: Origin` (CORS answers differ by Origin) and a `Server` that names no library
  or version.
- `/api/…` and `/whep/…`: `Cache-Control: no-store` (grants, sessions, audit rows, SDP).
- HTML (`/`, `/admin`, and anything else served as text/html): the policy below.
  Scripts and styles from this origin only (no inline script; no inline style but
  the governance report's, by its hash; the player adopts a constructed
  stylesheet), images from here, `data:` and the
  map's tile host, requests to this origin only, and framing by this origin and
  the dashboards in `[cors] origins` only.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from aiohttp import web

from gateway.config import Settings
from gateway.control.report_html import STYLE_HASH

SERVER = "cctv-gateway"
NO_STORE_PREFIXES = ("/api/", "/whep/")


def tile_source(tile_url: str) -> str | None:
    """The CSP source of a Leaflet tile URL template, or None when it is this origin.

    `https://{s}.tile.example.org/{z}/{x}/{y}.png` -> `https://*.tile.example.org`:
    a placeholder in the host stands for any name in its place.
    """
    if tile_url.startswith("/") and not tile_url.startswith("//"):
        return None
    parts = urlsplit(tile_url)
    labels = parts.netloc.rpartition("@")[2].split(".")
    templated = [i for i, label in enumerate(labels) if "{" in label or "}" in label]
    if templated:
        labels = ["*", *labels[templated[-1] + 1 :]]
    host = ".".join(labels)
    if not re.fullmatch(r"[A-Za-z0-9.*:\[\]_-]+", host) or host == "*":
        # Nothing usable (config.py checks the shape): allow no outside host at all.
        return None
    return f"{parts.scheme}://{host}"


def content_security_policy(settings: Settings) -> str:
    images = ["'self'", "data:"]
    if tiles := tile_source(settings.map.tile_url):
        images.append(tiles)
    directives = {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        # The governance report's own stylesheet, by its hash: the console shows the
        # report in a frame of its own (srcdoc), and it must print as the file does.
        "style-src": ["'self'", f"'{STYLE_HASH}'"],
        "img-src": images,
        "connect-src": ["'self'"],
        "frame-ancestors": ["'self'", *settings.cors.origins],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def add_security_headers(app: web.Application, settings: Settings) -> None:
    policy = content_security_policy(settings)

    async def on_prepare(request: web.BaseRequest, response: web.StreamResponse) -> None:
        headers = response.headers
        headers["Server"] = SERVER
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        vary = [v.strip() for v in headers.get("Vary", "").split(",") if v.strip()]
        if not any(v.lower() in ("origin", "*") for v in vary):
            headers["Vary"] = ", ".join([*vary, "Origin"])
        if request.path.startswith(NO_STORE_PREFIXES):
            headers["Cache-Control"] = "no-store"
        if response.content_type == "text/html":
            headers["Content-Security-Policy"] = policy

    app.on_response_prepare.append(on_prepare)
