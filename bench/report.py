"""The report: issue 5's targets, and bench/results.md with one function per table."""

from __future__ import annotations

from typing import Any

from sampling import QUIET_PCT


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    out = []

    def add(name: str, target: str, measured: str, ok: bool | None) -> None:
        out.append({"target": name, "goal": target, "measured": measured, "met": ok})

    for key, label in (("ttff_aiortc", "aiortc"), ("ttff_chromium", "Chromium")):
        t = r.get(key, {}).get("ttff_ms")
        if t and t["n"]:
            add(
                f"TTFF {label}",
                "p50 ≤ 400 ms, p95 ≤ 800 ms",
                f"p50 {t['p50']:.0f} ms, p95 {t['p95']:.0f} ms",
                t["p50"] <= 400 and t["p95"] <= 800,
            )
    fan = r.get("fanout") or []
    top = max(fan, key=lambda x: x["viewers"]) if fan else None
    if top:
        base = min(fan, key=lambda x: x["viewers"])
        n = top["viewers"] - base["viewers"]
        per_cpu = (top["gateway_cpu_pct"] - base["gateway_cpu_pct"]) / max(1, n)
        per_rss = (top["gateway_rss_mb"] - base["gateway_rss_mb"]) / max(1, n)
        add(
            f"Fan-out {top['viewers']} viewers",
            "25 fps each, ≤ 100 % of a core, ≤ 0.5 %/viewer, ≤ 1 MB/viewer",
            f"fps min {top['fps_min']}, median {top['fps_median']}; CPU {top['gateway_cpu_pct']} % "
            f"({per_cpu:.2f} %/viewer); RSS {per_rss:.2f} MB/viewer",
            (top["fps_min"] or 0) >= 24.0
            and top["gateway_cpu_pct"] <= 100
            and per_cpu <= 0.5
            and per_rss <= 1.0,
        )
        lat = [f["latency"] for f in fan if f["latency"].get("matched")]
        if lat:
            worst = max(x["first_packet_ms"]["p99"] for x in lat)
            delta = max(x["delta_first_packet_ms"]["p99"] or 0 for x in lat)
            key = max(x["keyframe_first_packet_ms"]["p99"] or 0 for x in lat)
            add(
                "Added latency",
                "p99 ≤ 10 ms",
                f"worst p99 {worst:.1f} ms (first packet); delta frames alone {delta:.1f} ms, "
                f"keyframes alone {key:.1f} ms",
                worst <= 10,
            )
    td = r.get("teardown")
    if td:
        c = td["rtsp_closed_after_linger_s"]
        if c["n"]:
            add("Teardown", "≤ linger + 1 s", f"linger + {c['max']:.2f} s (max)", c["max"] <= 1.0)
        v = td["revoke_to_pc_closed_s"]
        if v["n"]:
            add("Revoke", "≤ 1 s to closed", f"{v['max']:.2f} s (max)", v["max"] <= 1.0)
    tc = r.get("transcode") or []
    if len(tc) >= 2:
        a, b = tc[0], tc[-1]
        growth = (b["gateway_cpu_pct"] - a["gateway_cpu_pct"]) / max(0.1, a["gateway_cpu_pct"])
        add(
            "Transcode",
            f"CPU {a['viewers']} vs {b['viewers']} viewers differ < 30 %",
            f"{a['gateway_cpu_pct']} % vs {b['gateway_cpu_pct']} % (+{100 * growth:.0f} %)",
            growth < 0.30,
        )
    enc = r.get("encodes") or {}
    for kind in ("transcode", "vp8", "low", "masked"):
        e = enc.get(kind) or {}
        if e.get("outside_loop_growth_pct") is None:
            continue
        one, many = e["rows"]
        add(
            f"Shared encode flat: {kind}",
            f"the encode's CPU (outside the event loop) {one['viewers']} vs "
            f"{many['viewers']} viewers within 10 %",
            f"{one['outside_loop_cpu_pct']} % vs {many['outside_loop_cpu_pct']} % "
            f"({e['outside_loop_growth_pct']:+.0f} %); whole gateway {one['gateway_cpu_pct']} % "
            f"vs {many['gateway_cpu_pct']} %",
            abs(e["outside_loop_growth_pct"]) <= 10,
        )
    sp = r.get("spread") or {}
    if sp.get("ratio") is not None:
        opened = sp["two_nodes"]["rtsp_opened"]
        add(
            "One hot camera over two nodes",
            "two nodes hold ≥ 1.8× the viewers of one; 1 RTSP connection",
            f"{sp['one_node']['held']} → {sp['two_nodes']['held']} viewers ({sp['ratio']}×); "
            f"RTSP connections opened {opened}",
            sp["ratio"] >= 1.8 and opened == 1,
        )
    sk = r.get("soak")
    if sk and sk["rss_spread_after_warmup_pct"] is not None:
        add(
            "Soak memory",
            "RSS within 5 % after warm-up; fds back to idle",
            f"RSS spread {sk['rss_spread_after_warmup_pct']} %, fds {sk['idle']['fds']} ->"
            f" {sk['after']['fds']}",
            sk["rss_spread_after_warmup_pct"] <= 5 and sk["fds_back_to_idle"],
        )
    return out


