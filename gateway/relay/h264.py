"""H.264 Annex-B bitstream facts the relay needs: NAL units, parameter sets, profile,
slice types."""

from __future__ import annotations

import re

NAL_SLICE = 1  # a slice of a non-IDR picture
NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9

START_CODE = b"\x00\x00\x00\x01"
_START_CODE_RE = re.compile(b"\x00\x00\x01")
_EMULATION_PREVENTION_RE = re.compile(b"\x00\x00\x03")
SLICE_B = 1  # slice_type % 5 (Table 7-6): 1 and 6 are B slices


def split_nal_units(data: bytes) -> list[bytes]:
    """Split an Annex-B buffer into NAL units (without start codes)."""
    units = []
    starts = [m.end() for m in _START_CODE_RE.finditer(data)]
    for i, start in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        unit = data[start:end]
        # A 4-byte start code leaves a trailing zero on the previous unit.
        units.append(unit.rstrip(b"\x00") if i + 1 < len(starts) else unit)
    return [u for u in units if u]


def nal_type(unit: bytes) -> int:
    return unit[0] & 0x1F


def parameter_sets_from_extradata(extradata: bytes | None) -> list[bytes]:
    """SPS and PPS NAL units from Annex-B or avcC extradata."""
    if not extradata:
        return []
    if extradata[0] == 1 and len(extradata) > 7:
        return _parse_avcc(extradata)
    return [u for u in split_nal_units(extradata) if nal_type(u) in (NAL_SPS, NAL_PPS)]


def _parse_avcc(data: bytes) -> list[bytes]:
    # ISO/IEC 14496-15 AVCDecoderConfigurationRecord.
    units: list[bytes] = []
    pos = 5
    for count_mask in (0x1F, 0xFF):
        if pos >= len(data):
            break
        count = data[pos] & count_mask
        pos += 1
        for _ in range(count):
            size = int.from_bytes(data[pos : pos + 2], "big")
            units.append(data[pos + 2 : pos + 2 + size])
            pos += 2 + size
    return units


def ensure_parameter_sets(access_unit: bytes, parameter_sets: list[bytes]) -> bytes:
    """Prefix SPS/PPS to a keyframe that lacks them in-band.

    Cameras that send SPS/PPS only in the RTSP SDP (sprop-parameter-sets) leave a
    browser joining mid-stream unable to decode; WebRTC needs them in-band.
    """
    units = split_nal_units(access_unit)
    types = {nal_type(u) for u in units}
    if (NAL_SPS in types and NAL_PPS in types) or not parameter_sets:
        return access_unit
    return b"".join(START_CODE + u for u in parameter_sets) + access_unit


def find_sps(data: bytes) -> bytes | None:
    for unit in split_nal_units(data):
        if nal_type(unit) == NAL_SPS:
            return unit
    return None


def profile_level_id(sps: bytes) -> str:
    """RFC 6184 profile-level-id: profile_idc, constraint flags and level_idc."""
    if len(sps) < 4 or nal_type(sps) != NAL_SPS:
        raise ValueError("not an SPS NAL unit")
    return sps[1:4].hex()


PROFILE_NAMES = {66: "Baseline", 77: "Main", 88: "Extended", 100: "High"}


def profile_name(plid: str) -> str:
    return PROFILE_NAMES.get(int(plid[:2], 16), f"profile_idc {int(plid[:2], 16)}")


def has_b_slices(access_unit: bytes) -> bool:
    """True if a slice of this access unit is a B slice.

    Only this says a stream has B-frames. Timestamps that go backwards do not: a
    camera's clock can jump back too (an RTSP server that restarts it for a new
    client), and that needs a new timeline, not a re-encode.
    """
    return any(_is_b_slice(unit) for unit in split_nal_units(access_unit))


def _is_b_slice(unit: bytes) -> bool:
    if nal_type(unit) != NAL_SLICE:
        return False
    try:
        return slice_type(unit) % 5 == SLICE_B
    except ValueError:  # a damaged header is no evidence of B-frames
        return False


def slice_type(unit: bytes) -> int:
    """slice_type from a slice NAL unit's header: first_mb_in_slice, then slice_type,
    both ue(v) (7.3.3). Both fit in the first bytes after the NAL header."""
    rbsp = _EMULATION_PREVENTION_RE.sub(b"\x00\x00", unit[1:16])
    bits = "".join(f"{byte:08b}" for byte in rbsp)
    _first_mb, pos = _exp_golomb(bits, 0)
    value, _ = _exp_golomb(bits, pos)
    return value


def _exp_golomb(bits: str, pos: int) -> tuple[int, int]:
    """One ue(v) (9.1) read at `pos` of a string of "0"/"1": its value and where it ends."""
    one = bits.find("1", pos)
    end = 2 * one - pos + 1  # as many bits after the 1 as there were zeros before it
    if one < 0 or end > len(bits):
        raise ValueError("slice header too short")
    return int(bits[one:end], 2) - 1, end
