"""`notifications.send_outcome_email` through a real Celery worker and SMTP servers: one
email per ended execution, item by item, retried on a transient failure, and queued
again by beat when its task was lost."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.db import fresh_read, unit_of_work, utcnow
from app.domain.staleness import UNSTARTED_AFTER
from app.domain.statuses import Status
from app.models import AuditEvent, Notification, PurchaseExecution
from app.services import notifications
from app.task_names import SEND_OUTCOME_EMAIL
from tasks.maintenance import recover_lapsed_work
from tests.factories import make_account, make_execution, make_user, recommendation
from tests.support.commands import wait_until
from tests.support.smtp import read

pytestmark = pytest.mark.worker

ROW_ERROR = "1 of 3 selected purchases failed"
DETAILS_PATH = "/admin/purchases/details/?id="


def ended_row(session, creator, status: Status = Status.PARTIALLY_COMPLETED, **fields):
    """An execution the executor has just ended, its outcome email owed: two items
    bought, one refused by the provider, one the creator left out."""
    account = make_account(session, contact_email="finops@example.com")
    items = [
        recommendation(resource_type="m5.large", purchased=True, purchase_id="sim-m5-0001"),
        recommendation(resource_type="c5.xlarge", purchased=True, purchase_id="sim-c5-0002"),
        recommendation(resource_type="r5.large", error="InsufficientInstanceCapacity"),
        recommendation(resource_type="t3.micro", selected=False),
    ]
    values = {
        "recommendations": items,
        "error": ROW_ERROR,
        "cloud_account_id": account.id,
        "total_upfront_cost": "4200.00",
        "estimated_savings": "310.25",
        "completed_at": utcnow(),
    }
    row = make_execution(session, status, created_by=creator, **(values | fields))
    notifications.owe_outcome_email(session, row.execution_id, now=utcnow())
    return row


def notification(execution_id, kind: str = "outcome") -> Notification:
    with fresh_read() as session:
        return session.scalars(
            select(Notification)
            .where(Notification.execution_id == execution_id, Notification.kind == kind)
            .execution_options(populate_existing=True)
        ).one()


def settled(execution_id, kind: str = "outcome") -> Notification:
    return wait_until(
        lambda: (found := notification(execution_id, kind)).state in {"sent", "failed"} and found,
        what=f"the {kind} email of {execution_id} to be sent or fail",
    )


def line_about(body: str, resource_type: str, *, separator: str) -> str:
    (line,) = [chunk for chunk in body.split(separator) if resource_type in chunk]
    return line


def enqueue(app, execution_id) -> None:
    app.extensions["celery"].send_task(SEND_OUTCOME_EMAIL, args=[str(execution_id)])


def test_one_email_tells_the_creator_how_each_item_ended(
    app, committed_db, celery_worker, mailbox, settings
):
    with unit_of_work() as session:
        alice = make_user(session)
        row = ended_row(session, alice)
    enqueue(app, row.execution_id)

    assert settled(row.execution_id).state == "sent"
    time.sleep(0.5)
    (envelope,) = mailbox.messages
    assert envelope.rcpt_tos == [alice.email]  # the creator, not the account's contact
    mail = read(envelope)
    subject, text, html = mail.subject, mail.text, mail.html
    assert subject == "Purchase partially completed: 2 of 3 commitments bought"
    expected = {
        "m5.large": ("purchased", "sim-m5-0001"),
        "c5.xlarge": ("purchased", "sim-c5-0002"),
        "r5.large": ("failed", "InsufficientInstanceCapacity"),
        "t3.micro": ("skipped", "not selected"),
    }
    for body, separator in ((text, "\n"), (html, "<tr>")):
        for resource_type, (outcome, detail) in expected.items():
            line = line_about(body, resource_type, separator=separator)
            assert outcome in line and detail in line, (resource_type, line)
        assert ROW_ERROR in body and "$4,200.00" in body
        assert f"{settings.app_base_url}{DETAILS_PATH}{row.execution_id}" in body
    with fresh_read() as session:
        ended = session.get(PurchaseExecution, row.execution_id, populate_existing=True)
        events = session.scalars(
            select(AuditEvent.action).where(AuditEvent.execution_id == row.execution_id)
        ).all()
    assert (ended.status, ended.error, ended.notification_sent_at) == (
        Status.PARTIALLY_COMPLETED,
        ROW_ERROR,
        None,
    )
    assert events == ["outcome_email.sent"]


def test_a_redelivered_task_sends_no_second_email(app, committed_db, celery_worker, mailbox):
    """At-least-once delivery runs the task twice, at once or one after the other; the
    claim lets one of them send."""
    with unit_of_work() as session:
        row = ended_row(session, make_user(session), Status.COMPLETED, error=None)
    enqueue(app, row.execution_id)
    enqueue(app, row.execution_id)
    settled(row.execution_id)
    enqueue(app, row.execution_id)
    time.sleep(1)  # give the later deliveries every chance to do harm
    assert len(mailbox.messages) == 1
    assert notification(row.execution_id).attempts == 1


def test_a_transient_refusal_is_retried_until_the_server_takes_it(
    app, committed_db, celery_worker, scripted_smtp
):
    server = scripted_smtp("451 4.3.0 try again later", email_retry_base_seconds=0.2)
    with unit_of_work() as session:
        row = ended_row(session, make_user(session), Status.FAILED)
    enqueue(app, row.execution_id)
    refused = wait_until(
        lambda: (found := notification(row.execution_id)).error and found,
        what="the first attempt to be refused",
    )
    assert refused.error == "451 4.3.0 try again later"
    assert server.messages == []

    server.reply = None  # the server recovers
    sent = settled(row.execution_id)
    assert sent.state == "sent" and sent.attempts >= 2
    time.sleep(0.5)
    assert len(server.messages) == 1
    assert read(server.messages[0]).subject.startswith("Purchase failed: 2 of 3")


def test_beat_queues_a_lost_outcome_email_to_the_outcome_task(committed_db, celery_worker, mailbox):
    """The executor committed, then the broker lost the email's task. Beat finds the
    notification still queued long past due and hands it to the task of its own kind;
    a lost approval email goes to the approval task beside it."""
    long_ago = utcnow() - UNSTARTED_AFTER - timedelta(minutes=1)
    with unit_of_work() as session:
        alice = make_user(session)
        ended = ended_row(session, alice, Status.COMPLETED, error=None)
        pending = make_execution(
            session,
            Status.PENDING,
            created_by=alice,
            created_at=long_ago,
            recommendations=[recommendation()],
        )
        notifications.owe_approval_email(session, pending.execution_id, now=long_ago)
        session.flush()
        for owed in session.scalars(select(Notification)):
            owed.due_at = long_ago

    requeued = recover_lapsed_work.delay().get(timeout=30)

    assert requeued["emails"] == 2
    assert settled(ended.execution_id).state == "sent"
    assert settled(pending.execution_id, "approval").state == "sent"
    time.sleep(0.5)
    subjects = sorted(mail.subject for mail in mailbox.received())
    assert len(subjects) == 2
    assert subjects[0].startswith("Approval needed: 1 commitment purchase")
    assert subjects[1].startswith("Purchase completed:")
