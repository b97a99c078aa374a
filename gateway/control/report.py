"""GovernanceReport: the chain of consent over a period, for the governance office
(`gateway report`, and the console's report tab for administrators and auditors).

Per project: the police authorization (who consented, when, the scope), who asked
for and who approved each grant and change, members, cameras and window, sessions
per account and camera with their durations, revocations and withdrawals, refusals
summarised; then emergency accesses and their reviews, privacy mask changes and
lifts, and the audit chain's verification with its head hash, so a printed report
can later be checked against the log. HTML (Traditional Chinese first, English too;
it prints), CSV or JSON.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from gateway.access.tokens import Identity
from gateway.store import Store, WritePending
from gateway.store import audit as events
from gateway.store.report import ReportUnavailable, read_report

from . import report_html
from .refusals import Denied, audit_unavailable

FORMATS = {"html": "text/html", "csv": "text/csv", "json": "application/json"}
# A bare date in --from/--to is a day in Taipei (UTC+8, no daylight saving).
TAIPEI = timezone(timedelta(hours=8))
LONGEST = timedelta(days=400)


def period(since: str, until: str) -> tuple[datetime, datetime]:
    """--from and --to (ISO 8601: a date, a Taipei day; or a time with its offset); the
    end is exclusive, and a bare end date includes that whole day. ValueError names
    which is wrong."""
    start, end = _moment("from", since, False), _moment("to", until, True)
    if end <= start:
        raise ValueError("to: must be after from")
    if end - start > LONGEST:
        raise ValueError(f"to: a report covers at most {LONGEST.days} days")
    return start, end


def _moment(name: str, text: str, end: bool) -> datetime:
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip()) + timedelta(days=1 if end else 0)
            return datetime.combine(day, time(), TAIPEI).astimezone(UTC)
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{name}: use a date (2027-01-01) or ISO 8601 with an offset") from None
    if moment.tzinfo is None:
        raise ValueError(f"{name}: include a timezone, e.g. +08:00")
    return moment.astimezone(UTC)


def make(
    location: str,
    since: datetime,
    until: datetime,
    project: str | None,
    fmt: str,
    approval: str,
) -> str:
    """The report read from the database at `location` (read-only), in `fmt`.
    ReportUnavailable when it cannot be read."""
    data = read_report(location, since, until, project)
    data["approval"] = approval
    data["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return render(data, fmt)


def render(data: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=1, default=str)
    if fmt == "csv":
        return to_csv(data)
    return report_html.page(data)


class GovernanceReport:
    """The report through the running gateway: the read is written down first."""

    def __init__(self, store: Store, approval: str) -> None:
        self.store = store
        self.approval = approval

    async def make(
        self,
        who: Identity,
        remote: str,
        since: datetime,
        until: datetime,
        project: str | None,
        fmt: str,
    ) -> str:
        if fmt not in FORMATS:
            raise Denied("bad_request", "format: html, csv or json")
        written = self.store.record(
            events.REPORT_READ,
            account=who.account,
            remote=remote,
            project=project,
            since=since,
            until=until,
            format=fmt,
        )
        try:
            await self.store.landed(written)
        except WritePending:
            raise audit_unavailable() from None
        try:
            # Its own read-only connection, in a thread: the report walks the whole
            # chain, and admission's reader must not wait behind it.
            return await asyncio.to_thread(
                make, self.store.path, since, until, project, fmt, self.approval
            )
        except ReportUnavailable as exc:
            raise Denied("database_unavailable", f"the report cannot be made: {exc}", 5) from None


def to_csv(data: dict[str, Any]) -> str:
    """One table: a section column, then the section's own columns (a spreadsheet
    filters by section)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "project", "a", "b", "c", "d", "e", "f", "g"])

    def row(section: str, project: str, *cells: Any) -> None:
        writer.writerow([section, project, *(_cell(c) for c in cells)])

    row("period", "", data["from"], data["to"], data.get("approval", ""))
    for entry in data["projects"]:
        name = entry["project"]
        for a in entry["authorizations"]:
            row(
                "authorization",
                name,
                a["reference"],
                a["status"],
                a["confirmed_by"] or a["entered_by"],
                a["confirmed_at"] or a["entered_at"],
                " ".join(a["cameras"] + a["districts"]),
                f"{a['starts_at']}/{a['ends_at']}",
                a["purpose_class"] or "",
            )
        for g in entry["grants"]:
            row(
                "grant",
                name,
                g["id"],
                " ".join(g["members"]),
                " ".join(g["cameras"]),
                f"{g['starts_at']}/{g['ends_at']}",
                g["status"],
                g["created_by"],
                g["approved_by"] or "",
            )
            for h in g["history"]:
                row(
                    "grant_change",
                    name,
                    g["id"],
                    h["at"],
                    h["event"],
                    h["account"],
                    json.dumps(h["detail"], ensure_ascii=False),
                )
        for s in entry["sessions"]:
            row("sessions", name, s["account"], s["camera_id"], s["sessions"], s["seconds"])
        for r in entry["revocations"]:
            row(
                "revocation", name, r["at"], r["event"], r["account"], r["detail"].get("reason", "")
            )
        for r in entry["refusals"]:
            row("refusals", name, r["code"], r["count"])
    for r in data["refusals_without_project"]:
        row("refusals", "", r["code"], r["count"])
    for a in data["withdrawals"]:
        row(
            "withdrawal",
            "",
            a["reference"],
            a["withdrawn_by"],
            a["withdrawn_at"],
            a["withdraw_reason"],
        )
    for a in data["unconfirmed"]:
        row("unconfirmed", "", a["reference"], a["entered_by"], a["entered_at"], a["migrated"])
    for e in data["emergencies"]:
        row(
            "emergency",
            "",
            e["id"],
            e["account"],
            e["camera_id"],
            e["starts_at"],
            e["danger"],
            "unreviewed"
            if e["justified"] is None
            else ("justified" if e["justified"] else "not justified"),
            e["review_note"] or "",
        )
    for c in data.get("mask_changes", []):
        row(
            "mask_change",
            "",
            c["at"],
            c["camera_id"],
            c["account"],
            c["before"],
            c["after"],
            c["reason"],
        )
    for lift in data.get("mask_lifts", []):
        row(
            "mask_lift",
            lift["project"],
            lift["camera_id"],
            lift["grant_id"],
            f"{lift['asked_by']}: {lift['reason']}",
            lift["approved_by"] or "",
            f"{lift['lifted_from'] or ''}/{lift['lifted_to'] or ''}",
            lift["outcome"],
            lift["end_reason"] or lift["decline_reason"] or "",
        )
    v = data["verification"]
    row(
        "verification",
        "",
        "intact" if v["ok"] else "BROKEN",
        v["rows"],
        v["head_seq"],
        v["head_hash"],
        v["problem"] or "",
    )
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value  # a spreadsheet shows it as text instead of running it
    return "" if value is None else value
