"""gateway.config: TOML to validated settings, with errors that name the key and hide secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import (
    ConfigError,
    IceServer,
    RelaySettings,
    ServerSettings,
    load_settings,
    parse_settings,
)

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cretPW"


def cam(**fields: Any) -> dict[str, Any]:
    return {
        "id": "cam-1",
        "name": "測試",
        "lat": 25.04,
        "lon": 121.56,
        "source": "demo:testsrc",
    } | fields


def parse(*cameras: dict[str, Any], environ: dict[str, str] | None = None, **tables: Any):
    tables.setdefault("auth", {"secret": "x" * 32})
    return parse_settings({**tables, "cameras": list(cameras or [cam()])}, environ or {})


def error(*cameras: dict[str, Any], environ: dict[str, str] | None = None, **tables: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse(*cameras, environ=environ, **tables)
    return str(info.value)


def test_example_file_loads_with_taipei_demo_cameras():
    settings = load_settings(ROOT / "config.example.toml", environ={})
    assert len(settings.cameras) >= 4
    assert all(c.is_demo for c in settings.cameras)
    assert {"臺北市政府", "臺北車站", "西門町", "台北101", "大稻埕碼頭"} <= {
        c.name for c in settings.cameras
    }
    hall = settings.camera("taipei-city-hall")
    assert hall is not None and (hall.lat, hall.lon) == (25.0375, 121.5637)
    assert hall.demo_size == (640, 360) and hall.demo_fps == 25
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)
    assert settings.camera("nope") is None


def test_defaults_and_ints_accepted_for_floats():
    settings = parse(cam(), relay={"linger_seconds": 3})
    assert settings.server == ServerSettings()
    assert settings.relay == RelaySettings(linger_seconds=3.0)
    assert isinstance(settings.relay.linger_seconds, float)
    assert settings.webrtc.ice_servers == ()
    camera = settings.cameras[0]
    assert (camera.rtsp_transport, camera.demo_size, camera.demo_fps) == ("tcp", (1280, 720), 25)


def test_unknown_key_is_named_with_the_known_ones():
    message = error(server={"prot": 8080})
    assert message == (
        "server.prot: unknown key (known: host, port, max_body_bytes, log_format, "
        "trusted_proxies, request_timeout_seconds, max_connections_per_address)"
    )
    assert error(cam(zoom=2)).startswith("cameras[0] (id 'cam-1').zoom: unknown key")
    assert error(audit={"keep": 1}).startswith("audit.keep: unknown key")


@pytest.mark.parametrize(
    ("tables", "expected"),
    [
        ({"server": {"port": "8080"}}, "server.port: expected an integer, got string"),
        ({"server": {"port": True}}, "server.port: expected an integer, got boolean"),
        (
            {"relay": {"linger_seconds": False}},
            "relay.linger_seconds: expected a number, got boolean",
        ),
        ({"server": []}, "server: expected a table, got array"),
        (
            {"webrtc": {"ice_servers": {"urls": []}}},
            "webrtc.ice_servers: expected an array, got table",
        ),
    ],
)
def test_wrong_type_names_key_expected_and_actual(tables, expected):
    assert error(**tables) == expected


def test_bool_is_not_a_number_for_cameras_either():
    assert error(cam(lat=True)) == "cameras[0] (id 'cam-1').lat: expected a number, got boolean"
    assert "demo_fps: expected an integer, got boolean" in error(cam(demo_fps=True))


def test_duplicate_camera_id_names_both_indexes():
    message = error(cam(), cam(id="other"), cam())
    assert "cameras[0]" in message and "cameras[2]" in message and "'cam-1'" in message


def test_cameras_are_required():
    with pytest.raises(ConfigError, match="at least one camera"):
        parse_settings({"auth": {"secret": "x" * 32}}, {})
    with pytest.raises(ConfigError, match="at least one camera"):
        parse_settings({"auth": {"secret": "x" * 32}, "cameras": []}, {})


def test_missing_source_is_named():
    camera = cam()
    del camera["source"]
    assert error(camera) == "cameras[0] (id 'cam-1').source: missing required key"


def test_lat_out_of_range():
    message = error(cam(), cam(id="ximending", lat=123.0))
    assert message == "cameras[1] (id 'ximending').lat: must be between -90 and 90, got 123.0"
    assert "lon: must be between -180 and 180" in error(cam(lon=-181))


@pytest.mark.parametrize("bad_id", ["a b", "-lead", "x" * 65, "台北", "a/b", "", "cam\n"])
def test_camera_id_must_be_url_safe(bad_id):
    assert error(cam(id=bad_id)).startswith("cameras[0].id: must be 1-64 of")


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"demo_size": "641x360"}, "demo_size: width and height must be even"),
        ({"demo_size": "big"}, 'demo_size: expected a size like "1280x720"'),
        ({"demo_fps": 0}, "demo_fps: must be between 1 and 60"),
        ({"rtsp_transport": "http"}, "rtsp_transport: must be one of tcp, udp"),
        ({"name": " "}, "name: must not be empty"),
        ({"source": "demo:nullsrc"}, "source: demo pattern must be one of"),
    ],
)
def test_camera_field_rules(fields, fragment):
    assert fragment in error(cam(**fields))


def test_relay_rules():
    assert "transcode_preset: must be one of" in error(relay={"transcode_preset": "slow"})
    assert "relay.viewer_queue_frames: must be >= 2" in error(relay={"viewer_queue_frames": 1})
    message = error(relay={"reconnect_initial_seconds": 2, "reconnect_max_seconds": 1})
    assert message.startswith("relay.reconnect_max_seconds: must be >= reconnect_initial_seconds")
    assert "must be a finite number" in error(relay={"linger_seconds": float("inf")})


def test_env_reference_is_resolved():
    url = f"rtsp://admin:{SECRET}@10.0.0.1/x"
    settings = parse(cam(source={"env": "CAM_URL"}), environ={"CAM_URL": url})
    assert settings.cameras[0].source == url
    assert not settings.cameras[0].is_demo
    assert SECRET not in repr(settings)


def test_missing_env_variable_is_named():
    message = error(cam(source={"env": "CAM_XINYI_01_URL"}))
    assert message.startswith("cameras[0] (id 'cam-1').source:")
    assert "CAM_XINYI_01_URL" in message
    assert "environment variable" in error(cam(source={"env": "X"}), environ={"X": ""})
    assert 'env = "NAME"' in error(cam(source={"env": 5}))
    assert 'env = "NAME"' in error(cam(source={"env": "X", "other": 1}))


def test_ice_servers():
    turn = {"urls": ["turns:turn.example.org:5349"], "username": "gw", "credential": {"env": "T"}}
    settings = parse(
        webrtc={"ice_servers": [{"urls": ["stun:s.example.org"]}, turn]}, environ={"T": SECRET}
    )
    assert settings.webrtc.ice_servers[0] == IceServer(urls=("stun:s.example.org",))
    assert settings.webrtc.ice_servers[1].credential == SECRET
    assert SECRET not in repr(settings)
    message = error(webrtc={"ice_servers": [{"urls": ["http://x"]}]})
    assert message.startswith("webrtc.ice_servers[0].urls: entry 0 must start with stun:")
    message = error(webrtc={"ice_servers": [{"urls": ["turn:t.example.org"]}]})
    assert message.startswith("webrtc.ice_servers[0].credential: a turn:/turns: server needs")


@pytest.mark.parametrize(
    ("camera", "ice", "environ"),
    [
        (cam(source=f"rtsp://admin:{SECRET}@10.0.0.1/x", lat=99), [], {}),
        (cam(source=f"rtsp://admin:{SECRET}@10.0.0.1/x", rtsp_transport=7), [], {}),
        (cam(source=f"ftp://admin:{SECRET}@x"), [], {}),
        (cam(source=f"rtsp://admin:{SECRET}@[bad/x"), [], {}),
        (cam(source=f"demo:{SECRET}"), [], {}),
        (cam(source={"env": "U"}), [], {"U": f"ftp://admin:{SECRET}@x"}),
        (cam(source={"env": "U", "v": SECRET}), [], {}),
        (cam(source={"env": f"rtsp://admin:{SECRET}@x"}), [], {}),
        (cam(), [{"urls": [f"turn:admin:{SECRET}@x"], "credential": SECRET}], {}),
        (cam(), [{"urls": [f"http://admin:{SECRET}@x"]}], {}),
    ],
)
def test_secrets_never_appear_in_errors(camera, ice, environ):
    message = error(camera, environ=environ, webrtc={"ice_servers": ice})
    assert SECRET not in message and "admin" not in message


def test_toml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(f'[server]\nport = = 8080\nsource = "rtsp://admin:{SECRET}@x"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    message = str(info.value)
    assert str(path) in message and "invalid TOML" in message and "line 2" in message
    assert SECRET not in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "absent.toml", {})


def test_load_reads_env_from_os_environ_by_default(tmp_path, monkeypatch):
    path = tmp_path / "env.toml"
    path.write_text(
        f'[auth]\nsecret = "{"x" * 32}"\n'
        '[[cameras]]\nid = "xinyi-01"\nname = "信義區路口 01"\nlat = 25.033\nlon = 121.565\n'
        'source = { env = "CAM_XINYI_01_URL" }\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("CAM_XINYI_01_URL", "rtsp://u:p@10.0.0.2/s")
    assert load_settings(path).cameras[0].source == "rtsp://u:p@10.0.0.2/s"


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (None, "auth: missing required table [auth]"),
        ({}, "auth.secret: HS* needs a secret of at least 32 bytes"),
        ({"secret": "short"}, "auth.secret: HS* needs a secret of at least 32 bytes"),
        ({"algorithms": ["none"], "secret": "x" * 32}, "auth.algorithms: 'none' is not accepted"),
        (
            {"algorithms": ["HS256", "RS256"], "secret": "x" * 32},
            "auth.algorithms: do not mix HS* with RS*/PS*/ES* (algorithm confusion)",
        ),
        ({"algorithms": ["RS256"]}, "auth.public_key_file: RS*/PS*/ES* need public_key_file"),
    ],
)
def test_auth_mistakes_are_named(auth, expected):
    data = {"cameras": [cam()]} | ({"auth": auth} if auth is not None else {})
    with pytest.raises(ConfigError) as info:
        parse_settings(data, {})
    assert str(info.value).startswith(expected)
    assert "x" * 32 not in str(info.value)


def test_cors_origins_must_be_origins():
    message = error(cors={"origins": ["https://dash.example.org/path"]})
    assert message.startswith("cors.origins:")


def test_trusted_proxies_are_networks():
    settings = parse(server={"trusted_proxies": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]})
    assert [str(n) for n in settings.server.trusted_networks] == [
        "10.0.0.0/8",
        "2001:db8::/32",
        "192.0.2.7/32",
    ]
    assert parse().server.trusted_networks == ()
    message = error(server={"trusted_proxies": ["10.0.0.0/8", "10.0.0.1/8"]})
    assert message.startswith("server.trusted_proxies: entry 1 '10.0.0.1/8' is not a network")
    assert "host bits set" in message
    assert "entry 0 'proxy.example.org'" in error(server={"trusted_proxies": ["proxy.example.org"]})
    assert "expected an array" in error(server={"trusted_proxies": "10.0.0.0/8"})


@pytest.mark.parametrize(
    "tile_url",
    ["https://tile.openstreetmap.org/{z}/{x}/{y}.png", "https://{s}.t.example/{z}.png", "/t/{z}"],
)
def test_tile_url_takes_urls_and_paths(tile_url):
    assert parse(map={"tile_url": tile_url}).map.tile_url == tile_url


@pytest.mark.parametrize("tile_url", ["tile.openstreetmap.org/{z}/{x}/{y}.png", "//t.example/x"])
def test_tile_url_must_say_where_the_tiles_are(tile_url):
    # The pages' Content-Security-Policy allows images from this origin, so it must have one.
    assert error(map={"tile_url": tile_url}).startswith("map.tile_url: must be an http(s) URL")


API = {"url": "https://police.example/cctv/{ref}/live", "token": SECRET}


def test_police_api_and_api_sources():
    settings = parse(cam(source="api:TPD-XY-0001"), police_api=API)
    assert settings.cameras[0].api_reference == "TPD-XY-0001"
    assert settings.police_api is not None and settings.police_api.timeout_seconds == 5.0
    assert SECRET not in repr(settings.police_api)  # secrets stay out of repr
    assert parse(cam()).cameras[0].api_reference is None


@pytest.mark.parametrize(
    ("camera", "police_api", "expected"),
    [
        (
            cam(source="api:TPD-1"),
            None,
            "cameras[0] (id 'cam-1').source: an api: source needs a [police_api] table",
        ),
        (cam(source="api:"), API, "cameras[0] (id 'cam-1').source: api: needs a reference"),
        (cam(source="api:TPD 1"), API, "cameras[0] (id 'cam-1').source: api: needs a reference"),
        (cam(), API | {"url": f"https://x/?key={SECRET}"}, "police_api.url: must contain {ref}"),
        (cam(), API | {"url": f"ftp://{SECRET}/{{ref}}"}, "police_api.url: must start with"),
        (cam(), API | {"username": "gw", "password": "pw"}, "police_api.token: give a token or"),
        (cam(), {"url": API["url"], "username": "gw"}, "police_api.password: HTTP Basic needs"),
        (cam(), API | {"token_header": "X Key"}, "police_api.token_header: must be an HTTP"),
        (cam(), API | {"url_field": "data..url"}, "police_api.url_field: must be a dotted path"),
        (cam(), API | {"answer": "xml"}, "police_api.answer: must be one of json, redirect"),
        (cam(), API | {"token": SECRET + "\r\nX: y"}, "police_api.token: must not contain"),
    ],
)
def test_police_api_mistakes_are_named_without_secrets(camera, police_api, expected):
    tables = {"police_api": police_api} if police_api is not None else {}
    message = error(camera, **tables)
    assert message.startswith(expected), message
    assert SECRET not in message


def test_inventory_settings():
    settings = parse_settings(
        {"auth": {"secret": "x" * 32}, "inventory": {"file": "cameras.csv"}}, {}
    )
    assert settings.cameras == () and settings.inventory.columns.district == ""
    message = error(inventory={"file": "c.csv", "columns": {"name": ""}})
    assert message.startswith("inventory.columns.name: must not be empty")
    message = error(inventory={"file": "c.csv", "source_prefix": "ftp://"})
    assert message.startswith("inventory.source_prefix: must be one of , api:")


def test_a_postgresql_database_needs_a_node_id_and_stays_secret():
    url = "postgresql://gw:pa55word@db.example.org/cctv"
    message = error(storage={"database": url})
    assert message.startswith("cluster.node_id: required")
    assert "pa55word" not in message
    settings = parse(
        storage={"database": {"env": "DB"}}, cluster={"node_id": "gw1"}, environ={"DB": url}
    )
    assert settings.storage.shared and settings.cluster.node_id == "gw1"
    assert "pa55word" not in repr(settings)


@pytest.mark.parametrize("node_id", ["GW1", "gw.1", "-gw", "gw_1", "x" * 33])
def test_a_node_id_must_fit_in_a_session_url(node_id):
    assert "cluster.node_id: must be 1-32 of a-z 0-9 -" in error(cluster={"node_id": node_id})


def test_where_the_other_nodes_reach_this_one():
    assert parse(server={"host": "10.0.0.11", "port": 8081}).node_address == "http://10.0.0.11:8081"
    assert parse(server={"host": "::1"}).node_address == "http://[::1]:8080"
    wildcard = parse(server={"host": "0.0.0.0"}).node_address
    assert wildcard.startswith("http://") and "0.0.0.0" not in wildcard
    given = parse(cluster={"address": "https://gw1.example.org:8443"})
    assert given.node_address == "https://gw1.example.org:8443"
    for bad in ("gw1:8080", "http://gw1:8080/path"):
        assert error(cluster={"address": bad}).startswith("cluster.address: must be a scheme")
