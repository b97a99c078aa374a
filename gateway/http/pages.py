"""The pages and the browser files: `/`, `/admin`, `/web/…` and the npm packages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

WEB_ROOT = Path(__file__).resolve().parent.parent.parent / "web"


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", _page("index.html"))
    router.add_get("/admin", _page("admin.html"))
    router.add_static("/web/", WEB_ROOT)
    # Front-end packages from npm (pinned in web/package.json), served as they ship.
    if (WEB_ROOT / "node_modules").is_dir():  # `make demo` and `make test` install them
        router.add_static("/vendor/", WEB_ROOT / "node_modules")


def _page(name: str) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_ROOT / name)

    return page
