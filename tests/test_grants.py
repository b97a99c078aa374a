"""GrantStore against a real SQLite file: validation, decisions, restarts."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from support.gateway import authorize

from gateway.access import decision
from gateway.access.authorizations import Authorization, OutsideAuthorization, fields_of
from gateway.access.decision import Refusal
from gateway.access.grants import Grant, GrantInvalid, RuleBroken
from gateway.store.database import open_database
from gateway.store.grants import GrantNotFound, GrantStore

T0 = datetime(2027, 1, 1, tzinfo=UTC)
CAMERAS = ["cam-1", "cam-2", "cam-3"]
TAIPEI = timezone(timedelta(hours=8))
NASTY = "'); DROP TABLE grants; --"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gateway.sqlite3"


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


REFERENCE = "北市警資字第1160000001號"


@pytest.fixture
def store(db_path: Path, clock: Clock) -> GrantStore:
    """Grants under a standing police authorization of every camera, 60 days either
    side of T0 (and "R1" to "R3" alike, for moving a grant between them)."""
    grants = GrantStore(open_database(db_path), CAMERAS, max_days=30, clock=clock)
    for reference in (REFERENCE, "R1", "R2", "R3"):
        authorize(grants, CAMERAS, reference=reference, around=T0, days=60)
    return grants


def fields(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "project": "2027 跨年晚會 信義區",
        "purpose": "人潮管理",
        "authorization_ref": "北市警資字第1160000001號",
        "members": ["alice", "bob"],
        "cameras": ["cam-1", "cam-2"],
        "starts_at": T0,
        "ends_at": T0 + timedelta(hours=6),
        "created_by": "admin",
    }
    return base | overrides


def decide(store: GrantStore, account: str, camera: str, now: datetime | None = None) -> Grant:
    """Admission's question, asked of the grants the store finds for this pair."""
    return decision.decide(store.naming(account, camera), account, camera, now or store.clock())


def refusal(store: GrantStore, account: str, camera: str, now: datetime | None = None) -> Refusal:
    with pytest.raises(Refusal) as info:
        decide(store, account, camera, now)
    return info.value


def test_create_get_round_trip_converts_to_utc(store: GrantStore) -> None:
    created = store.create(
        **fields(
            starts_at="2027-01-01T08:00:00+08:00",
            ends_at=datetime(2027, 1, 1, 20, tzinfo=TAIPEI),
        )
    )
    got = store.get(created.id)
    assert got == created
    assert got.project == "2027 跨年晚會 信義區"
    assert got.authorization_ref == "北市警資字第1160000001號"
    assert got.members == {"alice", "bob"} and got.cameras == {"cam-1", "cam-2"}
    assert got.starts_at == T0 and got.starts_at.tzinfo == UTC
    assert got.ends_at == T0 + timedelta(hours=12)
    assert got.created_by == "admin" and got.created_at == T0 and got.revoked_at is None
    assert got.status(T0 - timedelta(seconds=1)) == "scheduled"
    assert got.status(T0) == "active" and got.is_active(T0)
    assert got.status(got.ends_at) == "ended"
    data = got.to_json(T0)
    assert data["starts_at"] == "2027-01-01T00:00:00Z"
    assert data["members"] == ["alice", "bob"] and data["status"] == "active"
    # Stored as UTC text, whatever the caller's offset.
    row = store.db.execute("SELECT starts_at FROM grants WHERE id = ?", (got.id,)).fetchone()
    assert row[0].startswith("2027-01-01T00:00:00") and row[0].endswith("+00:00")


