"""The reminder before a scheduled purchase starts, through beat's job
(`maintenance.send_schedule_reminders`), a real Celery worker and the loopback SMTP
server: one email per scheduled row inside the window, to the row's approvers, naming
the time and the money; none outside the window, for a row no longer waiting for its
start, or with `SCHEDULE_REMINDER_HOURS=0`."""

from __future__ import annotations

import time
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from sqlalchemy import select, update

from app.config import ConfigError, Settings
from app.db import fresh_read, unit_of_work, utcnow
from app.domain.staleness import UNSTARTED_AFTER
from app.domain.statuses import Status
from app.models import AuditEvent, Notification, PurchaseExecution, PurchaseFreeze
from app.services import reminders
from app.services.reminder_email import when_text
from app.task_names import SEND_REMINDER_EMAIL, SEND_SCHEDULE_REMINDERS
from tasks.maintenance import recover_lapsed_work, send_schedule_reminders
from tests.factories import make_account, make_execution, make_plan, make_user, recommendation
from tests.support.commands import wait_until

pytestmark = pytest.mark.worker

CONTACT = "finops@example.com"
DETAILS_PATH = "/admin/purchases/details/?id="


def in_hours(hours: float):
    """A start time `hours` from now, to the minute (as the reminder writes it)."""
    return (utcnow() + timedelta(hours=hours)).replace(second=0, microsecond=0)


def money_items() -> list[dict]:
    """Two selected items and one left out. Over the term: 1,200 upfront + 100 x 12
    months + 50 x 36 months = 4,200.00; savings (45.50 + 20.00) x 12 = 786.00 a year."""
    return [
        recommendation(
            resource_type="m5.large",
            upfront_cost="1200.00",
            monthly_cost="100.00",
            monthly_savings="45.50",
        ),
        recommendation(
            resource_type="c5.xlarge",
            term_years=3,
            payment_option="no-upfront",
            upfront_cost="0",
            monthly_cost="50.00",
            monthly_savings="20.00",
        ),
        recommendation(resource_type="x1e.32xlarge", upfront_cost="9999.00", selected=False),
    ]


def scheduled_row(session, status: Status, hours: float, **fields) -> PurchaseExecution:
    """A row on an account whose contact approves, starting `hours` from now."""
    values = {
        "cloud_account_id": make_account(session, contact_email=CONTACT).id,
        "recommendations": money_items(),
        "scheduled_for": in_hours(hours),
    }
    return make_execution(session, status, **(values | fields))


def reminder(execution_id) -> Notification | None:
    with fresh_read() as session:
        return session.scalars(
            select(Notification)
            .where(Notification.execution_id == execution_id, Notification.kind == "reminder")
            .execution_options(populate_existing=True)
        ).one_or_none()


def settled(execution_id) -> Notification:
    return wait_until(
        lambda: (
            (found := reminder(execution_id))
            and found.state in {"sent", "failed", "skipped"}
            and found
        ),
        what=f"the reminder of {execution_id} to settle",
    )


def actions_of(execution_id) -> list[str]:
    with fresh_read() as session:
        return sorted(
            session.scalars(
                select(AuditEvent.action).where(AuditEvent.execution_id == execution_id)
            )
        )


def reminded_at(execution_id):
    with fresh_read() as session:
        row = session.get(PurchaseExecution, execution_id, populate_existing=True)
        return row.reminder_sent_at


def parts(envelope) -> tuple[str, str, str]:
    message = message_from_bytes(envelope.original_content, policy=default_policy)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    return str(message["Subject"]), text, html


def run_beat_job() -> list[str]:
    """One run of beat's job, on the worker, as beat queues it."""
    return send_schedule_reminders.delay().get(timeout=30)


