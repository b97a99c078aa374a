"""Grants made before police authorizations were records carry a free-text
`authorization_ref` and nothing else. At start-up each such reference becomes an
unconfirmed authorization (its scope the cameras, its validity the span, of the
grants that ran under it), the grants are linked to it, and every step is audited,
so `gateway audit verify` still matches and the report lists them for a liaison
to confirm. A Store job (`Store.at_start`); it runs in one transaction and does
nothing once every grant has an authorization."""

from __future__ import annotations

from typing import Any

from gateway.access.authorizations import MIGRATED_BY, Authorization

from . import audit as events
from .audit import AuditLog
from .authorizations import adopted, adoption_plan
from .grants import GrantStore


def adopt_references(grants: GrantStore, audit: AuditLog) -> list[dict[str, Any]]:
    """Adopt every unlinked grant's reference; returns what was adopted
    (authorization id, reference, grant ids)."""
    db = grants.db
    db.execute("BEGIN IMMEDIATE")
    try:
        # Read inside the write transaction: two nodes starting at once adopt once.
        plan = adoption_plan(grants.unadopted())
        done = []
        for reference, entry in plan.items():
            authorization = grants.authorizations.create(
                adopted(reference, entry, grants.clock()), by=MIGRATED_BY, confirmed=False
            )
            _record_authorization(audit, authorization, [g.id for g in entry["grants"]])
            for grant in entry["grants"]:
                linked = grants.adopt(grant.id, authorization)
                audit.record(
                    events.GRANT_UPDATED,
                    account=MIGRATED_BY,
                    grant_id=linked.id,
                    project=linked.project,
                    grant_hash=linked.content_hash(),
                    changes={"authorization_id": {"from": None, "to": authorization.id}},
                )
            done.append(
                {
                    "authorization_id": authorization.id,
                    "reference": reference,
                    "grants": [g.id for g in entry["grants"]],
                }
            )
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return done


def _record_authorization(
    audit: AuditLog, authorization: Authorization, grant_ids: list[int]
) -> None:
    audit.record(
        events.AUTHORIZATION_ADOPTED,
        account=MIGRATED_BY,
        authorization_id=authorization.id,
        authorization_hash=authorization.content_hash(),
        reference=authorization.reference,
        cameras=sorted(authorization.cameras),
        starts_at=authorization.starts_at,
        ends_at=authorization.ends_at,
        grants=grant_ids,
    )
