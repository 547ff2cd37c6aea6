"""A bulk retry's approval emails as one digest per person, through a real Celery
worker, Redis, the database and SMTP."""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import pytest
from sqlalchemy import func, select

from app import background
from app.db import unit_of_work
from app.domain.bulk_retry import CHUNK_SIZE
from app.domain.statuses import Status
from app.models import (
    ApprovalToken,
    AuditEvent,
    CloudAccount,
    DigestLink,
    Notification,
    PurchaseExecution,
)
from app.services import retry
from app.task_names import SEND_APPROVAL_DIGEST
from tests.conftest import drain
from tests.factories import make_account, make_execution, make_user
from tests.integration.tasks.test_bulk_retry import ask, done
from tests.support.commands import wait_until

pytestmark = pytest.mark.worker

CONTACTS = ("alpha@example.com", "beta@example.com", "gamma@example.com")


def seed(session, rows: int):
    """`rows` failed rows of one creator over three accounts, each with its own contact
    (who is then the one person each row's approval email goes to)."""
    alice = make_user(session, groups=("Purchasers",))
    accounts = [make_account(session, contact_email=contact) for contact in CONTACTS]
    for n in range(rows):
        make_execution(
            session,
            Status.FAILED,
            created_by=alice,
            cloud_account_id=accounts[n % 3].id,
            error="InsufficientInstanceCapacity",
            total_upfront_cost="100.00",
            estimated_savings="10.00",
        )
    return alice, accounts


def digests_by_recipient(mailbox) -> dict[str, list[str]]:
    """Each message's recipient and the bodies it got."""
    found: dict[str, list[str]] = defaultdict(list)
    for mail in mailbox.received():
        found[mail.to].append(mail.text)
    return found


def successors_by_contact(batch_body) -> dict[str, set[str]]:
    ids = [item["successor_execution_id"] for item in batch_body["items"]]
    with unit_of_work() as session:
        rows = session.execute(
            select(PurchaseExecution.execution_id, PurchaseExecution.cloud_account_id).where(
                PurchaseExecution.execution_id.in_(ids)
            )
        ).all()
        contact_of = dict(
            session.execute(select(CloudAccount.id, CloudAccount.contact_email)).tuples().all()
        )
    by_contact: dict[str, set[str]] = defaultdict(set)
    for execution_id, account_id in rows:
        by_contact[contact_of[account_id]].add(str(execution_id))
    return by_contact


def test_a_batch_of_250_rows_across_3_recipients_sends_3_emails(
    committed_db, celery_worker, mailbox
):
    rows = 250
    with unit_of_work() as session:
        alice, _ = seed(session, rows)
    sessions_before = mailbox.handler.sessions
    batch = ask(alice, {"filter": {"status": "failed"}})
    body = done(batch.id)
    assert body["succeeded"] == rows

    wait_until(lambda: len(mailbox.messages) >= 3, timeout=60, what="the three digests")
    time.sleep(0.5)  # a fourth message would arrive about now
    received = digests_by_recipient(mailbox)
    assert sorted(received) == sorted(CONTACTS)
    assert all(len(bodies) == 1 for bodies in received.values())
    assert mailbox.handler.sessions - sessions_before == 1  # one SMTP connection
    expected = successors_by_contact(body)
    for contact, (text,) in received.items():
        # Each row of the contact's accounts, with its own approve and cancel links, and
        # no row of anyone else's.
        named = {
            line.split("/purchases/approve/")[1].split("?")[0]
            for line in text.splitlines()
            if "/purchases/approve/" in line
        }
        cancels = {
            line.split("/purchases/cancel/")[1].split("?")[0]
            for line in text.splitlines()
            if "/purchases/cancel/" in line
        }
        assert named == cancels == expected[contact]
        assert "/purchases/digest?token=" in text
        assert f"Total upfront cost: ${len(expected[contact]) * 100:,}.00" in text
    with unit_of_work() as session:
        states = Counter(session.scalars(select(Notification.state)))
        unsent = session.scalar(
            select(func.count())
            .select_from(PurchaseExecution)
            .where(
                PurchaseExecution.status == Status.PENDING.value,
                PurchaseExecution.notification_sent_at.is_(None),
            )
        )
        tokens = session.scalar(select(func.count()).select_from(ApprovalToken))
        pages = session.scalar(select(func.count()).select_from(DigestLink))
        sent_events = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "approval_email.sent")
        )
    assert states == {"sent": rows}
    assert unsent == 0
    assert tokens == rows * 2 and pages == 3
    assert sent_events == rows


def test_a_redelivered_chunk_or_digest_sends_none_twice(
    committed_db, celery_worker, mailbox, redis_db
):
    rows = CHUNK_SIZE + 10  # two chunks
    with unit_of_work() as session:
        alice, _ = seed(session, rows)
    batch = ask(alice, {"filter": {"status": "failed"}})
    first = done(batch.id)
    wait_until(lambda: len(mailbox.messages) >= 3, timeout=60, what="the three digests")

    retry.enqueue_chunks(batch, [0, 1])  # the broker delivers both chunks again
    background.enqueue(SEND_APPROVAL_DIGEST, [str(batch.id)])  # and the digest's task
    drain(redis_db, ["purchases", "notifications"])
    time.sleep(0.5)
    assert done(batch.id)["items"] == first["items"]
    assert len(mailbox.messages) == 3
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(PurchaseExecution)) == rows * 2


def test_a_recipient_whose_server_refuses_for_now_gets_the_digest_later_and_no_one_twice(
    committed_db, celery_worker, mailbox, settings
):
    with unit_of_work() as session:
        alice, _ = seed(session, 30)
    mailbox.handler.refused["beta@example.com"] = "451 4.3.0 try again later"
    try:
        batch = ask(alice, {"filter": {"status": "failed"}})
        done(batch.id)
        wait_until(lambda: len(mailbox.messages) >= 2, timeout=60, what="two digests")

        def beta_waits():
            with unit_of_work() as session:
                return session.scalar(
                    select(func.count())
                    .select_from(Notification)
                    .where(Notification.state == "queued", Notification.error.is_not(None))
                )

        assert wait_until(beta_waits, what="beta's rows to wait for the backoff") == 10
    finally:
        mailbox.handler.refused.clear()
    wait_until(
        lambda: len(digests_by_recipient(mailbox)["beta@example.com"]) == 1,
        timeout=30,
        what="beta's digest, after the backoff",
    )
    time.sleep(0.5)
    received = digests_by_recipient(mailbox)
    assert {contact: len(bodies) for contact, bodies in received.items()} == {
        contact: 1 for contact in CONTACTS
    }
    with unit_of_work() as session:
        assert Counter(session.scalars(select(Notification.state))) == {"sent": 30}