def test_get_unknown_grant(store: GrantStore) -> None:
    with pytest.raises(GrantNotFound):
        store.get(999)


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"members": []}, "members", "at least one"),
        ({"members": "alice"}, "members", "list"),
        ({"members": ["alice", 7]}, "members", "item 2"),
        ({"members": ["alice", None]}, "members", "null"),
        ({"members": ["alice", "alice"]}, "members", "twice"),
        ({"members": ["x" * 257]}, "members", "256"),
        ({"members": [f"u{i}" for i in range(501)]}, "members", "500"),
        ({"cameras": []}, "cameras", "at least one"),
        ({"cameras": ["cam-1", "cam-404"]}, "cameras", "cam-404"),
        ({"starts_at": datetime(2027, 1, 1)}, "starts_at", "timezone"),
        ({"ends_at": "2027-01-01T06:00:00"}, "ends_at", "timezone"),
        ({"starts_at": "next tuesday"}, "starts_at", "ISO 8601"),
        ({"ends_at": T0 - timedelta(hours=1)}, "ends_at", "after starts_at"),
        ({"ends_at": T0}, "ends_at", "after starts_at"),
        ({"ends_at": T0 + timedelta(days=30, seconds=1)}, "ends_at", "30 days"),
        ({"authorization_ref": "   "}, "authorization_ref", "required"),
        ({"authorization_ref": None}, "authorization_id", "name the police authorization"),
        ({"project": ""}, "project", "required"),
        ({"project": "x" * 100_000}, "project", "200"),
        ({"purpose": "x" * 100_000}, "purpose", "2000"),
        ({"authorization_ref": "x" * 100_000}, "authorization_ref", "records it first"),
        ({"members": ["x" * 100_000]}, "members", "256"),
        ({"starts_at": "2" * 100_000}, "starts_at", "ISO 8601"),
        # Names that could deceive whoever reads them (issue 27).
        ({"members": ["alice", "bob\u202e"]}, "members", "item 2 contains U+202E"),
        ({"members": ["al\u200bice"]}, "members", "U+200B"),
        ({"members": ["alice", "\uff41lice"]}, "members", "twice"),  # NFKC: one name
        # An account name is one word (issue 26): "not a valid account!!" names nobody.
        ({"members": ["alice", "not a valid account!!"]}, "members", "item 2 'not a valid"),
        ({"members": ["alice!!"]}, "members", "has '!'"),
        ({"members": ["ad min"]}, "members", "a space"),
        ({"project": "evil\u202egnp.exe"}, "project", "U+202E"),
        ({"project": "\u2066project\u2069"}, "project", "U+2066"),
    ],
)
def test_validation_names_the_field(
    store: GrantStore, overrides: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(GrantInvalid) as info:
        store.create(**fields(**overrides))
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert words in str(info.value)
    assert len(str(info.value)) < 300  # never echoes a huge value back
    assert store.list() == []  # nothing stored


def test_every_wrong_field_is_named_at_once(store: GrantStore) -> None:
    with pytest.raises(GrantInvalid) as info:
        store.create(**fields(project=" ", members=["a b"], cameras=[], ends_at="soon"))
    assert info.value.field == "project"  # the first, as before
    assert list(info.value.problems) == ["project", "members", "cameras", "ends_at"]
    assert "a space" in info.value.problems["members"]


def test_account_names_of_any_script_and_of_e_mail_are_members(store: GrantStore) -> None:
    names = ["張小明", "o'brien", "ana.lopez+cctv@taipei.gov.tw", "user_7-b", "12345"]
    assert store.create(**fields(members=names)).members == set(names)


def test_names_are_kept_in_one_spelling(store: GrantStore) -> None:
    grant = store.create(**fields(members=["\uff41lice"], project="２０２７ 跨年"))
    assert grant.members == {"alice"} and grant.project == "2027 跨年"


def test_unknown_cameras_message_names_a_few(store: GrantStore) -> None:
    with pytest.raises(GrantInvalid) as info:
        store.create(**fields(cameras=["cam-1", *(f"x{i}" for i in range(10))]))
    assert "'x0'" in str(info.value) and "and 7 more" in str(info.value)


def test_sql_metacharacters_are_stored_verbatim(db_path: Path, clock: Clock) -> None:
    store = GrantStore(open_database(db_path), [*CAMERAS, NASTY], max_days=30, clock=clock)
    authorize(store, [NASTY], reference=NASTY, around=T0)
    grant = store.create(
        **fields(
            project=NASTY,
            purpose=NASTY + "\n%s ? :name",
            authorization_ref=NASTY,
            # An account name is one word (access/names.py): the quote and the
            # comment dashes are what it may carry of SQL.
            members=["o'brien--", "bob'--'"],
            cameras=[NASTY],
            created_by=NASTY,
        )
    )
    got = store.get(grant.id)
    assert got.project == NASTY and got.authorization_ref == NASTY and got.created_by == NASTY
    assert got.purpose == NASTY + "\n%s ? :name"
    assert got.members == {"o'brien--", "bob'--'"} and got.cameras == {NASTY}
    assert decide(store, "bob'--'", NASTY) == got
    assert store.revoke(grant.id, by=NASTY, reason=NASTY).revoke_reason == NASTY
    tables = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"grants", "grant_members", "grant_cameras"} <= tables


def test_decide_allows_member_on_granted_camera(store: GrantStore) -> None:
    grant = store.create(**fields())
    assert decide(store, "alice", "cam-1") == grant
    assert decide(store, "bob", "cam-2", T0 + timedelta(hours=5, minutes=59)) == grant


