"""The hash-chained audit log against a real SQLite file (invariant 7)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.gateway import audit_grant, authorize

from gateway.access.grants import Grant
from gateway.store.audit import (
    ACCESS_DENIED,
    AUDIT_PRUNED,
    GENESIS,
    GRANT_CREATED,
    GRANT_REVOKED,
    GRANT_UPDATED,
    SESSION_END,
    SESSION_START,
    AuditLog,
    AuditWriteError,
)
from gateway.store.database import open_database
from gateway.store.grants import GrantStore
from gateway.store.verify import verify_connection, verify_file

T0 = datetime(2027, 12, 31, 20, 0, tzinfo=UTC)
PROJECT = "2027 跨年晚會 信義區"
HASHED = (
    "seq",
    "at",
    "event",
    "account",
    "camera_id",
    "grant_id",
    "project",
    "remote",
    "session_id",
)


class Clock:
    """A clock the test moves; each reading advances one second."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gateway.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_database(db_path)
    yield connection
    connection.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log(db: sqlite3.Connection, clock: Clock) -> AuditLog:
    return AuditLog(db, clock=clock)


def attacker(db_path: Path) -> sqlite3.Connection:
    """A plain connection to the file, with the append-only triggers dropped."""
    raw = sqlite3.connect(db_path, isolation_level=None)
    raw.execute("DROP TRIGGER audit_no_update")
    raw.execute("DROP TRIGGER audit_no_delete")
    return raw


def fill(log: AuditLog, count: int) -> None:
    for i in range(count):
        log.record(SESSION_START, account=f"user{i % 3}", camera_id=f"cam-{i % 4}", n=i)


def test_record_and_query_round_trip(log: AuditLog, clock: Clock, db: sqlite3.Connection) -> None:
    first = log.record(
        GRANT_CREATED,
        account="admin",
        grant_id=7,
        project=PROJECT,
        authorization_ref="北市警資字第 1130001 號",
        ends_at=datetime(2028, 1, 1, 2, 0, tzinfo=UTC),
    )
    log.record(
        SESSION_START,
        account="陳小明",
        camera_id="cam-1",
        grant_id=7,
        project=PROJECT,
        remote="10.0.0.5",
        session_id="s1",
    )
    clock.now += timedelta(hours=1)
    log.record(SESSION_END, account="陳小明", camera_id="cam-1", session_id="s1", seconds=3600)
    log.record(ACCESS_DENIED, account="mallory", camera_id="cam-2", reason="沒有有效授權")

    rows = log.query()
    assert [row["seq"] for row in rows] == [first + 3, first + 2, first + 1, first]  # newest first
    grant = rows[-1]
    assert grant["project"] == PROJECT
    assert grant["grant_id"] == 7
    assert grant["detail"] == {
        "authorization_ref": "北市警資字第 1130001 號",
        "ends_at": "2028-01-01T02:00:00.000000+00:00",
    }
    assert grant["at"] == "2027-12-31T20:00:01.000000+00:00"

    assert [r["event"] for r in log.query(account="陳小明")] == [SESSION_END, SESSION_START]
    assert [r["event"] for r in log.query(camera_id="cam-2")] == [ACCESS_DENIED]
    assert len(log.query(project=PROJECT)) == 2
    assert [r["event"] for r in log.query(event=ACCESS_DENIED)] == [ACCESS_DENIED]
    early = log.query(until=T0 + timedelta(minutes=1))
    assert [r["event"] for r in early] == [SESSION_START, GRANT_CREATED]
    late = log.query(since=T0 + timedelta(minutes=1), account="陳小明")
    assert [r["detail"] for r in late] == [{"seconds": 3600}]
    assert [r["seq"] for r in log.query(limit=2, offset=1)] == [first + 2, first + 1]
    assert log.query(account="' OR 1=1 --") == []  # values are bound, never spliced
    # The chain is intact, but grant 7 was audited and is in no grants table.
    assert verify_connection(db).problem == (
        "grant 7 was last audited in row 1 but is gone (deleted outside the API?)"
    )


