"""Roles beside viewers and administrators: who gives the police's consent, who
reads the report, who may open a camera in an emergency.

A role comes from `[governance]`'s account lists, or from the token's groups
(`roles_claim`, the city dashboard's `permissions`). Administrators keep their own
claim (`[auth] admin_claim`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.config import GovernanceSettings

ADMIN = "admin"
POLICE_LIAISON = "police_liaison"
AUDITOR = "auditor"
EMERGENCY = "emergency"  # may open a camera without a grant, stating the danger

# Words for refusals: "this needs a police liaison account".
ROLE_WORDS = {
    ADMIN: "an administrator",
    POLICE_LIAISON: "a police liaison",
    AUDITOR: "an auditor",
    EMERGENCY: "an account allowed emergency access",
}


def approvers(approval: str) -> tuple[str, ...]:
    """Who approves what waits for a second person (a grant, a change that widens it,
    a lift of a camera's masks), by `[governance] approval`."""
    return (POLICE_LIAISON,) if approval == "police_liaison" else (ADMIN,)


class RoleRules:
    def __init__(self, settings: GovernanceSettings) -> None:
        self.claim = settings.roles_claim
        self._accounts = {
            POLICE_LIAISON: frozenset(settings.police_liaisons),
            AUDITOR: frozenset(settings.auditors),
            EMERGENCY: frozenset(settings.emergency_accounts),
        }
        self._groups = {
            POLICE_LIAISON: frozenset(settings.police_liaison_groups),
            AUDITOR: frozenset(settings.auditor_groups),
            EMERGENCY: frozenset(settings.emergency_groups),
        }

    def roles(self, account: str, is_admin: bool, claims: dict[str, Any]) -> frozenset[str]:
        groups = group_names(claims.get(self.claim))
        found = {
            role
            for role in self._accounts
            if account in self._accounts[role] or groups & self._groups[role]
        }
        if is_admin:
            found.add(ADMIN)
        return frozenset(found)


def group_names(value: object) -> frozenset[str]:
    """The names a token's group claim gives: "G" and "G:R" for each {group_id,
    role_id}, the item itself for a plain name. Anything else counts for nothing."""
    if not isinstance(value, list):
        return frozenset()
    names: set[str] = set()
    for item in value:
        if isinstance(item, dict):
            group, role = item.get("group_id"), item.get("role_id")
            if _name(group):
                names.add(str(group))
                if _name(role):
                    names.add(f"{group}:{role}")
        elif _name(item):
            names.add(str(item))
    return frozenset(names)


def _name(value: object) -> bool:
    return (isinstance(value, str) and bool(value)) or (
        isinstance(value, int) and not isinstance(value, bool)
    )


def words(roles: Iterable[str]) -> str:
    return " or ".join(ROLE_WORDS[r] for r in roles)
