"""Writing the audit trail: a change's event in the change's transaction; a refusal's
event on purpose, in a transaction of its own (the refused work was rolled back)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from app.db import unit_of_work
from app.domain.errors import DomainError
from app.domain.inputs import parse_uuid
from app.domain.rbac import Principal
from app.models import AuditEvent


def record(
    session: Session,
    action: str,
    *,
    actor: Principal | None = None,
    execution_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event to `session`; it commits (or not) with the change it records.

    `actor` is None for the system (beat, the scheduler).
    """
    recorded = event(action, actor=actor, execution_id=execution_id, details=details)
    session.add(recorded)
    return recorded


def record_all(session: Session, events: Iterable[AuditEvent]) -> None:
    """Add many events in one statement (a bulk retry's chunk): the same events as
    `record`'s, without the ORM's per-object bookkeeping."""
    rows = [
        {
            "action": event.action,
            "actor_user_id": event.actor_user_id,
            "actor_email": event.actor_email,
            "execution_id": event.execution_id,
            "details": event.details,
        }
        for event in events
    ]
    if rows:
        session.execute(insert(AuditEvent), rows)


def event(
    action: str,
    *,
    actor: Principal | None = None,
    execution_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """An audit event, for the caller to add with the change it records."""
    return AuditEvent(
        action=action,
        actor_user_id=actor.user_id if actor else None,
        actor_email=actor.email if actor else "system",
        execution_id=execution_id,
        details=details or {},
    )


def refusal_details(refusal: DomainError, **extra: Any) -> dict[str, Any]:
    """What the trail keeps of a refusal: its HTTP status, message and details. In the
    trail `status` is always the refusal's; a 409's detail `status` (where the row is)
    is kept as `execution_status`."""
    details = dict(refusal.details)
    if "status" in details:
        details["execution_status"] = details.pop("status")
    return {**details, **extra, "status": refusal.status, "error": refusal.message}


def refused_execution_id(raw: str | uuid.UUID, refusal: DomainError) -> uuid.UUID | None:
    """The execution a refusal is about, for the trail: None when the id was malformed
    (400) or names no execution (404); the refusal's message says which id it was."""
    if refusal.status in (400, 404):
        return None
    return raw if isinstance(raw, uuid.UUID) else parse_uuid(raw)


def record_refusal(
    action: str,
    refusal: DomainError,
    *,
    actor: Principal,
    execution_id: uuid.UUID | None,
    **details: Any,
) -> None:
    """Commit the audit event of a refused request, in a unit of work of its own.

    Called by a service after the unit of work that refused has rolled back, so the
    trail shows the refusal and nothing of the work that was refused.
    """
    with unit_of_work() as session:
        record(
            session,
            action,
            actor=actor,
            execution_id=execution_id,
            details=refusal_details(refusal, **details),
        )
