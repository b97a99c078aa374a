"""The governance report as one HTML page: Traditional Chinese first, English beside
it, self-contained (its style inline, no script), and made to print on A4."""

from __future__ import annotations

import hashlib
from base64 import b64encode
from collections.abc import Iterable
from html import escape
from typing import Any

# Pages that show the report inline allow exactly this stylesheet in their
# Content-Security-Policy (its hash), nothing else inline.
STYLE = """
body { font: 11pt/1.45 "Noto Sans CJK TC", "Noto Sans TC", "PingFang TC",
  "Microsoft JhengHei", system-ui, sans-serif; color: #111; margin: 1.5rem; }
h1 { font-size: 16pt; margin: 0 0 .25rem; }
h2 { font-size: 13pt; margin: 1.4rem 0 .4rem; border-bottom: 2px solid #333; }
h3 { font-size: 11.5pt; margin: 1rem 0 .3rem; }
.en { color: #555; font-weight: normal; }
.meta { color: #333; margin: 0 0 1rem; }
table { border-collapse: collapse; width: 100%; margin: .3rem 0 .8rem; font-size: 9.5pt; }
th, td { border: 1px solid #999; padding: .2rem .35rem; text-align: left; vertical-align: top; }
th { background: #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.warn { color: #8a1c1c; font-weight: 600; }
.ok { color: #1d6b2f; font-weight: 600; }
.hash { font-family: monospace; word-break: break-all; }
.none { color: #666; font-style: italic; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { margin: 0; }
  h2 { break-after: avoid; }
  table { page-break-inside: auto; }
  thead { display: table-header-group; }
  tr { break-inside: avoid; }
  section.project { break-before: page; }
  section.project:first-of-type { break-before: auto; }
}
"""
STYLE_HASH = "sha256-" + b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()

APPROVAL = {
    "second_admin": ("第二位管理者核准", "approved by a second administrator"),
    "police_liaison": ("警察局聯絡人核准", "approved by a police liaison"),
    "none": ("無需第二人核准（小型部署）", "no second approval (a small deployment)"),
}
STATUS = {
    "active": ("生效中", "active"),
    "pending": ("待核准", "waiting for approval"),
    "scheduled": ("尚未開始", "scheduled"),
    "ended": ("已結束", "ended"),
    "revoked": ("已撤銷", "revoked"),
    "unconfirmed": ("待警察局確認", "unconfirmed"),
    "confirmed": ("已確認", "confirmed"),
    "withdrawn": ("已撤回", "withdrawn"),
    "expired": ("已逾期", "expired"),
}
PURPOSE = {
    "legal_duty": ("執行法定職務", "legal duty"),
    "imminent_danger": ("防止急迫危險", "imminent danger"),
    None: ("未記載（自舊授權轉入）", "not recorded (adopted)"),
}
EVENTS = {
    "grant_created": ("申請／建立", "asked for / created"),
    "grant_updated": ("修改", "changed"),
    "grant_change_requested": ("申請擴大", "widening asked for"),
    "grant_approved": ("核准", "approved"),
    "grant_declined": ("駁回", "declined"),
    "grant_revoked": ("撤銷", "revoked"),
    "session_revoked": ("撤銷連線", "session revoked"),
}

# How a lift of a camera's privacy masks ended (store/report.py `_outcome`).
OUTCOME = {
    "waiting": ("待核准", "waiting for approval"),
    "declined": ("已駁回", "declined"),
    "in_force": ("解除中", "in force"),
    "ended_early": ("提前恢復遮蔽", "ended early"),
    "expired": ("時間到，恢復遮蔽", "ran out"),
}


def both(pair: tuple[str, str]) -> str:
    return f'{escape(pair[0])} <span class="en">{escape(pair[1])}</span>'


def _text(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, list | tuple):
        return escape(", ".join(str(v) for v in value))
    return escape(str(value))


