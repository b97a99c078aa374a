"""Debian's Chromium as the tests and the benchmark launch it (never `playwright install`),
and what the browser tests do with its pages."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import urlsplit

from .gateway import VIEWER

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = ROOT / "test-artifacts"

CHROMIUM = "/usr/bin/chromium"
# Flags for a closed network; none touches WebRTC, so its defaults (mDNS hiding) stay.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def jwt(gateway, account: str = VIEWER, *, admin: bool = False) -> str:
    return gateway.bearer(account, admin=admin)["Authorization"].removeprefix("Bearer ")


class Page:
    """A page with a record of every request it made, to check where tokens go."""

    def __init__(self, page, token: str) -> None:
        self.page = page
        self.token = token
        self.requests: list[tuple[str, str]] = []
        page.on("request", lambda r: self.requests.append((r.method, r.url)))
        page.on("console", lambda m: m.type == "error" and print("console:", m.text))
        page.on("pageerror", lambda e: print("page error:", e))
        page.on("response", lambda r: r.status >= 400 and print("HTTP", r.status, r.url[:100]))

    def whep_posts(self) -> int:
        return sum(1 for method, url in self.requests if method == "POST" and "/whep/" in url)

    async def check_token_stays_out_of_urls(self) -> None:
        """Tokens go in Authorization headers only; the event stream takes a one-time
        ticket. Nothing lands in localStorage or sessionStorage either."""
        assert self.requests
        for _method, url in self.requests:
            parts = urlsplit(url)
            assert self.token not in parts.path + parts.query, url
            assert "token=" not in parts.query, url
            if "ticket=" in parts.query:  # a one-time ticket, for EventSource only
                assert parts.path.endswith("/api/events"), url
        stored = await self.page.evaluate(
            "JSON.stringify([{...localStorage}, {...sessionStorage}])"
        )
        assert self.token not in stored


async def open_page(browser, url: str, token: str, **context_options) -> Page:
    context = await browser.new_context(**context_options)
    page = Page(await context.new_page(), token)
    await page.page.goto(f"{url}#token={token}")
    return page


async def open_viewer(browser, gateway, **context_options) -> Page:
    page = await open_page(browser, gateway.url + "/", jwt(gateway), **context_options)
    await page.page.wait_for_selector("#cameras button")
    return page


def player(camera_id: str) -> str:
    return f"cctv-player[camera='{camera_id}']"


async def wait_state(page: Page, camera_id: str, state: str, timeout: float = 15) -> None:
    await page.page.wait_for_function(
        "([sel, state]) => document.querySelector(sel)?.state === state",
        arg=[player(camera_id), state],
        timeout=timeout * 1000,
    )


async def frames_decoded(page: Page, camera_id: str) -> int:
    return await page.page.evaluate(
        """async (sel) => {
            const pc = document.querySelector(sel).pc;
            let frames = 0;
            (await pc.getStats()).forEach((s) => {
              if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded;
            });
            return frames;
        }""",
        player(camera_id),
    )


# Draws the tile's video to a canvas twice, half a second apart, and compares.
SAMPLE_TWICE = """async (sel) => {
    const video = document.querySelector(sel).video;
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    const g = canvas.getContext("2d", { willReadFrequently: true });
    const sample = () => {
      g.drawImage(video, 0, 0);
      return g.getImageData(0, 0, canvas.width, canvas.height).data;
    };
    const a = sample();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const b = sample();
    let changed = 0, lit = 0;
    for (let i = 0; i < a.length; i += 4) {
      let d = 0;
      for (let k = i; k < i + 3; k++) d += Math.abs(a[k] - b[k]);
      if (d > 30) changed++;
      if (a[i] + a[i + 1] + a[i + 2] > 60) lit++;
    }
    return { width: canvas.width, height: canvas.height, pixels: a.length / 4, changed, lit };
}"""


async def wait_more_frames(page: Page, camera_id: str, than: int, timeout: float = 5.0) -> None:
    """Wait until the tile has decoded more than `than` frames."""
    deadline = time.monotonic() + timeout
    while await frames_decoded(page, camera_id) <= than:
        assert time.monotonic() < deadline, f"no frame decoded after {than} in {timeout:g} s"
        await asyncio.sleep(0.1)


async def assert_plays(page: Page, camera_id: str) -> None:
    """The tile really plays: frames decode, the video has a size, the picture moves."""
    await wait_state(page, camera_id, "live")
    await wait_more_frames(page, camera_id, await frames_decoded(page, camera_id))
    sample = await page.page.evaluate(SAMPLE_TWICE, player(camera_id))
    assert (sample["width"], sample["height"]) == (320, 240)
    assert sample["lit"] > sample["pixels"] * 0.3, "the picture is black"
    assert sample["changed"] > 50, f"the picture did not change: {sample}"


async def wait_until(predicate, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "timed out"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def screenshot(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
