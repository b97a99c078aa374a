"""The audit log: every access is accountable (DESIGN.md, invariant 7).

Rows are hash-chained: each row stores the hash of the row before it and a hash
over its own canonical content, so an edited, deleted or reordered row is found
by `walk_chain()` (verify.py checks a whole database with it). Triggers make the table
append-only; the chain catches what someone with write access to the file does after
dropping them. (A chain without a secret cannot catch rows cut from the *end*, or a
chain rewritten from scratch: keep verify's last seq somewhere else if that matters.)

Pruning deletes a prefix of the chain and moves the anchor (the last pruned row's
seq and hash) so the remainder still verifies; it always leaves an
"audit_pruned" row behind, naming that seq and hash inside the chain. An anchor
that the newest "audit_pruned" row does not name was not set by a prune, and
`walk_chain()` rejects it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from .database import DB_ERRORS, Connection

GENESIS = "0" * 64

# Event names written by the gateway.
SESSION_START = "session_start"  # a viewer started watching a camera
SESSION_END = "session_end"  # ... and stopped (any reason; detail says which)
ACCESS_DENIED = "access_denied"  # a view request was refused (no grant, unknown camera, ...)
SESSION_RENEWED = "session_renewed"  # the same account signed in again for its session
SESSION_REVOKED = "session_revoked"  # an administrator or grant expiry ended a session
SESSION_ICE = "session_ice"  # a viewer trickled ICE candidates to its session (WHEP PATCH)
GRANT_CREATED = "grant_created"  # detail: pending, when it waits for approval
GRANT_UPDATED = "grant_updated"
GRANT_REVOKED = "grant_revoked"
GRANT_CHANGE_REQUESTED = "grant_change_requested"  # a widening change waits for approval
GRANT_APPROVED = "grant_approved"  # a second person approved; detail: asked_by, changes
GRANT_DECLINED = "grant_declined"  # what waited was turned down
# detail: grant_hash (the grant after)
GRANT_EVENTS = (
    GRANT_CREATED,
    GRANT_UPDATED,
    GRANT_REVOKED,
    GRANT_CHANGE_REQUESTED,
    GRANT_APPROVED,
    GRANT_DECLINED,
)
# The police's consents; detail: authorization_id, authorization_hash (as it is after).
AUTHORIZATION_RECORDED = "authorization_recorded"  # by a liaison, or entered for one
AUTHORIZATION_CONFIRMED = "authorization_confirmed"
AUTHORIZATION_WITHDRAWN = "authorization_withdrawn"  # every grant under it ends
AUTHORIZATION_ADOPTED = "authorization_adopted"  # made from old grants' reference
AUTHORIZATION_EVENTS = (
    AUTHORIZATION_RECORDED,
    AUTHORIZATION_CONFIRMED,
    AUTHORIZATION_WITHDRAWN,
    AUTHORIZATION_ADOPTED,
)
# Emergency access (要點第五條); detail: emergency_id, emergency_hash.
EMERGENCY_ACCESS = "emergency_access"  # opened, with the danger in words
EMERGENCY_ENDED = "emergency_ended"  # ended early, by a liaison or an administrator
EMERGENCY_REVIEWED = "emergency_reviewed"  # justified or not, with a note
EMERGENCY_EVENTS = (EMERGENCY_ACCESS, EMERGENCY_ENDED, EMERGENCY_REVIEWED)
# Privacy masks (docs/masks.md): a camera's masks changed (detail: before, after,
# reason), and a lift for one grant asked, approved, declined, ended early, and
# over (detail: lift_id, reason, until).
MASKS_CHANGED = "masks_changed"
MASK_LIFT_REQUESTED = "mask_lift_requested"
MASK_LIFT_APPROVED = "mask_lift_approved"
MASK_LIFT_DECLINED = "mask_lift_declined"
MASK_LIFT_EXPIRED = "mask_lift_expired"
MASK_LIFT_ENDED = "mask_lift_ended"  # ended early; detail: end_reason
TOKEN_REJECTED = "token_rejected"  # a bad, expired or missing JWT
# An administrator read live sessions or the audit log (JSON or a CSV export);
# detail: what, format, filters, rows.
ADMIN_READ = "admin_read"
REPORT_READ = "report_read"  # the governance report was made; detail: period, project, format
AUDIT_PRUNED = "audit_pruned"  # old rows were deleted; detail: through_seq, rows, anchor_hash
INVENTORY_RELOADED = "inventory_reloaded"  # detail: added, removed, changed, cameras, via
INVENTORY_REFUSED = "inventory_refused"  # an invalid inventory; detail: error, via

# The hashed content of a row, in canonical-JSON key order (sort_keys does the ordering).
_HASHED = (
    "seq",
    "at",
    "event",
    "account",
    "camera_id",
    "grant_id",
    "project",
    "remote",
    "session_id",
    "detail",
)
_TEXT_FIELDS = ("account", "camera_id", "project", "remote", "session_id")
_COLUMNS = (*_HASHED, "prev_hash", "hash")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM audit"
CSV_COLUMNS = (*_HASHED, "hash")
# Spreadsheets run cells starting with these as formulas (tab/CR too, per OWASP), and
# some take the full-width and small forms of the signs for the signs themselves.
_FORMULA_STARTS = (
    *("=", "+", "-", "@", "\t", "\r"),
    *("\uff1d", "\uff0b", "\uff0d", "\uff20"),  # full-width = + - @
    *("\ufe66", "\ufe62", "\ufe63", "\ufe6b"),  # small = + - @
)


# Session starts with no later session end, oldest first (params: SESSION_END, SESSION_START).
_OPEN_SESSIONS = f"""
    WITH ends AS (
        SELECT session_id, MAX(seq) AS end_seq FROM audit
        WHERE event = ? AND session_id IS NOT NULL GROUP BY session_id
    )
    SELECT {", ".join(f"a.{column}" for column in _COLUMNS)}
    FROM audit a LEFT JOIN ends ON ends.session_id = a.session_id
    WHERE a.event = ? AND a.session_id IS NOT NULL
      AND (ends.end_seq IS NULL OR ends.end_seq < a.seq)
    ORDER BY a.seq
