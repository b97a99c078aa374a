"""`make demo`: a grant for two demo accounts and ready-to-open links for them.

Only for configurations whose cameras are all built-in demo sources, so a real
deployment can never be opened up by starting it with --demo.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from gateway.access.authorizations import LEGAL_DUTY, AuthorizationFields
from gateway.access.tokens import mint
from gateway.app import HUBS, SETTINGS, STORE
from gateway.store.audit import AUTHORIZATION_RECORDED, GRANT_CREATED

DEMO_VIEWER = "demo-viewer"
DEMO_ADMIN = "demo-admin"
DEMO_HOURS = 12


class NotADemo(Exception):
    pass


def prepare_demo(app: web.Application) -> list[str]:
    """Ensure the demo grant exists; return lines to print with the links."""
    settings = app[SETTINGS]
    cameras = [hub.camera for hub in app[HUBS]]  # the inventory's too
    if not all(camera.is_demo for camera in cameras):
        raise NotADemo("--demo needs a configuration whose cameras are all demo: sources")
    grants, audit = app[STORE].grants, app[STORE].audit
    if not grants.active_for(DEMO_VIEWER):
        now = datetime.now(UTC)
        # The police's consent, and a grant inside it, both entered by `make demo` and
        # audited like the console's, so `gateway audit verify` accepts them.
        consent = grants.authorizations.create(
            AuthorizationFields(
                reference="DEMO-0001",
                cameras=frozenset(camera.id for camera in cameras),
                districts=frozenset(),
                starts_at=now - timedelta(minutes=1),
                ends_at=now + timedelta(hours=DEMO_HOURS),
                purpose_class=LEGAL_DUTY,
                note="make demo: synthetic cameras only",
                on_behalf_of=None,
            ),
            by="make demo",
            confirmed=True,
        )
        audit.record(
            AUTHORIZATION_RECORDED,
            account="make demo",
            authorization_id=consent.id,
            authorization_hash=consent.content_hash(),
            reference=consent.reference,
        )
        grant = grants.create(
            project="Demo 示範專案",
            purpose="make demo: synthetic cameras only",
            authorization_id=consent.id,
            members=[DEMO_VIEWER, DEMO_ADMIN],
            cameras=[camera.id for camera in cameras],
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(hours=DEMO_HOURS),
            created_by="make demo",
        )
        # Audited like a grant made in the console, so `gateway audit verify` accepts it.
        audit.record(
            GRANT_CREATED,
            account=grant.created_by,
            grant_id=grant.id,
            project=grant.project,
            grant_hash=grant.content_hash(),
            authorization_ref=grant.authorization_ref,
            members=sorted(grant.members),
            cameras=sorted(grant.cameras),
        )
    base = f"http://{settings.server.host}:{settings.server.port}"
    ttl = DEMO_HOURS * 3600
    viewer = mint(settings.auth, DEMO_VIEWER, ttl_seconds=ttl)
    admin = mint(settings.auth, DEMO_ADMIN, is_admin=True, ttl_seconds=ttl)
    return [
        f"Demo viewer ({DEMO_VIEWER}): {base}/#token={viewer}",
        f"Demo admin  ({DEMO_ADMIN}):  {base}/admin#token={admin}",
    ]
