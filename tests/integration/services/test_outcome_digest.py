"""A bulk retry's outcome emails wait in their batch's window and go out as one message
per creator (app.services.digests); a row outside any batch goes on its own."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.db import utcnow
from app.domain.outbox import NotificationKind
from app.domain.statuses import Status
from app.models import Notification
from app.services import digests, notifications
from tests.factories import make_account, make_execution, make_user, recommendation

WINDOW = 60


@pytest.fixture
def outbox(app, db_session, settings, monkeypatch):
    """An app context on the test's rolled-back transaction, with a 60 s window."""
    windowed = settings.with_overrides(outcome_digest_seconds=WINDOW)
    monkeypatch.setitem(app.extensions, "settings", windowed)
    with app.app_context():
        yield windowed


def batch_row(session, creator, batch_id, status=Status.COMPLETED, *, account=None):
    """A row of the bulk retry `batch_id` (its approval email went in the batch's digest)
    that has ended with `status`."""
    row = make_execution(
        session,
        status,
        created_by=creator,
        cloud_account_id=(account or make_account(session)).id,
        recommendations=[recommendation(purchased=status == Status.COMPLETED, purchase_id="sim-1")],
        error=None if status == Status.COMPLETED else "InsufficientInstanceCapacity",
        total_upfront_cost="100.00",
        completed_at=utcnow(),
    )
    session.add(
        Notification(
            execution_id=row.execution_id,
            kind=NotificationKind.APPROVAL.value,
            batch_id=batch_id,
            state="sent",
        )
    )
    session.flush()
    return row


def outcome_of(session, row) -> Notification:
    return session.scalars(
        select(Notification).where(
            Notification.execution_id == row.execution_id,
            Notification.kind == NotificationKind.OUTCOME.value,
        )
    ).one()


def test_rows_of_a_batch_that_end_together_share_one_window_and_its_first_queues_it(
    db_session, outbox
):
    alice = make_user(db_session)
    batch_id = uuid.uuid4()
    rows = [batch_row(db_session, alice, batch_id) for _ in range(3)]
    now = utcnow()
    for n, row in enumerate(rows):  # the rows end a few seconds apart
        notifications.owe_outcome_email(
            db_session, row.execution_id, now=now + timedelta(seconds=n)
        )
        db_session.flush()
    closes = {outcome_of(db_session, row).due_at for row in rows}
    assert closes == {now + timedelta(seconds=WINDOW)}
    assert {outcome_of(db_session, row).batch_id for row in rows} == {batch_id}

    # Exactly one of them queues the window's digest (the first by when its email was
    # owed; one transaction here, so the tie is broken by id).
    queued_by = [digests.outcome_window_to_queue(db_session, row.execution_id) for row in rows]
    assert sorted(queued_by, key=lambda found: found is None) == [
        (batch_id, now + timedelta(seconds=WINDOW)),
        None,
        None,
    ]


def test_a_row_that_ends_after_the_window_closed_opens_the_next(db_session, outbox):
    alice = make_user(db_session)
    batch_id = uuid.uuid4()
    early, late = batch_row(db_session, alice, batch_id), batch_row(db_session, alice, batch_id)
    now = utcnow()
    notifications.owe_outcome_email(db_session, early.execution_id, now=now)
    later = now + timedelta(seconds=WINDOW + 1)
    notifications.owe_outcome_email(db_session, late.execution_id, now=later)
    db_session.flush()

    assert outcome_of(db_session, late).due_at == later + timedelta(seconds=WINDOW)
    assert digests.outcome_window_to_queue(db_session, late.execution_id) == (
        batch_id,
        later + timedelta(seconds=WINDOW),
    )


def test_a_row_outside_any_batch_is_told_at_once_on_its_own(db_session, outbox):
    account = make_account(db_session)
    row = make_execution(
        db_session, Status.COMPLETED, created_by=make_user(db_session), cloud_account_id=account.id
    )
    now = utcnow()
    notifications.owe_outcome_email(db_session, row.execution_id, now=now)
    db_session.flush()

    owed = outcome_of(db_session, row)
    assert owed.batch_id is None and owed.due_at == now
    assert digests.outcome_window_to_queue(db_session, row.execution_id) is None


def test_the_digest_lists_each_creators_rows_once_with_how_they_ended(db_session, outbox):
    alice, bob = make_user(db_session), make_user(db_session)
    account = make_account(db_session)
    batch_id = uuid.uuid4()
    alices = [
        batch_row(db_session, alice, batch_id, account=account),
        batch_row(db_session, alice, batch_id, Status.FAILED, account=account),
    ]
    bobs = [batch_row(db_session, bob, batch_id, account=account)]
    now = utcnow()
    for row in alices + bobs:
        notifications.owe_outcome_email(db_session, row.execution_id, now=now)
    db_session.flush()

    assert (
        digests.claim_outcome_digest(db_session, batch_id, owner="early", settings=outbox, now=now)
        == []
    )  # the window is still open
    emails = digests.claim_outcome_digest(
        db_session, batch_id, owner="test", settings=outbox, now=now + timedelta(seconds=WINDOW)
    )

    by_recipient = {email.recipient: email for email in emails}
    assert sorted(email.recipient for email in emails) == sorted([alice.email] * 2 + [bob.email])
    assert {id(email.message) for email in emails if email.recipient == alice.email} == {
        id(by_recipient[alice.email].message)
    }  # alice's two rows share one message
    message = by_recipient[alice.email].message
    assert message["Subject"] == "Outcome of a retry: 2 purchases, 1 completed, 1 failed"
    text = message.get_payload()[0].get_payload(decode=True).decode()
    assert all(text.count(str(row.execution_id)) == 2 for row in alices)  # its line and link
    assert str(bobs[0].execution_id) not in text
    assert "Purchase failed, 0 of 1 commitments bought" in text
    assert "Error: InsufficientInstanceCapacity" in text
    assert "Upfront cost of what completed: $100.00" in text
    assert {outcome_of(db_session, row).state for row in alices + bobs} == {"sending"}
