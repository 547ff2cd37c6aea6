"""Small builders for test data, on the session the test gives them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.db import utcnow
from app.domain.statuses import Status
from app.models import PurchaseExecution, User
from app.services.identity import create_user

PASSWORD = "correct horse battery"


def make_user(session: Session, email: str | None = None, groups: tuple[str, ...] = ()) -> User:
    return create_user(
        session, email or f"user-{uuid.uuid4().hex[:8]}@example.com", PASSWORD, groups
    )


def make_execution(
    session: Session,
    status: Status = Status.PENDING,
    *,
    created_by: User | None = None,
    created_at: datetime | None = None,
    updated_at: datetime | None = None,
    **fields: Any,
) -> PurchaseExecution:
    now = utcnow()
    execution = PurchaseExecution(
        status=status.value,
        created_by_user_id=created_by.id if created_by else None,
        created_at=created_at or now,
        updated_at=updated_at or created_at or now,
        **fields,
    )
    session.add(execution)
    session.flush()
    return execution
