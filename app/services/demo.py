"""`flask demo seed`: a small world with an execution in every state.

Includes failed rows with and without ops hints, at and under the retry threshold,
an already-retried chain, a pending purchase of the simulator's imported
recommendations, and a plan's next steps approved and scheduled, so every branch of
the panel has something to show. The pending rows come with working approve and
cancel links (printed by the command: the demo sends no email), finished rows with
their per-item outcomes and the purchases in the ledger, and one failed row whose
worker died after buying its first item: a retry of it buys only the second.

Its users share one published password, admin included, and its links are live
tokens, so the demo is seeded only where it harms nobody: `start_plan` decides, for
`scripts/run` and `flask demo start`, and `seed` refuses under APP_ENV=production.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain import purchasing
from app.domain.errors import DomainError
from app.domain.providers import PurchaseMode
from app.domain.retry import fresh_recommendations
from app.domain.spending import totals_of
from app.domain.statuses import IN_FLIGHT, Status
from app.models import (
    CloudAccount,
    ProviderPurchase,
    PurchaseExecution,
    PurchasePlan,
    User,
)
from app.providers.simulator import SimulatedProvider
from app.services.accounts import target_of
from app.services.approvers import approval_recipient
from app.services.identity import create_user, find_user_by_email, principal_for
from app.services.link_tokens import issue_links

DEMO_PASSWORD = "demo-password"  # noqa: S105  (printed for demo logins)
DEMO_USERS = (
    ("admin@example.com", "Administrators"),
    ("purchaser@example.com", "Purchasers"),
    ("alice@example.com", None),
    ("viewer@example.com", "Read-only"),
)


FIRST_ADMIN_HINT = "flask --app app users create EMAIL --admin"
NEVER_IN_PRODUCTION = "the demo is never seeded under APP_ENV=production"


@dataclass(frozen=True)
class StartPlan:
    """Whether a start brings the demo (seed, its logins, a mail sink printing links)."""

    demo: bool
    reason: str


def start_plan(settings: Settings, *, asked: bool) -> StartPlan:
    """The demo comes with the embedded default database, or when asked (`--demo`),
    and never under APP_ENV=production, where asking for it is refused outright."""
    if settings.is_production:
        if asked:
            raise DomainError(409, NEVER_IN_PRODUCTION)
        return StartPlan(False, "APP_ENV is production")
    if asked:
        return StartPlan(True, "asked for with --demo")
    if settings.uses_embedded_database:
        return StartPlan(True, "the embedded default database")
    return StartPlan(False, "DATABASE_URL is not the embedded default (--demo seeds it anyway)")


def has_active_admin(session: Session) -> bool:
    """Whether any active user holds the admin permission (through any group)."""
    users = session.scalars(select(User).where(User.is_active.is_(True)))
    return any(principal_for(user).is_admin for user in users)


@dataclass(frozen=True)
class SeedResult:
    logins: list[tuple[str, str]]
    accounts: list[CloudAccount]
    executions: int
    links: list[str]  # the approve and cancel links of the pending rows


def seed(session: Session, *, now: datetime, settings: Settings) -> SeedResult | None:
    """Add the demo world, or return None if it is already there. Refused (409) under
    APP_ENV=production: its admin's password is published."""
    if settings.is_production:
        raise DomainError(409, NEVER_IN_PRODUCTION)
    if find_user_by_email(session, DEMO_USERS[0][0]) is not None:
        return None
    users = {
        email: create_user(session, email, DEMO_PASSWORD, [group] if group else [])
        for email, group in DEMO_USERS
    }
    aws = CloudAccount(
        name="Production AWS",
        provider="aws",
        external_id="123456789012",
        contact_email="finops@example.com",
        purchase_mode=PurchaseMode.SIMULATE.value,  # the demo buys nothing, anywhere
    )
    azure = CloudAccount(
        name="Analytics Azure",
        provider="azure",
        external_id="0f3c8a52-7d1e-4b8e-9a51-1c2d3e4f5a6b",
        contact_email="finops@example.com",
        purchase_mode=PurchaseMode.SIMULATE.value,  # the demo buys nothing, anywhere
    )
    gcp = CloudAccount(
        name="Data GCP",
        provider="gcp",
        external_id="data-platform-prod",
        contact_email=None,
        purchase_mode=PurchaseMode.SIMULATE.value,  # the demo buys nothing, anywhere
    )
    plan = PurchasePlan(
        name="EC2 ramp 2027",
        auto_purchase=False,
        enabled=True,
        current_step=1,
        total_steps=4,
        percent_per_step=25,
        step_interval_days=30,
    )
    session.add_all([aws, azure, gcp, plan])
    session.flush()

    alice, purchaser = users["alice@example.com"], users["purchaser@example.com"]
    rows = [
        _execution(aws, alice, Status.PENDING, now, hours_ago=2, plan=plan),
        _execution(aws, None, Status.PENDING, now, hours_ago=1),
        _execution(gcp, alice, Status.APPROVED, now, hours_ago=3, approved_by=alice.email),
        _execution(aws, purchaser, Status.RUNNING, now, hours_ago=4, approved_by=purchaser.email),
        _execution(
            aws, purchaser, Status.COMPLETED, now, hours_ago=48, plan=plan, outcomes=("", "")
        ),
        _execution(
            azure,
            alice,
            Status.PARTIALLY_COMPLETED,
            now,
            hours_ago=30,
            outcomes=("", "InsufficientCapacity"),
            error="1 of 2 purchases failed: InsufficientCapacity",
        ),
        # Its worker died after buying the first item: a retry buys only the second.
        _execution(
            aws,
            alice,
            Status.FAILED,
            now,
            hours_ago=4.5,
            outcomes=("",),
            error="reaped: no progress for more than 10 minutes",
        ),
        _execution(aws, alice, Status.CANCELLED, now, hours_ago=20, cancelled_by=purchaser.email),
        _execution(gcp, None, Status.EXPIRED, now, hours_ago=24 * 10),
        _execution(
            aws,
            alice,
            Status.FAILED,
            now,
            hours_ago=5,
            error="Throttling: Rate exceeded (retry later)",
        ),
        _execution(
            aws,
            alice,
            Status.FAILED,
            now,
            hours_ago=6,
            error="FROM_EMAIL not configured for this deployment",
        ),
        _execution(
            aws,
            purchaser,
            Status.FAILED,
            now,
            hours_ago=7,
            error="IAM denied: ec2:PurchaseReservedInstancesOffering",
        ),
        _execution(
            aws,
            alice,
            Status.FAILED,
            now,
            hours_ago=8,
            attempt=4,
            error="InternalError: provider timed out",
        ),
        _execution(
            aws,
            alice,
            Status.FAILED,
            now,
            hours_ago=9,
            attempt=5,
            error="InternalError: provider timed out",
        ),
        _execution(
            gcp,
            None,
            Status.FAILED,
            now,
            hours_ago=10,
            error="legacy scheduler run: quota exceeded",
        ),
        _execution(
            azure,
            alice,
            Status.FAILED,
            now,
            hours_ago=11,
            error="ReservationOrder conflict: order already exists",
        ),
    ]
    # An already-retried chain: failed -> failed -> pending.
    first = _execution(
        aws,
        alice,
        Status.FAILED,
        now,
        hours_ago=12,
        plan=plan,
        error="ServiceUnavailable: try again",
    )
    second = _execution(
        aws,
        alice,
        Status.FAILED,
        now,
        hours_ago=11,
        plan=plan,
        attempt=1,
        error="ServiceUnavailable: try again",
    )
    third = _execution(aws, alice, Status.PENDING, now, hours_ago=10, plan=plan, attempt=2)
    rows += [_imported(aws, purchaser, now), *_scheduled_steps(aws, plan, purchaser, now)]
    session.add_all([*rows, first, second, third])
    session.flush()
    first.retry_execution_id, second.retry_execution_id = second.execution_id, third.execution_id
    session.flush()
    _record_purchases(session, [*rows, first, second, third])
    pending = [row for row in [*rows, third] if row.status == Status.PENDING]
    return SeedResult(
        logins=[(email, group or "defaults only") for email, group in DEMO_USERS],
        accounts=[aws, azure, gcp],
        executions=len(rows) + 3,
        links=[link for row in pending for link in _links(session, row, settings, now=now)],
    )


