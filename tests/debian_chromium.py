"""Debian's Chromium as the tests and the benchmark launch it (never `playwright install`)."""

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
