"""Offers edited the way some browsers or networks would shape them."""

from __future__ import annotations

import re
from collections.abc import Callable


def keep_codecs(sdp: str, keep: Callable[[str, str], bool]) -> str:
    """The offer with only the video payload types for which keep(codec, fmtp) is true,
    and the RTX types that repair them; e.g. keep(codec="H264", fmtp="...42e01f")."""
    lines = sdp.splitlines()
    codec = {m[1]: m[2] for m in (re.match(r"a=rtpmap:(\d+) ([^/]+)/", x) for x in lines) if m}
    fmtp = {m[1]: m[2] for m in (re.match(r"a=fmtp:(\d+) (.*)", x) for x in lines) if m}
    kept = {pt for pt, name in codec.items() if name != "rtx" and keep(name, fmtp.get(pt, ""))}
    kept |= {
        pt
        for pt, name in codec.items()
        if name == "rtx" and fmtp.get(pt, "") in {f"apt={k}" for k in kept}
    }
    out = []
    for line in lines:
        if line.startswith("m=video "):
            head = line.split()
            line = " ".join([*head[:3], *(pt for pt in head[3:] if pt in kept)])
        elif (match := re.match(r"a=(?:rtpmap|fmtp|rtcp-fb):(\d+) ", line)) and match[
            1
        ] not in kept:
            continue
        out.append(line)
    return "\r\n".join(out) + "\r\n"


def without_candidates(sdp: str) -> str:
    """The offer of a viewer whose address the gateway never learns (blocked UDP):
    no candidates, and no end-of-candidates, so ICE waits for checks that never come."""
    return "".join(
        line
        for line in sdp.splitlines(keepends=True)
        if not line.startswith(("a=candidate:", "a=end-of-candidates"))
    )