def markdown(r: dict[str, Any]) -> str:
    lines = [
        *_heading(r),
        *_targets_table(r),
        *_ttff_table(r),
        *_fanout_table(r),
        *_teardown_table(r),
        *_many_cameras(r),
        *_cluster(r),
        *_capacity(r),
        *_spread(r),
        *_transcode_table(r),
        *_flood_table(r),
        *_vp8_table(r),
        *_tablets_table(r),
        *_masks_table(r),
        *_encodes_table(r),
        *_soak_table(r),
        *_profile_tables(r),
        "",
        METHOD.strip(),
        "",
        "Reproduce: `make bench` (or `.venv/bin/python bench/run.py`; `--quick` for a smoke run).",
        "",
    ]
    return "\n".join(lines)


def _heading(r: dict[str, Any]) -> list[str]:
    m = r["machine"]
    lines = [
        f"# Gateway benchmark {'(quick) ' if r.get('quick') else ''}— {r['started_at']}",
        "",
        f"Machine: {m['nproc']} cores, {m['cpu_model']}, {m['ram_gb']} GB RAM, "
        f"Linux {m['kernel']}, Python {m['python']}. Gateway: "
        + (
            f"commit {r['git']['gateway_rev']}"
            if r.get("git", {}).get("gateway_rev")
            else f"work tree at {r.get('git', {}).get('head')}"
            + (" (gateway/ modified)" if r.get("git", {}).get("gateway_modified") else "")
        )
        + ".",
    ]
    cs = r.get("camera_stream")
    if cs:
        lines.append(
            f"Camera as measured by a plain RTSP client: {cs['fps']} fps, {cs['kbps']:.0f} kbit/s "
            f"({cs['avg_frame_bytes']} B/frame: keyframes {cs.get('avg_keyframe_bytes')} B, "
            f"delta frames {cs.get('avg_delta_frame_bytes')} B), keyframe every "
            f"{cs['keyframe_interval_s']} s."
        )
    return lines


def _targets_table(r: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Targets (issue 5)",
        "",
        "| target | goal | measured | met |",
        "|---|---|---|---|",
    ]
    for t in r.get("targets", []):
        met = {True: "yes", False: "**no**", None: "?"}[t["met"]]
        lines.append(f"| {t['target']} | {t['goal']} | {t['measured']} | {met} |")
    return lines


def _ttff_table(r: dict[str, Any]) -> list[str]:
    lines = []
    if any(k in r for k in ("ttff_cold_aiortc", "ttff_aiortc", "ttff_chromium")):
        lines += ["", "## Time to first frame (WHEP POST → first decoded frame)", ""]
        lines += [
            "| viewer | joins | p50 ms | p95 ms | max ms | answer p50 ms | "
            "live picture p50 / p95 ms | frames decoded in the 0.5 s after the first (p50) | "
            "frames presented in it (p50) | decoder warnings | failed |"
        ]
        lines += ["|---|---|---|---|---|---|---|---|---|---|---|"]
    cold = r.get("ttff_cold_aiortc")
    if cold and cold.get("ttff_s") is not None:
        live = f"{1000 * cold['live_s']:.0f}" if cold.get("live_s") else ""
        lines.append(
            f"| aiortc, cold start (camera idle) | 1 | {cold['ttff_s'] * 1000:.0f} | | | "
            f"{cold['answer_s'] * 1000:.0f} | {live} | "
            f"{cold.get('frames_in_hold', 1) - 1} | | {cold.get('decoder_warnings', '')} | 0 |"
        )
    for key, label in (
        ("ttff_aiortc", "aiortc (camera warm)"),
        ("ttff_chromium", "Chromium (camera warm)"),
    ):
        t = r.get(key)
        if t:
            lines.append(_ttff_row(label, t))
    return lines


