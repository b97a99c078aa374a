"""The gateway benchmark (issue 5): `make bench`, or `.venv/bin/python bench/run.py [--quick]`.

It starts everything itself and stops it all afterwards, on loopback only:
- real GStreamer RTSP cameras (tests/support/rtsp_camera.py, Debian's /usr/bin/python3);
- the gateway, as its own process (`python -m gateway --config <temp TOML>`);
- aiortc viewers in worker processes (bench/viewers.py), headless Debian Chromium
  (bench/chromium.py), and a plain RTSP client (bench/rtsp_probe.py).

It writes bench/results.json and bench/results.md (with --quick: bench/out/results-quick.*),
and prints the Markdown table. Gateway logs and py-spy profiles go to bench/out/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from log import log
from phases import PHASES, run_phases
from project import BENCH, OUT
from report import markdown, targets
from sampling import machine_info
from stage import Plan, Stage


async def amain() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a ~3 minute smoke run")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma list of {list(PHASES)}")
    parser.add_argument(
        "--gateway-rev",
        help="run the gateway of this git commit (exported to a temp dir) instead of the work tree",
    )
    parser.add_argument("--levels", help="fan-out viewer counts, e.g. 1,50,100,200")
    parser.add_argument("--profile-at", type=int, help="the fan-out level py-spy profiles")
    parser.add_argument(
        "--spread-one-node",
        type=int,
        help="the spread phase: viewers one node held in an earlier run (skips that ramp)",
    )
    parser.add_argument(
        "--spread-cpu-percent",
        type=float,
        help="the spread phase: the two nodes' [cluster] spread_cpu_percent",
    )
    parser.add_argument(
        "--out", help="output prefix (default bench/results or bench/results-quick)"
    )
    args = parser.parse_args()
    plan = Plan.make(args.quick)
    if args.levels:
        plan.levels = [int(n) for n in args.levels.split(",")]
        if plan.profile_at not in plan.levels:
            plan.profile_at = None
    if args.profile_at:
        plan.profile_at = args.profile_at
    if args.spread_one_node:
        plan.spread_one_node = args.spread_one_node
    if args.spread_cpu_percent:
        plan.spread_cpu_percent = args.spread_cpu_percent
    phases = [p for p in args.phases.split(",") if p]
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}")
    out = (
        Path(args.out) if args.out else (OUT / "results-quick" if args.quick else BENCH / "results")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        stage = Stage(plan, Path(tmp), gateway_rev=args.gateway_rev)
        stage.results["setup_plan"] = plan.__dict__
        try:
            await run_phases(stage, phases)
        except BaseException:
            for gw_log in sorted(Path(tmp).glob("gateway-*.log"))[-1:]:
                print(f"--- {gw_log.name} (tail) ---", file=sys.stderr)
                print(
                    "\n".join(gw_log.read_text(errors="replace").splitlines()[-40:]),
                    file=sys.stderr,
                )
            raise
        finally:
            r = stage.results
            r.setdefault("setup", {})["profile_at"] = plan.profile_at
            r.setdefault("machine", machine_info())
            r.setdefault("started_at", "?")
            r["duration_s"] = round(time.monotonic() - started)
            r["targets"] = targets(r)
            out.with_suffix(".json").write_text(json.dumps(r, indent=2, ensure_ascii=False) + "\n")
            text = markdown(r)
            out.with_suffix(".md").write_text(text)
    print(text)
    log(f"done in {r['duration_s']} s: {out.with_suffix('.json')}, {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(amain()))