def test_decide_refuses_non_member_and_other_camera(store: GrantStore) -> None:
    store.create(**fields())
    for account, camera in [("mallory", "cam-1"), ("alice", "cam-3"), ("", "cam-1")]:
        r = refusal(store, account, camera)
        assert r.code == "no_grant" and r.grant is None


def test_decide_pending_ended_revoked(store: GrantStore, clock: Clock) -> None:
    grant = store.create(**fields())
    r = refusal(store, "alice", "cam-1", T0 - timedelta(minutes=1))
    assert (r.code, r.grant) == ("not_yet_started", grant)
    r = refusal(store, "alice", "cam-1", grant.ends_at)
    assert (r.code, r.grant) == ("grant_ended", grant)
    clock.now = T0 + timedelta(hours=1)
    revoked = store.revoke(grant.id, by="admin", reason="警方撤回同意")
    assert revoked.revoked_at == clock.now and revoked.revoked_by == "admin"
    r = refusal(store, "alice", "cam-1")
    assert (r.code, r.grant) == ("grant_revoked", revoked)
    assert str(r) == "grant_revoked"


def test_refusal_prefers_pending_then_revoked_then_ended(store: GrantStore) -> None:
    ended = store.create(**fields(starts_at=T0 - timedelta(days=2), ends_at=T0 - timedelta(days=1)))
    assert refusal(store, "alice", "cam-1").code == "grant_ended"
    revoked = store.create(**fields())
    store.revoke(revoked.id, by="admin", reason="mistake")
    assert refusal(store, "alice", "cam-1").code == "grant_revoked"
    pending = store.create(
        **fields(starts_at=T0 + timedelta(days=1), ends_at=T0 + timedelta(days=2))
    )
    r = refusal(store, "alice", "cam-1")
    assert (r.code, r.grant) == ("not_yet_started", pending)
    assert ended.id < revoked.id < pending.id


def test_two_active_grants_pick_the_one_ending_last(store: GrantStore) -> None:
    long = store.create(**fields(project="long", ends_at=T0 + timedelta(days=2)))
    store.create(**fields(project="short", ends_at=T0 + timedelta(hours=1)))
    assert decide(store, "alice", "cam-1") == long
    assert [g.project for g in store.active_for("alice")] == ["short", "long"]
    assert store.active_for("mallory") == []


def test_update_replaces_members_and_cameras(store: GrantStore, clock: Clock) -> None:
    grant = store.create(**fields())
    clock.now = T0 + timedelta(minutes=5)
    before, after = store.update(grant.id, by="admin", members=["carol"], cameras=["cam-3"])
    assert before == grant
    assert after.members == {"carol"} and after.cameras == {"cam-3"}
    assert after.updated_at == clock.now and after.starts_at == grant.starts_at
    assert after.purpose == grant.purpose  # untouched fields stay
    assert refusal(store, "alice", "cam-3").code == "no_grant"
    assert refusal(store, "carol", "cam-1").code == "no_grant"
    assert decide(store, "carol", "cam-3") == after


def test_update_window_and_validation(store: GrantStore) -> None:
    grant = store.create(**fields())
    _, after = store.update(grant.id, by="admin", ends_at="2027-01-01T10:00:00+08:00")
    assert after.ends_at == T0 + timedelta(hours=2)
    with pytest.raises(GrantInvalid) as info:
        store.update(grant.id, by="admin", ends_at=T0 + timedelta(days=31))
    assert info.value.field == "ends_at"
    with pytest.raises(GrantInvalid) as info:
        store.update(grant.id, by="admin", starts_at=T0 + timedelta(hours=3))
    assert info.value.field == "ends_at"  # would end before it starts
    with pytest.raises(GrantInvalid) as info:
        store.update(grant.id, by="admin", members=[])
    assert info.value.field == "members"
    assert store.get(grant.id) == after  # failed updates changed nothing
    assert store.update(grant.id, by="admin") == (after, after)
    with pytest.raises(GrantNotFound):
        store.update(999, by="admin", purpose="x")


def test_update_refuses_revoked_grant(store: GrantStore) -> None:
    grant = store.create(**fields())
    revoked = store.revoke(grant.id, by="admin", reason="done")
    with pytest.raises(GrantInvalid) as info:
        store.update(grant.id, by="admin", members=["alice"])
    assert info.value.field == "grant" and "revoked" in str(info.value)
    assert store.get(grant.id) == revoked


