"""Every code the gateway can end or refuse a viewer's session with has words on the
tile in both languages, and the right state: try again, or stop for good.

The codes come from the gateway itself (every `Ending(...)` in its source and the
refusal table of http/errors.py), so a new code fails this test until the player
knows it. The player's modules (web/player/words.js, states.js) run in Chromium.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.gateway import camera_entry, settings_for

from gateway.http.errors import REFUSAL_STATUS

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = ROOT / "gateway"

# Why a session ended, when that is no reason to stop watching.
TRANSIENT_ENDINGS = {
    "connection_lost",
    "never_connected",
    "negotiation_failed",
    "viewer_closed",
    "shutdown",
    "media_failed",
    "mask_failed",  # the gateway tries a fresh decode after a moment
    "not_recorded",  # the audit record waits; the next offer is answered 503 until then
    "node_lost",
    "node_isolated",
}
# The grant's time ran out: "ended". (emergency_ended, by a person or its time: "revoked".)
TIME_UP = {"grant_ended"}
# The tile's own DELETE: the player ignores it.
OWN = {"viewer_left"}
# Codes no viewer's session meets: the console's and the cluster's, and the
# trickle PATCH's (the player ignores its answer: its checks reach the gateway anyway).
NOT_FOR_PLAYERS = {
    "not_admin",
    "role_required",
    "self_approval",
    "self_review",
    "unknown_grant",
    "unknown_authorization",
    "unknown_emergency",
    "no_inventory_file",
    "nothing_pending",
    "invalid_field",
    "outside_authorization",
    "authorization_expired",
    "emergency_too_long",
    "invalid_inventory",
    "not_a_cluster_message",
    "invalid_ticket",
    "precondition_failed",
    "ice_restart_unsupported",
    "bad_sdpfrag",
    # the masks' API (console only)
    "invalid_mask",
    "not_masked",
    "unknown_lift",
    "camera_not_in_grant",
    "grant_not_live",
}
# The player's own codes, and the plain ones (a refusal without JSON).
PLAYER_CODES = {
    "no_token",
    "token_error",
    "network_error",
    "bad_answer",
    "unavailable",
    "turn_refused",
    "turn_unreachable",
    "relay_unavailable",
    "bad_request",
    "too_large",
    "unsupported_media_type",
    "body_timeout",
    "internal",
}


def ending_codes() -> set[str]:
    """Every session ending the gateway's source names (Ending("code", …)), and the
    codes of a hub's feed failures."""
    codes: set[str] = set()
    for path in GATEWAY.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        codes.update(re.findall(r'Ending\(\s*"([a-z_]+)"', text))
        codes.update(re.findall(r'^MASK_FAILED = "([a-z_]+)"', text, re.M))
    return codes


@pytest.fixture
async def player_modules(browser, start_gateway):
    gateway = await start_gateway(settings_for([camera_entry("cam", "demo:testsrc")]))
    page = await browser.new_page()
    await page.goto(gateway.url + "/web/fold.js")  # any page of the gateway's origin
    await page.evaluate(
        """async () => {
          window.words = await import("/web/player/words.js");
          window.states = await import("/web/player/states.js");
        }"""
    )
    yield page
    await page.close()


async def test_every_ending_and_refusal_has_words_and_a_state(player_modules) -> None:
    endings = ending_codes()
    assert {"mask_failed", "authorization_withdrawn", "emergency_ended", "node_lost"} <= endings
    refusals = set(REFUSAL_STATUS) - NOT_FOR_PLAYERS
    assert {"grant_pending", "node_isolated", "mask_failed"} <= refusals
    codes = sorted((endings - OWN) | refusals | PLAYER_CODES)
    seen = await player_modules.evaluate(
        """(codes) => Object.fromEntries(codes.map((code) => [code, {
             zh: words.reasonWords(code, "zh-Hant"),
             en: words.reasonWords(code, "en"),
             outcome: states.outcome(code),
           }]))""",
        codes,
    )
    missing = [code for code in codes if not (seen[code]["zh"] and seen[code]["en"])]
    assert not missing, f"no words in both languages for {missing}"
    for code, got in seen.items():
        assert re.search(r"[\u4e00-\u9fff]", got["zh"]), (code, got)
        assert not re.search(r"[\u4e00-\u9fff]", got["en"]), (code, got)

    # A session ended with each code: reconnect, or the final state.
    for code in sorted(endings - OWN):
        want = (
            "reconnect"
            if code in TRANSIENT_ENDINGS
            else "expired"
            if code == "token_expired"
            else "ended"
            if code in TIME_UP
            else "revoked"
        )
        assert seen[code]["outcome"] == want, (code, seen[code])

    # An offer refused with each code.
    for code in sorted(refusals):
        status = REFUSAL_STATUS[code]
        got = await player_modules.evaluate(
            "([s, c]) => [states.refusal(s, c, false), states.refusal(s, c, true)]", [status, code]
        )
        if code == "unknown_rendition":
            want = ["lighter_missing"] * 2
        elif status in (429,) or status >= 500 or code == "bad_spread":  # (a stale link)
            want = ["reconnect"] * 2
        elif code in TIME_UP:
            want = ["ended"] * 2
        elif status == 403:
            want = ["denied", "revoked"]
        elif status == 401:
            want = ["error", "expired"]
        else:
            want = ["error"] * 2
        assert got == want, (code, status, got)


async def test_administrators_words_follow_the_reason_in_both_languages(player_modules) -> None:
    said = await player_modules.evaluate(
        """() => {
          const why = {code: "revoked", reason: "revoked by an administrator: 不當使用"};
          const note = words.noteOf(why);
          return [words.translateReason({...why, note}, "zh-Hant"),
                  words.translateReason({...why, note}, "en"),
                  words.translateReason({code: "some_new_code", reason: "as sent"}, "en")];
        }"""
    )
    assert said == ["管理員撤銷：不當使用", "Revoked by an administrator: 不當使用", "as sent"]
