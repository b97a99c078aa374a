"""The camera inventory: a CSV or GeoJSON file with a column mapping, [[cameras]] on top,
and reloads without a restart (SIGHUP or POST /api/inventory/reload)."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import json
import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from support.events import EventReader
from support.gateway import REFERENCE, VIEWER, camera_entry, settings_for

from gateway.app import HUBS, SESSIONS, STORE
from gateway.config import ConfigError, load_settings, parse_settings
from gateway.inventory import InventoryError, read_inventory

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "admin-1"
PASSWORD = "Inv3ntory-pw"  # in sources; must never show
# How the police's list names its columns (examples/inventory/cameras.csv does too).
COLUMNS = {
    "id": "編號",
    "name": "名稱",
    "lat": "緯度",
    "lon": "經度",
    "district": "行政區",
    "road": "路段",
    "source": "來源",
}
HEADER = list(COLUMNS.values())


def row(camera_id: str, source: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": camera_id,
        "name": f"路口 {camera_id}",
        "lat": 25.04,
        "lon": 121.56,
        "district": "信義區",
        "road": "松仁路",
        "source": source,
        **fields,
    }


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        for r in rows:
            writer.writerow([r[field] for field in COLUMNS])
    return path


def inventory_table(path: Path, **extra: Any) -> dict[str, Any]:
    return {"inventory": {"file": str(path), "columns": COLUMNS, **extra}}


def secret_source(n: int) -> str:
    return f"rtsp://admin:{PASSWORD}@10.0.0.{n}:554/stream1"


def settings_with(path: Path, cameras: list[dict] | None = None, **tables: Any):
    return settings_for(cameras or [], tables={**inventory_table(path), **tables})


async def reload(gateway, account: str = ADMIN, admin: bool = True):
    return await gateway.http.post(
        f"{gateway.url}/api/inventory/reload", headers=gateway.bearer(account, admin=admin)
    )


async def cameras_of(gateway, account: str = ADMIN) -> dict[str, dict]:
    response = await gateway.http.get(
        f"{gateway.url}/api/cameras", headers=gateway.bearer(account, admin=account == ADMIN)
    )
    assert response.status == 200
    text = await response.text()
    assert PASSWORD not in text and "rtsp" not in text and "api:" not in text
    return {f["id"]: f for f in json.loads(text)["features"]}


async def audit_rows(gateway, event: str) -> list[dict]:
    await gateway.app[STORE].flush(timeout=10)  # rows land off the event loop, in order
    response = await gateway.http.get(
        f"{gateway.url}/api/audit?event={event}", headers=gateway.bearer(ADMIN, admin=True)
    )
    return (await response.json())["rows"]


# --- reading the file -------------------------------------------------------------------


async def test_csv_rows_with_mapped_columns_and_tables_that_add_and_override(
    start_gateway, tmp_path
):
    path = write_csv(
        tmp_path / "cameras.csv",
        [
            row("xinyi-01", secret_source(1), name="松仁路/松高路口", lat=25.0380, lon=121.5680),
            row("xinyi-02", secret_source(2), district="信義區", road="忠孝東路五段"),
            row("daan-01", secret_source(3), district="大安區", road="復興南路"),
        ],
    )
    tables = [
        # replaces the file's row with the same id ...
        camera_entry("xinyi-02", "demo:testsrc", name="信義 02（手動）", district="信義區"),
        # ... and adds one the file does not have
        camera_entry("extra-01", "demo:smptebars", name="臨時點"),
    ]
    gateway = await start_gateway(settings_with(path, tables), grant=False)
    cameras = await cameras_of(gateway)
    assert set(cameras) == {"xinyi-01", "xinyi-02", "daan-01", "extra-01"}
    first = cameras["xinyi-01"]
    assert first["properties"]["name"] == "松仁路/松高路口"
    assert first["geometry"]["coordinates"] == [121.568, 25.038]
    assert (first["properties"]["district"], first["properties"]["road"]) == ("信義區", "松仁路")
    assert cameras["daan-01"]["properties"]["road"] == "復興南路"
    assert cameras["xinyi-02"]["properties"]["name"] == "信義 02（手動）"
    assert gateway.app[HUBS].get("xinyi-02").camera.source == "demo:testsrc"
    assert gateway.app[HUBS].get("xinyi-01").camera.source == secret_source(1)


def test_geojson_features_with_property_mapping_and_numeric_ids(tmp_path):
    features = [
        {
            "type": "Feature",
            "id": 101,  # no id property: the feature's own id
            "geometry": {"type": "Point", "coordinates": [121.5170, 25.0478]},
            "properties": {"title": "臺北車站", "dist": "中正區", "cctv": "CAM-0101"},
        },
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [121.5078, 25.0422]},
            "properties": {"cam_id": "ximen-1", "title": "西門町", "cctv": "CAM-0102"},
        },
    ]
    path = tmp_path / "points.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    settings = settings_for(
        [],
        tables={
            "inventory": {
                "file": str(path),
                "source_prefix": "api:",
                "columns": {"id": "cam_id", "name": "title", "district": "dist", "source": "cctv"},
            },
            "police_api": {"url": "https://police.example/cctv/{ref}", "token": "t0ken"},
        },
    )
    inventory = read_inventory(settings)
    by_id = {c.id: c for c in inventory.cameras}
    assert set(by_id) == {"101", "ximen-1"}
    assert (by_id["101"].lat, by_id["101"].lon, by_id["101"].district) == (
        25.0478,
        121.517,
        "中正區",
    )
    assert by_id["ximen-1"].api_reference == "CAM-0102" and by_id["ximen-1"].district == ""


def test_without_a_source_column_the_reference_is_the_id(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("id,name,lat,lon\nCAM-0001,甲,25.0,121.5\n")
    settings = settings_for(
        [],
        tables={
            "inventory": {"file": str(path), "source_prefix": "api:", "columns": {"source": ""}},
            "police_api": {"url": "https://police.example/cctv/{ref}", "token": "t0ken"},
        },
    )
    (camera,) = read_inventory(settings).cameras
    assert camera.api_reference == "CAM-0001"


def test_the_example_inventory_files_load(monkeypatch):
    """examples/inventory/: the police's CSV with its own column names, the same points
    as GeoJSON, and the configuration that reads them (README, "The camera inventory")."""
    monkeypatch.chdir(ROOT)  # the example names its files from the checkout's root
    folder = ROOT / "examples" / "inventory"
    settings = load_settings(
        folder / "config.toml",
        environ={"POLICE_API_TOKEN": "t0ken", "GATEWAY_JWT_SECRET": "x" * 32},
    )
    from_csv = read_inventory(settings)
    geojson = {
        "file": str(folder / "cameras.geojson"),
        "source_prefix": "api:",
        "columns": {"district": "district", "road": "road", "source": "police_ref"},
    }
    from_geojson = read_inventory(dataclasses.replace(settings, inventory=_inventory(geojson)))
    assert len(from_csv.cameras) >= 5
    assert from_csv.cameras == from_geojson.cameras
    assert all(c.api_reference for c in from_csv.cameras)
    assert {c.district for c in from_csv.cameras} >= {"信義區", "中正區"}


def _inventory(table: dict[str, Any]):
    data = {"auth": {"secret": "x" * 32}, "inventory": table}
    return parse_settings(data, {}).inventory


BAD_ROWS = {
    "lat out of range": (
        [row("ok-1", secret_source(1)), row("bad-1", secret_source(2), lat=95)],
        "cameras.csv line 3 (id 'bad-1').lat: must be between -90 and 90",
    ),
    "lat not a number": (
        [row("bad-1", secret_source(2), lat="北緯25")],
        "cameras.csv line 2 (id 'bad-1').lat: expected a number, got string",
    ),
    "no name": (
        [row("ok-1", secret_source(1)), row("ok-2", secret_source(1)), row("bad", "x", name="")],
        "cameras.csv line 4 (id 'bad').name: missing required key",
    ),
    "source not a URL": (
        [row("bad-1", f"http://admin:{PASSWORD}@10.0.0.1/")],
        "cameras.csv line 2 (id 'bad-1').source: must start with rtsp://",
    ),
    "id not URL-safe": (
        [row("信義 01", secret_source(1))],
        "cameras.csv line 2.id: must be 1-64 of A-Z",
    ),
    "same id twice": (
        [row("dup", secret_source(1)), row("dup", secret_source(2))],
        "cameras.csv line 3 has the same id 'dup' as cameras.csv line 2",
    ),
    "api: without [police_api]": (
        [row("api-1", "api:CAM-0001")],
        "cameras.csv line 2 (id 'api-1').source: an api: source needs a [police_api] table",
    ),
    "a source in the id column": (
        [row(secret_source(9), secret_source(1))],
        "cameras.csv line 2.id: must be 1-64 of A-Z a-z 0-9 _ -, starting with a letter or "
        "digit (value hidden)",
    ),
}


@pytest.mark.parametrize("case", BAD_ROWS)
def test_a_bad_row_is_named_with_its_field_and_no_source(tmp_path, case):
    rows, expected = BAD_ROWS[case]
    path = write_csv(tmp_path / "cameras.csv", rows)
    with pytest.raises(InventoryError) as info:
        read_inventory(settings_with(path))
    message = str(info.value)
    assert expected in message
    assert PASSWORD not in message and "10.0.0" not in message


def test_file_level_mistakes_are_named(tmp_path):
    path = tmp_path / "cameras.csv"
    path.write_text("編號,名稱,lat,lon\n")
    with pytest.raises(InventoryError, match=r"no column '緯度' \(inventory.columns.lat\)"):
        read_inventory(settings_with(path))
    with pytest.raises(InventoryError, match="no such file"):
        read_inventory(settings_with(tmp_path / "missing.csv"))
    (tmp_path / "list.txt").write_text("x")
    with pytest.raises(InventoryError, match="set \\[inventory\\] format"):
        read_inventory(settings_with(tmp_path / "list.txt"))
    (tmp_path / "latin1.csv").write_bytes("id,name\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(InventoryError, match="not valid UTF-8"):
        read_inventory(settings_with(tmp_path / "latin1.csv"))
    # An inventory is enough: no [[cameras]] table needed; neither at all is not.
    with pytest.raises(ConfigError, match="add a \\[\\[cameras\\]\\] table or an \\[inventory\\]"):
        parse_settings({"auth": {"secret": "x" * 32}}, {})


# --- reloading ------------------------------------------------------------------------------


async def test_reload_adds_and_removes_cameras_live_while_an_unchanged_camera_keeps_playing(
    make_rtsp_camera, start_gateway, tmp_path
):
    camera = make_rtsp_camera(width=320, height=240, fps=25)
    path = write_csv(
        tmp_path / "cameras.csv",
        [row("cam-a", camera.url), row("cam-b", camera.url), row("cam-c", camera.url)],
    )
    gateway = await start_gateway(settings_with(path))  # VIEWER may watch all three
    async with EventReader(gateway) as events:
        staying = gateway.viewer("cam-a")
        leaving = gateway.viewer("cam-b")
        for viewer in (staying, leaving):
            response = await viewer.connect(gateway.http)
            assert response.status == 201, await response.text()
            assert await viewer.wait_frames(5)
        kept_session = next(s.id for s in gateway.app[SESSIONS] if s.camera_id == "cam-a")

        write_csv(path, [row("cam-a", camera.url), row("cam-c", camera.url), row("cam-d", "x")])
        response = await reload(gateway)
        assert response.status == 422  # cam-d's source is not one: refused whole
        assert len(gateway.app[SESSIONS]) == 2

        write_csv(
            path, [row("cam-a", camera.url), row("cam-c", camera.url), row("cam-d", camera.url)]
        )
        started = time.monotonic()
        response = await reload(gateway)
        assert response.status == 200, await response.text()
        assert await response.json() == {"added": 1, "removed": 1, "changed": 0, "cameras": 3}

        # The removed camera's viewer is told why, at once; its peer connection closes.
        ended = await events.wait_for("session_ended", timeout=3)
        assert (ended["camera_id"], ended["code"]) == ("cam-b", "camera_removed")
        await asyncio.wait_for(leaving.closed.wait(), timeout=5)
        print(f"reload to the removed camera's session ended: {time.monotonic() - started:.2f} s")
        # Every map hears that the cameras changed.
        changed = await events.wait_for("cameras_changed", timeout=3)
        assert (changed["added"], changed["removed"]) == (1, 1)

        # The unchanged camera's viewer never noticed.
        assert await staying.wait_frames(25, timeout=10)
        assert [s.id for s in gateway.app[SESSIONS]] == [kept_session]
        assert await asyncio.to_thread(
            camera.wait_connections, 1, 5
        )  # cam-b's pull is gone, cam-a's stays

    assert set(await cameras_of(gateway)) == {"cam-a", "cam-c", "cam-d"}
    gone = await gateway.viewer("cam-b").connect(gateway.http)
    assert gone.status == 404 and (await gone.json())["code"] == "unknown_camera"
    newcomer = gateway.viewer("cam-d")
    response = await newcomer.connect(gateway.http)
    assert response.status == 403  # new camera, but no grant names it yet
    # Grants say the camera is gone, and a new grant cannot name it.
    admin = gateway.bearer(ADMIN, admin=True)
    grants = await (await gateway.http.get(f"{gateway.url}/api/grants", headers=admin)).json()
    assert grants["grants"][0]["cameras_gone"] == ["cam-b"]
    body = {
        "project": "p",
        "purpose": "p",
        "authorization_ref": REFERENCE,
        "members": [VIEWER],
        "cameras": ["cam-b"],
        "starts_at": "2030-01-01T00:00:00+08:00",
        "ends_at": "2030-01-02T00:00:00+08:00",
    }
    refused = await gateway.http.post(f"{gateway.url}/api/grants", json=body, headers=admin)
    assert refused.status == 422 and (await refused.json())["field"] == "cameras"
    # Audited: who, and how many.
    (reloaded,) = await audit_rows(gateway, "inventory_reloaded")
    assert reloaded["account"] == ADMIN
    assert {k: reloaded["detail"][k] for k in ("added", "removed", "changed", "via")} == {
        "added": 1,
        "removed": 1,
        "changed": 0,
        "via": "api",
    }
    (refusal,) = await audit_rows(gateway, "inventory_refused")
    assert "cameras.csv line 4 (id 'cam-d').source" in refusal["detail"]["error"]
    await staying.close(gateway.http)
    await leaving.close()
    await newcomer.close()


async def test_an_invalid_inventory_is_refused_and_the_old_one_stays(start_gateway, tmp_path):
    path = write_csv(
        tmp_path / "cameras.csv",
        [row("cam-a", "demo:testsrc"), row("cam-b", "demo:testsrc")],
    )
    gateway = await start_gateway(settings_with(path))
    before = await cameras_of(gateway)
    write_csv(
        path,
        [
            row("cam-a", "demo:testsrc"),
            row("cam-b", secret_source(2)),
            row("cam-c", secret_source(3), lon=221.5),
        ],
    )
    response = await reload(gateway)
    assert response.status == 422
    body = await response.json()
    assert body["code"] == "invalid_inventory"
    assert "cameras.csv line 4 (id 'cam-c').lon: must be between -180 and 180" in body["error"]
    assert "the previous inventory stays" in body["error"]
    assert PASSWORD not in json.dumps(body)
    assert await cameras_of(gateway) == before
    assert gateway.app[HUBS].get("cam-b").camera.source == "demo:testsrc"
    assert gateway.app[STORE].grants.camera_ids == {"cam-a", "cam-b"}
    # Not for everyone.
    refused = await reload(gateway, VIEWER, admin=False)
    assert refused.status == 403 and (await refused.json())["code"] == "not_admin"
    (row_,) = await audit_rows(gateway, "inventory_refused")
    assert row_["account"] == ADMIN and PASSWORD not in json.dumps(row_)


async def test_a_viewer_still_joining_a_removed_camera_is_told_at_once(start_gateway, tmp_path):
    # A camera that accepts the connection and never answers: the first viewer waits.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        path = write_csv(
            tmp_path / "cameras.csv",
            [row("cam-a", "demo:testsrc"), row("cam-slow", f"rtsp://127.0.0.1:{port}/s")],
        )
        gateway = await start_gateway(settings_with(path))
        joining = asyncio.ensure_future(gateway.viewer("cam-slow").connect(gateway.http))
        await asyncio.sleep(0.5)
        assert not joining.done()
        write_csv(path, [row("cam-a", "demo:testsrc")])
        started = time.monotonic()
        response = await reload(gateway)
        assert response.status == 200
        assert time.monotonic() - started < 1, "the reload waited for the camera to open"
        answer = await asyncio.wait_for(joining, timeout=2)
        body = await answer.json()
        assert answer.status == 503 and "removed from the inventory" in body["error"]
        assert len(gateway.app[SESSIONS]) == 0


async def test_sighup_reloads_and_a_bad_file_leaves_the_cameras_as_they_were(
    start_gateway, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    path = write_csv(tmp_path / "cameras.csv", [row("cam-a", "demo:testsrc")])
    gateway = await start_gateway(settings_with(path))
    hubs = gateway.app[HUBS]

    write_csv(path, [row("cam-a", "demo:testsrc"), row("cam-b", "demo:smptebars")])
    os.kill(os.getpid(), signal.SIGHUP)
    deadline = time.monotonic() + 5
    while hubs.get("cam-b") is None:
        assert time.monotonic() < deadline, "SIGHUP did not reload"
        await asyncio.sleep(0.05)
    (reloaded,) = await audit_rows(gateway, "inventory_reloaded")
    assert reloaded["account"] is None and reloaded["detail"]["via"] == "SIGHUP"

    path.write_text("編號,名稱\n")  # the columns are gone
    os.kill(os.getpid(), signal.SIGHUP)
    deadline = time.monotonic() + 5
    while not await audit_rows(gateway, "inventory_refused"):
        assert time.monotonic() < deadline, "the refusal was not audited"
        await asyncio.sleep(0.05)
    assert {hub.id for hub in hubs} == {"cam-a", "cam-b"}
    assert "inventory reload refused, the previous one stays" in caplog.text


async def test_reload_without_an_inventory_file_says_so(start_gateway):
    gateway = await start_gateway(settings_for([camera_entry("cam-a", "demo:testsrc")]))
    response = await reload(gateway)
    assert response.status == 409 and (await response.json())["code"] == "no_inventory_file"


async def test_a_changed_source_applies_at_the_cameras_next_pull(
    make_rtsp_camera, start_gateway, tmp_path
):
    old = make_rtsp_camera(width=320, height=240, fps=25)
    new = make_rtsp_camera(width=320, height=240, fps=25)
    path = write_csv(tmp_path / "cameras.csv", [row("cam", old.url)])
    gateway = await start_gateway(settings_with(path))
    viewer = gateway.viewer("cam")
    assert (await viewer.connect(gateway.http)).status == 201
    assert await viewer.wait_frames(5)

    write_csv(path, [row("cam", new.url, name="新名稱")])
    response = await reload(gateway)
    assert await response.json() == {"added": 0, "removed": 0, "changed": 1, "cameras": 1}
    # The running pull keeps its connection: the viewer sees no break.
    assert await viewer.wait_frames(25, timeout=10)
    assert (old.connections, new.connections) == (1, 0)
    assert (await cameras_of(gateway))["cam"]["properties"]["name"] == "新名稱"

    await viewer.close(gateway.http)
    assert await asyncio.to_thread(old.wait_connections, 0, 5)  # after the linger
    again = gateway.viewer("cam")
    assert (await again.connect(gateway.http)).status == 201
    assert await again.wait_frames(5)
    assert (old.connections, new.connections) == (0, 1)
    await again.close(gateway.http)
