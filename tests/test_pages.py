"""The pages' defences (issue 10, item 8), in real headless Chromium, and the headers
on every answer.

- The Content-Security-Policy lets every page work (no violation while the viewer
  plays a camera and the console is used) and stops what it is there to stop:
  an injected inline script, an image or a request to a host it does not name.
- Only the gateway itself and the dashboards in `[cors] origins` may frame a page.
  Chromium's local-network rules mean each "dashboard" is served from loopback on
  a port of its own (another port is another origin).
- A framed page announces `cctv-ready` to, and takes `cctv-token` from, those
  dashboards only.
- The `#token=` fragment leaves the address bar and the history entry at once.
- A camera's name is text wherever it shows, never HTML.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from support.chromium import Page, jwt, player, wait_state
from support.gateway import VIEWER, camera_entry, settings_for

from gateway.config import CorsSettings, MapSettings, Settings

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

ADMIN = "admin-1"
XSS_NAME = '<img src=x onerror="window.__xss=1">'

# Before any page script: every CSP violation, and where the page was when it had loaded.
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push({ directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample });
}, true);
document.addEventListener("DOMContentLoaded", () => { window.__loadedHref = location.href; });
"""


def cameras(**names: str) -> list[dict[str, Any]]:
    """Small demo cameras, each at its own place so the map shows separate points."""
    return [
        camera_entry(
            camera_id,
            "demo:testsrc",
            demo_size="320x240",
            demo_fps=15,
            name=name,
            lat=25.03 + 0.02 * i,
            lon=121.50 + 0.03 * i,
        )
        for i, (camera_id, name) in enumerate(names.items())
    ]


def with_sections(settings: Settings, **sections: Any) -> Settings:
    return dataclasses.replace(settings, **sections)