def test_revoke_twice_and_reason_required(store: GrantStore) -> None:
    grant = store.create(**fields())
    with pytest.raises(GrantInvalid) as info:
        store.revoke(grant.id, by="admin", reason="  ")
    assert info.value.field == "reason"
    store.revoke(grant.id, by="admin", reason="event over")
    with pytest.raises(GrantInvalid) as info:
        store.revoke(grant.id, by="other", reason="again")
    assert str(info.value) == "grant: already revoked"
    assert store.get(grant.id).revoked_by == "admin"
    with pytest.raises(GrantNotFound):
        store.revoke(999, by="admin", reason="x")


def test_list_newest_first(store: GrantStore, clock: Clock) -> None:
    old = store.create(**fields(project="old", ends_at=T0 + timedelta(hours=1)))
    new = store.create(**fields(project="new"))
    revoked = store.create(**fields(project="revoked"))
    store.revoke(revoked.id, by="admin", reason="x")
    assert [g.id for g in store.list()] == [revoked.id, new.id, old.id]
    clock.now = T0 + timedelta(hours=2)
    assert [g.id for g in store.list(include_ended=False)] == [new.id]


def test_second_store_on_same_file_sees_same_state(db_path: Path, clock: Clock) -> None:
    first = GrantStore(open_database(db_path), CAMERAS, max_days=30, clock=clock)
    authorize(first, reference=REFERENCE, around=T0)
    kept = first.create(**fields())
    gone = first.create(**fields(members=["carol"]))
    first.db.close()  # the gateway stops

    second = GrantStore(open_database(db_path), CAMERAS, max_days=30, clock=clock)
    assert second.list() == [gone, kept]
    second.revoke(gone.id, by="admin", reason="while the other was down")
    assert refusal(second, "carol", "cam-1").code == "grant_revoked"

    # And a live store sees changes written by another connection, with no cache.
    third = GrantStore(open_database(db_path), CAMERAS, max_days=30, clock=clock)
    assert isinstance(decide(third, "alice", "cam-1"), Grant)
    second.update(kept.id, by="admin", members=["bob"])
    assert refusal(third, "alice", "cam-1").code == "no_grant"


def test_write_failure_rolls_back(store: GrantStore) -> None:
    grant = store.create(**fields())
    # Fail after the members were replaced: the whole update must roll back.
    store.db.execute(
        "CREATE TRIGGER fail_cameras BEFORE INSERT ON grant_cameras"
        " BEGIN SELECT RAISE(ABORT, 'boom'); END"
    )
    with pytest.raises(sqlite3.IntegrityError):
        store.update(grant.id, by="admin", members=["zed"], cameras=["cam-3"])
    assert not store.db.in_transaction
    assert store.get(grant.id) == grant


# --- a window that grows needs a new authorization reference ---------------------------


# --- the chain of consent, in the store ---------------------------------------------


def consent(store: GrantStore, **overrides: Any) -> Authorization:
    """Another police authorization: cam-1 only, T0 to T0 + 1 day, unless told."""
    base: dict[str, Any] = {
        "reference": "北市警資字第2號",
        "cameras": ["cam-1"],
        "starts_at": T0.isoformat(),
        "ends_at": (T0 + timedelta(days=1)).isoformat(),
        "purpose_class": "legal_duty",
    }
    body = fields_of(base | overrides, store.camera_ids)
    return store.authorizations.create(body, by="liaison", confirmed=True)


def under(authorization: Authorization, **overrides: Any) -> dict[str, Any]:
    return fields(authorization_ref=None, authorization_id=authorization.id, cameras=["cam-1"]) | (
        overrides
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cameras": ["cam-1", "cam-2"]}, "cameras"),
        ({"starts_at": T0 - timedelta(hours=1)}, "starts_at"),
        ({"ends_at": T0 + timedelta(days=2)}, "ends_at"),
    ],
    ids=["camera", "earlier-start", "later-end"],
)
def test_a_grant_stays_inside_its_authorization(
    store: GrantStore, change: dict[str, Any], field: str
) -> None:
    authorization = consent(store)
    grant = store.create(**under(authorization))
    with pytest.raises(OutsideAuthorization) as info:
        store.update(grant.id, by="admin", **change)
    assert (info.value.code, info.value.field) == ("outside_authorization", field)
    assert store.get(grant.id) == grant  # nothing changed
    with pytest.raises(OutsideAuthorization) as info:
        store.create(**under(authorization, **change))
    assert (info.value.code, info.value.field) == ("outside_authorization", field)
    assert [g.id for g in store.list()] == [grant.id]


