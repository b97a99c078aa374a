"""Privacy masks (issue 23): the picture leaves the gateway already masked.

A real RTSP camera shows red and green 8 px checkers with its running clock in the
middle of the picture; the masks cover the middle (solid) and a corner (pixelated).
Frames received by real aiortc viewers (and Chromium) are decoded and checked pixel
by pixel: the masked middle is flat black, the pixelated corner holds no checkers,
and the checkers still show elsewhere, so the picture is the camera's.
"""

from __future__ import annotations

import asyncio
import json
import time
from csv import writer

import pytest
from support.chromium import open_viewer, wait_state
from support.gateway import camera_entry, settings_for
from support.viewer import Viewer
from support.waiting import event, until

from gateway.app import HUBS, SESSIONS
from gateway.config import ConfigError, MaskError, parse_masks
from gateway.inventory import InventoryError, read_inventory

MIDDLE = {
    "label": "住宅窗戶",
    "polygon": [[0.25, 0.3], [0.75, 0.3], [0.75, 0.7], [0.25, 0.7]],
    "fill": "solid",
}
CORNER = {
    "label": "醫院入口",
    "polygon": [[0.05, 0.75], [0.45, 0.75], [0.45, 0.95], [0.05, 0.95]],
    "fill": "pixelate",
}
OPEN = (0.8, 0.05, 0.95, 0.25)  # a box no mask covers: the checkers show there
CAMERA = {"pattern": "checkers", "width": 320, "height": 240, "gop_seconds": 2}
LOW = [{"name": "low", "size": "160x120", "fps": 15}]


# --- pixels ---------------------------------------------------------------------------


def values(frame, box: tuple[float, float, float, float], plane: int) -> list[int]:
    """The samples of one plane inside `box` (fractions of the picture), kept a few
    pixels off its edges, where the encoder may blend the mask with its surroundings."""
    data = frame.planes[plane]
    width, height, stride = data.width, data.height, data.line_size
    margin = max(2, width // 40)
    x0, x1 = round(box[0] * width) + margin, round(box[2] * width) - margin
    y0, y1 = round(box[1] * height) + margin, round(box[3] * height) - margin
    buffer = bytes(data)
    return [v for y in range(y0, y1) for v in buffer[y * stride + x0 : y * stride + x1]]


def box_of(mask: dict) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in mask["polygon"]], [p[1] for p in mask["polygon"]]
    return min(xs), min(ys), max(xs), max(ys)


def spread(samples: list[int]) -> int:
    return max(samples) - min(samples)


def mask_problem(frame, masks: list[dict]) -> str | None:
    """What, if anything, shows through the masks of this decoded frame."""
    for mask in masks:
        y, u, v = (values(frame, box_of(mask), plane) for plane in range(3))
        if mask["fill"] == "solid":
            # Flat black: luma 16, neutral chroma. Checkers are luma 81/145 with
            # strongly coloured chroma; the clock is white.
            if max(y) > 40 or max(abs(c - 128) for c in u + v) > 12:
                return f"{mask['label']}: luma {min(y)}..{max(y)}, not flat black"
        # Blocks of about 16 px, each the average of whole checkers: one flat colour.
        # The checkers themselves spread luma by 64.
        elif max(spread(y), spread(u), spread(v)) > 24:
            return f"{mask['label']}: luma spread {spread(y)}, checkers show through"
    if spread(values(frame, OPEN, 0)) < 40:
        return "no checkers outside the masks: not the camera's picture"
    return None


def shows_middle(frame) -> bool:
    """The middle of the picture shows the checkers (and clock): not masked."""
    return spread(values(frame, box_of(MIDDLE), 0)) >= 40


class Watcher:
    """A viewer whose every decoded frame is checked against `masks` as it arrives."""

    def __init__(self, viewer: Viewer, masks: list[dict]) -> None:
        self.viewer = viewer
        self.masks = masks
        self.problems: list[str] = []
        self.arrivals: list[tuple[float, bool]] = []  # (when, middle shows)
        viewer.on_frame = self._check

    def _check(self, frame) -> None:
        self.arrivals.append((time.monotonic(), shows_middle(frame)))
        problem = mask_problem(frame, self.masks)
        if problem is not None:
            self.problems.append(f"frame {len(self.arrivals)}: {problem}")


async def watch(gateway, camera: str = "cam", masks=(MIDDLE, CORNER), **options) -> Watcher:
    viewer = gateway.viewer("cam", **options)
    if camera != "cam":
        viewer.url = viewer.url.replace("/cam", f"/{camera}")
    watcher = Watcher(viewer, list(masks))
    response = await viewer.connect(gateway.http)
    assert response.status == 201, await response.text()
    assert await viewer.wait_frames(10)
    return watcher


