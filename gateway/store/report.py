"""What the governance office's report reads: one period of the chain of consent,
from the tables and the audit log, in one read-only snapshot that ends with the
audit chain's verification (`read_report`). Plain data; control/report.py writes
it out as HTML, CSV or JSON."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from gateway.access.grants import Grant, iso_z, stamp
from gateway.access.mask_lifts import MaskLift

from . import audit as events
from .audit import Cursor
from .authorizations import load_authorizations
from .database import Connection, schema_version
from .emergencies import load_emergencies
from .grants import load_grants
from .masks import MaskStore
from .verify import VerifyResult, read_and_verify

# The schema versions that hold authorizations and emergencies, and privacy masks
# (schema.MIGRATIONS).
CONSENT_SCHEMA = 5
MASKS_SCHEMA = 7


class ReportUnavailable(Exception):
    """The database cannot be read, or is older than the chain of consent."""


def read_report(
    location: str, since: datetime, until: datetime, project: str | None
) -> dict[str, Any]:
    """The report's data for `since <= t < until` (one project, or all), with the
    verification of the audit chain read in the same snapshot."""
    found, verified = read_and_verify(location, lambda db: _gather(db, since, until, project))
    if found is None:
        raise ReportUnavailable(verified.problem or "the database cannot be read")
    found["verification"] = _verification(verified)
    return found


def _verification(result: VerifyResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "rows": result.rows_checked,
        "problem": result.problem,
        "grants_checked": result.grants_checked,
        "records_checked": result.records_checked,
        "head_seq": result.head[0] if result.head else None,
        "head_hash": result.head[1] if result.head else None,
    }


def _gather(
    db: Connection, since: datetime, until: datetime, project: str | None
) -> dict[str, Any]:
    version = schema_version(db)
    cur = db.cursor()
    cur.row_factory = sqlite3.Row
    if version < CONSENT_SCHEMA:
        raise ReportUnavailable(
            f"the database is at schema version {version}; start the gateway once to"
            " bring it up to date"
        )
    low, high = stamp(since), stamp(until)
    # Statuses as they were at the period's end, or now for a period not over yet.
    as_of = min(until, datetime.now(UTC))
    grants = load_grants(cur, cur.execute("SELECT * FROM grants ORDER BY id").fetchall())
    chosen = [
        g
        for g in grants
        if (project is None or g.project == project)
        and ((g.starts_at < until and g.ends_at > since) or since <= g.created_at < until)
    ]
    authorizations = {
        a.id: a
        for a in load_authorizations(
            cur, cur.execute("SELECT * FROM authorizations ORDER BY id").fetchall()
        )
    }
    # Only the events the report counts: a period's session starts and reads are most
    # of its rows, and none of its figures.
    counted = (
        events.SESSION_END,
        events.ACCESS_DENIED,
        events.GRANT_REVOKED,
        events.SESSION_REVOKED,
    )
    rows = _rows(
        cur,
        f"SELECT * FROM audit WHERE at >= ? AND at < ? AND event IN ({', '.join('?' * 4)})"
        " ORDER BY seq",
        (low, high, *counted),
    )
    history = _history(cur, [g.id for g in chosen])
    projects: dict[str, dict[str, Any]] = {}
    for grant in chosen:
        entry = projects.setdefault(grant.project, _project(grant.project))
        entry["grants"].append({**grant.to_json(as_of), "history": history.get(grant.id, [])})
        if grant.authorization_id in authorizations:
            entry["authorization_ids"].add(grant.authorization_id)
    sessions: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    refusals: dict[tuple[str | None, str], int] = defaultdict(int)
    for row in rows:
        name = row["project"]
        if row["event"] == events.SESSION_END and "emergency_id" not in row["detail"]:
            seconds = row["detail"].get("duration_seconds")
            if name is not None and (project is None or name == project):
                key = (name, row["account"] or "", row["camera_id"] or "")
                sessions[key].append(float(seconds) if isinstance(seconds, int | float) else 0.0)
        elif row["event"] == events.ACCESS_DENIED:
            if project is None or name == project:
                refusals[(name, str(row["detail"].get("code", "")))] += 1
        elif (
            row["event"] in (events.GRANT_REVOKED, events.SESSION_REVOKED)
            and name is not None
            and (project is None or name == project)
        ):
            projects.setdefault(name, _project(name))["revocations"].append(_line(row))
    for (name, account, camera_id), durations in sorted(sessions.items()):
        projects.setdefault(name, _project(name))["sessions"].append(
            {
                "account": account,
                "camera_id": camera_id,
                "sessions": len(durations),
                "seconds": round(sum(durations), 1),
            }
        )
    unassigned = []
    for (name, code), count in sorted(
        refusals.items(), key=lambda item: (str(item[0][0]), item[0][1])
    ):
        line = {"code": code, "count": count}
        if name is None:
            unassigned.append(line)
        else:
            projects.setdefault(name, _project(name))["refusals"].append(line)
    for entry in projects.values():
        ids = sorted(entry.pop("authorization_ids"))
        entry["authorizations"] = [authorizations[i].to_json(as_of) for i in ids]
    emergencies = load_emergencies(cur.execute("SELECT * FROM emergencies ORDER BY id").fetchall())
    urgent_sessions = _emergency_sessions(rows)
    if version >= MASKS_SCHEMA:
        changes, lifts = _privacy_masks(db, cur, since, until, as_of, project, grants, chosen)
    else:
        changes, lifts = [], []
    return {
        "from": iso_z(since),
        "to": iso_z(until),
        "project": project,
        "projects": [projects[name] for name in sorted(projects)],
        "refusals_without_project": unassigned,
        "withdrawals": [
            a.to_json(as_of)
            for a in authorizations.values()
            if a.withdrawn_at is not None and since <= a.withdrawn_at < until
        ],
        "unconfirmed": [
            a.to_json(as_of) for a in authorizations.values() if a.state == "unconfirmed"
        ],
        "emergencies": [
            {**e.to_json(as_of), **urgent_sessions.get(e.id, {"sessions": 0, "seconds": 0.0})}
            for e in emergencies
            if since <= e.starts_at < until or not e.reviewed
        ],
        "mask_changes": changes,
        "mask_lifts": lifts,
    }


def _privacy_masks(
    db: Connection,
    cur: Cursor,
    since: datetime,
    until: datetime,
    as_of: datetime,
    project: str | None,
    grants: list[Grant],
    chosen: list[Grant],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The period's mask changes (for one project: those of its grants' cameras) and
    lifts (for one project: those of its grants), oldest first."""
    cameras = set().union(*(g.cameras for g in chosen)) if project is not None else None
    changes = []
    for row in _rows(
        cur,
        "SELECT * FROM audit WHERE at >= ? AND at < ? AND event = ? ORDER BY seq",
        (stamp(since), stamp(until), events.MASKS_CHANGED),
    ):
        if cameras is not None and row["camera_id"] not in cameras:
            continue
        detail = row["detail"]
        before, after = detail.get("before"), detail.get("after")
        changes.append(
            {
                "at": row["at"],
                "camera_id": row["camera_id"],
                "account": row["account"],
                "before": len(before) if isinstance(before, list) else None,
                "after": len(after) if isinstance(after, list) else None,
                "reason": detail.get("reason"),
            }
        )
    projects = {g.id: g.project for g in grants}
    lifts = []
    for lift in MaskStore(db, lambda: as_of).during(since, until):
        name = projects.get(lift.grant_id, "")
        if project is not None and name != project:
            continue
        approved = lift.state == "approved"
        # The window the masks were off: from the approval to its end (or its time).
        start = lift.decided_at if approved else None
        end = (lift.ended_at or lift.until) if approved else None
        lifts.append(
            lift.to_json(as_of)
            | {
                "project": name,
                "approved_by": lift.decided_by if approved else None,
                "lifted_from": iso_z(start) if start else None,
                "lifted_to": iso_z(end) if end else None,
                "outcome": _outcome(lift, as_of),
            }
        )
    return changes, lifts