def test_a_row_in_the_window_is_reminded_once_across_beat_runs(
    app, committed_db, celery_worker, mailbox
):
    with unit_of_work() as session:
        approver = make_user(session)
        soon = scheduled_row(session, Status.PENDING, 2, created_by=approver)
        later = scheduled_row(session, Status.APPROVED, 23, approved_by=CONTACT)
        ids = {soon.execution_id, later.execution_id}

    first = run_beat_job()
    # Beat runs again, twice at once, while the first run's emails may still be going.
    again = [send_schedule_reminders.delay(), send_schedule_reminders.delay()]
    assert [result.get(timeout=30) for result in again] == [[], []]
    assert {str(id_) for id_ in ids} == set(first)

    for execution_id in ids:
        assert settled(execution_id).state == "sent"
    assert run_beat_job() == []
    time.sleep(1)  # every chance for a second copy to arrive
    assert sorted(envelope.rcpt_tos[0] for envelope in mailbox.messages) == [CONTACT, CONTACT]
    for execution_id in ids:
        assert reminder(execution_id).attempts == 1
        assert reminded_at(execution_id) is not None
        assert actions_of(execution_id) == ["execution.reminder_owed", "reminder_email.sent"]
    with fresh_read() as session:
        statuses = {
            row.execution_id: row.status for row in session.scalars(select(PurchaseExecution))
        }
    assert statuses == {soon.execution_id: "pending", later.execution_id: "approved"}


def test_the_message_names_the_time_the_money_and_what_will_be_bought(
    app, committed_db, celery_worker, mailbox, settings
):
    with unit_of_work() as session:
        row = scheduled_row(session, Status.APPROVED, 5, approved_by=CONTACT)
        when = when_text(row.scheduled_for)

    run_beat_job()

    assert settled(row.execution_id).state == "sent"
    (envelope,) = wait_until(lambda: mailbox.messages, what="the reminder")
    subject, text, html = parts(envelope)
    assert subject == (f"Scheduled purchase at {when}: 2 commitments, $4,200.00 over the term")
    for body in (text, html):
        assert when in body and "in 4 hours" in body
        assert "$1,200.00" in body  # upfront
        assert "$150.00" in body  # monthly
        assert "$4,200.00" in body  # over the term
        assert "$786.00" in body  # estimated savings a year
        assert "m5.large" in body and "c5.xlarge" in body
        assert "x1e.32xlarge" not in body and "9,999" not in body  # not selected
        assert f"approved (by {CONTACT})" in body
        assert f"{settings.app_base_url}{DETAILS_PATH}{row.execution_id}" in body


def test_a_pending_row_is_told_it_needs_approval_and_a_freeze_is_named(
    app, committed_db, celery_worker, mailbox
):
    with unit_of_work() as session:
        plan = make_plan(session)
        plan.enabled = False
        row = scheduled_row(session, Status.PENDING, 1, plan_id=plan.id, step_number=2)
        session.add(PurchaseFreeze(reason="bad recommendations run", frozen_by="admin@x.com"))

    run_beat_job()

    assert settled(row.execution_id).state == "sent"
    (envelope,) = wait_until(lambda: mailbox.messages, what="the reminder")
    subject, text, _ = parts(envelope)
    assert subject.endswith(", awaiting approval")
    assert "It still needs approval" in text
    assert "(plan step 2)" in text
    assert "Purchases are frozen (bad recommendations run)" in text
    assert "Its plan 'ramp' is paused" in text


def test_rows_outside_the_window_or_past_waiting_get_none(
    app, committed_db, celery_worker, mailbox, settings, monkeypatch
):
    with unit_of_work() as session:
        beyond = scheduled_row(session, Status.APPROVED, 25)
        past = scheduled_row(session, Status.APPROVED, -1)
        cancelled = scheduled_row(session, Status.CANCELLED, 1)
        running = scheduled_row(session, Status.RUNNING, 1)
        failed = scheduled_row(session, Status.FAILED, 1)
        unscheduled = scheduled_row(session, Status.PENDING, 1, scheduled_for=None)
        never = [past, cancelled, running, failed, unscheduled]

    assert run_beat_job() == []
    for row in [beyond, *never]:
        assert reminder(row.execution_id) is None and reminded_at(row.execution_id) is None

    # An hour on, as far as the window is concerned: the row 25 hours out is now in it.
    wider = settings.with_overrides(schedule_reminder_hours=26)
    monkeypatch.setitem(app.extensions, "settings", wider)
    assert run_beat_job() == [str(beyond.execution_id)]
    assert settled(beyond.execution_id).state == "sent"
    time.sleep(0.5)
    assert len(mailbox.messages) == 1
    for row in never:
        assert reminder(row.execution_id) is None and actions_of(row.execution_id) == []


