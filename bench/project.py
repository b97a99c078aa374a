"""What the benchmark takes from the project itself: gateway/ and tests/.

This is the one module of the orchestrator that names them and sets `sys.path`
for them.
bench/viewers.py runs as a process of its own and imports its one gateway function itself.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"  # gateway logs and profiles of the last run (git-ignored)
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.camera import RtspCamera, free_port, make_camera  # noqa: E402
from support.chromium import CHROMIUM, FLAGS  # noqa: E402
from support.turn import Coturn  # noqa: E402

from gateway.access.authorizations import LEGAL_DUTY, AuthorizationFields  # noqa: E402
from gateway.access.tokens import mint  # noqa: E402
from gateway.config import AuthSettings  # noqa: E402
from gateway.store.database import open_database  # noqa: E402
from gateway.store.grants import GrantStore  # noqa: E402

__all__ = [
    "BENCH",
    "CHROMIUM",
    "FLAGS",
    "OUT",
    "ROOT",
    "Coturn",
    "RtspCamera",
    "free_port",
    "grant_cameras",
    "make_camera",
    "mint_token",
]


def mint_token(secret: str, account: str, *, is_admin: bool = False) -> str:
    """A bearer token the gateway accepts for the whole run (6 hours)."""
    return mint(AuthSettings(secret=secret), account, is_admin=is_admin, ttl_seconds=6 * 3600)


def grant_cameras(db_path: Path, cameras: list[str], account: str) -> None:
    """Let `account` watch `cameras`: a grant written to the gateway's SQLite file."""
    db = open_database(db_path)
    try:
        now = datetime.now(UTC)
        grants = GrantStore(db, cameras, 14)
        consent = grants.authorizations.create(
            AuthorizationFields(
                reference="BENCH-0001",
                cameras=frozenset(cameras),
                districts=frozenset(),
                starts_at=now - timedelta(minutes=1),
                ends_at=now + timedelta(hours=6),
                purpose_class=LEGAL_DUTY,
                note="performance benchmark",
                on_behalf_of=None,
            ),
            by="bench",
            confirmed=True,
        )
        grants.create(
            project="benchmark",
            purpose="performance benchmark (bench/run.py)",
            authorization_id=consent.id,
            members=[account],
            cameras=cameras,
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(hours=6),
            created_by="bench",
        )
    finally:
        db.close()