def test_chain_verifies_after_many_rows(log: AuditLog, db: sqlite3.Connection) -> None:
    fill(log, 300)
    assert verify_connection(db).ok
    assert verify_connection(db).rows_checked == 300
    assert log.query(limit=1)[0]["seq"] == 300


def test_empty_log_verifies(log: AuditLog, db: sqlite3.Connection) -> None:
    assert verify_connection(db).ok
    assert verify_connection(db).rows_checked == 0


def test_triggers_block_update_and_delete(log: AuditLog, db: sqlite3.Connection) -> None:
    fill(log, 3)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit SET account = 'nobody' WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit")
    assert verify_connection(db).ok
    assert verify_connection(db).rows_checked == 3


def test_edited_row_is_named(log: AuditLog, db_path: Path, db: sqlite3.Connection) -> None:
    fill(log, 30)
    raw = attacker(db_path)
    raw.execute("UPDATE audit SET account = 'someone-else' WHERE seq = 17")
    result = verify_connection(db)
    assert not result.ok
    assert result.first_bad_seq == 17
    assert result.rows_checked == 16
    assert result.problem == "row 17: hash does not match its content (edited?)"


def test_edited_detail_is_named(log: AuditLog, db_path: Path, db: sqlite3.Connection) -> None:
    fill(log, 5)
    attacker(db_path).execute("""UPDATE audit SET detail = '{"n":99}' WHERE seq = 4""")
    assert verify_connection(db).first_bad_seq == 4


def spec_hash(row: sqlite3.Row) -> str:
    """The documented formula, written out independently of the module."""
    content = {key: row[key] for key in HASHED}
    content["detail"] = json.loads(row["detail"])
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((row["prev_hash"] + "\n" + canonical).encode()).hexdigest()


def test_hashes_follow_the_documented_formula(log: AuditLog, db: sqlite3.Connection) -> None:
    log.record(SESSION_START, account="陳小明", camera_id="cam-1", grant_id=3, seconds=1.5)
    log.record(SESSION_END, account="陳小明", camera_id="cam-1", grant_id=3)
    rows = db.execute("SELECT * FROM audit ORDER BY seq").fetchall()
    assert rows[0]["prev_hash"] == GENESIS
    assert rows[1]["prev_hash"] == rows[0]["hash"]
    assert [spec_hash(row) for row in rows] == [row["hash"] for row in rows]


def test_edited_row_with_recomputed_hash_breaks_the_next_link(
    log: AuditLog, db_path: Path, db: sqlite3.Connection
) -> None:
    fill(log, 10)
    raw = attacker(db_path)
    raw.row_factory = sqlite3.Row
    raw.execute("UPDATE audit SET account = 'someone-else' WHERE seq = 5")
    edited = raw.execute("SELECT * FROM audit WHERE seq = 5").fetchone()
    raw.execute("UPDATE audit SET hash = ? WHERE seq = 5", (spec_hash(edited),))
    result = verify_connection(db)
    assert result.first_bad_seq == 6
    assert result.problem == (
        "row 6: previous hash does not match row 5 (row deleted or reordered?)"
    )


def test_deleted_middle_row_names_the_row_after_the_gap(
    log: AuditLog, db_path: Path, db: sqlite3.Connection
) -> None:
    fill(log, 20)
    attacker(db_path).execute("DELETE FROM audit WHERE seq = 10")
    result = verify_connection(db)
    assert not result.ok
    assert result.first_bad_seq == 11
    assert result.problem is not None
    assert "row 10 missing" in result.problem


def test_deleted_rows_renumbered_still_fail(
    log: AuditLog, db_path: Path, db: sqlite3.Connection
) -> None:
    fill(log, 6)
    raw = attacker(db_path)
    raw.execute("DELETE FROM audit WHERE seq = 3")
    raw.execute("UPDATE audit SET seq = seq - 1 WHERE seq > 3")  # close the gap
    result = verify_connection(db)
    assert result.first_bad_seq == 3
    assert result.problem is not None
    assert "previous hash does not match row 2" in result.problem


def test_deleted_first_rows_fail(log: AuditLog, db_path: Path, db: sqlite3.Connection) -> None:
    fill(log, 6)
    attacker(db_path).execute("DELETE FROM audit WHERE seq <= 2")
    result = verify_connection(db)
    assert result.first_bad_seq == 3
    assert result.problem is not None
    assert result.problem.startswith("rows 1..2 missing")