"""


class AuditWriteError(RuntimeError):
    """The row could not be written (e.g. disk full); callers must then refuse the action."""


@dataclass(frozen=True)
class ChainCheck:
    """What a walk along the chain found."""

    rows_checked: int  # rows found intact (before the first bad one)
    first_bad_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _utc(moment: datetime) -> datetime:
    # A naive datetime is taken to be UTC, never local time.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _timestamp(moment: datetime) -> str:
    # Fixed width (always microseconds, always +00:00) so text order is time order.
    return _utc(moment).isoformat(timespec="microseconds")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"audit detail value of type {type(value).__name__} is not JSON-serialisable")


def _dumps(value: Any) -> str:
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,  # NaN is not JSON; it would not survive other readers
        default=_json_default,
    )


def _row_hash(prev_hash: str, content: Mapping[str, Any], detail: Any) -> str:
    canonical = _dumps({key: (detail if key == "detail" else content[key]) for key in _HASHED})
    return hashlib.sha256((prev_hash + "\n" + canonical).encode()).hexdigest()


def _decode_detail(text: str) -> dict[str, Any]:
    try:
        detail = json.loads(text)
    except (TypeError, ValueError):
        return {"invalid_json": text}  # show a damaged row rather than fail the whole query
    return detail if isinstance(detail, dict) else {"value": detail}


Cursor = Any  # a sqlite3.Cursor, or postgres.PgCursor: rows answer by name
Row = Any


def _as_dict(row: Row) -> dict[str, Any]:
    result = dict(zip(row.keys(), row, strict=True))
    result["detail"] = _decode_detail(result["detail"])
    return result


def walk_chain(cur: Cursor, through_seq: int | None = None) -> ChainCheck:
    """Check the chain from the anchor (or GENESIS), up to `through_seq` if given."""
    anchors = cur.execute("SELECT seq, hash FROM audit_anchor").fetchall()
    if len(anchors) > 1:
        return ChainCheck(0, None, f"audit_anchor has {len(anchors)} rows, expected one")
    if anchors:
        anchor_seq, prev_hash = anchors[0]["seq"], anchors[0]["hash"]
        start = "the anchor (anchor changed?)"
    else:
        anchor_seq, prev_hash = 0, GENESIS
        start = "the chain start (row deleted or reordered?)"
    expected, checked = anchor_seq + 1, 0
    sql = _SELECT + (" WHERE seq <= ?" if through_seq is not None else "") + " ORDER BY seq"
    for row in cur.execute(sql, () if through_seq is None else (through_seq,)):
        seq = row["seq"]
        problem = _row_problem(row, expected, prev_hash, anchor_seq, start if not checked else None)
        if problem:
            return ChainCheck(checked, seq, problem)
        prev_hash, expected, checked = row["hash"], seq + 1, checked + 1
    if anchors:
        problem = _anchor_problem(cur, anchor_seq, anchors[0]["hash"])
        if problem:
            return ChainCheck(checked, None, problem)
    return ChainCheck(checked)


def _anchor_problem(cur: Cursor, anchor_seq: int, anchor_hash: str) -> str | None:
    """An anchor is only as good as the prune that set it: the newest audit_pruned row
    must name it (its seq, and its hash where recorded). Without this, someone who cut
    the oldest rows could write an anchor of their own and the rest would verify."""
    found = cur.execute(
        "SELECT seq, detail FROM audit WHERE event = ? ORDER BY seq DESC LIMIT 1", (AUDIT_PRUNED,)
    ).fetchone()
    anchor = f"the anchor (seq {anchor_seq})"
    if found is None:
        return f"{anchor} has no audit_pruned row that set it (anchor forged?)"
    detail = _decode_detail(found["detail"])
    if detail.get("through_seq") != anchor_seq:
        return (
            f"{anchor} does not match the last prune record: row {found['seq']} pruned"
            f" through seq {detail.get('through_seq')!r} (anchor forged?)"
        )
    if "anchor_hash" in detail and detail["anchor_hash"] != anchor_hash:
        return (
            f"{anchor}: its hash does not match the one row {found['seq']} recorded"
            " (anchor forged?)"
        )
    return None


def _row_problem(
    row: Row, expected: int, prev_hash: str, anchor_seq: int, start: str | None
) -> str | None:
    """What is wrong with `row`, given the seq and previous hash the chain expects."""
    seq = row["seq"]
    if seq < expected:  # only rows at or before the anchor sort before `expected`
        return f"row {seq}: at or before the anchor (seq {anchor_seq}); anchor changed?"
    if seq > expected:
        gap = f"row {expected}" if seq == expected + 1 else f"rows {expected}..{seq - 1}"
        return f"{gap} missing before row {seq}"
    if row["prev_hash"] != prev_hash:
        after = start or f"row {seq - 1} (row deleted or reordered?)"
        return f"row {seq}: previous hash does not match {after}"
    try:
        if _row_hash(prev_hash, row, json.loads(row["detail"])) == row["hash"]:
            return None
    except (TypeError, ValueError):
        pass  # undecodable detail: edited too
    return f"row {seq}: hash does not match its content (edited?)"


class AuditLog:
    def __init__(
        self,
        db: Connection,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._clock = clock

    # --- writing -------------------------------------------------------------

    def record(
        self,
        event: str,
        *,
        account: str | None = None,
        camera_id: str | None = None,
        grant_id: int | None = None,
        project: str | None = None,
        remote: str | None = None,
        session_id: str | None = None,
        at: datetime | None = None,
        **detail: Any,
    ) -> int:
        """Append one row and return its seq. `at` is when it happened (default: now);
        a row that waited for the database keeps the time of its event.

        Inside a transaction the caller already opened, the row joins it (through a
        savepoint) so e.g. a grant change and its audit row commit or fail together.
        """
        fields = {
            "event": event,
            "account": account,
            "camera_id": camera_id,
            "grant_id": grant_id,
            "project": project,
            "remote": remote,
            "session_id": session_id,
        }
        _check_types(fields)
        # Serialise before touching the database: a bad value is a bug, not a disk problem.
        detail_text = _dumps(detail)
        with self._write() as cur:
            return self._append(cur, fields, detail_text, at)

    def _append(
        self,
        cur: Cursor,
        fields: Mapping[str, Any],
        detail_text: str,
        at: datetime | None = None,
    ) -> int:
        last = cur.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        if last is None:  # empty: continue from the anchor after a prune, else from GENESIS
            last = cur.execute(
                "SELECT seq, hash FROM audit_anchor ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        last_seq, prev_hash = (last["seq"], last["hash"]) if last else (0, GENESIS)
        # Explicit seq: SQLite would reuse 1 on an empty table after a full prune.
        content = {**fields, "seq": last_seq + 1, "at": _timestamp(at or self._clock())}
        row_hash = _row_hash(prev_hash, content, json.loads(detail_text))
        stored = {**content, "detail": detail_text, "prev_hash": prev_hash, "hash": row_hash}
        cur.execute(
            f"INSERT INTO audit ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            [stored[column] for column in _COLUMNS],
        )
        return content["seq"]

    @contextmanager
    def _write(self) -> Iterator[Cursor]:
        nested = self._db.in_transaction
        cur = self._db.cursor()
        cur.row_factory = sqlite3.Row  # whatever the connection's factory is
        try:
            cur.execute("SAVEPOINT audit_write" if nested else "BEGIN IMMEDIATE")
            yield cur
            cur.execute("RELEASE audit_write" if nested else "COMMIT")
        except DB_ERRORS as exc:
            self._rollback(nested)
            raise AuditWriteError(f"could not write the audit log: {exc}") from exc
        except BaseException:
            self._rollback(nested)
            raise

    def _rollback(self, nested: bool) -> None:
        if not self._db.in_transaction:
            return  # BEGIN failed, or SQLite already rolled back (e.g. disk full)
        try:
            if nested:
                self._db.execute("ROLLBACK TO audit_write")
                self._db.execute("RELEASE audit_write")
            else:
                self._db.execute("ROLLBACK")
        except DB_ERRORS:
            pass  # the original error is the one worth reporting

    def prune(self, older_than: datetime, *, account: str | None = None) -> int:
        """Delete the oldest rows written before `older_than`; return how many.

        Only a prefix of the chain goes: pruning stops at the first row still inside
        retention, so a row written after a clock step back is never lost. It refuses
        (AuditWriteError) to prune a tampered chain, which would launder the evidence.
        """
        cutoff = _timestamp(older_than)
        fields: dict[str, Any] = dict.fromkeys((*_TEXT_FIELDS, "grant_id"))
        fields.update(event=AUDIT_PRUNED, account=account)
        _check_types(fields)
        with self._write() as cur:
            keep = cur.execute("SELECT MIN(seq) FROM audit WHERE at >= ?", (cutoff,)).fetchone()[0]
            if keep is None:
                through = cur.execute("SELECT MAX(seq) FROM audit").fetchone()[0]
            else:
                through = cur.execute(
                    "SELECT MAX(seq) FROM audit WHERE seq < ?", (keep,)
                ).fetchone()[0]
            if through is None:
                return 0
            checked = walk_chain(cur, through_seq=through + 1)  # +1: the first kept row's link too
            if not checked.ok:
                raise AuditWriteError(f"refusing to prune a damaged audit log: {checked.problem}")
            last = cur.execute("SELECT hash FROM audit WHERE seq = ?", (through,)).fetchone()
            # Records whose last audited change goes now: their hash moves into the prune
            # record, so verify can still compare them (records are kept for ever).
            carried: dict[str, dict[str, str | None]] = {}
            for kind, (_, _, _, carried_key) in RECORD_KINDS.items():
                kept = audited_records(cur, kind, after_seq=through)
                hashes = {
                    str(record_id): recorded
                    for record_id, (_, recorded) in audited_records(
                        cur, kind, through_seq=through
                    ).items()
                    if record_id not in kept
                }
                if hashes:
                    carried[carried_key] = hashes
            # The delete trigger lets through only rows covered by audit_pruning.
            cur.execute("INSERT INTO audit_pruning (through_seq) VALUES (?)", (through,))
            rows = cur.execute("DELETE FROM audit WHERE seq <= ?", (through,)).rowcount
            cur.execute("DELETE FROM audit_pruning")
            cur.execute("DELETE FROM audit_anchor")
            cur.execute(
                "INSERT INTO audit_anchor (seq, hash) VALUES (?, ?)", (through, last["hash"])
            )
            # The anchor's seq and hash, inside the chain: verify checks the anchor against it.
            record: dict[str, Any] = {
                "through_seq": through,
                "rows": rows,
                "anchor_hash": last["hash"],
            }
            record.update(carried)
            self._append(cur, fields, _dumps(record))
        return rows

    # --- reading -------------------------------------------------------------

    def query(
        self,
        *,
        account: str | None = None,
        camera_id: str | None = None,
        project: str | None = None,
        event: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Rows matching every given filter, newest first; `since <= at < until`."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("account", account),
            ("camera_id", camera_id),
            ("project", project),
            ("event", event),
        ):
            if value is not None:
                where.append(f"{column} = ?")  # column names are fixed; values are bound
                params.append(value)
        if since is not None:
            where.append("at >= ?")
            params.append(_timestamp(since))
        if until is not None:
            where.append("at < ?")
            params.append(_timestamp(until))
        sql = _SELECT + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += " ORDER BY seq DESC LIMIT ? OFFSET ?"  # seq, not `at`: the clock may step back
        return [_as_dict(row) for row in self._read(sql, [*params, limit, offset])]

    def open_sessions(self) -> list[dict[str, Any]]:
        """Session starts with no later session end (a crash left them open), oldest first."""
        return [_as_dict(row) for row in self._read(_OPEN_SESSIONS, [SESSION_END, SESSION_START])]

    def close_out_sessions(self, prefix: str | None = None, *, reason: str, code: str) -> int:
        """End every session the log shows open (a crash left them so), in one
        transaction; with `prefix`, only the session ids that start with it (one
        node's, "<node>."). Returns how many were closed out."""
        with self._write() as cur:
            rows = cur.execute(_OPEN_SESSIONS, [SESSION_END, SESSION_START]).fetchall()
            rows = [r for r in rows if prefix is None or r["session_id"].startswith(prefix)]
            for row in rows:
                fields = {key: row[key] for key in (*_TEXT_FIELDS, "grant_id")}
                fields["event"] = SESSION_END
                detail = {"reason": reason, "code": code, "started_at": row["at"]}
                self._append(cur, fields, _dumps(detail))
        return len(rows)

    def _read(self, sql: str, params: list[Any]) -> list[Row]:
        cur = self._db.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(sql, params).fetchall()

    @staticmethod
    def to_csv(rows: list[dict[str, Any]]) -> str:
        """The rows as CSV text (encode as utf-8-sig for Excel to read the Chinese)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            cells = []
            for column in CSV_COLUMNS:
                value = row.get(column)
                if column == "detail":
                    value = _dumps(value if value is not None else {})
                cells.append(_csv_cell(value))
            writer.writerow(cells)
        return out.getvalue()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value  # a spreadsheet shows it as text instead of running it
    return value


def _check_types(fields: Mapping[str, Any]) -> None:
    # Column affinity would silently turn e.g. account=5 into "5" and break the hash.
    if not isinstance(fields["event"], str) or not fields["event"]:
        raise ValueError("event must be a non-empty string")
    for key in _TEXT_FIELDS:
        if fields[key] is not None and not isinstance(fields[key], str):
            raise TypeError(f"{key} must be a string or None")
    grant_id = fields["grant_id"]
    if grant_id is not None and (not isinstance(grant_id, int) or isinstance(grant_id, bool)):
        raise TypeError("grant_id must be an int or None")


# Each kind of audited record: its events, where a row names the record (a column,
# or a detail key), the detail key of the record's content hash, and the key a prune
# record carries the hashes of the records whose last audited change it deletes.
RECORD_KINDS: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "grant": (GRANT_EVENTS, "grant_id", "grant_hash", "grant_hashes"),
    "authorization": (
        AUTHORIZATION_EVENTS,
        "authorization_id",
        "authorization_hash",
        "authorization_hashes",
    ),
    "emergency": (EMERGENCY_EVENTS, "emergency_id", "emergency_hash", "emergency_hashes"),
}


def audited_grants(
    cur: Cursor, *, after_seq: int = 0, through_seq: int | None = None
) -> dict[int, tuple[int, str | None]]:
    """Grant id -> (the row that last recorded it, the grant hash it recorded, or None
    for a change audited before hashes were kept), over rows after_seq < seq <= through_seq."""
    return audited_records(cur, "grant", after_seq=after_seq, through_seq=through_seq)


def audited_records(
    cur: Cursor, kind: str, *, after_seq: int = 0, through_seq: int | None = None
) -> dict[int, tuple[int, str | None]]:
    """As `audited_grants`, for any kind of RECORD_KINDS."""
    kinds, id_key, hash_key, carried_key = RECORD_KINDS[kind]
    marks = ", ".join("?" * (len(kinds) + 1))
    sql = f"SELECT seq, event, grant_id, detail FROM audit WHERE event IN ({marks}) AND seq > ?"
    params: list[Any] = [*kinds, AUDIT_PRUNED, after_seq]
    if through_seq is not None:
        sql += " AND seq <= ?"
        params.append(through_seq)
    audited: dict[int, tuple[int, str | None]] = {}
    for row in cur.execute(sql + " ORDER BY seq", params).fetchall():
        detail = _decode_detail(row["detail"])
        if row["event"] == AUDIT_PRUNED:
            carried = detail.get(carried_key)
            for key, value in carried.items() if isinstance(carried, dict) else ():
                if key.isdigit():
                    audited[int(key)] = (row["seq"], value if isinstance(value, str) else None)
            continue
        record_id = row["grant_id"] if id_key == "grant_id" else detail.get(id_key)
        if isinstance(record_id, int) and not isinstance(record_id, bool):
            value = detail.get(hash_key)
            audited[record_id] = (row["seq"], value if isinstance(value, str) else None)
    return audited
