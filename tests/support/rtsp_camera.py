#!/usr/bin/python3
"""A real RTSP test camera (GstRtspServer). Run with Debian's /usr/bin/python3.

Prints, flushed, one line per event: READY <port>, CLIENT_CONNECTED, CLIENT_CLOSED.
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def emit(line: str) -> None:
    print(line, flush=True)


def build_launch(a: argparse.Namespace) -> str:
    raw = f"video/x-raw,width={a.width},height={a.height},framerate={a.fps}/1"
    if a.colorimetry:  # the encoder writes it into the SPS (VUI colour description)
        raw += f",colorimetry={a.colorimetry}"
    clock = ' ! timeoverlay font-desc="Sans 24"'  # top left
    if a.pattern in ("bars", "checkers"):
        # Drawn once and repeated: far cheaper than drawing every frame.
        still = {"bars": "smpte", "checkers": "checkers-8"}[a.pattern]
        src = f"videotestsrc pattern={still} num-buffers=1 ! {raw} ! imagefreeze is-live=true"
        if a.pattern == "checkers":  # the clock in the middle, where a mask test hides it
            clock = ' ! timeoverlay halignment=center valignment=center font-desc="Sans 24"'
    else:
        src = f"videotestsrc is-live=true pattern={a.pattern} ! {raw}"
    src += clock
    keyint = a.fps * a.gop_seconds
    if a.codec == "h265":
        hrd = ""
        if a.filler:  # x264enc derives its VBV from bitrate (600 ms buffer); x265enc does not.
            hrd = (
                f":hrd=1:strict-cbr=1:vbv-maxrate={a.bitrate_kbps}"
                f":vbv-bufsize={a.bitrate_kbps * 3 // 5}"
            )
        enc = (
            f"x265enc name=enc speed-preset=ultrafast tune=zerolatency bitrate={a.bitrate_kbps}"
            f' key-int-max={keyint} option-string="scenecut=0:open-gop=0{hrd}"'
            " ! video/x-h265,profile=main ! rtph265pay name=pay0 pt=96 config-interval=1"
        )
    else:
        # tune=zerolatency forces bframes=0 in x264, so only use it without B-frames.
        tune = "tune=zerolatency" if a.bframes == 0 else "b-adapt=false"
        # ultrafast turns off CABAC and 8x8dct, so x264 would emit Constrained Baseline
        # whatever the caps say; switch back on what the requested profile needs.
        opts = {"baseline": "", "main": ":cabac=1", "high": ":cabac=1:8x8dct=1"}[a.profile]
        if a.filler:
            opts += ":nal-hrd=cbr:filler"
        fmt, interval = "byte-stream", 1
        if a.no_inband_params:  # SPS/PPS only in the SDP's sprop-parameter-sets
            # x264 itself writes SPS/PPS before every IDR unless told not to.
            opts += ":repeat-headers=0"
            fmt, interval = "avc", 0
        enc = (
            f"x264enc name=enc {tune} speed-preset=ultrafast bitrate={a.bitrate_kbps}"
            f' key-int-max={keyint} bframes={a.bframes} option-string="scenecut=0{opts}"'
            f" ! video/x-h264,stream-format={fmt},alignment=au,profile={a.profile}"
            f" ! rtph264pay name=pay0 pt=96 config-interval={interval}"
        )
    return f"( {src} ! {enc} )"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mount", default="cam")
    p.add_argument("--codec", choices=["h264", "h265"], default="h264")
    p.add_argument("--profile", choices=["baseline", "main", "high"], default="high")
    p.add_argument("--bframes", type=int, default=0)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--bitrate-kbps", type=int, default=2000)
    p.add_argument("--gop-seconds", type=int, default=2)
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--auth-method", choices=["basic", "digest"], default="basic")
    p.add_argument("--no-inband-params", action="store_true")
    p.add_argument(
        "--pattern",
        choices=["ball", "bars", "snow", "checkers"],
        default="ball",
        help="ball: a moving ball; bars: still colour bars (cheapest); snow: noise in every "
        "frame, so the encoder spends the whole bitrate on picture (costly); checkers: still "
        "red and green 8 px squares with the clock in the middle (known content for the "
        "privacy-mask tests). The clock runs on all of them.",
    )
    p.add_argument(
        "--colorimetry",
        help="GStreamer colorimetry of the picture, e.g. 1:3:5:1 (full range, BT.709 matrix, "
        "transfer and primaries); default: what GStreamer picks for the size",
    )
    p.add_argument(
        "--seekable",
        action="store_true",
        help="let a client's PLAY (FFmpeg sends Range: npt=0-) seek the shared pipeline: the "
        "stream's clock restarts, so every client sees its timestamps jump back, with a new "
        "keyframe, as some cameras and restreamers do",
    )
    p.add_argument(
        "--filler",
        action="store_true",
        help="hard CBR: the encoder pads each frame with filler data NAL units, so the stream "
        "really carries --bitrate-kbps even when the picture compresses well",
    )
    a = p.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(build_launch(a))
    factory.set_shared(True)

    if a.user is not None:
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        auth = GstRtspServer.RTSPAuth()
        # GI exposes RTSPAuthMethod as an enum, so BASIC|DIGEST cannot be offered together.
        if a.auth_method == "digest":
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
            auth.add_digest(a.user, a.password or "", token)
        else:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password or ""), token)
        server.set_auth(auth)
        perms = GstRtspServer.RTSPPermissions()
        perms.add_permission_for_role("user", "media.factory.access", True)
        perms.add_permission_for_role("user", "media.factory.construct", True)
        factory.set_permissions(perms)

    def not_seekable(_pad, info):
        query = info.get_query()
        if query.type != Gst.QueryType.SEEKING:
            return Gst.PadProbeReturn.OK
        query.set_seeking(Gst.Format.TIME, False, 0, -1)
        return Gst.PadProbeReturn.HANDLED

    def on_media_configure(_factory, media):
        # Each PLAY (FFmpeg sends Range: npt=0-) would seek the shared pipeline, flushing the
        # encoder and forcing an IDR for every client. Like a real camera, refuse to seek.
        enc_src = media.get_element().get_by_name("enc").get_static_pad("src")
        enc_src.add_probe(Gst.PadProbeType.QUERY_UPSTREAM, not_seekable)

    if not a.seekable:
        factory.connect("media-configure", on_media_configure)
    server.get_mount_points().add_factory(f"/{a.mount}", factory)

    def on_client(_server, client):
        emit("CLIENT_CONNECTED")
        client.connect("closed", lambda _c: emit("CLIENT_CLOSED"))

    server.connect("client-connected", on_client)

    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{a.port}", file=sys.stderr, flush=True)
        sys.exit(1)

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    emit(f"READY {a.port}")
    loop.run()


if __name__ == "__main__":
    main()