def test_swapped_rows_fail(log: AuditLog, db_path: Path, db: sqlite3.Connection) -> None:
    fill(log, 10)
    raw = attacker(db_path)
    columns = "at, event, account, camera_id, grant_id, project, remote, session_id, detail"
    columns += ", prev_hash, hash"
    five = raw.execute(f"SELECT {columns} FROM audit WHERE seq = 5").fetchone()
    six = raw.execute(f"SELECT {columns} FROM audit WHERE seq = 6").fetchone()
    assignments = ", ".join(f"{column.strip()} = ?" for column in columns.split(","))
    raw.execute(f"UPDATE audit SET {assignments} WHERE seq = 5", six)
    raw.execute(f"UPDATE audit SET {assignments} WHERE seq = 6", five)
    result = verify_connection(db)
    assert not result.ok
    assert result.first_bad_seq == 5


def test_prune_keeps_the_chain_verifiable(
    log: AuditLog, clock: Clock, db: sqlite3.Connection
) -> None:
    fill(log, 10)  # at T0+1s .. T0+10s
    clock.now = T0 + timedelta(days=30)
    fill(log, 5)  # seq 11..15

    anchor_hash = log.query(limit=1, offset=5)[0]["hash"]  # row 10, the last to go
    deleted = log.prune(T0 + timedelta(days=1), account="admin")
    assert deleted == 10
    result = verify_connection(db)
    assert result.ok, result.problem
    assert result.rows_checked == 6  # 5 kept + the audit_pruned row

    newest = log.query(limit=1)[0]
    assert newest["seq"] == 16
    assert newest["event"] == AUDIT_PRUNED
    assert newest["account"] == "admin"
    assert newest["detail"] == {"through_seq": 10, "rows": 10, "anchor_hash": anchor_hash}
    assert min(row["seq"] for row in log.query()) == 11

    log.record(SESSION_START, account="user", camera_id="cam-1")
    assert verify_connection(db).ok
    assert log.prune(T0 + timedelta(days=1)) == 0  # nothing older left


def test_prune_everything_leaves_the_pruned_row(
    log: AuditLog, db: sqlite3.Connection, clock: Clock
) -> None:
    fill(log, 4)
    assert log.prune(clock.now + timedelta(days=1)) == 4
    rows = log.query()
    assert [(row["seq"], row["event"]) for row in rows] == [(5, AUDIT_PRUNED)]
    anchor = db.execute("SELECT seq, hash FROM audit_anchor").fetchall()
    assert [a["seq"] for a in anchor] == [4]
    assert rows[0]["detail"] == {"through_seq": 4, "rows": 4, "anchor_hash": anchor[0]["hash"]}
    assert verify_connection(db).ok

    assert log.prune(clock.now + timedelta(days=1)) == 1  # the pruned row itself may go later
    assert [row["seq"] for row in log.query()] == [6]  # seq never restarts at 1
    assert db.execute("SELECT COUNT(*) FROM audit_anchor").fetchone()[0] == 1
    assert db.execute("SELECT COUNT(*) FROM audit_pruning").fetchone()[0] == 0
    assert verify_connection(db).ok


def test_prune_keeps_rows_written_after_a_clock_step_back(
    log: AuditLog, clock: Clock, db: sqlite3.Connection
) -> None:
    fill(log, 3)  # T0+1..3s
    clock.now = T0 + timedelta(days=10)
    fill(log, 2)  # seq 4, 5: recent
    clock.now = T0 - timedelta(days=10)
    fill(log, 1)  # seq 6: "old" by its timestamp, but written after recent rows
    assert log.prune(T0 + timedelta(days=1)) == 3
    assert sorted(row["seq"] for row in log.query())[:3] == [4, 5, 6]
    assert verify_connection(db).ok


def test_prune_refuses_a_tampered_chain(log: AuditLog, db_path: Path, clock: Clock) -> None:
    fill(log, 5)
    attacker(db_path).execute("UPDATE audit SET account = 'x' WHERE seq = 2")
    with pytest.raises(AuditWriteError, match="row 2"):
        log.prune(clock.now + timedelta(days=1))
    assert len(log.query()) == 5  # nothing deleted: the evidence stays