# --- masks as data ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("masks", "field", "words"),
    [
        (
            [{"label": "x", "polygon": [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.8]]}],
            "masks[0].polygon",
            "self-intersecting",
        ),
        ([MIDDLE, {**CORNER, "polygon": [[0, 0], [1.2, 0], [1, 1]]}], "masks[1].polygon", "0..1"),
        ([{**MIDDLE, "fill": "blur"}], "masks[0].fill", "solid, pixelate"),
        ([{**MIDDLE, "label": " "}], "masks[0].label", "empty"),
        ([{**MIDDLE, "polygon": [[0, 0], [1, 1]]}], "masks[0].polygon", "3 to 64 points"),
        ([{**MIDDLE, "polygon": [[0, 0], [1, "x"], [1, 1]]}], "masks[0].polygon[1][1]", "number"),
        ([MIDDLE] * 5, "masks", "more than [relay] max_masks (4)"),
        ({"label": "x"}, "masks", "expected an array"),
    ],
)
def test_a_bad_mask_is_refused_naming_its_field(masks, field, words):
    with pytest.raises(MaskError) as refused:
        parse_masks(masks, max_masks=4)
    assert refused.value.field == field and words in str(refused.value)
    assert str(refused.value).startswith(field + ": ")


def test_config_and_inventory_take_masks_by_the_same_rules(tmp_path):
    table = camera_entry("cam", "demo:testsrc", masks=[MIDDLE, CORNER])
    settings = settings_for([table])
    assert [m.label for m in settings.cameras[0].masks] == ["住宅窗戶", "醫院入口"]
    assert parse_masks([MIDDLE, CORNER], 16) == settings.cameras[0].masks
    with pytest.raises(ConfigError, match=r"cameras\[0\] \(id 'cam'\)\.masks: has 3 masks"):
        settings_for([table | {"masks": [MIDDLE] * 3}], max_masks=2)
    crossed = {**MIDDLE, "polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]}
    with pytest.raises(ConfigError, match=r"cameras\[0\] \(id 'cam'\)\.masks\[0\]\.polygon"):
        settings_for([table | {"masks": [crossed]}])

    # A CSV column of JSON, and a GeoJSON property, in the same shape.
    csv = tmp_path / "cameras.csv"
    with csv.open("w", newline="", encoding="utf-8") as file:
        rows = [["id", "name", "lat", "lon", "source", "masks"]]
        rows.append(["a", "A", "25.0", "121.5", "demo:testsrc", json.dumps([MIDDLE])])
        rows.append(["b", "B", "25.0", "121.5", "demo:testsrc", ""])
        writer(file).writerows(rows)
    inventory = {"inventory": {"file": str(csv)}}
    cameras = {c.id: c for c in read_inventory(settings_for([], tables=inventory)).cameras}
    assert cameras["a"].masks == parse_masks([MIDDLE], 16) and cameras["b"].masks == ()
    geojson = tmp_path / "cameras.geojson"
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [121.5, 25.0]},
        "properties": {"id": "c", "name": "C", "source": "demo:testsrc", "masks": [CORNER]},
    }
    geojson.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    inventory = {"inventory": {"file": str(geojson)}}
    (camera,) = read_inventory(settings_for([], tables=inventory)).cameras
    assert camera.masks == parse_masks([CORNER], 16)
    feature["properties"]["masks"] = [{**CORNER, "fill": "blur"}]
    geojson.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    with pytest.raises(InventoryError, match=r"features\[0\] \(id 'c'\)\.masks\[0\]\.fill"):
        read_inventory(settings_for([], tables=inventory))
    csv.write_text("id,name,lat,lon,source,masks\na,A,25,121,demo:testsrc,[{oops\n")
    with pytest.raises(InventoryError, match=r"line 2 \(id 'a'\)\.masks: not valid JSON"):
        read_inventory(settings_for([], tables={"inventory": {"file": str(csv)}}))


# --- the picture that leaves ----------------------------------------------------------