def _ttff_row(label: str, t: dict[str, Any]) -> str:
    if "error" in t:
        return f"| {label} | error: {t['error']} | | | | | | | | | |"
    name = f"{label}, {t['browser']}" if "browser" in t else label
    f, a, h = t["ttff_ms"], t["answer_ms"], t["fps_after_first_frame"]
    lv, pr = t.get("live_picture_ms") or {}, t.get("presented_in_first_0_5_s") or {}
    live = f"{lv['p50']:.0f} / {lv['p95']:.0f}" if lv.get("n") else ""
    decoded = round(h["p50"] * 0.5) if h.get("p50") is not None else ""
    warnings = t.get("decoder_warnings", "") if "browser" not in t else "n/a"
    return (
        f"| {name} | {t['joins']} | {f['p50']:.0f} | {f['p95']:.0f} | {f['max']:.0f} | "
        f"{a['p50']:.0f} | {live} | {decoded} | {pr.get('p50') or ''} | {warnings} | "
        f"{t['failed']} |"
    )


def _fanout_table(r: dict[str, Any]) -> list[str]:
    lines = []
    idle = r.get("gateway_idle")
    if r.get("fanout"):
        lines += ["", "## Fan-out: one 720p25 H.264 High camera, passthrough", ""]
    if idle:
        lines.append(f"Idle gateway: {idle['cpu_pct']} % CPU, {idle['rss_mb']} MB RSS.")
        lines.append("")
    fan = r.get("fanout") or []
    if fan:
        lines += [
            "| viewers | gateway CPU % of a core | CPU %/viewer | RSS MB | RSS MB/viewer | fps min | fps median | "
            "viewers < 20 fps | decoding viewer fps | RTP loss % | latency first pkt p50/p99 ms | frame complete p50/p99 ms | "
            "delta frames / keyframes p99 ms | packets sent/s | gateway µs per packet user/sys | "
            "viewer procs CPU % | camera CPU % | other load % |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
    lines += [_fanout_row(f, fan[0]) for f in fan]
    others = {o["cmd"] for f in fan for o in f.get("other_top", []) if o["cpu_pct"] >= 10}
    if others:
        lines += [
            "",
            "Other load on the machine during the windows: " + "; ".join(sorted(others)[:5]) + ".",
        ]
    return lines


def _fanout_row(f: dict[str, Any], base: dict[str, Any]) -> str:
    """One fan-out level; per-viewer figures are differences from the first level."""
    n = f["viewers"] - base["viewers"]
    per_cpu = f"{(f['gateway_cpu_pct'] - base['gateway_cpu_pct']) / n:.2f}" if n else ""
    per_rss = f"{(f['gateway_rss_mb'] - base['gateway_rss_mb']) / n:.2f}" if n else ""
    lat = f["latency"]
    if lat.get("matched"):
        a, b = lat["first_packet_ms"], lat["last_packet_ms"]
        l1 = f"{a['p50']:.1f} / {a['p99']:.1f}"
        l2 = f"{b['p50']:.1f} / {b['p99']:.1f}"
        d, k = lat["delta_first_packet_ms"], lat["keyframe_first_packet_ms"]
        l3 = f"{d['p99']:.1f} / {k['p99']:.1f}" if d["n"] and k["n"] else "n/a"
    else:
        l1 = l2 = l3 = "n/a"
    us = f.get("gateway_us_per_packet") or {}
    cost = f"{us['user']} / {us['system']}" if us.get("user") is not None else ""
    noisy = " ⚠" if f.get("other_load_pct", 0) > 2 * QUIET_PCT else ""
    return (
        f"| {f['viewers']}{noisy} | {f['gateway_cpu_pct']} | {per_cpu} | {f['gateway_rss_mb']} | {per_rss} | "
        f"{f['fps_min']} | {f['fps_median']} | {f['viewers_below_20fps']} | {f['fps_decoding_viewer'] or ''} | {f['rtp_loss_pct']} | "
        f"{l1} | {l2} | {l3} | {f.get('packets_sent_per_s', '')} | {cost} | "
        f"{f['viewer_workers_cpu_pct']} | {f['camera_cpu_pct']} | {f['other_load_pct']} |"
    )


def _teardown_table(r: dict[str, Any]) -> list[str]:
    td = r.get("teardown")
    if not td:
        return []
    c, v = td["rtsp_closed_after_linger_s"], td["revoke_to_pc_closed_s"]
    return [
        "",
        "## Teardown",
        "",
        "| measure | n | p50 s | max s |",
        "|---|---|---|---|",
        f"| last viewer's DELETE → RTSP closed, minus linger ({td['linger_s']} s) | {c['n']} | "
        f"{c['p50']} | {c['max']} |",
        f"| admin revoke POST → viewer's peer connection closed | {v['n']} | {v['p50']} | {v['max']} |",
    ]


def _soak_table(r: dict[str, Any]) -> list[str]:
    sk = r.get("soak")
    if not sk:
        return []
    idle, after = sk["idle"], sk["after"]
    lanes = "; ".join(
        f"{x['in_flight']} {'in waves ' if x['waves'] else ''}on {x['camera']}" for x in sk["lanes"]
    )
    lines = [
        "",
        "## Soak: the gateway's own memory",
        "",
        f"Run at {sk['run']['git'].get('head', '?')}, {sk['run']['at']}. "
        f"{sk['outcomes'].get('started', 0)} sessions joined and left in"
        f" {sk['seconds'] / 60:.1f} min, the viewers in four other processes ({lanes};"
        f" each watched {sk['lanes'][0]['hold_s']:g} s). Outcomes: {sk['outcomes']}.",
        "",
        "| | live sessions | RSS MB | RSS MB, free heap handed back | fds | threads |",
        "|---|---|---|---|---|---|",
        f"| idle, before | {idle['sessions']} | {idle['rss_mb']} |"
        f" {idle.get('rss_trimmed_mb')} | {idle['fds']} | {idle['threads']} |",
        f"| idle, after | {after['sessions']} | {after['rss_mb']} |"
        f" {after.get('rss_trimmed_mb')} | {after['fds']} | {after['threads']} |",
        "",
        "| minute | sessions started | live | RSS MB (last) | RSS MB (max) | fds | threads |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {m['minute']} | {m['sessions_started']} | {m['live_sessions']} | {m['rss_mb']} |"
        f" {m['rss_max_mb']} | {m['fds']} | {m['threads']} |"
        for m in sk["minutes"]
    ]
    lines += [
        "",
        f"After the {sk['warmup_minutes']}-minute warm-up the RSS moved"
        f" {sk['rss_growth_after_warmup_pct']} % from first to last minute (spread"
        f" {sk['rss_spread_after_warmup_pct']} %; goal: within 5 %); file descriptors back"
        f" to idle: {'yes' if sk['fds_back_to_idle'] else 'no'}.",
    ]
    return lines


def _cluster(r: dict[str, Any]) -> list[str]:
    cl = r.get("cluster")
    if not cl:
        return []
    mc, rv = cl["many_cameras"], cl["revoke_gw1_to_closed_on_gw2_s"]
    nodes = "; ".join(
        f"{name} {n['cpu_pct']} % of a core, {n['rss_mb']} MB, {n['viewers']} viewers"
        for name, n in mc["per_node"].items()
    )
    return [
        "",
        "## Two nodes behind HAProxy (issue 14)",
        "",
        f"The same {mc['cameras']} cameras, one viewer each, offered through HAProxy to two "
        f"nodes on one PostgreSQL: {nodes}; {mc['rtsp_connections']} RTSP connections "
        f"(one per camera); fps min/median {mc['fps_min']}/{mc['fps_median']}.",
        *_per_viewer(cl.get("per_viewer")),
        f"Revoke sent to gw1 → the viewer's peer connection on gw2 closed: n={rv['n']}, "
        f"p50 {rv['p50']} s, max {rv['max']} s. kill -9 of a viewer's node → a picture again "
        f"through HAProxy: {cl['kill_to_picture_s']} s.",
    ]


def _per_viewer(pv: dict[str, Any] | None) -> list[str]:
    if not pv:
        return []
    h, d = pv["haproxy"], pv["direct"]
    return [
        f"A node's CPU per viewer of one camera ({pv['viewers']} viewers added to one): "
        f"offered through HAProxy {h['cpu_pct_per_viewer']} % of a core, straight to the node "
        f"{d['cpu_pct_per_viewer']} % (node {pv['one_viewer_cpu_pct']} % → {h['cpu_pct']} % / "
        f"{d['cpu_pct']} %; fps min {h['fps_min']} / {d['fps_min']}).",
    ]


def _spread(r: dict[str, Any]) -> list[str]:
    c = r.get("spread")
    if not c:
        return []
    title = ["", "## Spreading: one hot camera's viewers, one node against two (issue 25)", ""]
    if "skipped" in c:
        return [*title, f"Not measured: {c['skipped']}."]
    lines = [
        *title,
        f"One camera (the main one). Each node capped at {c['node_cpu_quota_pct']} % of one "
        "core, as in the capacity phase; viewers added until a step is not held (a node drops "
        f"a frame, or the viewers' median < 24 fps, over {c['window_s']:g} s; a one-node figure "
        "of an earlier run shows no split). Two nodes: "
        + (
            f"`[cluster] spread_cpu_percent = {c['spread_cpu_percent']:g}` (the owner sends "
            "viewers on once busy past that share of its quota)"
            if "spread_cpu_percent" in c
            else f"`[cluster] spread_viewers = {c.get('spread_viewers')}`"
        )
        + ", the rest relayed by the other node from the owner's stream.",
        "",
        "| | viewers held | split | busiest node CPU % | RTSP connections opened (most open) |",
        "|---|---|---|---|---|",
    ]
    for key, label in (
        ("one_node", f"one node (offers {c['one_node_offers']})"),
        ("two_nodes", f"two nodes (offers {c['two_nodes_offer']})"),
    ):
        ramp = c.get(key)
        if not ramp:
            continue
        at = next((s for s in ramp["steps"] if s["viewers_joined"] == ramp["held"]), None)
        busiest = max(at["per_node"].values(), key=lambda n: n["cpu_pct"]) if at else None
        split = " + ".join(f"{k} {v}" for k, v in ramp["split"].items())
        load = f"{busiest['cpu_pct']}" if busiest else ""
        rtsp = f"{ramp['rtsp_opened']} ({ramp['rtsp_most']})"
        lines.append(f"| {label} | **{ramp['held']}** | {split} | {load} | {rtsp} |")
    lines += ["", f"Two nodes against one: **{c.get('ratio')}×** (the issue asks ≥ 1.8×)."]
    return lines


def _capacity(r: dict[str, Any]) -> list[str]:
    c = r.get("capacity")
    if not c:
        return []
    title = [
        "",
        "## Capacity: cameras held at full frame rate, one node against two (issue 14)",
        "",
    ]
    if "skipped" in c:
        return [*title, f"Not measured: {c['skipped']}."]
    lines = [
        *title,
        f"Each node runs in a cgroup capped at {c['node_cpu_quota_pct']} % of one core "
        f"(CFS quota per {c['period_us'] // 1000} ms period), standing in for a core per node; "
        "cameras, viewers, PostgreSQL and HAProxy are not capped. Cameras are added with one "
        f"viewer each; a count is held when every viewer gets ≥ {c['fps_held']} fps over "
        f"{c['window_s']:g} s.",
        "",
        "| | cameras held | split | busiest node CPU % (throttled periods %) | next count |",
        "|---|---|---|---|---|",
    ]
    for key, label in (
        ("one_node", f"one node (offers {c['one_node_offers']})"),
        ("two_nodes", f"two nodes (offers {c['two_nodes_offer']})"),
    ):
        ramp = c[key]
        at = next((s for s in ramp["steps"] if s["cameras"] == ramp["held"]), None)
        after = next((s for s in ramp["steps"] if not s["held"]), None)
        busiest = max(at["per_node"].values(), key=lambda n: n["cpu_pct"]) if at else None
        split = " + ".join(f"{k} {v}" for k, v in ramp["split"].items())
        load = f"{busiest['cpu_pct']} ({busiest['throttled_periods_pct']})" if busiest else ""
        if after:
            nodes = ", ".join(f"{k} {v['viewers']} viewers" for k, v in after["per_node"].items())
            nxt = (
                f"{after['cameras']}: {after['viewers_below']} viewers < {c['fps_held']} fps, "
                f"fps min {after['fps_min']}; {nodes}"
            )
        else:
            nxt = f"none (all {ramp['cameras_available']} cameras held)"
        lines.append(f"| {label} | **{ramp['held']}** | {split} | {load} | {nxt} |")
    lines += ["", f"Two nodes against one: **{c['ratio']}×** (the issue asks ≥ 1.8×)."]
    return lines


def _many_cameras(r: dict[str, Any]) -> list[str]:
    mc = r.get("many_cameras")
    if not mc:
        return []
    return [
        "",
        "## Many cameras",
        "",
        f"{mc['cameras']} cameras (720p25 H.264 High; {mc['camera_processes']} GStreamer camera processes, "
        f"each serving {mc['cameras'] // max(1, mc['camera_processes'])} of the gateway's RTSP pulls; "
        f"{mc['rtsp_connections']} RTSP connections seen), one viewer each: gateway "
        f"**{mc['gateway_cpu_pct']} %** of a core, {mc['gateway_rss_mb']} MB RSS, "
        f"fps min/median {mc['fps_min']}/{mc['fps_median']}.",
    ]


def _transcode_table(r: dict[str, Any]) -> list[str]:
    tc = r.get("transcode")
    if not tc:
        return []
    lines = [
        "",
        "## Transcode: one 720p25 H.265 camera",
        "",
        "| viewers | gateway CPU % | of it in the event loop (fan-out, ICE, RTCP) % | of it in the kernel % | RSS MB | fps min | fps median | packets/s per viewer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in tc:
        lines.append(
            f"| {t['viewers']} | {t['gateway_cpu_pct']} | {t.get('event_loop_cpu_pct', '')} | "
            f"{t.get('gateway_system_cpu_pct', '')} | "
            f"{t['gateway_rss_mb']} | {t['fps_min']} | {t['fps_median']} | {t.get('packets_per_viewer_s') or ''} |"
        )
    return lines


def _masks_table(r: dict[str, Any]) -> list[str]:
    m = r.get("masks")
    if not m:
        return []
    cold, warm = m.get("first_frame_cold_ms") or {}, m.get("first_frame_warm_ms") or {}
    masked, passed = m.get("latency_masked") or {}, m.get("latency_passthrough") or {}

    def latency(x: dict[str, Any]) -> str:
        f = x.get("first_packet_ms") or {}
        return f"p50 {f.get('p50')} / p99 {f.get('p99')} ms (n {x.get('matched')})"

    lines = [
        "",
        "## Privacy masks (issue 23): the main camera with two masks, decoded, masked and "
        "encoded once",
        "",
        f"- First frame (aiortc, WHEP POST to first decoded frame): cold p50 {cold.get('p50')} ms "
        f"(n {cold.get('n')}), warm p50 {warm.get('p50')} / p95 {warm.get('p95')} ms "
        f"(n {warm.get('n')}); failed {m.get('first_frame_failed')}.",
        f"- Latency from the camera (a plain RTSP client) to a viewer's first packet of each "
        f"frame: masked {latency(masked)}, passed through {latency(passed)}; added by the "
        f"mask p50 **{m.get('latency_added_ms_p50')} ms**.",
        "",
        "| viewers | gateway CPU % | event loop % | outside it (pull, decode, masks, encode) % "
        "| kernel % | fps min | packets/s per viewer |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in m.get("cpu", []):
        lines.append(
            f"| {row['viewers']} | {row['gateway_cpu_pct']} | {row['event_loop_cpu_pct']} | "
            f"{row['outside_loop_cpu_pct']} | {row['gateway_system_cpu_pct']} | "
            f"{row['fps_min']} | {row.get('packets_per_viewer_s') or ''} |"
        )
    return lines


def _encodes_table(r: dict[str, Any]) -> list[str]:
    e = r.get("encodes")
    if not e:
        return []
    lines = [
        "",
        "## Shared encodes, 1 against many viewers (issue 25)",
        "",
        "Each kind in a gateway of its own. The event loop sends to every viewer; "
        "outside it run the pull and the shared decode and encode.",
        "",
        "| kind | viewers | gateway CPU % | event loop % | outside it % | kernel % | fps min "
        "| packets/s per viewer | growth: gateway / outside the loop | loop % per added viewer |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("passthrough", "transcode", "vp8", "low", "masked"):
        k = e.get(kind)
        if not k:
            continue
        if "error" in k:
            lines.append(f"| {kind} | | {k['error']} | | | | | | | |")
            continue
        for i, row in enumerate(k["rows"]):
            growth = loop = ""
            if i:
                growth = f"{k['total_growth_pct']:+} % / {k['outside_loop_growth_pct']:+} %"
                loop = str(k["loop_pct_per_added_viewer"])
            lines.append(
                f"| {kind} | {row['viewers']} | {row['gateway_cpu_pct']} | "
                f"{row['event_loop_cpu_pct']} | {row['outside_loop_cpu_pct']} | "
                f"{row['gateway_system_cpu_pct']} | {row['fps_min']} | "
                f"{row.get('packets_per_viewer_s') or ''} | {growth} | {loop} |"
            )
    return lines


def _flood_table(r: dict[str, Any]) -> list[str]:
    f = r.get("flood")
    if not f:
        return []
    return [
        "",
        "## A flood of forged tokens",
        "",
        f"{f['clients']} concurrent clients sent requests with forged tokens for {f['seconds']:g} s, "
        "each from its own address (through a trusted proxy), while "
        f"{f['viewers']} viewers watched the 720p25 camera.",
        "",
        "| requests | per second | 5xx answers | client errors | gateway CPU % | RSS MB | database growth KB | viewers' fps min / median |",
        "|---|---|---|---|---|---|---|---|",
        f"| {f['requests']} | {f['requests_per_second']} | {f['server_errors']} | {f['client_errors']} | "
        f"{f['gateway_cpu_pct']} | {f['gateway_rss_mb']} | {f['database_growth_kb']} | "
        f"{f['viewer_fps_min']} / {f['viewer_fps_median']} |",
        *_attacks_table(f.get("attacks")),
    ]


def _attacks_table(a: dict[str, Any] | None) -> list[str]:
    if not a:
        return []
    return [
        "",
        f"Then, from one address each: {a['guessers']} parallel guessers of one account's token "
        f"for {a['guessing_seconds']:g} s, and {a['drippers']} connections dripping their "
        f"headers for {a['dripping_seconds']:g} s.",
        "",
        "| guesses answered | guesses per second | dripping connections open midway | longest held, s | viewers' fps min |",
        "|---|---|---|---|---|",
        f"| {a['guesses_answered']} | {a['guesses_per_second']} | {a['drippers_open_midway']} | "
        f"{', '.join(map(str, a['longest_held_seconds']))} | {a['viewer_fps_min']} |",
    ]


def _vp8_table(r: dict[str, Any]) -> list[str]:
    v = r.get("vp8")
    if not v:
        return []
    running = v.get("first_frame_ms_rendition_running") or {}
    lines = [
        "",
        f"## VP8 viewers (issue 11): the main camera, with {v['h264_viewers']} H.264 viewers",
        "",
        f"- First frame for a VP8 viewer: {v.get('first_frame_ms_rendition_start')} ms for the "
        f"one that starts the rendition; p50 {running.get('p50', '')} ms, max "
        f"{running.get('max', '')} ms for {running.get('n', '')} joins while it runs.",
        f"- The shared decode + VP8 encode: {v.get('vp8_encode_cpu_pct')} % of a core with one "
        f"VP8 viewer, {v.get('vp8_encode_cpu_pct_three_viewers')} % with three (outside the "
        "event loop, against the same H.264 viewers without VP8).",
        "",
        "| | gateway CPU % | event loop % | outside it % | event loop % per viewer | H.264 fps min / median | VP8 fps min |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in (
        ("without_vp8", "H.264 viewers only"),
        ("with_one_vp8", "+ 1 VP8 viewer"),
        ("with_three_vp8", "+ 3 VP8 viewers"),
    ):
        m = v.get(key)
        if m:
            lines.append(
                f"| {label} | {m['gateway_cpu_pct']} | {m['event_loop_cpu_pct']} | "
                f"{m['outside_loop_cpu_pct']} | {m['loop_cpu_pct_per_viewer']} | "
                f"{m['h264_fps_min']} / {m['h264_fps_median']} | {m.get('vp8_fps_min') or ''} |"
            )
    return lines


def _tablets_table(r: dict[str, Any]) -> list[str]:
    t = r.get("tablets")
    if not t:
        return []
    ff, enc, weak = t["first_frame"], t["encode"], t["weak_link"]

    def ms(s: dict[str, Any]) -> str:
        return f"p50 {s.get('p50')} / max {s.get('max')} ms (n {s.get('n')})"

    lines = [
        "",
        "## Tablets (issue 15): TURN and the lighter picture, in Chromium's <cctv-player>",
        "",
        "| | measured |",
        "|---|---|",
        f"| first frame, direct (tile on the page to its first picture) | {ms(ff['direct_ms'])} |",
        f"| first frame, relay only through coturn (UDP) | {ms(ff['turn_ms'])} |",
        f"| candidate paths seen (relay-only: path) | {', '.join(ff['paths'])} |",
        f"| the low rendition's first frame (aiortc, starting the encode) | {enc['first_frame_ms']} ms |",
        f"| one low encode (720p25 decoded, 640x360 15 fps encoded), % of a core outside the event loop | {enc['encode_cpu_pct']} with one viewer, {enc['encode_cpu_pct_three_viewers']} with three |",
        f"| low viewers' fps (min) / the H.264 viewer's fps (min), with three | {enc['with_three']['low_fps_min']} / {enc['with_three']['h264_fps_min']} |",
        f"| weak link (coturn --max-bps=75000): tile on the page to the lighter picture | {ms(weak['switch_ms'])} |",
        f"| weak link: the lighter picture's frame rate over 5 s, and its size | p50 {weak['fps'].get('p50')} fps, {', '.join(weak['sizes'])} |",
    ]
    if ff["failed"] or weak["failed"]:
        lines.append(
            f"| failed tiles | {len(ff['failed'])} first-frame, {len(weak['failed'])} weak-link |"
        )
    return lines


def _profile_tables(r: dict[str, Any]) -> list[str]:
    lines = []
    prof = r.get("profile") or {}
    for view, title in (
        ("gil", "holding the GIL (where the interpreter's CPU goes)"),
        ("active", "all active samples (includes time in syscalls and preempted in them)"),
    ):
        p = prof.get(view)
        if not p or "top_own" not in p:
            continue
        lines += [
            "",
            f"## Profile at {r['setup'].get('profile_at')} viewers: py-spy, {title}",
            "",
            f"{p['samples']} samples; raw stacks in `{p['file']}`.",
            "",
            "| own % | function | | total % | function |",
            "|---|---|---|---|---|",
        ]
        for a, b in zip(p["top_own"], p["top_total"], strict=False):
            lines.append(f"| {a['pct']} | `{a['function']}` | | {b['pct']} | `{b['function']}` |")
    return lines


METHOD = """## How it is measured

- **Everything on loopback**, started and stopped by `bench/run.py`: the camera
  (`tests/support/rtsp_camera.py`), the gateway as its own process
  (`python -m gateway --config <temp TOML>`, grant written to its SQLite file first),
  aiortc viewers in worker processes (`bench/viewers.py`), headless Debian Chromium
  (`bench/chromium.py`) and a plain RTSP client (`bench/rtsp_probe.py`).
- **TTFF**: aiortc from just before the WHEP POST (offer already gathered) to the first
  frame `track.recv()` returns, decoded. Chromium with default WebRTC settings (mDNS
  hiding on), page on its own loopback origin (CORS, as an embedding dashboard), from
  `performance.now()` just before `fetch` to the first `requestVideoFrameCallback` or
  `videoWidth > 0`. Joins are a new peer connection each, spaced by random 0-2 s
  (seeded), closed with DELETE 0.5 s after the first frame; a background viewer keeps the
  camera pulled. "Live picture" is when the first frame followed by a normal frame
  interval (>= 20 ms of RTP time) was decoded (aiortc) or presented (Chromium,
  `rtpTimestamp` of `requestVideoFrameCallback`): frames before it are a replayed GOP.
  In the 0.5 s after the first frame, about 12 frames decoded or presented is real time;
  more is a catch-up burst. Decoder warnings are FFmpeg h264 / aiortc warnings in the
  aiortc decoding viewer (missing references, corrupt slices).
- **Fan-out**: gateway CPU is the change of utime+stime in `/proc/<pid>/stat` over the
  window, RSS is `VmRSS` at its end; per-viewer figures are differences from the first
  row. Viewers join in batches of 4 per worker. Counting viewers read RTP headers (not
  encrypted by SRTP) at the UDP socket and count a frame per marker bit, skipping SRTP,
  the jitter buffer and decoding; one viewer decodes for real.
- **Added latency**: 5 probe viewers (a nice -10 process) against a plain RTSP client
  reading the camera directly with PyAV (nice -10). Frames are matched by RTP timestamp,
  aligned at keyframes; both sides pay the same RTSP demuxing. It includes loopback
  delivery and the probe's wake-up, so it is an upper bound, and other load on the
  machine inflates its tail.
- **Teardown**: from just before the last viewer's DELETE to the camera printing
  CLIENT_CLOSED, minus linger. **Revoke**: admin `POST /api/sessions/{id}/revoke` to the
  viewer's peer connection (DTLS) closing.
- **Many cameras**: each 720p camera process costs ~9 % of a core, so 20 camera
  processes would not fit 2 cores: 4 camera processes at 720p each serve 5 of the
  gateway's cameras. The gateway still holds 20 independent RTSP pulls.
- **The camera's real bitrate** is the nominal 2 Mbit/s (the table's first lines): still
  colour bars under a running clock (`--pattern bars`, ~9 % of a core) compress well, so
  x264 runs hard CBR and pads each frame with filler NAL units (`--filler`). Keyframes
  are ~75 KB, delta frames ~9 KB, about a third of the bytes filler: as many packets per
  frame as a real 2 Mbit/s camera, though a decoding viewer has less picture to decode.
  The H.265 camera of the transcode phase shows the moving ball instead, so the
  gateway's encoder has motion to encode; it compresses to ~700 kbit/s.
- **Per packet**: packets sent/s is the counting viewers' received rate times the
  viewers; the gateway's user and kernel CPU divided by it. On loopback the kernel
  figure includes delivering each datagram to the viewer's socket.
"""