def test_tampered_anchor_fails(
    log: AuditLog, db_path: Path, clock: Clock, db: sqlite3.Connection
) -> None:
    fill(log, 5)
    clock.now += timedelta(days=30)
    fill(log, 3)
    log.prune(clock.now - timedelta(days=1))
    assert verify_connection(db).ok

    raw = sqlite3.connect(db_path, isolation_level=None)  # audit_anchor has no triggers
    raw.execute("UPDATE audit_anchor SET hash = ?", ("a" * 64,))
    result = verify_connection(db)
    assert not result.ok
    assert result.first_bad_seq == 6
    assert result.problem == "row 6: previous hash does not match the anchor (anchor changed?)"

    raw.execute("DELETE FROM audit_anchor")
    result = verify_connection(db)
    assert result.first_bad_seq == 6
    assert result.problem is not None
    assert result.problem.startswith("rows 1..5 missing")

    raw.execute("INSERT INTO audit_anchor (seq, hash) VALUES (7, ?)", (GENESIS,))
    assert verify_connection(db).first_bad_seq == 6  # a row before the claimed chain start


def forge_anchor(db_path: Path, through: int) -> None:
    """Cut rows up to `through` and write an anchor for them, as prune would, but
    without prune's record in the chain."""
    raw = attacker(db_path)
    (last_hash,) = raw.execute("SELECT hash FROM audit WHERE seq = ?", (through,)).fetchone()
    raw.execute("DELETE FROM audit WHERE seq <= ?", (through,))
    raw.execute("DELETE FROM audit_anchor")
    raw.execute("INSERT INTO audit_anchor (seq, hash) VALUES (?, ?)", (through, last_hash))


def test_forged_anchor_without_a_prune_is_named(
    log: AuditLog, db_path: Path, db: sqlite3.Connection
) -> None:
    fill(log, 8)
    forge_anchor(db_path, 3)  # rows 4..8 still link up to the forged anchor
    result = verify_connection(db)
    assert not result.ok
    assert result.problem == (
        "the anchor (seq 3) has no audit_pruned row that set it (anchor forged?)"
    )


def test_forged_anchor_after_a_real_prune_is_named(
    log: AuditLog, db_path: Path, clock: Clock, db: sqlite3.Connection
) -> None:
    fill(log, 5)  # old: pruned below
    clock.now += timedelta(days=30)
    fill(log, 5)  # 6..10 kept
    log.prune(clock.now - timedelta(days=1))  # anchor 5, the audit_pruned row is 11
    log.record(SESSION_START, account="late", camera_id="cam-1")  # 12
    assert verify_connection(db).ok
    forge_anchor(db_path, 7)  # rows 6 and 7 cut, anchor moved to 7
    result = verify_connection(db)
    assert not result.ok
    assert result.problem == (
        "the anchor (seq 7) does not match the last prune record: row 11 pruned through"
        " seq 5 (anchor forged?)"
    )
    # Pruning would launder the forged anchor (a new prune record naming it): refused.
    with pytest.raises(AuditWriteError, match="anchor"):
        log.prune(clock.now + timedelta(days=1))
    assert [row["seq"] for row in log.query()][-1] == 8


def test_to_csv(log: AuditLog) -> None:
    log.record(SESSION_START, account='=HYPERLINK("http://x")', camera_id="cam-1", note="台北")
    log.record(ACCESS_DENIED, account="+1", project="-2", remote="@evil", reason="\tx")
    text = AuditLog.to_csv(log.query())
    lines = text.splitlines()
    header = "seq,at,event,account,camera_id,grant_id,project,remote,session_id,detail,hash"
    assert lines[0] == header
    denied, start = list(csv.DictReader(io.StringIO(text)))
    assert start["account"] == '\'=HYPERLINK("http://x")'
    assert start["detail"] == '{"note":"台北"}'
    assert start["grant_id"] == ""
    assert len(start["hash"]) == 64
    assert denied["account"] == "'+1"
    assert denied["project"] == "'-2"
    assert denied["remote"] == "'@evil"
    assert denied["detail"] == '{"reason":"\\tx"}'  # JSON-escaped, starts with "{"
    assert AuditLog.to_csv([]).splitlines() == [lines[0]]


