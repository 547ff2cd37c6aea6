"""The outcome email's outbox (app.services.notifications): owed when an execution ends,
sent to its creator (else the account's contact), settled once; a failure to send it
never touches the execution, which has already ended."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.db import utcnow
from app.domain.statuses import Status
from app.mail import SendFailure
from app.models import AuditEvent, Notification, PurchaseExecution, User
from app.services import deliveries, notifications
from tests.factories import make_account, make_execution, make_user, recommendation

ENDS = {Status.COMPLETED, Status.PARTIALLY_COMPLETED, Status.FAILED}


@pytest.fixture
def outbox(app, db_session, settings):
    """An app context on the test's rolled-back transaction, and the settings."""
    with app.app_context():
        yield settings


def ended_row(
    session,
    status: Status = Status.COMPLETED,
    *,
    creator: bool = True,
    contact_email: str | None = "finops@example.com",
) -> PurchaseExecution:
    """An execution that has ended, its outcome email owed as the executor owes it."""
    account = make_account(session, contact_email=contact_email)
    row = make_execution(
        session,
        status,
        created_by=make_user(session) if creator else None,
        cloud_account_id=account.id,
        recommendations=[recommendation(purchased=True, purchase_id="sim-1")],
        completed_at=utcnow(),
    )
    notifications.owe_outcome_email(session, row.execution_id, now=utcnow())
    session.flush()
    return row


def claim(session, row, settings, *, now=None):
    """Claim the row's outcome email as the task does (now, unless the test says when)."""
    return notifications.claim_outcome_email(
        session, row.execution_id, owner="test-run", settings=settings, now=now or utcnow()
    )


def notification_of(session, row) -> Notification:
    return session.scalars(
        select(Notification).where(
            Notification.execution_id == row.execution_id, Notification.kind == "outcome"
        )
    ).one()


def events_of(session, row) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.execution_id == row.execution_id)
            .order_by(AuditEvent.id)
        )
    )


def snapshot(session, row) -> tuple:
    """What the email must never change on the execution."""
    found = session.get(PurchaseExecution, row.execution_id, populate_existing=True)
    return (
        found.status,
        found.error,
        found.updated_at,
        found.notification_sent_at,
        found.approval_token_hash,
    )


def test_it_goes_to_the_creator_even_when_the_account_has_a_contact(db_session, outbox):
    """The opposite order from the approval email: the creator asked for the purchase."""
    row = ended_row(db_session)
    email = claim(db_session, row, outbox)
    creator = db_session.get(User, row.created_by_user_id)
    assert email is not None and email.kind == "outcome"
    assert email.recipient == creator.email != "finops@example.com"
    assert email.message["To"] == email.recipient
    assert email.token_hashes == () and email.expires_at is None


def test_without_a_creator_it_goes_to_the_account_contact(db_session, outbox):
    row = ended_row(db_session, creator=False)
    email = claim(db_session, row, outbox)
    assert email is not None and email.recipient == "finops@example.com"


@pytest.mark.parametrize(
    ("settings_override", "creator", "reason"),
    [
        ({"from_email": None}, True, notifications.FROM_EMAIL_MISSING),
        ({}, False, notifications.NO_OUTCOME_RECIPIENT),
    ],
    ids=["no-from-email", "no-recipient"],
)
def test_an_email_that_cannot_be_sent_fails_and_leaves_the_execution_alone(
    db_session, outbox, settings_override, creator, reason
):
    row = ended_row(db_session, Status.PARTIALLY_COMPLETED, creator=creator, contact_email=None)
    before = snapshot(db_session, row)
    later = utcnow() + timedelta(seconds=1)  # any write to the row would show in updated_at
    claimed = claim(db_session, row, outbox.with_overrides(**settings_override), now=later)
    assert claimed is None
    notification = notification_of(db_session, row)
    assert (notification.state, notification.error) == ("failed", reason)
    assert snapshot(db_session, row) == before
    assert [(e.action, e.details["error"]) for e in events_of(db_session, row)] == [
        ("outcome_email.failed", reason)
    ]


@pytest.mark.parametrize("status", list(Status))
def test_it_is_sent_only_for_an_execution_that_has_ended(db_session, outbox, status):
    """Owed for a row that is not at an end (a hand edit, a bug upstream), it is skipped:
    the message would report an outcome that does not exist."""
    row = ended_row(db_session, status)
    email = claim(db_session, row, outbox)
    assert (email is not None) == (status in ENDS)
    expected = "sending" if status in ENDS else "skipped"
    assert notification_of(db_session, row).state == expected