def test_a_row_cancelled_after_its_reminder_was_owed_gets_none(
    app, committed_db, celery_worker, mailbox
):
    with unit_of_work() as session:
        row = scheduled_row(session, Status.PENDING, 3)
        owed = reminders.owe_schedule_reminders(session, now=utcnow(), ahead=timedelta(hours=24))
    assert owed == [row.execution_id]
    with unit_of_work() as session:  # the approver cancels before the task runs
        session.execute(
            update(PurchaseExecution)
            .where(PurchaseExecution.execution_id == row.execution_id)
            .values(status=Status.CANCELLED.value, cancelled_by=CONTACT)
        )

    app.extensions["celery"].send_task(SEND_REMINDER_EMAIL, args=[str(row.execution_id)])

    assert settled(row.execution_id).state == "skipped"
    time.sleep(0.5)
    assert mailbox.messages == []


def test_zero_hours_turns_reminders_off(
    app, committed_db, celery_worker, mailbox, settings, monkeypatch
):
    monkeypatch.setitem(
        app.extensions, "settings", settings.with_overrides(schedule_reminder_hours=0)
    )
    with unit_of_work() as session:
        row = scheduled_row(session, Status.APPROVED, 0.5)

    assert run_beat_job() == []
    assert run_beat_job() == []
    time.sleep(0.5)
    assert mailbox.messages == []
    assert reminder(row.execution_id) is None and reminded_at(row.execution_id) is None
    assert actions_of(row.execution_id) == []


def test_a_reminder_nobody_may_receive_fails_and_leaves_the_row_alone(
    app, committed_db, celery_worker, mailbox
):
    """No contact, no creator, nobody with approve-any: the reminder fails with the
    reason, and the row stays approved and scheduled (only an approval email's failure
    fails its row)."""
    with unit_of_work() as session:
        account = make_account(session, contact_email=None)
        row = scheduled_row(session, Status.APPROVED, 2, cloud_account_id=account.id)

    run_beat_job()

    failed = settled(row.execution_id)
    assert (failed.state, failed.error) == ("failed", reminders.NO_REMINDER_RECIPIENT)
    with fresh_read() as session:
        assert session.get(PurchaseExecution, row.execution_id).status == "approved"
    assert actions_of(row.execution_id) == ["execution.reminder_owed", "reminder_email.failed"]
    assert mailbox.messages == []


def test_a_lost_reminder_task_is_queued_again_by_the_sweep(
    app, committed_db, celery_worker, mailbox
):
    """Beat owed the reminder and committed, then the broker lost its task: the sweep
    hands it to the reminder task."""
    long_ago = utcnow() - UNSTARTED_AFTER - timedelta(minutes=1)
    with unit_of_work() as session:
        row = scheduled_row(session, Status.APPROVED, 6)
        reminders.owe_schedule_reminders(session, now=utcnow(), ahead=timedelta(hours=24))
        session.flush()
        session.execute(update(Notification).values(due_at=long_ago))

    assert recover_lapsed_work.delay().get(timeout=30)["emails"] == 1

    assert settled(row.execution_id).state == "sent"
    time.sleep(0.5)
    assert [envelope.rcpt_tos for envelope in mailbox.messages] == [[CONTACT]]


def test_the_setting_and_its_beat_entry(app):
    assert Settings.from_env({}).schedule_reminder_hours == 24
    assert Settings.from_env({"SCHEDULE_REMINDER_HOURS": "0"}).schedule_reminder_hours == 0
    for bad in ("-1", "soon", "100000"):
        with pytest.raises(ConfigError, match="SCHEDULE_REMINDER_HOURS"):
            Settings.from_env({"SCHEDULE_REMINDER_HOURS": bad})
    schedule = app.extensions["celery"].conf.beat_schedule
    assert SEND_SCHEDULE_REMINDERS in {entry["task"] for entry in schedule.values()}