@pytest.mark.parametrize("lead", ["\uff1d", "\uff0b", "\uff0d", "\uff20", "\ufe66", "\ufe6b"])
def test_csv_escapes_the_full_width_and_small_formula_signs_too(log: AuditLog, lead: str) -> None:
    log.record(ACCESS_DENIED, account=f"{lead}HYPERLINK(1)", camera_id="cam-1")
    (row,) = list(csv.DictReader(io.StringIO(AuditLog.to_csv(log.query()))))
    assert row["account"] == f"'{lead}HYPERLINK(1)"


def test_write_error_on_read_only_database(log: AuditLog, db_path: Path) -> None:
    fill(log, 2)
    read_only = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
    audit = AuditLog(read_only)
    with pytest.raises(AuditWriteError):
        audit.record(SESSION_START, account="user", camera_id="cam-1")
    assert not read_only.in_transaction  # rolled back, usable for reading
    assert verify_connection(read_only).ok
    assert len(audit.query()) == 2
    with pytest.raises(AuditWriteError):
        audit.prune(T0 + timedelta(days=1))
    read_only.close()


def test_record_joins_the_callers_transaction(log: AuditLog, db: sqlite3.Connection) -> None:
    db.execute("BEGIN IMMEDIATE")
    log.record(GRANT_CREATED, account="admin", grant_id=1)
    db.execute("ROLLBACK")  # e.g. the grant insert failed: its audit row goes too
    assert log.query() == []
    db.execute("BEGIN IMMEDIATE")
    seq = log.record(GRANT_CREATED, account="admin", grant_id=1)
    db.execute("COMMIT")
    assert [row["seq"] for row in log.query()] == [seq]
    assert verify_connection(db).rows_checked == 1  # the chain holds; grant 1 itself was never made