def test_a_district_scope_covers_the_districts_cameras(store: GrantStore) -> None:
    store.set_camera_ids(CAMERAS, {"cam-1": "信義區", "cam-2": "信義區", "cam-3": "大安區"})
    authorization = consent(store, cameras=[], districts=["信義區"])
    made = store.create(**under(authorization, cameras=["cam-1", "cam-2"]))
    assert made.cameras == {"cam-1", "cam-2"}
    with pytest.raises(OutsideAuthorization) as info:
        store.update(made.id, by="admin", cameras=["cam-3"])
    assert info.value.field == "cameras"


def test_an_expired_or_withdrawn_authorization_takes_no_grant(
    store: GrantStore, clock: Clock
) -> None:
    authorization = consent(store)
    clock.now = T0 + timedelta(days=1)
    with pytest.raises(OutsideAuthorization) as info:
        store.create(**under(authorization))
    assert (info.value.code, info.value.field) == ("authorization_expired", "authorization_id")
    clock.now = T0
    store.authorizations.withdraw(authorization.id, by="liaison", reason="案件結束")
    with pytest.raises(OutsideAuthorization) as info:
        store.create(**under(authorization))
    assert info.value.code == "authorization_withdrawn"
    assert store.list() == []


def test_a_new_grant_waits_and_its_asker_cannot_approve_it(store: GrantStore) -> None:
    grant = store.create(**fields(), pending=True)
    assert grant.status(T0 + timedelta(hours=1)) == "pending"
    assert refusal(store, "alice", "cam-1", T0 + timedelta(hours=1)).code == "grant_pending"
    with pytest.raises(RuleBroken) as info:
        store.approve(grant.id, by="admin")  # who asked
    assert info.value.code == "self_approval"
    _, edited = store.update(grant.id, by="admin2", members=["alice"])
    assert edited.approval is not None and edited.approval.asked_by == ("admin", "admin2")
    with pytest.raises(RuleBroken):
        store.approve(grant.id, by="admin2")  # who changed it while it waited
    _, approved = store.approve(grant.id, by="admin3")
    assert (approved.approval, approved.approved_by) == (None, "admin3")
    assert approved.status(T0 + timedelta(hours=1)) == "active"
    with pytest.raises(RuleBroken) as info:
        store.approve(grant.id, by="admin4")
    assert info.value.code == "nothing_pending"


def test_a_widening_change_waits_and_its_narrowing_part_applies_at_once(
    store: GrantStore,
) -> None:
    grant = store.create(**fields())
    _, after = store.update(
        grant.id,
        by="admin",
        needs_approval=True,
        members=["alice", "carol"],  # bob out now, carol waits
        ends_at=T0 + timedelta(hours=8),  # waits
    )
    assert after.members == {"alice"} and after.ends_at == grant.ends_at
    assert after.approval is not None and after.approval.kind == "change"
    assert after.approval.change == {
        "members": ["alice", "carol"],
        "ends_at": "2027-01-01T08:00:00Z",
    }
    _, approved = store.approve(grant.id, by="admin2")
    assert approved.members == {"alice", "carol"}
    assert approved.ends_at == T0 + timedelta(hours=8)
    _, narrowed = store.update(grant.id, by="admin", needs_approval=True, cameras=["cam-1"])
    assert narrowed.approval is None and narrowed.cameras == {"cam-1"}  # narrowing: at once


def test_moving_a_grant_keeps_every_reference_in_order(store: GrantStore, clock: Clock) -> None:
    grant = store.create(**fields(authorization_ref="R1"))
    clock.now = T0 + timedelta(minutes=1)
    store.update(grant.id, by="a", authorization_ref="R2")
    clock.now = T0 + timedelta(minutes=2)
    _, after = store.update(
        grant.id, by="b", authorization_ref="R3", ends_at=T0 + timedelta(hours=8)
    )
    assert [(p.authorization_ref, p.replaced_by) for p in after.previous_authorizations] == [
        ("R1", "a"),
        ("R2", "b"),
    ]
    assert store.update(grant.id, by="a", authorization_ref="R3") == (after, after)  # no change
    json = after.to_json(clock.now)
    assert json["authorization_ref"] == "R3"
    assert [p["authorization_ref"] for p in json["previous_authorizations"]] == ["R1", "R2"]
    assert json["previous_authorizations"][0]["replaced_at"] == "2027-01-01T00:01:00Z"
