"""The README's picture of the wall, taken from the real demo so it stays current.

Starts the demo gateway (`python -m gateway --demo`, the example configuration on a
free port with a throw-away database), opens its viewer link in Debian's headless
Chromium at 1440x900, opens four demo cameras in a 2x2 wall, waits for live
pictures, and writes docs/images/wall.png.

    .venv/bin/python bench/screenshot_wall.py [--out docs/images/wall.png]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
VIEWPORT = {"width": 1440, "height": 900}
START_SECONDS = 30
LINK = re.compile(r"Demo viewer \([^)]*\): (http://\S+#token=\S+)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def demo_config(workdir: Path, port: int) -> Path:
    """The example configuration on `port`, its database in `workdir`."""
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^port = \d+$", f"port = {port}", text, count=1)
    database = (workdir / "gateway.sqlite3").as_posix()
    text = re.sub(r'(?m)^database = ".*"$', f'database = "{database}"', text, count=1)
    config = workdir / "config.toml"
    config.write_text(text, encoding="utf-8")
    return config


def viewer_link(gateway: subprocess.Popen[str]) -> str:
    """The demo prints its viewer link once it serves; read it from its output."""
    deadline = time.monotonic() + START_SECONDS
    assert gateway.stdout is not None
    while time.monotonic() < deadline:
        line = gateway.stdout.readline()
        if not line and gateway.poll() is not None:
            raise SystemExit(f"the demo gateway exited ({gateway.returncode})")
        found = LINK.search(line)
        if found:
            return found.group(1)
    raise SystemExit(f"no viewer link from the demo gateway within {START_SECONDS} s")


async def shoot(link: str, out: Path) -> None:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = await browser.new_page(viewport=VIEWPORT)
        await page.goto(link)
        await page.wait_for_selector("#cameras button")
        cameras = await page.eval_on_selector_all(
            "#cameras button", "(buttons) => buttons.map((b) => b.dataset.camera)"
        )
        for camera in cameras[:4]:
            await page.click(f"#cameras button[data-camera='{camera}']")
        await page.keyboard.press("2")
        await page.keyboard.press("w")
        for camera in cameras[:4]:
            await page.wait_for_function(
                "(id) => document.querySelector(`cctv-player[camera='${id}']`)?.state === 'live'",
                arg=camera,
                timeout=20_000,
            )
        await page.wait_for_timeout(2500)  # a few seconds of picture: the stats show
        out.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(out))
        await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "wall.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        config = demo_config(Path(workdir), free_port())
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(config), "--demo"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            asyncio.run(shoot(viewer_link(gateway), args.out))
        finally:
            gateway.terminate()
            try:
                gateway.wait(timeout=10)
            except subprocess.TimeoutExpired:
                gateway.kill()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