def _imported(account: CloudAccount, creator: User, now: datetime) -> PurchaseExecution:
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


def _scheduled_steps(
    account: CloudAccount, plan: PurchasePlan, approver: User, now: datetime
) -> list[PurchaseExecution]:
    """The plan's next two steps, approved and waiting for their time (beat starts each
    when it comes; Plans → Run now brings the next one forward)."""
    steps = []
    for step, days in ((2, 3), (3, 33)):
        row = _execution(account, approver, Status.APPROVED, now, hours_ago=1, plan=plan)
        row.step_number = step
        row.scheduled_for = now + timedelta(days=days)
        row.approved_by, row.approved_by_user_id = approver.email, approver.id
        row.approved_at = now - timedelta(minutes=50)
        steps.append(row)
    return steps


def _record_purchases(session: Session, rows: list[PurchaseExecution]) -> None:
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


def _links(
    session: Session, row: PurchaseExecution, settings: Settings, *, now: datetime
) -> list[str]:
    """Approve and cancel links for a pending row, as its approval email would carry."""
    recipient = approval_recipient(session, row, settings) or DEMO_USERS[0][0]
    issued = issue_links(session, row, recipient, settings=settings, now=now)
    session.flush()
    return [issued.links.approve, issued.links.cancel]


def _recommendations(account: CloudAccount) -> list[dict[str, Any]]:
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


def _execution(
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
    recommendations = _recommendations(account)
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