def _outcome(lift: MaskLift, as_of: datetime) -> str:
    """How it ended: waiting, declined, in_force, ended_early or expired."""
    if lift.state == "requested":
        return "waiting"
    if lift.state == "declined":
        return "declined"
    if lift.ended_by is not None:
        return "ended_early"
    return "expired" if lift.status(as_of) == "ended" else "in_force"


def _project(name: str) -> dict[str, Any]:
    return {
        "project": name,
        "authorization_ids": set(),
        "grants": [],
        "sessions": [],
        "revocations": [],
        "refusals": [],
    }


def _history(cur: Cursor, grant_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Each grant's audited changes, oldest first: who asked, who approved, what."""
    if not grant_ids:
        return {}
    marks = ", ".join("?" * len(events.GRANT_EVENTS))
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    wanted = set(grant_ids)
    for row in _rows(
        cur,
        f"SELECT * FROM audit WHERE event IN ({marks}) AND grant_id IS NOT NULL ORDER BY seq",
        events.GRANT_EVENTS,
    ):
        if row["grant_id"] in wanted:
            found[row["grant_id"]].append(_line(row))
    return found


def _line(row: dict[str, Any]) -> dict[str, Any]:
    detail = row["detail"]
    shown = {
        key: detail[key]
        for key in ("changes", "change", "asked_by", "reason", "kind", "pending", "by")
        if key in detail
    }
    return {
        "seq": row["seq"],
        "at": row["at"],
        "event": row["event"],
        "account": row["account"],
        "grant_id": row["grant_id"],
        "camera_id": row["camera_id"],
        "detail": shown,
    }


def _emergency_sessions(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for row in rows:
        urgent = row["detail"].get("emergency_id")
        if row["event"] == events.SESSION_END and isinstance(urgent, int):
            entry = found.setdefault(urgent, {"sessions": 0, "seconds": 0.0})
            entry["sessions"] += 1
            seconds = row["detail"].get("duration_seconds")
            entry["seconds"] = round(entry["seconds"] + (seconds or 0.0), 1)
    return found


def _rows(cur: Cursor, sql: str, params: Any) -> list[dict[str, Any]]:
    out = []
    for row in cur.execute(sql, list(params)).fetchall():
        item = dict(zip(row.keys(), row, strict=True))
        try:
            detail = json.loads(item["detail"])
        except (TypeError, ValueError):
            detail = {}
        item["detail"] = detail if isinstance(detail, dict) else {}
        out.append(item)
    return out