def table(
    headers: Iterable[tuple[str, str]], rows: Iterable[Iterable[Any]], num: set[int] = frozenset()
) -> str:
    """Cells are escaped here, except those given as Markup (already HTML)."""
    head = "".join(f"<th>{both(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            shown = value.html if isinstance(value, Markup) else _text(value)
            cells.append(f'<td class="num">{shown}</td>' if i in num else f"<td>{shown}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        return '<p class="none">無 <span class="en">none</span></p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class Markup:
    def __init__(self, html: str) -> None:
        self.html = html


def _pair(table_: dict[Any, tuple[str, str]], key: Any) -> Markup:
    return Markup(both(table_.get(key, (str(key), str(key)))))


def _detail(detail: dict[str, Any]) -> str:
    parts = []
    for key, value in detail.items():
        if isinstance(value, dict):
            inner = "; ".join(f"{k}: {_short(v)}" for k, v in value.items())
            parts.append(f"{key} {inner}")
        else:
            parts.append(f"{key}: {_short(value)}")
    return "; ".join(parts)


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return " → ".join(_short(value.get(k)) for k in ("from", "to") if k in value) or str(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _duration(seconds: float) -> str:
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}"


def page(data: dict[str, Any]) -> str:
    parts = [
        f"<h1>{both(('攝影機即時影像使用報告', 'Report on the use of live CCTV images'))}</h1>",
        '<p class="meta">'
        + f"{both(('期間', 'Period'))}: {escape(data['from'])} – {escape(data['to'])}"
        + (
            f"<br>{both(('專案', 'Project'))}: {escape(data['project'])}"
            if data.get("project")
            else ""
        )
        + f"<br>{both(('核准方式', 'Approval'))}: "
        + both(APPROVAL.get(data.get("approval", ""), ("", "")))
        + f"<br>{both(('產製時間', 'Generated'))}: {escape(data.get('generated_at', ''))}</p>",
    ]
    if not data["projects"]:
        parts.append(
            '<p class="none">此期間沒有專案 <span class="en">no project in this period</span></p>'
        )
    for entry in data["projects"]:
        parts.append(_project(entry))
    parts.append(f"<h2>{both(('未歸屬專案的拒絕', 'Refusals outside any project'))}</h2>")
    parts.append(
        table(
            [("代碼", "code"), ("次數", "count")],
            ([r["code"], r["count"]] for r in data["refusals_without_project"]),
            {1},
        )
    )
    parts.append(f"<h2>{both(('撤回的警察局同意', 'Authorizations withdrawn'))}</h2>")
    parts.append(
        table(
            [("文號", "reference"), ("撤回者", "by"), ("時間", "when"), ("原因", "reason")],
            (
                [a["reference"], a["withdrawn_by"], a["withdrawn_at"], a["withdraw_reason"]]
                for a in data["withdrawals"]
            ),
        )
    )
    parts.append(f"<h2>{both(('待警察局確認的同意', 'Authorizations not yet confirmed'))}</h2>")
    parts.append(
        table(
            [("文號", "reference"), ("登錄者", "entered by"), ("時間", "when"), ("來源", "origin")],
            (
                [
                    a["reference"],
                    a["entered_by"],
                    a["entered_at"],
                    _pair(
                        {
                            True: ("自舊授權轉入", "adopted from old grants"),
                            False: ("管理者代登", "entered for a liaison"),
                        },
                        a["migrated"],
                    ),
                ]
                for a in data["unconfirmed"]
            ),
        )
    )
    parts.append(f"<h2>{both(('緊急調閱（要點第五條）', 'Emergency access (point 5)'))}</h2>")
    parts.append(
        table(
            [
                ("編號", "no."),
                ("帳號", "account"),
                ("攝影機", "camera"),
                ("開始", "start"),
                ("急迫危險", "danger"),
                ("連線／時長", "sessions / time"),
                ("審查", "review"),
                ("審查者與說明", "reviewer and note"),
            ],
            (
                [
                    e["id"],
                    e["account"],
                    e["camera_id"],
                    e["starts_at"],
                    e["danger"],
                    f"{e['sessions']} / {_duration(e['seconds'])}",
                    _review(e),
                    f"{e['reviewed_by'] or ''} {e['review_note'] or ''}".strip(),
                ]
                for e in data["emergencies"]
            ),
        )
    )
    parts.append(_masks(data))
    v = data["verification"]
    state = (
        f'<span class="ok">{both(("完整", "intact"))}</span>'
        if v["ok"]
        else f'<span class="warn">{both(("遭破壞", "BROKEN"))}</span> {escape(v["problem"] or "")}'
    )
    parts.append(f"<h2>{both(('稽核鏈驗證', 'Audit chain verification'))}</h2>")
    parts.append(
        f'<p class="verification">{state}<br>'
        f"{both(('驗證筆數', 'rows verified'))}: {v['rows']}<br>"
        f"{both(('最後一筆', 'head row'))}: #{escape(str(v['head_seq']))}<br>"
        f"{both(('最後雜湊', 'head hash'))}: "
        f'<span class="hash">{escape(str(v["head_hash"]))}</span><br>'
        f"{both(('核對方式', 'to check'))}: <code>gateway audit verify</code></p>"
    )
    return (
        '<!doctype html>\n<html lang="zh-Hant"><head><meta charset="utf-8">'
        f"<title>攝影機即時影像使用報告 {escape(data['from'][:10])}–"
        f"{escape(data['to'][:10])}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )


def _masks(data: dict[str, Any]) -> str:
    """The period's privacy mask changes and lifts (docs/masks.md)."""
    parts = [f"<h2>{both(('隱私遮蔽變更', 'Privacy mask changes'))}</h2>"]
    parts.append(
        table(
            [
                ("時間", "when"),
                ("攝影機", "camera"),
                ("變更者", "by"),
                ("遮蔽數（前→後）", "masks (before → after)"),
                ("原因", "reason"),
            ],
            (
                [
                    c["at"],
                    c["camera_id"],
                    c["account"],
                    f"{c['before']} → {c['after']}",
                    c["reason"],
                ]
                for c in data.get("mask_changes", [])
            ),
        )
    )
    parts.append(f"<h2>{both(('暫時解除遮蔽', 'Mask lifts'))}</h2>")
    parts.append(
        table(
            [
                ("攝影機", "camera"),
                ("授權／專案", "grant / project"),
                ("申請者與原因", "asked by, why"),
                ("核准者", "approved by"),
                ("解除期間", "lifted"),
                ("結果", "how it ended"),
            ],
            (
                [
                    lift["camera_id"],
                    f"#{lift['grant_id']} {lift['project']}",
                    f"{lift['asked_by']}: {lift['reason']}",
                    lift["approved_by"],
                    f"{lift['lifted_from']} – {lift['lifted_to']}" if lift["lifted_from"] else "",
                    _outcome(lift),
                ]
                for lift in data.get("mask_lifts", [])
            ),
        )
    )
    return "".join(parts)


def _outcome(lift: dict[str, Any]) -> Markup:
    said = both(OUTCOME.get(lift["outcome"], (lift["outcome"], lift["outcome"])))
    if lift["outcome"] == "declined":
        said += escape(f" ({lift['decided_by']}: {lift['decline_reason']})")
    elif lift["outcome"] == "ended_early":
        said += escape(f" ({lift['ended_by']}: {lift['end_reason']})")
    return Markup(said)


def _review(e: dict[str, Any]) -> Markup:
    if e["justified"] is None:
        return Markup(f'<span class="warn">{both(("尚未審查", "not reviewed"))}</span>')
    return Markup(
        both(("有正當理由", "justified") if e["justified"] else ("無正當理由", "not justified"))
    )


def _project(entry: dict[str, Any]) -> str:
    parts = [
        f'<section class="project"><h2>{both(("專案", "Project"))}: {escape(entry["project"])}</h2>'
    ]
    parts.append(f"<h3>{both(('警察局同意', 'Police authorization'))}</h3>")
    parts.append(
        table(
            [
                ("文號", "reference"),
                ("狀態", "status"),
                ("同意者", "consented by"),
                ("時間", "when"),
                ("範圍", "scope"),
                ("效期", "validity"),
                ("目的", "purpose"),
            ],
            (
                [
                    a["reference"],
                    _pair(STATUS, a["status"]),
                    a["confirmed_by"] or f"{a['entered_by']} ({a['on_behalf_of'] or '—'})",
                    a["confirmed_at"] or a["entered_at"],
                    a["cameras"] + a["districts"],
                    f"{a['starts_at']} – {a['ends_at']}",
                    _pair(PURPOSE, a["purpose_class"]),
                ]
                for a in entry["authorizations"]
            ),
        )
    )
    parts.append(f"<h3>{both(('授權', 'Grants'))}</h3>")
    parts.append(
        table(
            [
                ("編號", "no."),
                ("成員", "members"),
                ("攝影機", "cameras"),
                ("期間", "window"),
                ("狀態", "status"),
                ("申請者", "asked by"),
                ("核准者", "approved by"),
            ],
            (
                [
                    g["id"],
                    g["members"],
                    g["cameras"],
                    f"{g['starts_at']} – {g['ends_at']}",
                    _pair(STATUS, g["status"]),
                    g["created_by"],
                    g["approved_by"] or "",
                ]
                for g in entry["grants"]
            ),
        )
    )
    parts.append(f"<h3>{both(('申請、核准與變更', 'Requests, approvals and changes'))}</h3>")
    parts.append(
        table(
            [
                ("授權", "grant"),
                ("時間", "when"),
                ("事項", "what"),
                ("帳號", "account"),
                ("內容", "detail"),
            ],
            (
                [g["id"], h["at"], _pair(EVENTS, h["event"]), h["account"], _detail(h["detail"])]
                for g in entry["grants"]
                for h in g["history"]
            ),
        )
    )
    parts.append(f"<h3>{both(('觀看紀錄', 'Sessions'))}</h3>")
    parts.append(
        table(
            [
                ("帳號", "account"),
                ("攝影機", "camera"),
                ("次數", "sessions"),
                ("總時長", "total time"),
            ],
            (
                [s["account"], s["camera_id"], s["sessions"], _duration(s["seconds"])]
                for s in entry["sessions"]
            ),
            {2, 3},
        )
    )
    parts.append(f"<h3>{both(('撤銷', 'Revocations'))}</h3>")
    parts.append(
        table(
            [
                ("時間", "when"),
                ("事項", "what"),
                ("執行者", "by"),
                ("攝影機", "camera"),
                ("原因", "reason"),
            ],
            (
                [
                    r["at"],
                    _pair(EVENTS, r["event"]),
                    r["account"] or r["detail"].get("by"),
                    r["camera_id"],
                    r["detail"].get("reason", ""),
                ]
                for r in entry["revocations"]
            ),
        )
    )
    parts.append(f"<h3>{both(('拒絕摘要', 'Refusals summarised'))}</h3>")
    parts.append(
        table(
            [("代碼", "code"), ("次數", "count")],
            ([r["code"], r["count"]] for r in entry["refusals"]),
            {1},
        )
    )
    parts.append("</section>")
    return "".join(parts)