async def test_every_picture_of_a_masked_camera_leaves_masked(make_rtsp_camera, start_gateway):
    """Cold join, warm join (its first frame too), the lighter picture and VP8: every
    frame received is masked, and each output is one shared encode."""
    camera = make_rtsp_camera(**CAMERA)
    entry = camera_entry("cam", camera.url, masks=[MIDDLE, CORNER])
    gateway = await start_gateway(settings_for([entry], renditions=LOW))
    hub = gateway.app[HUBS].get("cam")
    cold = await watch(gateway)
    assert hub.info.mode == "masked" and hub.info.profile_level_id.startswith("42e0")
    assert await cold.viewer.wait_frames(15)  # into the camera's GOP: a warm join now
    watchers = [
        cold,
        await watch(gateway),
        await watch(gateway, "cam?rendition=low"),
        await watch(gateway, codecs=["video/VP8"]),
        await watch(gateway, "cam?rendition=low", codecs=["video/VP8"]),
    ]
    for watcher in watchers:
        assert await watcher.viewer.wait_frames(10)
    assert [w.problems for w in watchers] == [[]] * 5
    sizes = [{(w, h) for _, w, h in watcher.viewer.frames} for watcher in watchers]
    assert sizes == [{(320, 240)}] * 2 + [{(160, 120)}] + [{(320, 240)}] + [{(160, 120)}]
    viewers = {name: len(r.feeds) for name, r in hub.renditions.items()}
    assert viewers == {"original": 2, "low": 1, "vp8": 1, "low/vp8": 1}  # one encode each
    # Nothing was passed through: the camera's own stream reached no viewer.
    assert not hub._direct
    for watcher in watchers:
        await watcher.viewer.close(gateway.http)


async def masked_within_a_second(
    gateway, watcher: Watcher, session: object, since: float, what: str
) -> None:
    """The middle masked in `watcher`'s pictures within a second of `since`, and in
    every picture after, on its `session` still (no reconnect)."""
    await until(lambda: not watcher.arrivals[-1][1], 5, "a masked picture")
    masked_at = next(t for t, shows in watcher.arrivals if t > since and not shows)
    print(f"masked {masked_at - since:.3f} s after {what}")
    assert masked_at - since < 1.0
    seen = len(watcher.arrivals)
    watcher.masks = [MIDDLE]
    assert await watcher.viewer.wait_frames(25)
    assert not any(shows for _, shows in watcher.arrivals[seen:])
    assert watcher.problems == []
    assert list(gateway.app[SESSIONS]) == [session], "the viewer did not reconnect"
    await watcher.viewer.close(gateway.http)


async def test_a_mask_added_while_a_viewer_watches_shows_within_a_second(
    make_rtsp_camera, start_gateway
):
    camera = make_rtsp_camera(**CAMERA)
    gateway = await start_gateway(settings_for([camera_entry("cam", camera.url)]))
    hub = gateway.app[HUBS].get("cam")
    watcher = await watch(gateway, masks=[])
    assert hub.info.mode == "passthrough" and watcher.arrivals[-1][1], "the middle shows"
    (session,) = gateway.app[SESSIONS]

    added = time.monotonic()
    hub.set_masks(parse_masks([MIDDLE], 16))
    await masked_within_a_second(gateway, watcher, session, added, "set_masks")


async def test_a_lift_shows_one_grant_the_unmasked_picture_until_it_expires(
    make_rtsp_camera, start_gateway
):
    camera = make_rtsp_camera(**CAMERA)
    entry = camera_entry("cam", camera.url, masks=[MIDDLE])
    gateway = await start_gateway(settings_for([entry]), grant=False)
    lifted = gateway.grant(members=["viewer-1"])
    gateway.grant(members=["viewer-2"])
    hub = gateway.app[HUBS].get("cam")
    a = await watch(gateway, masks=[MIDDLE])
    b = await watch(gateway, masks=[MIDDLE], account="viewer-2")

    a.masks = []  # during the lift, viewer-1's picture is not checked against the mask
    started = time.monotonic()
    hub.lift_masks(lifted.id, 3.0)
    ends = started + 3.0
    await until(lambda: a.arrivals[-1][1], 5, "the unmasked picture for the lifted grant")
    shown = next(t for t, shows in a.arrivals if t > started and shows)
    assert shown - started < 1.0
    # Joining during the lift: the other grant's viewer gets the masked picture.
    c = await watch(gateway, masks=[MIDDLE], account="viewer-2")
    assert time.monotonic() < ends
    viewers = {name: len(r.feeds) for name, r in hub.renditions.items()}
    assert viewers == {"original": 2, "original (masks lifted)": 1}
    await until(lambda: time.monotonic() > ends and not a.arrivals[-1][1], 5, "the mask back")
    back = next(t for t, shows in a.arrivals if t > ends and not shows)
    print(f"lifted after {shown - started:.3f} s, masked again {back - ends:.3f} s after expiry")
    assert back - ends < 1.0
    seen = len(a.arrivals)
    assert await a.viewer.wait_frames(10)
    assert not any(shows for _, shows in a.arrivals[seen:])
    assert b.problems == c.problems == [], "the other grant's viewers saw the picture unmasked"
    await until(lambda: sorted(hub.renditions) == ["original"], 2, "the lifted encode to stop")
    assert len(gateway.app[SESSIONS]) == 3 and not a.viewer.closed.is_set()  # no reconnect
    for watcher in (a, b, c):
        await watcher.viewer.close(gateway.http)


