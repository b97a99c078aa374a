"""`make demo` works: its config loads, the server starts, a demo camera plays."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from gateway.app import STORE, create_app
from gateway.config import StorageSettings, load_settings
from gateway.demo import prepare_demo
from gateway.store.verify import verify_file

ROOT = Path(__file__).resolve().parent.parent


async def test_demo_config_plays(start_gateway, tmp_path):
    settings = load_settings(ROOT / "config.example.toml")
    settings = replace(settings, storage=StorageSettings(str(tmp_path / "demo.sqlite3")))
    assert len(settings.cameras) >= 4
    assert all(camera.is_demo for camera in settings.cameras)
    gateway = await start_gateway(settings)
    camera = settings.cameras[0]
    viewer = gateway.viewer(camera.id)
    response = await viewer.connect(gateway.http)
    assert response.status == 201, await response.text()
    assert await viewer.wait_frames(10)
    assert viewer.frames[-1][1:] == camera.demo_size
    page = await gateway.http.get(gateway.url + "/")
    assert page.status == 200 and "viewer.js" in await page.text()
    assert (await gateway.http.get(gateway.url + "/web/cctv-player.js")).status == 200
    await viewer.close(gateway.http)


def test_bad_config_exits_2_naming_the_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(
        f'[auth]\nsecret = "{"s" * 32}"\n'
        '[[cameras]]\nid = "cam-1"\nname = "x"\nlat = 95.0\nlon = 121.5\n'
        'source = "rtsp://admin:Secr3tPW@10.0.0.1/stream"\n',
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "lat" in result.stderr and "cam-1" in result.stderr
    assert "Secr3tPW" not in result.stderr + result.stdout


def test_demo_grant_is_audited(tmp_path):
    """`make demo` grants through the store: it audits that, so verify accepts it."""
    settings = load_settings(ROOT / "config.example.toml")
    database = tmp_path / "demo.sqlite3"
    app = create_app(replace(settings, storage=StorageSettings(str(database))))
    prepare_demo(app)
    prepare_demo(app)  # a second start finds the grant and adds nothing
    asyncio.run(app[STORE].close())
    result = verify_file(str(database))
    # The police authorization and the grant inside it, each audited once.
    assert (result.ok, result.rows_checked, result.grants_checked) == (True, 2, 1), result
    assert result.records_checked == 1
