"""Small builders for test data, on the session the test gives them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.db import utcnow
from app.domain.statuses import Status
from app.models import CloudAccount, PurchaseExecution, PurchasePlan, PurchaseSuppression, User
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


def recommendation(**overrides: Any) -> dict[str, Any]:
    """One recommendation item, with every field an item carries."""
    item: dict[str, Any] = {
        "provider": "aws",
        "service": "ec2",
        "region": "us-east-1",
        "resource_type": "m5.large",
        "engine": "",
        "account_id": "123456789012",
        "count": 2,
        "term_years": 1,
        "payment_option": "all-upfront",
        "upfront_cost": "1200.00",
        "monthly_savings": "45.50",
        "selected": True,
        "error": None,
        "purchased": False,
        "purchase_id": None,
    }
    item.update(overrides)
    return item


def ec2_item(**fields: Any) -> dict[str, Any]:
    """One EC2 Reserved Instance item with all a real cloud needs (one m5.large, Linux,
    regional, standard, one year, all upfront); `fields` replace or add to it."""
    return {
        "provider": "aws",
        "service": "ec2",
        "region": "us-east-1",
        "resource_type": "m5.large",
        "platform": "Linux/UNIX",
        "tenancy": "default",
        "scope": "Region",
        "offering_class": "standard",
        "count": 1,
        "term_years": 1,
        "payment_option": "all-upfront",
        "upfront_cost": 600,
        "monthly_savings": 20,
        **fields,
    }


def make_account(
    session: Session,
    *,
    provider: str = "aws",
    contact_email: str | None = "finops@example.com",
    mode: str = "simulate",
    **fields: Any,
) -> CloudAccount:
    """An account; simulated unless `mode` says otherwise (a new account's own default,
    `dry_run`, would ask a cloud)."""
    account = CloudAccount(
        name=f"{provider} account",
        provider=provider,
        external_id="123456789012",
        contact_email=contact_email,
        purchase_mode=mode,
        **fields,
    )
    session.add(account)
    session.flush()
    return account


def owed_approval_email(
    session: Session, creator: User | None, *, contact_email: str | None = "finops@example.com"
) -> PurchaseExecution:
    """A pending execution of one item, on an account of its own, whose approval email
    is owed (as a retry's successor is, in the transaction that creates it)."""
    from app.services import notifications

    row = make_execution(
        session,
        Status.PENDING,
        created_by=creator,
        cloud_account_id=make_account(session, contact_email=contact_email).id,
        recommendations=[recommendation()],
    )
    notifications.owe_approval_email(session, row.execution_id, now=utcnow())
    session.flush()
    return row


def make_plan(session: Session) -> PurchasePlan:
    """A ramp part-way through: step 2 of 4."""
    plan = PurchasePlan(name="ramp", total_steps=4, current_step=2)
    session.add(plan)
    session.flush()
    return plan


def insert_plainly(
    session: Session,
    *,
    status: str = "failed",
    recommendations: str = "[]",
    error: str | None = "boom",
    created_by: User | None = None,
    execution_id: str | None = None,
) -> str:
    """A row written by a plain INSERT, as an operator or outside tool types it:
    the id as dashed text, every other column left to its server default. Its id."""
    execution_id = execution_id or str(uuid.uuid4())
    session.execute(
        text(
            "INSERT INTO purchase_executions (execution_id, status, recommendations, error,"
            " created_by_user_id, retry_attempt_n, cloud_account_id, plan_id, step_number)"
            " VALUES (:id, :status, :recommendations, :error, :creator, 0, NULL, NULL, 1)"
        ),
        {
            "id": execution_id,
            "status": status,
            "recommendations": recommendations,
            "error": error,
            "creator": str(created_by.id) if created_by else None,
        },
    )
    return execution_id


def make_suppression(session: Session, execution: PurchaseExecution) -> PurchaseSuppression:
    """One suppression of `execution`, in force for the grace period."""
    suppression = PurchaseSuppression(
        execution_id=execution.execution_id,
        account_id="123456789012",
        provider="aws",
        service="ec2",
        region="us-east-1",
        resource_type="m5.large",
        suppressed_count=2,
        expires_at=utcnow() + timedelta(days=7),
    )
    session.add(suppression)
    session.flush()
    return suppression


def link_opens(session: Session, execution_id: Any, action: str, token: str, *, now: Any) -> bool:
    """Whether an approval email's `token` opens `action` on the execution at `now`: the
    link page's own check (`approvals.check_link`), which refuses with a `DomainError`."""
    from app.domain.errors import DomainError
    from app.domain.rbac import Action
    from app.services import approvals

    try:
        approvals.check_link(session, str(execution_id), Action(action), token, now=now)
    except DomainError:
        return False
    return True
