"""`purchases.execute` end to end through real workers: an approval is bought, once per
item across a whole retry lineage, even when a worker dies mid-purchase.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.db import fresh_read, unit_of_work, utcnow
from app.domain.rbac import Action
from app.domain.statuses import Status
from app.models import ProviderPurchase
from app.services import approvals, maintenance
from app.services.identity import principal_for
from tests.factories import make_user, recommendation
from tests.integration.tasks.flows import email_settled, execution, failed_row, queue_retry, settled
from tests.support.commands import wait_until

pytestmark = pytest.mark.worker


def approve(user, execution_id):
    with fresh_read() as session:
        principal = principal_for(session.merge(user))
    return approvals.decide(principal, execution_id, Action.APPROVE)


def finished(execution_id, timeout=30):
    def load():
        row = execution(execution_id)
        return row if row.status not in {Status.APPROVED, Status.RUNNING} else None

    return wait_until(load, timeout=timeout, what=f"execution {execution_id} to finish")


def ledger() -> dict[str, str | None]:
    with fresh_read() as session:
        rows = session.execute(
            select(ProviderPurchase.idempotency_key, ProviderPurchase.purchase_id)
        )
        return {key: purchase_id for key, purchase_id in rows}


def test_an_approved_retry_buys_only_what_its_lineage_has_not_bought(
    committed_db, celery_worker, mailbox
):
    """The root bought item 0 before its worker died: the retry, once approved, buys
    items 1 and 2 only, and the ledger holds exactly one purchase per item."""
    with unit_of_work() as session:
        alice = make_user(session)
        root = failed_row(session, alice, error="reaped: no progress for more than 10 minutes")
        session.add(
            ProviderPurchase(
                idempotency_key=f"{root.execution_id}:0",
                execution_id=root.execution_id,
                item_index=0,
                provider="aws",
                purchase_id="ri-bought-before-the-crash",
            )
        )
    successor_id = settled(queue_retry(alice, root.execution_id)).successor_execution_id
    email_settled(successor_id)

    approve(alice, successor_id)
    done = finished(successor_id)

    assert done.status == Status.COMPLETED, done.error
    assert done.recommendations[0]["purchase_id"] == "ri-bought-before-the-crash"
    assert ledger() == {
        f"{root.execution_id}:{index}": item["purchase_id"]
        for index, item in enumerate(done.recommendations)
    }
    # The root's own record of its items is history: the successor's outcome is its own.
    assert not any(item["purchased"] for item in execution(root.execution_id).recommendations)
    # Its outcome email: one, after the approval email, to the creator.
    wait_until(lambda: len(mailbox.messages) == 2, what="the outcome email")
    time.sleep(0.5)
    assert len(mailbox.messages) == 2
    assert mailbox.messages[1].rcpt_tos == [alice.email]


def test_a_worker_killed_mid_purchase_is_reaped_and_its_retry_buys_the_rest_once(
    worker_processes, mailbox
):
    with unit_of_work() as session:
        alice = make_user(session)
        row = failed_row(
            session,
            alice,
            recommendations=[
                recommendation(),
                recommendation(resource_type="c5.xlarge", simulate_delay_seconds=3),
                recommendation(resource_type="r5.large"),
            ],
        )
        row.status, row.error = Status.PENDING.value, None
    first = worker_processes("doomed")
    approve(alice, row.execution_id)
    root = str(row.execution_id)

    # Item 0 bought and item 1 claimed: the provider is buying item 1. Kill the worker.
    wait_until(
        lambda: ledger().get(f"{root}:0") and f"{root}:1" in ledger(),
        what="item 0 bought and item 1 claimed",
    )
    first.kill()
    first.wait(timeout=10)
    bought_before = ledger()
    assert bought_before[f"{root}:1"] is None and f"{root}:2" not in bought_before
    assert execution(row.execution_id).status == Status.RUNNING

    with unit_of_work() as session:
        reaped = maintenance.reap_stuck(
            session, now=utcnow() + timedelta(minutes=11), after=timedelta(minutes=10)
        )
    assert reaped == [row.execution_id]
    assert execution(row.execution_id).status == Status.FAILED

    worker_processes("survivor")
    successor_id = settled(queue_retry(alice, row.execution_id)).successor_execution_id
    email_settled(successor_id)
    approve(alice, successor_id)
    done = finished(successor_id)

    assert done.status == Status.COMPLETED, done.error
    after = ledger()
    assert sorted(after) == [f"{root}:0", f"{root}:1", f"{root}:2"]
    assert after[f"{root}:0"] == bought_before[f"{root}:0"]
    assert [item["purchase_id"] for item in done.recommendations] == [
        after[f"{root}:{index}"] for index in range(3)
    ]