async def test_a_mask_that_cannot_be_applied_ends_the_picture_with_mask_failed(
    make_rtsp_camera, start_gateway
):
    """The camera comes back at another size: the masked pictures end, the viewer's
    session ends with mask_failed, and not one frame of the new size reaches it."""
    camera = make_rtsp_camera(**CAMERA)
    entry = camera_entry("cam", camera.url, masks=[MIDDLE])
    gateway = await start_gateway(settings_for([entry]))
    watcher = await watch(gateway, masks=[MIDDLE])
    session_id = watcher.viewer.session_url.rsplit("/", 1)[1]

    camera.restart(**{**CAMERA, "width": 352, "height": 288})
    await event(watcher.viewer.closed, 15, "the viewer's connection to close")
    sessions = gateway.app[SESSIONS]
    await until(lambda: sessions.recently_ended(session_id), 5, "the session's end")
    ended = sessions.recently_ended(session_id)
    assert ended is not None and ended.ending.code == "mask_failed", ended
    assert "changed size" in ended.ending.reason
    assert {(w, h) for _, w, h in watcher.viewer.frames} == {(320, 240)}
    assert watcher.problems == []

    # A viewer that comes at once is refused with the same code ...
    refused = gateway.viewer("cam")
    response = await refused.connect(gateway.http)
    assert response.status == 503 and (await response.json())["code"] == "mask_failed"
    await refused.close()
    # ... and a little later gets the masks, placed on the new size.
    deadline = time.monotonic() + 10
    while True:
        await asyncio.sleep(0.5)
        again = Watcher(gateway.viewer("cam"), [MIDDLE])
        if (await again.viewer.connect(gateway.http)).status == 201:
            break
        await again.viewer.close()
        assert time.monotonic() < deadline, "no viewer admitted after the retry time"
    assert await again.viewer.wait_frames(10)
    assert {(w, h) for _, w, h in again.viewer.frames} == {(352, 288)}
    assert again.problems == []
    await again.viewer.close(gateway.http)


# Draws the tile's video to a canvas and measures the masked middle and an open corner.
MIDDLE_AND_CORNER = """([sel, inner, open]) => {
    const video = document.querySelector(sel).video;
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    const g = canvas.getContext("2d", { willReadFrequently: true });
    g.drawImage(video, 0, 0);
    const box = ([x0, y0, x1, y1]) => {
      const w = canvas.width, h = canvas.height, m = 6;  // m: kept off the edges
      const left = x0 * w + m, top = y0 * h + m;
      const d = g.getImageData(left, top, x1 * w - m - left, y1 * h - m - top).data;
      let brightest = 0, red = 0, green = 0;
      for (let i = 0; i < d.length; i += 4) {
        brightest = Math.max(brightest, d[i], d[i + 1], d[i + 2]);
        if (d[i] > 150 && d[i + 1] < 100) red++;
        if (d[i + 1] > 150 && d[i] < 100) green++;
      }
      return { brightest, red, green };
    };
    return { size: [canvas.width, canvas.height], middle: box(inner), open: box(open) };
}"""


@pytest.mark.browser
async def test_chromium_gets_the_masked_picture(make_rtsp_camera, start_gateway, browser):
    camera = make_rtsp_camera(**CAMERA)
    entry = camera_entry("cam", camera.url, masks=[MIDDLE])
    gateway = await start_gateway(settings_for([entry]))
    page = await open_viewer(browser, gateway)
    await page.page.click("#cameras button[data-camera='cam']")
    await wait_state(page, "cam", "live")
    for _ in range(5):  # five samples, 0.2 s apart
        sample = await page.page.evaluate(
            MIDDLE_AND_CORNER, ["cctv-player[camera='cam']", box_of(MIDDLE), OPEN]
        )
        assert sample["size"] == [320, 240]
        assert sample["middle"]["brightest"] < 45, sample  # flat black: no checkers, no clock
        assert sample["open"]["red"] > 100 and sample["open"]["green"] > 100, sample
        await asyncio.sleep(0.2)
