"""A bulk retry's outcome emails as one digest per creator, through a real Celery
worker, Redis, the database and SMTP: the rows that end together are told together,
once, and a single row still gets its own email."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from sqlalchemy import select

from app import background
from app.db import fresh_read, unit_of_work
from app.domain.outbox import NotificationKind
from app.domain.rbac import Action
from app.domain.statuses import Status
from app.models import Notification, PurchaseExecution
from app.services import approvals
from app.services.identity import principal_for
from app.task_names import SEND_OUTCOME_DIGEST, SEND_OUTCOME_EMAIL
from tests.conftest import drain
from tests.factories import make_account, make_execution, make_user, recommendation
from tests.integration.tasks.test_bulk_retry import ask, done
from tests.support.commands import wait_until

pytestmark = pytest.mark.worker

ROWS = 12
CONTACTS = ("alpha@example.com", "beta@example.com", "gamma@example.com")


@pytest.fixture
def short_window(app, settings, monkeypatch):
    """Outcome windows of 2 s (the worker reads the app's settings)."""
    monkeypatch.setitem(
        app.extensions, "settings", settings.with_overrides(outcome_digest_seconds=2)
    )


def test_the_rows_of_a_bulk_retry_that_end_together_reach_their_creator_as_one_email(
    committed_db, celery_worker, mailbox, redis_db, short_window
):
    with unit_of_work() as session:
        alice = make_user(session, groups=("Purchasers",))
        accounts = [make_account(session, contact_email=contact) for contact in CONTACTS]
        for n in range(ROWS):
            item = (
                recommendation(simulate_error="capacity still short")
                if n == 0
                else recommendation()
            )
            make_execution(
                session,
                Status.FAILED,
                created_by=alice,
                cloud_account_id=accounts[n % 3].id,
                error="InsufficientInstanceCapacity",
                recommendations=[item],
                total_upfront_cost="1200.00",
                estimated_savings="546.00",
            )
    batch = ask(alice, {"filter": {"status": "failed"}})
    successors = [item["successor_execution_id"] for item in done(batch.id)["items"]]
    wait_until(lambda: len(mailbox.messages) >= 3, timeout=60, what="the approval digests")

    with fresh_read() as session:
        principal = principal_for(session.merge(alice))
    for execution_id in successors:
        approvals.decide(principal, execution_id, Action.APPROVE)

    def ended():
        with fresh_read() as session:
            statuses = Counter(
                session.scalars(
                    select(PurchaseExecution.status).where(
                        PurchaseExecution.execution_id.in_(successors)
                    )
                )
            )
        return statuses if statuses[Status.APPROVED] + statuses[Status.RUNNING] == 0 else None

    assert wait_until(ended, timeout=60, what="every row to end") == {
        Status.COMPLETED: ROWS - 1,
        Status.FAILED: 1,
    }
    wait_until(lambda: len(mailbox.messages) >= 4, timeout=30, what="the outcome digest")
    # The broker hands every task again: nothing is told twice.
    background.enqueue(SEND_OUTCOME_DIGEST, [str(batch.id)])
    for execution_id in successors:
        background.enqueue(SEND_OUTCOME_EMAIL, [execution_id])
    drain(redis_db, ["notifications"])
    time.sleep(2.5)  # a second digest would be due by now

    outcomes = [
        mail for mail in mailbox.received() if not mail.subject.startswith("Approval needed")
    ]
    assert len(outcomes) == 1
    (outcome,) = outcomes
    body = outcome.text
    assert outcome.to == alice.email
    assert (
        outcome.subject == f"Outcome of a retry: {ROWS} purchases, {ROWS - 1} completed, 1 failed"
    )
    assert all(body.count(f"- {execution_id},") == 1 for execution_id in successors)
    assert "Error: 1 of 1 purchases failed: capacity still short" in body
    assert f"Upfront cost of what completed: ${(ROWS - 1) * 1200:,}.00" in body
    with fresh_read() as session:
        told = Counter(
            session.scalars(
                select(Notification.state).where(
                    Notification.kind == NotificationKind.OUTCOME.value,
                    Notification.batch_id == batch.id,
                )
            )
        )
    assert told == {"sent": ROWS}
