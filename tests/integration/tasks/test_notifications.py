"""`notifications.send_approval_email` through a real Celery worker and SMTP servers:
sent once, retried on a transient failure, failing the execution with the reason."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from app import background
from app.db import unit_of_work
from app.domain.statuses import Status
from app.models import ApprovalToken, AuditEvent, PurchaseSuppression
from app.services import retry
from app.task_names import SEND_APPROVAL_EMAIL
from tests.factories import (
    make_user,
    owed_approval_email,
)
from tests.integration.tasks.flows import (
    email_settled,
    execution,
    failed_row,
    queue_retry,
    settled,
)
from tests.support.smtp import free_port

pytestmark = pytest.mark.worker


def test_smtp_down_then_up_delivers_once(committed_db, celery_worker, scripted_smtp):
    port = free_port()
    scripted_smtp.point_settings_at(port, email_retry_base_seconds=0.2)
    with unit_of_work() as session:
        alice = make_user(session)
        predecessor = failed_row(session, alice)
    successor_id = settled(queue_retry(alice, predecessor.execution_id)).successor_execution_id
    time.sleep(1.0)  # several attempts find nothing listening
    down = execution(successor_id)
    assert (down.status, down.notification_sent_at) == (Status.PENDING, None)

    server = scripted_smtp(port=port, email_retry_base_seconds=0.2)
    sent = email_settled(successor_id)
    assert sent.notification_sent_at is not None and sent.status == Status.PENDING
    time.sleep(0.5)
    assert len(server.messages) == 1


def test_a_permanent_refusal_fails_the_successor_and_keeps_its_lineage(
    committed_db, celery_worker, scripted_smtp
):
    scripted_smtp("550 5.1.1 mailbox unavailable")
    with unit_of_work() as session:
        alice = make_user(session)
        predecessor = failed_row(session, alice)
    successor_id = settled(queue_retry(alice, predecessor.execution_id)).successor_execution_id
    failed = email_settled(successor_id)
    assert failed.status == Status.FAILED
    assert failed.error == "send failed: 550 5.1.1 mailbox unavailable"
    assert execution(predecessor.execution_id).retry_execution_id == successor_id
    with unit_of_work() as session:
        left = session.scalars(
            select(PurchaseSuppression).where(PurchaseSuppression.execution_id == successor_id)
        ).all()
        assert left == []  # nothing is in flight any more


def test_a_transient_failure_is_retried_then_fails_the_same_way(
    committed_db, celery_worker, scripted_smtp
):
    server = scripted_smtp(
        "451 4.3.0 try again later", email_retry_base_seconds=0.1, email_max_retries=2
    )
    with unit_of_work() as session:
        alice = make_user(session)
        predecessor = failed_row(session, alice)
    successor_id = settled(queue_retry(alice, predecessor.execution_id)).successor_execution_id
    failed = email_settled(successor_id)
    assert failed.error == "send failed: 451 4.3.0 try again later"
    assert server.messages == []


def test_without_from_email_the_successor_fails_and_a_retry_gets_the_hint(
    committed_db, celery_worker, scripted_smtp, mailbox
):
    scripted_smtp(from_email=None)
    with unit_of_work() as session:
        alice = make_user(session)
        predecessor = failed_row(session, alice)
    successor_id = settled(queue_retry(alice, predecessor.execution_id)).successor_execution_id
    failed = email_settled(successor_id)
    assert (failed.status, failed.error) == (
        Status.FAILED,
        "FROM_EMAIL not configured for this deployment",
    )
    with pytest.raises(retry.DomainError) as refused:
        queue_retry(alice, successor_id)
    assert refused.value.status == 409
    assert refused.value.details == {
        "ops_hint": "Set FROM_EMAIL, then retry",
        "failure_reason": "FROM_EMAIL not configured for this deployment",
    }


def test_two_deliveries_of_the_email_task_at_once_send_one_email(
    app, committed_db, celery_worker, mailbox
):
    """Two workers pick up the same approval email together. (Before, on SQLite, both
    passed the `notification_sent_at` check and both sent; only the last copy's links
    worked.)"""
    with unit_of_work() as session:
        row = owed_approval_email(session, make_user(session))
    for _ in range(2):
        app.extensions["celery"].send_task(SEND_APPROVAL_EMAIL, args=[str(row.execution_id)])
    email_settled(row.execution_id)
    time.sleep(1)  # give the second delivery every chance to do harm
    assert len(mailbox.messages) == 1


def test_every_approver_gets_their_own_email_and_one_refusal_does_not_fail_the_row(
    committed_db, celery_worker, scripted_smtp
):
    """With no contact on the account and a creator who may not approve, the email goes
    to each user who may: one message each, with links of their own. A recipient whose
    server refuses loses their links (audited); the others' still decide the row."""
    server = scripted_smtp()
    server.refused["bounced@example.com"] = "550 5.1.1 mailbox unavailable"
    with unit_of_work() as session:
        creator = make_user(session, "viewer@example.com", groups=("Read-only",))
        for email in ("bounced@example.com", "purchaser@example.com"):
            make_user(session, email, groups=("Purchasers",))
        row = owed_approval_email(session, creator, contact_email=None)
    background.enqueue(SEND_APPROVAL_EMAIL, [str(row.execution_id)])
    sent = email_settled(row.execution_id)
    assert sent.status == Status.PENDING and sent.notification_sent_at is not None
    assert [envelope.rcpt_tos for envelope in server.messages] == [["purchaser@example.com"]]
    with unit_of_work() as session:
        holders = session.scalars(
            select(ApprovalToken.recipient).where(ApprovalToken.execution_id == row.execution_id)
        ).all()
        failures = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "approval_email.recipient_failed")
        ).all()
    assert holders == ["purchaser@example.com"] * 2
    assert [event.details["to"] for event in failures] == ["bounced@example.com"]
