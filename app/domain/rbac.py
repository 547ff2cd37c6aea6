"""Role-based access: may this user do this to this execution, and if not, why.

Pure functions of the user's permissions and the row's creator, so the web layer and
the worker (at execution time, against the permissions as they are *then*) ask the
same question the same way (the roles and permissions: docs/operations.md).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from app.domain.errors import DomainError

ADMIN = "admin:*"
PURCHASES = "purchases"


class Action(StrEnum):
    VIEW = "view"
    CREATE = "create"
    APPROVE = "approve"
    CANCEL = "cancel"
    RETRY = "retry"


# The verbs each resource knows. `admin:*` is the only permission on `*`.
KNOWN_VERBS: dict[str, frozenset[str]] = {
    PURCHASES: frozenset(
        {
            "view",
            "create-own",
            "create-any",
            "approve-own",
            "approve-any",
            "cancel-own",
            "cancel-any",
            "retry-own",
            "retry-any",
        }
    ),
    "*": frozenset({"admin"}),
}

DEFAULT_PERMISSIONS = frozenset(
    {
        f"view:{PURCHASES}",
        f"approve-own:{PURCHASES}",
        f"cancel-own:{PURCHASES}",
        f"retry-own:{PURCHASES}",
    }
)

_PERMISSION_SHAPE = re.compile(r"^([a-z][a-z-]*):([a-z][a-z-]*|\*)$")


class InvalidPermission(ValueError):
    """A permission string that is malformed or names an unknown verb or resource."""


def validate_permission(raw: str) -> str:
    """Return the permission in canonical form, or raise `InvalidPermission`."""
    permission = raw.strip().lower()
    match = _PERMISSION_SHAPE.match(permission)
    if match is None:
        raise InvalidPermission(f"malformed permission {raw!r}: expected 'verb:resource'")
    verb, resource = match.groups()
    if resource not in KNOWN_VERBS:
        raise InvalidPermission(f"unknown resource {resource!r} in permission {raw!r}")
    if verb not in KNOWN_VERBS[resource]:
        known = ", ".join(sorted(KNOWN_VERBS[resource]))
        raise InvalidPermission(f"unknown verb {verb!r} for {resource} (known: {known})")
    return permission


@dataclass(frozen=True)
class GroupGrant:
    """What one group contributes: its permissions, and whether it drops the defaults."""

    permissions: frozenset[str]
    restricts_defaults: bool = False


def effective_permissions(groups: Iterable[GroupGrant]) -> frozenset[str]:
    """The defaults (unless a group restricts them) plus everything the groups add."""
    grants = list(groups)
    added = frozenset().union(*(grant.permissions for grant in grants))
    if any(grant.restricts_defaults for grant in grants):
        return added
    return DEFAULT_PERMISSIONS | added


@dataclass(frozen=True)
class Principal:
    """The actor as the rules see it: an id, an email, and effective permissions."""

    user_id: uuid.UUID | None
    email: str
    permissions: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.permissions


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def authorize(
    principal: Principal, action: Action, created_by_user_id: uuid.UUID | None
) -> Decision:
    """May `principal` do `action` on an execution created by `created_by_user_id`?

    Admins may do everything. `view` needs `view:purchases`. The other actions need
    `<action>-any`, or `<action>-own` on a row this user created; a row with no
    recorded creator (legacy or scheduler rows) is never anyone's own.
    """
    if principal.is_admin:
        return Decision(True, "admin")
    if action is Action.VIEW:
        if f"view:{PURCHASES}" in principal.permissions:
            return Decision(True, f"view:{PURCHASES}")
        return Decision(False, f"view:{PURCHASES} is required")
    any_permission = f"{action.value}-any:{PURCHASES}"
    own_permission = f"{action.value}-own:{PURCHASES}"
    if any_permission in principal.permissions:
        return Decision(True, any_permission)
    if own_permission not in principal.permissions:
        return Decision(False, f"{any_permission} or {own_permission} is required")
    if created_by_user_id is None:
        return Decision(
            False, f"this execution has no recorded creator: {any_permission} is required"
        )
    if principal.user_id is not None and created_by_user_id == principal.user_id:
        return Decision(True, own_permission)
    return Decision(
        False, f"{own_permission} covers only executions you created: {any_permission} is required"
    )


def create_refusal(principal: Principal, *, account_is_theirs: bool) -> DomainError | None:
    """May `principal` create a purchase on an account? `create-any` covers every
    account; `create-own` only the accounts the user may buy for (`account_is_theirs`:
    their spend limits name it). The message never says anything about the account."""
    if principal.is_admin or f"create-any:{PURCHASES}" in principal.permissions:
        return None
    own = f"create-own:{PURCHASES}"
    if own in principal.permissions and account_is_theirs:
        return None
    if own in principal.permissions:
        reason = (
            f"{own} covers only the accounts your groups' spend limits name: "
            f"create-any:{PURCHASES} is required"
        )
    else:
        reason = f"create-any:{PURCHASES} or {own} is required"
    return DomainError(403, f"not allowed to create a purchase on this account: {reason}")


def refusal(
    principal: Principal, action: Action, created_by_user_id: uuid.UUID | None = None
) -> DomainError | None:
    """`authorize` as the 403 every entry point answers, or None when allowed.

    The message names what is missing, never anything about the row.
    """
    decision = authorize(principal, action, created_by_user_id)
    if decision:
        return None
    target = "purchases" if action is Action.VIEW else "this execution"
    return DomainError(403, f"not allowed to {action.value} {target}: {decision.reason}")


def require(
    principal: Principal, action: Action, created_by_user_id: uuid.UUID | None = None
) -> None:
    """Raise the 403 of `refusal`, if any."""
    found = refusal(principal, action, created_by_user_id)
    if found is not None:
        raise found
