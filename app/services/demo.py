"""`flask demo seed`: a small world with an execution in every state.

Includes failed rows with and without ops hints, at and under the retry threshold,
an already-retried chain, a pending purchase of the simulator's imported
recommendations, and a plan's next steps approved and scheduled, so every branch of
the panel has something to show. The pending rows come with working approve and
cancel links (printed by the command: the demo sends no email), finished rows with
their per-item outcomes and the purchases in the ledger, and one failed row whose
worker died after buying its first item: a retry of it buys only the second. The rows
themselves are shaped in `app.services.demo_rows`.

Its users share one published password, admin included, and its links are live
tokens, so the demo is seeded only where it harms nobody: `start_plan` decides, for
`scripts/run` and `flask demo start`, and `seed` refuses under APP_ENV=production.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain.errors import DomainError
from app.domain.providers import PurchaseMode
from app.domain.statuses import Status
from app.models import (
    CloudAccount,
    PurchaseExecution,
    PurchasePlan,
    User,
)
from app.services.approvers import approval_recipient
from app.services.demo_rows import demo_row, imported_row, record_purchases, scheduled_steps
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
        demo_row(aws, alice, Status.PENDING, now, hours_ago=2, plan=plan),
        demo_row(aws, None, Status.PENDING, now, hours_ago=1),
        demo_row(gcp, alice, Status.APPROVED, now, hours_ago=3, approved_by=alice.email),
        demo_row(aws, purchaser, Status.RUNNING, now, hours_ago=4, approved_by=purchaser.email),
        demo_row(aws, purchaser, Status.COMPLETED, now, hours_ago=48, plan=plan, outcomes=("", "")),
        demo_row(
            azure,
            alice,
            Status.PARTIALLY_COMPLETED,
            now,
            hours_ago=30,
            outcomes=("", "InsufficientCapacity"),
            error="1 of 2 purchases failed: InsufficientCapacity",
        ),
        # Its worker died after buying the first item: a retry buys only the second.
        demo_row(
            aws,
            alice,
            Status.FAILED,
            now,
            hours_ago=4.5,
            outcomes=("",),
            error="reaped: no progress for more than 10 minutes",
        ),
        demo_row(aws, alice, Status.CANCELLED, now, hours_ago=20, cancelled_by=purchaser.email),
        demo_row(gcp, None, Status.EXPIRED, now, hours_ago=24 * 10),
        demo_row(
            aws,
            alice,
            Status.FAILED,
            now,
            hours_ago=5,
            error="Throttling: Rate exceeded (retry later)",
        ),
        demo_row(
            aws,
            alice,
            Status.FAILED,
            now,
            hours_ago=6,
            error="FROM_EMAIL not configured for this deployment",
        ),
        demo_row(
            aws,
            purchaser,
            Status.FAILED,
            now,
            hours_ago=7,
            error="IAM denied: ec2:PurchaseReservedInstancesOffering",
        ),
        demo_row(
            aws,
            alice,
            Status.FAILED,
            now,
            hours_ago=8,
            attempt=4,
            error="InternalError: provider timed out",
        ),
        demo_row(
            aws,
            alice,
            Status.FAILED,
            now,
            hours_ago=9,
            attempt=5,
            error="InternalError: provider timed out",
        ),
        demo_row(
            gcp,
            None,
            Status.FAILED,
            now,
            hours_ago=10,
            error="legacy scheduler run: quota exceeded",
        ),
        demo_row(
            azure,
            alice,
            Status.FAILED,
            now,
            hours_ago=11,
            error="ReservationOrder conflict: order already exists",
        ),
    ]
    # An already-retried chain: failed -> failed -> pending.
    first = demo_row(
        aws,
        alice,
        Status.FAILED,
        now,
        hours_ago=12,
        plan=plan,
        error="ServiceUnavailable: try again",
    )
    second = demo_row(
        aws,
        alice,
        Status.FAILED,
        now,
        hours_ago=11,
        plan=plan,
        attempt=1,
        error="ServiceUnavailable: try again",
    )
    third = demo_row(aws, alice, Status.PENDING, now, hours_ago=10, plan=plan, attempt=2)
    rows += [imported_row(aws, purchaser, now), *scheduled_steps(aws, plan, purchaser, now)]
    session.add_all([*rows, first, second, third])
    session.flush()
    first.retry_execution_id, second.retry_execution_id = second.execution_id, third.execution_id
    session.flush()
    record_purchases(session, [*rows, first, second, third])
    pending = [row for row in [*rows, third] if row.status == Status.PENDING]
    return SeedResult(
        logins=[(email, group or "defaults only") for email, group in DEMO_USERS],
        accounts=[aws, azure, gcp],
        executions=len(rows) + 3,
        links=[link for row in pending for link in _links(session, row, settings, now=now)],
    )


def _links(
    session: Session, row: PurchaseExecution, settings: Settings, *, now: datetime
) -> list[str]:
    """Approve and cancel links for a pending row, as its approval email would carry."""
    recipient = approval_recipient(session, row, settings) or DEMO_USERS[0][0]
    issued = issue_links(session, row, recipient, settings=settings, now=now)
    session.flush()
    return [issued.links.approve, issued.links.cancel]
