"""Management writes: users and groups, for the panel's management pages and the CLI's
`users` and `groups` commands alike (cloud accounts are in `app.services.accounts`).

Each write takes the session of a unit of work and the actor, makes its change with
the checks of `app.services.identity`, and adds its audit event to that session, so
the event commits with the change or not at all. `write` runs one such change in a
unit of work of its own: a refusal (a `DomainError`, or a concurrent change that got
there first) rolls everything back, is recorded as `<subject>.<verb>_refused` in a
transaction of its own, and is raised again for the caller to show.

The actor is the signed-in admin for the panel; for a command run on the server it is
`CLI_ACTOR`, which the trail shows as `cli` with no user id (whoever can run commands
there owns the deployment; the first admin is created that way).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import unit_of_work
from app.domain.errors import DomainError
from app.domain.rbac import Principal
from app.models import Group, User, normalize_email
from app.services import audit, identity

log = logging.getLogger(__name__)

T = TypeVar("T")

CLI_ACTOR = Principal(user_id=None, email="cli", permissions=frozenset())

CONFLICT = "a concurrent change conflicts with this one: reload and retry"


def write(
    subject: str,
    verb: str,
    actor: Principal,
    change: Callable[[Session, Principal], T],
    **details: Any,
) -> T:
    """`change(session, actor)` in one unit of work, and its result. A refusal writes
    nothing of the change, is audited as `<subject>.<verb>_refused` with `details`,
    and is raised again."""
    try:
        with unit_of_work() as session:
            return change(session, actor)
    except IntegrityError:
        # A concurrent change got there first (a duplicate name, say): nothing written.
        log.info("%s %s lost to a concurrent change", subject, verb, exc_info=True)
        refusal = DomainError(409, CONFLICT)
    except DomainError as error:
        refusal = error
    audit.record_refusal(
        f"{subject}.{verb}_refused", refusal, actor=actor, execution_id=None, **details
    )
    raise refusal


def keep_own_admin_rights(session: Session, actor: Principal) -> None:
    """Refuse a change that leaves the acting admin unable to administer (deactivated, or
    without `admin:*` through their groups): nobody can lock every admin out, since
    whoever makes a change is still an admin after it. Call it after the change,
    before the unit of work commits. The CLI's actor is no user: nothing to keep."""
    session.flush()
    user = session.get(User, actor.user_id) if actor.user_id is not None else None
    if user is None:
        return
    if not user.is_active:
        raise DomainError(409, "you cannot deactivate your own account: ask another admin")
    if not identity.principal_for(user).is_admin:
        raise DomainError(
            409,
            "this change would take admin:* away from you, and with it this panel: "
            "ask another admin to make it",
        )


# --- Users -------------------------------------------------------------------------------


def _group_names(groups: Iterable[Group]) -> list[str]:
    return sorted(group.name for group in groups)


def create_user(
    session: Session, actor: Principal, email: str, password: str, group_names: Sequence[str] = ()
) -> User:
    """Add a user (`identity.create_user`: normalized email, argon2 hash), audited as
    `user.created` with their groups and never the password."""
    user = identity.create_user(session, email, password, group_names)
    audit.record(
        session,
        "user.created",
        actor=actor,
        details={"user_id": str(user.id), "email": user.email, "groups": _group_names(user.groups)},
    )
    return user


def update_user(
    session: Session,
    actor: Principal,
    user_id: uuid.UUID,
    *,
    is_active: bool | None = None,
    groups: Sequence[Group] | None = None,
    new_password: str | None = None,
) -> User:
    """Apply what is given (None leaves it as it is), audited as `user.updated` with what
    changed (a password only as "changed"); nothing changed, no event. Deactivating or
    a new password ends the user's sessions; the actor cannot lock themselves out."""
    user = session.get(User, user_id, with_for_update=True, populate_existing=True)
    if user is None:
        raise DomainError(404, f"no user with id {user_id}")
    changes: dict[str, Any] = {}
    if is_active is not None and is_active != user.is_active:
        changes["is_active"] = [user.is_active, is_active]
        if is_active:
            user.is_active = True
        else:
            identity.deactivate(session, user.email)
    if groups is not None:
        before, after = _group_names(user.groups), _group_names(groups)
        if before != after:
            changes["groups"] = [before, after]
            user.groups = list(groups)
    if new_password:
        identity.set_password(session, user.email, new_password)
        changes["password"] = "changed"  # noqa: S105  (that it changed, never what to)
    keep_own_admin_rights(session, actor)
    if changes:
        audit.record(
            session,
            "user.updated",
            actor=actor,
            details={"user_id": str(user.id), "email": user.email, "changes": changes},
        )
    return user


def set_password(session: Session, actor: Principal, email: str, password: str) -> User:
    """A new password for the user with `email` (404 if none); their sessions end."""
    return update_user(session, actor, _user_with_email(session, email).id, new_password=password)


def deactivate(session: Session, actor: Principal, email: str) -> User:
    """The user with `email` (404 if none) can no longer sign in; their sessions end.
    An inactive user stays as they are (no event)."""
    return update_user(session, actor, _user_with_email(session, email).id, is_active=False)


def _user_with_email(session: Session, email: str) -> User:
    user = identity.find_user_by_email(session, email)
    if user is None:
        raise DomainError(404, f"no user with email {normalize_email(email)}")
    return user


# --- Groups ------------------------------------------------------------------------------


def _group_snapshot(group: Group) -> dict[str, Any]:
    return {
        "name": group.name,
        "permissions": list(group.permissions),
        "restricts_defaults": bool(group.restricts_defaults),
    }


def create_group(
    session: Session,
    actor: Principal,
    name: str,
    permissions: Iterable[str],
    *,
    restricts_defaults: bool = False,
) -> Group:
    """Add a group (`identity.create_group`: a stripped, unique name, canonical
    permissions), audited as `group.created`."""
    group = identity.create_group(session, name, permissions, restricts_defaults=restricts_defaults)
    audit.record(
        session,
        "group.created",
        actor=actor,
        details={"group_id": group.id, **_group_snapshot(group)},
    )
    return group


def update_group(
    session: Session,
    actor: Principal,
    group_id: int,
    name: str,
    permissions: Iterable[str],
    *,
    restricts_defaults: bool,
) -> Group:
    """Rename and re-permission a group, with the checks `identity.create_group` makes,
    audited as `group.updated` with what changed; the actor cannot lose `admin:*`."""
    group = session.get(Group, group_id, with_for_update=True, populate_existing=True)
    if group is None:
        raise DomainError(404, f"no group with id {group_id}")
    clean_name, canonical = identity.group_fields(session, name, permissions, group_id=group.id)
    before = _group_snapshot(group)
    group.name, group.permissions = clean_name, canonical
    group.restricts_defaults = restricts_defaults
    after = _group_snapshot(group)
    keep_own_admin_rights(session, actor)
    if before != after:
        audit.record(
            session,
            "group.updated",
            actor=actor,
            details={"group_id": group.id, "name": group.name, "changes": changes(before, after)},
        )
    return group


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """What an edit changed, for its event: `{field: [before, after]}`."""
    return {key: [before[key], after[key]] for key in before if before[key] != after[key]}