def test_bad_values_are_refused_before_writing(log: AuditLog) -> None:
    with pytest.raises(TypeError):
        log.record(SESSION_START, blob=object())
    with pytest.raises(TypeError):
        log.record(SESSION_START, account=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        log.record(SESSION_START, grant_id="5")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        log.record(SESSION_START, ratio=float("nan"))
    with pytest.raises(ValueError):
        log.record("")
    assert log.query() == []


def test_open_sessions(log: AuditLog) -> None:
    log.record(SESSION_START, account="a", camera_id="cam-1", session_id="s1")
    log.record(SESSION_START, account="b", camera_id="cam-2", session_id="s2")
    log.record(SESSION_END, account="a", camera_id="cam-1", session_id="s1")
    log.record(SESSION_START, account="c", camera_id="cam-3", session_id="s3")
    log.record(SESSION_END, account="c", camera_id="cam-3", session_id="s3")
    log.record(SESSION_START, account="d", camera_id="cam-4", session_id="s4")
    log.record(ACCESS_DENIED, account="e", camera_id="cam-4", session_id="s4")
    open_ = log.open_sessions()
    assert [(row["session_id"], row["account"]) for row in open_] == [("s2", "b"), ("s4", "d")]
    assert open_[0]["detail"] == {}
    log.record(SESSION_END, session_id="s2", reason="gateway restarted")
    assert [row["session_id"] for row in log.open_sessions()] == ["s4"]


def test_verify_file(log: AuditLog, db_path: Path, tmp_path: Path) -> None:
    missing = verify_file(str(tmp_path / "nope.db"))
    assert not missing.ok and missing.unreadable
    assert missing.problem is not None
    assert missing.problem.endswith("no such file")

    fill(log, 12)
    result = verify_file(str(db_path))
    assert result.ok
    assert result.rows_checked == 12

    attacker(db_path).execute("UPDATE audit SET camera_id = 'cam-x' WHERE seq = 9")
    result = verify_file(str(db_path))
    assert (result.ok, result.first_bad_seq, result.unreadable) == (False, 9, False)

    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("hello")
    result = verify_file(str(not_a_db))
    assert not result.ok and result.unreadable

    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE notes (text)").connection.commit()
    result = verify_file(str(other))
    assert (result.ok, result.unreadable) == (False, True)
    assert result.problem == "not a gateway database (no audit log in it)"


def test_a_dropped_table_is_tampering_not_unreadable(log: AuditLog, db_path: Path) -> None:
    fill(log, 2)
    sqlite3.connect(db_path, isolation_level=None).execute("DROP TABLE audit_anchor")
    result = verify_file(str(db_path))
    assert (result.ok, result.unreadable) == (False, False)
    assert result.problem == "table audit_anchor is missing (schema changed?)"


# --- grants changed outside the API --------------------------------------------------


@pytest.fixture
def grants(db: sqlite3.Connection, clock: Clock, log: AuditLog) -> GrantStore:
    """Grants under two standing police authorizations, recorded and audited."""
    store = GrantStore(db, ["cam-1", "cam-2"], max_days=14, clock=clock)
    for reference in ("北市警資字第1160000001號", "REF-2"):
        authorize(store, reference=reference, around=T0, audit=log)
    return store


def audited_grant(grants: GrantStore, log: AuditLog, **overrides: object) -> Grant:
    """A grant made and audited as the admin API does (AccessAdmin._record)."""
    fields: dict = {
        "project": PROJECT,
        "purpose": "人潮管理",
        "authorization_ref": "北市警資字第1160000001號",
        "members": ["alice", "bob"],
        "cameras": ["cam-1"],
        "starts_at": T0,
        "ends_at": T0 + timedelta(hours=6),
        "created_by": "admin",
    } | overrides
    grant = grants.create(**fields)
    audit_grant(log, GRANT_CREATED, grant, account="admin")
    return grant


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE grants SET ends_at = '2028-01-10T00:00:00.000000+00:00'",
        "UPDATE grants SET authorization_ref = 'forged'",
        "UPDATE grants SET revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL",
        "INSERT INTO grant_members (grant_id, account) VALUES (1, 'mallory')",
        "DELETE FROM grant_cameras WHERE camera_id = 'cam-1'",
        "INSERT INTO grant_cameras (grant_id, camera_id) VALUES (1, 'cam-2')",
        "DELETE FROM grant_authorizations",
    ],
    ids=["window", "authorization", "unrevoked", "member", "camera-gone", "camera", "history"],
)
def test_a_grant_changed_outside_the_api_is_named(
    grants: GrantStore, log: AuditLog, db_path: Path, edit: str, db: sqlite3.Connection
) -> None:
    grant = audited_grant(grants, log)
    audited_grant(grants, log, project="another")  # untouched: must not be named
    _, after = grants.update(
        grant.id, by="admin", ends_at=T0 + timedelta(hours=8), authorization_ref="REF-2"
    )
    audit_grant(log, GRANT_UPDATED, after, account="admin")
    revoked = grants.revoke(grant.id, by="admin", reason="done")
    audit_grant(log, GRANT_REVOKED, revoked, account="admin")
    result = verify_connection(db)
    assert result.ok, result.problem
    assert (result.grants_checked, result.grants_unchecked) == (2, 0)

    raw = sqlite3.connect(db_path, isolation_level=None)  # grants have no triggers
    raw.execute(edit)
    raw.close()
    result = verify_file(str(db_path))
    assert (result.ok, result.unreadable) == (False, False)
    assert result.problem == (
        f"grant 1 ({PROJECT!r}) differs from its last audited change in row 6"
        " (changed outside the API?)"
    )


def test_a_grant_added_or_deleted_outside_the_api_is_named(
    grants: GrantStore, log: AuditLog, db_path: Path, db: sqlite3.Connection
) -> None:
    audited_grant(grants, log)
    grants.create(  # straight into the database: no audit row
        project="後門",
        purpose="x",
        authorization_ref="REF-2",
        members=["mallory"],
        cameras=["cam-2"],
        starts_at=T0,
        ends_at=T0 + timedelta(hours=1),
        created_by="admin",
    )
    assert verify_connection(db).problem == (
        "grant 2 ('後門') has no audited change (written outside the API?)"
    )
    raw = sqlite3.connect(db_path, isolation_level=None)
    for table in ("grant_members", "grant_cameras"):
        raw.execute(f"DELETE FROM {table} WHERE grant_id = 2")
    raw.execute("DELETE FROM grants WHERE id = 2")
    assert verify_connection(db).ok
    for table in ("grant_members", "grant_cameras"):
        raw.execute(f"DELETE FROM {table} WHERE grant_id = 1")
    raw.execute("DELETE FROM grants WHERE id = 1")
    assert verify_connection(db).problem == (
        "grant 1 was last audited in row 3 but is gone (deleted outside the API?)"
    )


