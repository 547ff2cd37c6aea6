"""Writing the audit trail, always inside the transaction of the change it records."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

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
    event = AuditEvent(
        action=action,
        actor_user_id=actor.user_id if actor else None,
        actor_email=actor.email if actor else "system",
        execution_id=execution_id,
        details=details or {},
    )
    session.add(event)
    return event