def png() -> bytes:
    """A 256x256 grey PNG: a map tile."""
    size = 256
    raw = b"".join(b"\x00" + b"\xcc" * size for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


class Site:
    """Another origin on loopback: a dashboard, a tile server, or a hostile page."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        self.requests: list[str] = []
        self.app = web.Application()
        self.app.router.add_get("/{path:.*}", self._serve)
        self.server = TestServer(self.app, host="127.0.0.1")

    async def _serve(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        if request.path.endswith(".png"):
            return web.Response(body=png(), content_type="image/png")
        return web.Response(text=self.pages.get(request.path, ""), content_type="text/html")

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@pytest.fixture
async def sites():
    started: list[Site] = []

    async def start() -> Site:
        site = Site()
        await site.server.start_server()
        started.append(site)
        return site

    yield start
    for site in started:
        await site.server.close()


class WatchedPage(Page):
    """A page whose CSP violations (events and console reports) are recorded."""

    def __init__(self, page, token: str) -> None:
        super().__init__(page, token)
        self.csp_console: list[str] = []
        page.on(
            "console",
            lambda m: "Content Security Policy" in m.text and self.csp_console.append(m.text),
        )

    async def violations(self) -> list[Any]:
        return [*await self.page.evaluate("window.__csp"), *self.csp_console]


async def watched(browser, url: str, token: str, *, fragment: bool = True, **options):
    context = await browser.new_context(**options)
    await context.add_init_script(WATCH)
    page = WatchedPage(await context.new_page(), token)
    await page.page.goto(f"{url}#token={token}" if fragment else url)
    return page


# --- headers ---------------------------------------------------------------------


async def test_security_headers_on_pages_api_whep_and_files(start_gateway):
    dashboard = "http://127.0.0.1:1"
    settings = with_sections(
        settings_for(cameras(**{"cam-a": "臺北車站"})),
        cors=CorsSettings(origins=(dashboard,)),
        map=MapSettings(tile_url="https://{s}.tiles.example.org/{z}/{x}/{y}.png"),
    )
    gateway = await start_gateway(settings)
    http, url = gateway.http, gateway.url
    answers = {
        "page /": await http.get(url + "/"),
        "page /admin": await http.get(url + "/admin"),
        "script": await http.get(url + "/web/viewer.js"),
        "config": await http.get(url + "/config.json"),
        "api 401": await http.get(url + "/api/cameras"),
        "api 200": await http.get(url + "/api/me", headers=gateway.bearer()),
        "whep 401": await http.post(
            url + "/whep/cam-a", data="v=0", headers={"Content-Type": "application/sdp"}
        ),
        "whep options": await http.options(url + "/whep/cam-a"),
        "preflight": await http.options(
            url + "/api/cameras",
            headers={"Origin": dashboard, "Access-Control-Request-Method": "GET"},
        ),
        "unknown": await http.get(url + "/no-such-thing"),
    }
    assert answers["api 200"].status == 200
    for name, answer in answers.items():
        headers = answer.headers
        assert headers["X-Content-Type-Options"] == "nosniff", name
        assert headers["Referrer-Policy"] == "no-referrer", name
        assert "Origin" in [v.strip() for v in headers["Vary"].split(",")], name
        server = headers.get("Server", "")
        assert "aiohttp" not in server and "Python" not in server, (name, server)
        assert not any(c.isdigit() for c in server), (name, server)
        no_store = name.startswith(("api", "whep", "preflight"))
        assert (headers.get("Cache-Control") == "no-store") == no_store, name
        assert ("Content-Security-Policy" in headers) == name.startswith("page"), name
    assert answers["preflight"].headers["Access-Control-Allow-Origin"] == dashboard

    policy = dict(
        directive.strip().split(" ", 1)
        for directive in answers["page /"].headers["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert "unsafe-inline" not in policy["style-src"]
    assert policy["frame-ancestors"].split() == ["'self'", dashboard]
    assert policy["img-src"].split() == ["'self'", "data:", "https://*.tiles.example.org"]
    assert policy["connect-src"] == "'self'"
    assert policy["default-src"] == "'none'"
    csp = [answers[page].headers["Content-Security-Policy"] for page in ("page /", "page /admin")]
    assert csp[0] == csp[1]
    config = await answers["config"].json()
    assert config["embed_origins"] == [dashboard]


# --- the policy in Chromium ---------------------------------------------------------------


async def test_pages_work_under_their_policy_and_it_blocks_the_rest(
    start_gateway, browser, sites, tmp_path
):
    tiles, elsewhere = await sites(), await sites()
    settings = with_sections(
        settings_for(cameras(**{"cam-a": "臺北車站", "cam-b": "西門町"})),
        map=MapSettings(tile_url=tiles.origin + "/tiles/{z}/{x}/{y}.png"),
    )
    gateway = await start_gateway(settings)

    viewer = await watched(browser, gateway.url + "/", jwt(gateway))
    page = viewer.page
    await page.wait_for_selector("#cameras button")
    # Images from the configured tile host load.
    await page.wait_for_selector(".leaflet-tile-loaded", timeout=10_000)
    assert any(path.startswith("/tiles/") for path in tiles.requests)
    await page.hover(".cam-pin-dot[data-camera='cam-b']")
    await expect(page.locator(".leaflet-tooltip")).to_have_text("西門町")
    # A tile plays (fetch and WebRTC to the gateway), styled in its shadow root.
    await page.click("#cameras button[data-camera='cam-a']")
    await wait_state(viewer, "cam-a", "live")
    bar = page.locator(f"{player('cam-a')} .bar.top")
    assert await bar.evaluate("(el) => getComputedStyle(el).position") == "absolute"
    await page.click("[data-layout='3']")
    await page.click("#lang")
    await expect(page.locator(f"{player('cam-a')} .state")).to_have_text("Live")
    assert await viewer.violations() == []

    admin = await watched(browser, gateway.url + "/admin", jwt(gateway, ADMIN, admin=True))
    console = admin.page
    await expect(console.locator("#session-table tbody tr")).to_have_count(1)
    await console.click("[data-tab='grants']")
    await console.click("#new-grant")
    await expect(console.locator("#grant-form")).to_be_visible()
    await console.click("#cancel-grant")
    await console.click("[data-tab='audit']")
    await expect(console.locator("#audit-table tbody tr").first).to_be_visible()
    async with console.expect_download() as download:
        await console.click("#export-csv")
    await (await download.value).save_as(tmp_path / "audit.csv")
    assert (tmp_path / "audit.csv").read_text(encoding="utf-8").startswith("seq,")
    assert await admin.violations() == []

    # What the policy is for: injected code does not run, nothing leaves for other hosts.
    blocked = await page.evaluate(
        """async (elsewhere) => {
            const script = document.createElement("script");
            script.textContent = "window.__inline = 1";
            document.head.append(script);
            const img = new Image();
            const image = new Promise((resolve) => { img.onerror = () => resolve("blocked");
                                                     img.onload = () => resolve("loaded"); });
            img.src = elsewhere + "/elsewhere.png";
            document.body.append(img);
            const request = fetch(elsewhere + "/data").then(() => "sent", () => "blocked");
            return { inline: window.__inline ?? null, image: await image, request: await request };
        }""",
        elsewhere.origin,
    )
    assert blocked == {"inline": None, "image": "blocked", "request": "blocked"}
    assert elsewhere.requests == []
    directives = {v["directive"] for v in await page.evaluate("window.__csp")}
    assert {"script-src-elem", "img-src", "connect-src"} <= directives


# --- camera names are text ---------------------------------------------------------------

# Every <img src="x"> in the document and in every shadow root.
PLANTED_IMAGES = """() => {
    const found = [];
    const walk = (root) => {
      for (const el of root.querySelectorAll("*")) {
        if (el.tagName === "IMG" && el.getAttribute("src") === "x") found.push(el.outerHTML);
        if (el.shadowRoot) walk(el.shadowRoot);
      }
    };
    walk(document);
    return found;
}"""


async def test_a_camera_name_shows_as_text_and_never_runs(start_gateway, browser):
    settings = settings_for(cameras(**{"cam-x": XSS_NAME, "cam-a": "臺北車站"}))
    gateway = await start_gateway(settings)
    viewer = await watched(browser, gateway.url + "/", jwt(gateway))
    page = viewer.page
    await page.wait_for_selector("#cameras button")
    # The list.
    await expect(page.locator("#cameras button[data-camera='cam-x'] .name")).to_have_text(XSS_NAME)
    # The map's tooltip, on hover (where the script used to run).
    await page.hover(".cam-pin-dot[data-camera='cam-x']")
    tooltip = page.locator(".leaflet-tooltip")
    await expect(tooltip).to_have_text(XSS_NAME)
    assert await tooltip.locator("img").count() == 0
    # The tile's label.
    await page.click("#cameras button[data-camera='cam-x']")
    await expect(page.locator(f"{player('cam-x')} .label")).to_have_text(XSS_NAME)
    await wait_state(viewer, "cam-x", "live")
    assert await page.evaluate(PLANTED_IMAGES) == []
    assert await page.evaluate("window.__xss ?? null") is None
    assert await viewer.violations() == []

    # The admin console: camera picker, grants table, live sessions, audit filter.
    admin = await watched(browser, gateway.url + "/admin", jwt(gateway, ADMIN, admin=True))
    console = admin.page
    await expect(console.locator("#session-table tbody tr")).to_have_count(1)
    await expect(console.locator("#session-table tbody")).to_contain_text(XSS_NAME)
    await console.click("[data-tab='grants']")
    await expect(console.locator("#grant-table tbody")).to_contain_text(XSS_NAME)
    await console.click("#new-grant")
    await expect(console.locator("#f-cameras")).to_contain_text(XSS_NAME)
    await console.click("[data-tab='audit']")
    await expect(console.locator("#a-camera_id")).to_contain_text(XSS_NAME)
    assert await console.evaluate(PLANTED_IMAGES) == []
    assert await console.evaluate("window.__xss ?? null") is None
    assert await admin.violations() == []


# --- the fragment token ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/admin"])
async def test_the_fragment_token_leaves_the_address_bar_and_history_at_once(
    start_gateway, browser, path
):
    gateway = await start_gateway(settings_for(cameras(**{"cam-a": "臺北車站"})))
    token = jwt(gateway, ADMIN if path == "/admin" else VIEWER, admin=path == "/admin")
    context = await browser.new_context()
    await context.add_init_script(WATCH)
    page = await context.new_page()
    await page.goto(f"{gateway.url}{path}#token={token}&keep=1")
    # Gone before the page had even finished loading, other fragment keys kept ...
    loaded = await page.evaluate("window.__loadedHref")
    assert loaded == f"{gateway.url}{path}#keep=1"
    # ... and the page still signed in with it.
    if path == "/":
        await page.wait_for_selector("#cameras button")
    else:
        await expect(page.locator("#who")).to_have_text(ADMIN)
    assert token not in page.url
    assert await page.evaluate("history.length") == 2  # about:blank, then this page
    # Away and back: the history entry holds no token either.
    await page.goto(gateway.url + "/healthz")
    await page.go_back()
    assert page.url == f"{gateway.url}{path}#keep=1"


# --- framing and the token handshake ---------------------------------------------------

DASHBOARD = """<!doctype html>
<html><head><meta charset="utf-8"><title>dashboard</title></head><body>
<iframe id="viewer" src="{gateway}/" width="900" height="420"></iframe>
<script>
  window.got = [];
  addEventListener("message", (event) => {{
    got.push([event.origin, event.data?.type]);
    if (event.data?.type === "cctv-ready") {{
      event.source.postMessage({{ type: "cctv-token", token: "{token}" }}, event.origin);
    }}
  }});
  // A hostile host does not wait to be asked: it pushes the token at the frame.
  const push = {push};
  if (push) setInterval(() => document.getElementById("viewer").contentWindow
      .postMessage({{ type: "cctv-token", token: "{token}" }}, "*"), 100);
</script>
</body></html>
"""


async def framed(browser, site: Site, gateway, *, push: bool = False, strip_csp: bool = False):
    token = jwt(gateway)
    site.pages["/"] = DASHBOARD.format(gateway=gateway.url, token=token, push=str(push).lower())
    context = await browser.new_context()
    await context.add_init_script(WATCH)
    if strip_csp:
        # An old browser that ignores frame-ancestors: the page must still hold.
        async def without_csp(route):
            response = await route.fetch()
            headers = {
                k: v for k, v in response.headers.items() if k.lower() != "content-security-policy"
            }
            await route.fulfill(response=response, headers=headers)

        await context.route(gateway.url + "/", without_csp)
    page = WatchedPage(await context.new_page(), token)
    await page.page.goto(site.origin + "/")
    return page


def viewer_frame(page: WatchedPage):
    frames = [f for f in page.page.frames if f != page.page.main_frame]
    assert len(frames) == 1
    return frames[0]


async def test_only_the_configured_dashboards_may_frame_the_pages(start_gateway, browser, sites):
    allowed, other = await sites(), await sites()
    settings = with_sections(
        settings_for(cameras(**{"cam-a": "臺北車站"})),
        cors=CorsSettings(origins=(allowed.origin,)),
    )
    gateway = await start_gateway(settings)

    page = await framed(browser, allowed, gateway)
    frame = viewer_frame(page)
    # Framed, it announced itself to the dashboard, got the token, and works.
    await frame.wait_for_selector("#cameras button", timeout=10_000)
    assert await page.page.evaluate("got") == [[gateway.url, "cctv-ready"]]
    assert await frame.evaluate("window.__csp") == []
    assert page.csp_console == []

    refused = await framed(browser, other, gateway)
    await refused.page.wait_for_timeout(1500)
    frame = viewer_frame(refused)
    assert not frame.url.startswith(gateway.url), frame.url  # Chromium's error page instead
    assert await refused.page.evaluate("got") == []
    assert any("frame-ancestors" in message for message in refused.csp_console)
    assert not any("/api/" in url for _method, url in refused.requests)


async def test_a_token_from_a_dashboard_not_configured_is_ignored(start_gateway, browser, sites):
    allowed, hostile = await sites(), await sites()
    settings = with_sections(
        settings_for(cameras(**{"cam-a": "臺北車站"})),
        cors=CorsSettings(origins=(allowed.origin,)),
    )
    gateway = await start_gateway(settings)
    # The hostile page can frame the viewer here only because the policy was taken off.
    page = await framed(browser, hostile, gateway, push=True, strip_csp=True)
    frame = viewer_frame(page)
    await frame.wait_for_selector("#grid", state="attached")
    assert frame.url == gateway.url + "/"
    await page.page.wait_for_timeout(1500)  # 15 pushed tokens
    assert await page.page.evaluate("got") == []  # no cctv-ready for it
    assert not any("/api/" in url for _method, url in page.requests)
    assert await frame.locator("#cameras button").count() == 0
