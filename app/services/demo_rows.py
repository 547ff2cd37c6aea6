"""The demo's rows: executions in a given state over two demo items per account, the
pending purchase of the simulator's recommendations, a plan's next steps, and the
ledger entries of what the finished rows bought. `app.services.demo.seed` composes
them into the demo world."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from app.domain import purchasing
from app.domain.retry import fresh_recommendations
from app.domain.spending import totals_of
from app.domain.statuses import IN_FLIGHT, Status
from app.models import CloudAccount, ProviderPurchase, PurchaseExecution, PurchasePlan, User
from app.providers.simulator import SimulatedProvider
from app.services.accounts import target_of


def imported_row(account: CloudAccount, creator: User, now: datetime) -> PurchaseExecution:
    """A pending purchase made of the simulator's recommendations for the account, as
    `flask recommendations import` fetches them."""
    items = fresh_recommendations(
        SimulatedProvider(account.provider).recommendations(target_of(account))
    )
    totals = totals_of(items)
    return PurchaseExecution(
        cloud_account_id=account.id,
        status=Status.PENDING.value,
        recommendations=items,
        total_upfront_cost=totals.upfront,
        estimated_savings=totals.yearly_savings,
        created_by_user_id=creator.id,
        notification_sent_at=now - timedelta(minutes=29),
        created_at=now - timedelta(minutes=30),
        updated_at=now - timedelta(minutes=30),
    )


def scheduled_steps(
    account: CloudAccount, plan: PurchasePlan, approver: User, now: datetime
) -> list[PurchaseExecution]:
    """The plan's next two steps, approved and waiting for their time (beat starts each
    when it comes; Plans → Run now brings the next one forward)."""
    steps = []
    for step, days in ((2, 3), (3, 33)):
        row = demo_row(account, approver, Status.APPROVED, now, hours_ago=1, plan=plan)
        row.step_number = step
        row.scheduled_for = now + timedelta(days=days)
        row.approved_by, row.approved_by_user_id = approver.email, approver.id
        row.approved_at = now - timedelta(minutes=50)
        steps.append(row)
    return steps


def record_purchases(session: Session, rows: list[PurchaseExecution]) -> None:
    """The ledger entries of what the demo rows bought (each row is its own lineage's
    root, except the chain, which bought nothing)."""
    session.add_all(
        ProviderPurchase(
            idempotency_key=purchasing.ledger_key(row.execution_id, index),
            execution_id=row.execution_id,
            item_index=index,
            provider=str(item["provider"]),
            purchase_id=item["purchase_id"],
            purchased_at=row.completed_at or row.updated_at,
        )
        for row in rows
        for index, item in enumerate(row.recommendations)
        if item.get("purchased")
    )
    session.flush()


def _items(account: CloudAccount) -> list[dict[str, Any]]:
    service, resource_type, engine = {
        "aws": ("rds", "db.r6g.large", "postgres"),
        "azure": ("virtual-machines", "Standard_D4s_v5", ""),
        "gcp": ("compute", "n2-standard-8", ""),
    }[account.provider]
    region = {"aws": "us-east-1", "azure": "westeurope", "gcp": "europe-west1"}[account.provider]
    return [
        {
            "provider": account.provider,
            "service": service,
            "region": region,
            "resource_type": resource_type,
            "engine": engine,
            "account_id": account.external_id,
            "count": 2,
            "term_years": 1,
            "payment_option": "no_upfront",
            "upfront_cost": 0.0,
            "monthly_savings": 180.5,
            "selected": True,
            "error": None,
            "purchased": False,
            "purchase_id": None,
        },
        {
            "provider": account.provider,
            "service": "savings-plans" if account.provider == "aws" else service,
            "region": region,
            "resource_type": "compute",
            "engine": "",
            "account_id": account.external_id,
            "count": 1,
            "term_years": 3,
            "payment_option": "all_upfront",
            "upfront_cost": 12000.0,
            "monthly_savings": 540.0,
            "selected": True,
            "error": None,
            "purchased": False,
            "purchase_id": None,
        },
    ]


def demo_row(
    account: CloudAccount,
    creator: User | None,
    status: Status,
    now: datetime,
    *,
    hours_ago: float,
    plan: PurchasePlan | None = None,
    attempt: int = 0,
    error: str | None = None,
    approved_by: str | None = None,
    cancelled_by: str | None = None,
    outcomes: tuple[str, ...] = (),
) -> PurchaseExecution:
    """`outcomes`: one per item the executor got to, "" for bought, else the error."""
    created = now - timedelta(hours=hours_ago)
    recommendations = _items(account)
    for index, failure in enumerate(outcomes):
        item = recommendations[index]
        recommendations[index] = (
            purchasing.failed(item, failure)
            if failure
            else purchasing.purchased(item, f"demo-{account.provider}-{uuid.uuid4().hex[:12]}")
        )
    done = bool(outcomes)
    return PurchaseExecution(
        plan_id=plan.id if plan else None,
        step_number=plan.current_step if plan else 1,
        cloud_account_id=account.id,
        status=status.value,
        recommendations=recommendations,
        total_upfront_cost=Decimal(str(sum(r["upfront_cost"] for r in recommendations))),
        estimated_savings=Decimal(str(sum(r["monthly_savings"] for r in recommendations) * 12)),
        error=error,
        created_by_user_id=creator.id if creator else None,
        approved_by=approved_by,
        cancelled_by=cancelled_by,
        retry_attempt_n=attempt,
        completed_at=created + timedelta(minutes=5) if done else None,
        # Every demo row is past its approval email (its links are not kept): beat
        # would otherwise send one now, or fail the row for want of FROM_EMAIL.
        notification_sent_at=created + timedelta(minutes=1),
        created_at=created,
        # In-flight rows look freshly touched, or the reaper would fail them at once.
        updated_at=now if status in IN_FLIGHT else created,
    )