def test_grants_audited_before_hashes_are_not_compared(
    grants: GrantStore, log: AuditLog, db: sqlite3.Connection
) -> None:
    grant = grants.create(
        project=PROJECT,
        purpose="x",
        authorization_ref="REF-2",
        members=["alice"],
        cameras=["cam-1"],
        starts_at=T0,
        ends_at=T0 + timedelta(hours=1),
        created_by="admin",
    )
    log.record(GRANT_CREATED, account="admin", grant_id=grant.id, project=PROJECT)  # no hash
    result = verify_connection(db)
    assert (result.ok, result.grants_checked, result.grants_unchecked) == (True, 0, 1)


def test_pruned_grant_records_carry_their_hash(
    grants: GrantStore, log: AuditLog, db_path: Path, clock: Clock, db: sqlite3.Connection
) -> None:
    # Rows 1 and 2: the police authorizations.
    old = audited_grant(grants, log, project="old")  # row 3
    changed = audited_grant(grants, log, project="changed later")  # row 4
    clock.now += timedelta(days=30)
    _, after = grants.update(changed.id, by="admin", members=["carol"])
    audit_grant(log, GRANT_UPDATED, after, account="admin")  # row 5, kept
    log.prune(clock.now - timedelta(days=1))  # rows 1..4 go: grant 1's only record
    (pruned,) = log.query(event=AUDIT_PRUNED)
    assert pruned["detail"]["grant_hashes"] == {str(old.id): old.content_hash()}
    result = verify_connection(db)
    assert (result.ok, result.grants_checked) == (True, 2), result.problem

    clock.now += timedelta(days=30)
    log.prune(clock.now - timedelta(days=1))  # everything, the first prune row too
    result = verify_connection(db)
    assert (result.ok, result.grants_checked) == (True, 2), result.problem

    raw = sqlite3.connect(db_path, isolation_level=None)
    raw.execute("UPDATE grants SET purpose = 'edited' WHERE id = ?", (old.id,))
    result = verify_connection(db)
    assert result.problem == (
        "grant 1 ('old') differs from its last audited change in row 7 (changed outside the API?)"
    )


def test_a_database_from_before_grant_history_still_verifies(
    grants: GrantStore, log: AuditLog, db_path: Path
) -> None:
    audited_grant(grants, log)
    raw = sqlite3.connect(db_path, isolation_level=None)
    raw.execute("DROP TABLE grant_authorizations")
    result = verify_file(str(db_path))  # schema 2 without its table: altered
    assert result.problem == "table grant_authorizations is missing (schema changed?)"
    raw.execute("PRAGMA user_version = 1")  # as an older gateway left it, read-only
    result = verify_file(str(db_path))
    assert (result.ok, result.grants_checked) == (True, 1), result.problem


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE authorizations SET ends_at = '2099-01-01T00:00:00.000000+00:00' WHERE id = 1",
        "INSERT INTO authorization_scope VALUES (1, 'district', '大安區')",
        "UPDATE authorizations SET confirmed_by = 'mallory' WHERE id = 1",
    ],
    ids=["validity", "scope", "confirmed-by"],
)
def test_a_police_authorization_changed_outside_the_api_is_named(
    grants: GrantStore, log: AuditLog, db_path: Path, db: sqlite3.Connection, edit: str
) -> None:
    """Police authorizations are checked as grants are: against the hash their last
    audited change recorded."""
    assert verify_connection(db).records_checked == 2
    sqlite3.connect(db_path, isolation_level=None).execute(edit)
    assert verify_connection(db).problem == (
        "authorization 1 ('北市警資字第1160000001號') differs from its last audited change"
        " in row 1 (changed outside the API?)"
    )