def test_a_sent_outcome_email_settles_only_the_notification(db_session, outbox):
    row = ended_row(db_session)
    before = snapshot(db_session, row)
    now = utcnow()
    email = claim(db_session, row, outbox, now=now)
    deliveries.record_sent(db_session, email, now=now)
    notification = notification_of(db_session, row)
    assert (notification.state, notification.attempts) == ("sent", 1)
    assert snapshot(db_session, row) == before
    (event,) = events_of(db_session, row)
    assert (event.action, event.details["to"]) == ("outcome_email.sent", email.recipient)
    assert claim(db_session, row, outbox, now=now + timedelta(hours=1)) is None


def test_a_transient_failure_waits_then_the_last_attempt_fails_for_good(db_session, outbox):
    row = ended_row(db_session, Status.FAILED)
    before = snapshot(db_session, row)
    settings = outbox.with_overrides(email_retry_base_seconds=10, email_max_retries=1)
    failure = SendFailure("451 4.3.0 try again later", permanent=False)
    now = utcnow()

    first = claim(db_session, row, settings, now=now)
    wait = deliveries.record_failure(db_session, first, failure, settings=settings, now=now)
    assert wait == 10
    assert notification_of(db_session, row).state == "queued"
    backing_off = claim(db_session, row, settings, now=now + timedelta(seconds=9))
    assert backing_off is None

    later = now + timedelta(seconds=10)
    second = claim(db_session, row, settings, now=later)
    assert second is not None and second.attempt == 2
    gave_up = deliveries.record_failure(db_session, second, failure, settings=settings, now=later)
    assert gave_up is None
    notification = notification_of(db_session, row)
    reason = "send failed: 451 4.3.0 try again later"
    assert (notification.state, notification.error) == ("failed", reason)
    assert snapshot(db_session, row) == before
    assert [(e.action, e.details) for e in events_of(db_session, row)] == [
        ("outcome_email.failed", {"error": reason, "attempt": 2})
    ]


def test_a_permanent_refusal_fails_it_at_once(db_session, outbox):
    row = ended_row(db_session)
    before = snapshot(db_session, row)
    now = utcnow()
    email = claim(db_session, row, outbox, now=now)
    refused = SendFailure("550 5.1.1 mailbox unavailable", permanent=True)
    assert deliveries.record_failure(db_session, email, refused, settings=outbox, now=now) is None
    assert notification_of(db_session, row).error == "send failed: 550 5.1.1 mailbox unavailable"
    assert snapshot(db_session, row) == before


@pytest.mark.parametrize(
    ("status", "bought", "subject"),
    [
        (Status.COMPLETED, 2, "Purchase completed: 2 of 2 commitments bought"),
        (Status.PARTIALLY_COMPLETED, 1, "Purchase partially completed: 1 of 2 commitments bought"),
        (Status.FAILED, 0, "Purchase failed: 0 of 2 commitments bought"),
    ],
)
def test_the_subject_says_how_it_ended_and_counts_the_selected_items(
    db_session, outbox, status, bought, subject
):
    """Two selected items, `bought` of them bought, and one left out (not counted)."""
    row = ended_row(db_session, status)
    row.recommendations = [
        recommendation(purchased=True, purchase_id="sim-a")
        if index < bought
        else recommendation(error="InsufficientInstanceCapacity")
        for index in range(2)
    ] + [recommendation(selected=False)]
    db_session.flush()
    email = claim(db_session, row, outbox)
    assert email.message["Subject"] == subject


@pytest.mark.parametrize(
    ("mode", "subject", "says"),
    [
        ("live", "Purchase completed: 1 of 1 commitments bought", "live: bought from the cloud"),
        (
            "dry_run",
            "Dry run completed: 1 of 1 commitments quoted, nothing bought",
            "dry run: quoted, nothing was bought",
        ),
    ],
)
def test_it_says_the_mode_the_row_ran_in_and_what_a_dry_run_would_have_bought(
    db_session, outbox, mode, subject, says
):
    row = ended_row(db_session)
    quote = {"offering_id": "ri-offer-9", "currency": "USD", "term_total": "1200.00"}
    if mode == "dry_run":
        row.recommendations = [recommendation(quote=quote)]
    else:
        row.recommendations = [recommendation(purchased=True, purchase_id="ri-1", quote=quote)]
    row.purchase_mode = mode
    db_session.flush()

    email = claim(db_session, row, outbox)

    assert email.message["Subject"] == subject
    text = email.message.get_payload()[0].get_payload(decode=True).decode()
    assert f"Mode: {says}" in text
    if mode == "dry_run":
        assert "would buy (dry run) (ri-offer-9: 1200.00 USD over the term)" in text
