"""A person's own settings (today: the time zone the panel shows times in).

`set_time_zone` is the one write: the name passes `app.domain.time_zones.parse_time_zone`
before any row is read, and the change is audited as `user.updated` with
`{"time_zone": [before, after]}`, like every other change to a user. `set_own_time_zone`
is the panel's: the signed-in user, for themselves only (the page takes no user id);
`flask users set-timezone` names the user by email, as the operator of the server.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from app.domain.errors import DomainError
from app.domain.rbac import Principal
from app.domain.time_zones import parse_time_zone
from app.models import User, normalize_email
from app.services import audit, identity, management


def set_time_zone(session: Session, actor: Principal, user_id: uuid.UUID, raw: object) -> User:
    """Give the user `user_id` the time zone named by `raw` (blank: UTC), in `session`'s
    unit of work. A bad name is a 400 before anything is read; the same zone again
    changes nothing and records nothing."""
    zone = parse_time_zone(raw)
    user = session.get(User, user_id, with_for_update=True, populate_existing=True)
    if user is None:
        raise DomainError(404, "no such user")
    before = user.time_zone
    if before != zone:
        user.time_zone = zone
        audit.record(
            session,
            "user.updated",
            actor=actor,
            details={
                "user_id": str(user.id),
                "email": user.email,
                "changes": {"time_zone": [before, zone]},
            },
        )
    return user


def set_own_time_zone(actor: Principal, raw: object) -> str | None:
    """The signed-in `actor` picks their own time zone; the zone now set (None: UTC).
    A refusal is audited as `user.update_refused` and raised again."""
    user_id = actor.user_id
    if user_id is None:
        raise DomainError(403, "only a signed-in user has settings")

    def change(session: Session, acting: Principal) -> str | None:
        return set_time_zone(session, acting, user_id, raw).time_zone

    return management.write("user", "update", actor, change, user_id=str(user_id))


def set_time_zone_by_email(actor: Principal, email: str, raw: object) -> str | None:
    """The command line's: the user with `email` (404 if none) gets the zone `raw`."""

    def change(session: Session, acting: Principal) -> str | None:
        user = identity.find_user_by_email(session, email)
        if user is None:
            raise DomainError(404, f"no user with email {normalize_email(email)}")
        return set_time_zone(session, acting, user.id, raw).time_zone

    return management.write("user", "update", actor, change, email=normalize_email(email)[:320])
