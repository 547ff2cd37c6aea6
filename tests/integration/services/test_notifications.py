"""The approval email's outbox (app.services.notifications): owed, claimed by one task
at a time, settled once; every copy's links work."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from app.db import utcnow
from app.domain.staleness import LEASE_TTL, UNSTARTED_AFTER
from app.domain.statuses import Status
from app.mail import SendFailure, send_message
from app.models import ApprovalToken, Notification, PurchaseExecution
from app.services import deliveries, notifications
from tests.factories import (
    link_opens,
    make_user,
    owed_approval_email,
)
from tests.support.smtp import read


@pytest.fixture
def outbox(app, db_session, mailbox, settings):
    """An app context on the test's rolled-back transaction, and the settings."""
    with app.app_context():
        yield settings


def owed_row(session) -> PurchaseExecution:
    return owed_approval_email(session, make_user(session))


OWNER = "test-run"


def lost_approval_emails(session, *, now) -> list:
    """The executions whose approval email the sweep queues again (it hands them back
    to the broker as it finds them)."""
    return [
        execution_id
        for kind, execution_id, _batch in notifications.lapsed_emails(session, now=now)
        if kind == "approval"
    ]


def token_in(envelope, action: str) -> str:
    body = read(envelope).text
    line = next(line for line in body.splitlines() if line.startswith(f"{action.title()}:"))
    (token,) = parse_qs(urlsplit(line.split(":", 1)[1].strip()).query)["token"]
    return token


def test_a_claimed_email_cannot_be_claimed_again_until_settled(db_session, outbox):
    row = owed_row(db_session)
    now = utcnow()
    (first,) = notifications.claim_approval_email(
        db_session, row.execution_id, owner="run-1", settings=outbox, now=now
    )
    assert first.attempt == 1
    # Another task, while the first one's lease stands (its heartbeat renews it).
    again = notifications.claim_approval_email(
        db_session, row.execution_id, owner="run-2", settings=outbox, now=now + LEASE_TTL / 2
    )
    assert again == []
    deliveries.record_sent(db_session, first, now=now)
    later = now + LEASE_TTL + timedelta(minutes=1)
    assert (
        notifications.claim_approval_email(
            db_session, row.execution_id, owner="run-2", settings=outbox, now=later
        )
        == []
    )


def test_beat_leaves_an_email_in_backoff_alone_and_takes_a_lost_one(db_session, outbox):
    """A transient failure waits for its backoff, however long it is configured to be;
    beat takes a notification over only once its task is evidently gone. (Before, beat
    queued every pending row still unsent 15 minutes after its creation, racing a
    backoff that can run for over an hour in all.)"""
    row = owed_row(db_session)
    now = utcnow()
    row.created_at = now - timedelta(minutes=30)
    db_session.flush()
    (email,) = notifications.claim_approval_email(
        db_session, row.execution_id, owner=OWNER, settings=outbox, now=now
    )
    long_wait = outbox.with_overrides(email_retry_base_seconds=3600)
    failure = SendFailure("451 4.3.0 try again later", permanent=False)
    wait = deliveries.record_failure(db_session, email, failure, settings=long_wait, now=now)
    assert wait == 600  # each wait is capped at 10 minutes
    during = now + timedelta(minutes=9)
    assert lost_approval_emails(db_session, now=during) == []
    assert (
        notifications.claim_approval_email(
            db_session, row.execution_id, owner=OWNER, settings=outbox, now=during
        )
        == []
    )
    lost = now + timedelta(seconds=wait) + UNSTARTED_AFTER + timedelta(seconds=1)
    assert lost_approval_emails(db_session, now=lost) == [row.execution_id]


def test_a_copy_sent_twice_after_a_crash_has_links_that_work_in_both(db_session, outbox, mailbox):
    """The worker dies after the SMTP server accepted the message but before the outcome
    was recorded. Beat hands the email to another task, which sends a second copy: both
    copies' approve and cancel links open their action. (Before, each send replaced the
    one stored token, and the first copy's links stopped working.)"""
    row = owed_row(db_session)
    now = utcnow()
    (first,) = notifications.claim_approval_email(
        db_session, row.execution_id, owner=OWNER, settings=outbox, now=now
    )
    send_message(outbox, first.message)  # ... and the worker dies here
    stale = now + LEASE_TTL + timedelta(seconds=1)  # no heartbeat renewed the lease
    assert lost_approval_emails(db_session, now=stale) == [row.execution_id]
    (second,) = notifications.claim_approval_email(
        db_session, row.execution_id, owner=OWNER, settings=outbox, now=stale
    )
    assert second.attempt == 2
    send_message(outbox, second.message)
    deliveries.record_sent(db_session, second, now=stale)

    assert len(mailbox.messages) == 2
    for envelope in mailbox.messages:
        for action in ("approve", "cancel"):
            token = token_in(envelope, action)
            assert link_opens(db_session, row.execution_id, action, token, now=stale)
            other = "cancel" if action == "approve" else "approve"
            assert not link_opens(db_session, row.execution_id, other, token, now=stale)
            assert not link_opens(db_session, uuid.uuid4(), action, token, now=stale)
    expired = now + timedelta(hours=outbox.approval_token_ttl_hours, seconds=1)
    assert not link_opens(
        db_session,
        row.execution_id,
        "approve",
        token_in(mailbox.messages[0], "approve"),
        now=expired,
    )
    state = db_session.get(Notification, second.notification_id, populate_existing=True)
    assert (state.state, state.attempts) == ("sent", 2)


@pytest.mark.parametrize("recommendations", [[1], {}])
def test_malformed_recommendations_fail_the_row_with_the_reason(
    db_session, outbox, mailbox, recommendations
):
    """(Before: the email task crashed on every delivery.)"""
    row = owed_row(db_session)
    row.recommendations = recommendations
    db_session.flush()
    claimed = notifications.claim_approval_email(
        db_session, row.execution_id, owner=OWNER, settings=outbox, now=utcnow()
    )
    assert claimed == [] and mailbox.messages == []
    failed = db_session.get(PurchaseExecution, row.execution_id, populate_existing=True)
    assert failed.status == Status.FAILED
    assert failed.error.startswith("malformed recommendations:")


def test_each_link_records_the_recipient_the_link_page_names_as_approver(db_session, outbox):
    row = owed_row(db_session)
    (email,) = notifications.claim_approval_email(
        db_session, row.execution_id, owner=OWNER, settings=outbox, now=utcnow()
    )
    tokens = db_session.scalars(
        select(ApprovalToken).where(ApprovalToken.token_hash.in_(email.token_hashes))
    )
    assert sorted((token.action, token.recipient) for token in tokens) == [
        ("approve", "finops@example.com"),
        ("cancel", "finops@example.com"),
    ]
