"""The reminder before a scheduled execution starts, through the outbox.

Beat owes it (`owe_schedule_reminders`), once per row: the conditional UPDATE that
picks a row marks `purchase_executions.reminder_sent_at` in the transaction that
records the notification, so two beat runs at once remind it once. A task then claims
it like every other email (`app.services.notifications.claim_where`, under a lease)
and sends it to the people who may still decide or stop the purchase
(`claim_reminder_email`).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import exists, insert, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain.approvals import ApprovalPolicy
from app.domain.outbox import SENDABLE_WHILE, NotificationKind, NotificationState
from app.models import Notification, PurchaseExecution, PurchasePlan
from app.services import audit, channels, reminder_email, schedules
from app.services.approvers import Approvers
from app.services.deliveries import OutgoingEmail, give_up, outgoing, settle
from app.services.notifications import FROM_EMAIL_MISSING, claim_where

NO_REMINDER_RECIPIENT = "no recipient for the reminder: nobody may approve this execution"
REMINDER = NotificationKind.REMINDER.value


def owe_schedule_reminders(session: Session, *, now: datetime, ahead: timedelta) -> list[uuid.UUID]:
    """Record the reminder of every `pending` or `approved` row whose `scheduled_for`
    is still in the future and no more than `ahead` away, and that has had none: each
    row is marked (`reminder_sent_at`) by the conditional UPDATE that picks it, in the
    transaction that owes its email, so two beat runs at once remind it once. Audited
    as `execution.reminder_owed`. Returns the rows, for the caller to queue their
    emails after the commit. `updated_at` stays: a reminder is no progress."""
    if ahead <= timedelta(0):
        return []
    owed = session.execute(
        update(PurchaseExecution)
        .where(
            PurchaseExecution.status.in_(
                [status.value for status in SENDABLE_WHILE[NotificationKind.REMINDER]]
            ),
            PurchaseExecution.scheduled_for.is_not(None),
            PurchaseExecution.scheduled_for > now,
            PurchaseExecution.scheduled_for <= now + ahead,
            PurchaseExecution.reminder_sent_at.is_(None),
            ~exists().where(
                Notification.execution_id == PurchaseExecution.execution_id,
                Notification.kind == REMINDER,
            ),
        )
        .values(reminder_sent_at=now, updated_at=PurchaseExecution.updated_at)
        .returning(PurchaseExecution.execution_id, PurchaseExecution.scheduled_for)
        .execution_options(synchronize_session=False)
    ).all()
    if not owed:
        return []
    session.execute(
        insert(Notification),
        [{"execution_id": id_, "kind": REMINDER, "due_at": now} for id_, _ in owed],
    )
    channels.owe_schedule_reminder(session, [id_ for id_, _ in owed], now=now)
    hours = ahead.total_seconds() / 3600
    audit.record_all(
        session,
        (
            audit.event(
                "execution.reminder_owed",
                execution_id=id_,
                details={"scheduled_for": when and when.isoformat(), "hours_ahead": hours},
            )
            for id_, when in owed
        ),
    )
    return [id_ for id_, _ in owed]


def claim_reminder_email(
    session: Session, execution_id: uuid.UUID, *, owner: str, settings: Settings, now: datetime
) -> list[OutgoingEmail]:
    """Claim the execution's reminder and prepare one message per recipient, or settle
    it at once.

    It goes to the people the approval email goes to (`Approvers.recipients`): those
    who may still decide, or stop, the purchase. It is skipped when there is nothing
    left to remind of: the row is no longer pending or approved, or its time has come
    (run now, or the send was retried past it). With no FROM_EMAIL or nobody who may
    approve, it fails for good with the reason in its `error` and the audit trail; the
    execution stays as it is.
    """
    claimed = claim_where(
        session,
        Notification.execution_id == execution_id,
        NotificationKind.REMINDER,
        owner=owner,
        now=now,
    )
    if not claimed:
        return []
    notification, execution = claimed[0]
    if execution.scheduled_for is None or execution.scheduled_for <= now:
        settle(notification, NotificationState.SKIPPED, now)
        return []
    policy = ApprovalPolicy(require_different_approver=settings.require_different_approver)
    recipients = Approvers(session).recipients(execution, policy)
    problem = (
        FROM_EMAIL_MISSING
        if not settings.from_email
        else (None if recipients else NO_REMINDER_RECIPIENT)
    )
    if problem is not None:
        give_up(session, notification, problem, now=now)
        return []
    holds = _holds(session, execution)
    account = execution.cloud_account
    return [
        outgoing(
            notification,
            recipient.email,
            reminder_email.render(
                execution,
                account,
                settings=settings,
                recipient=recipient.email,
                now=now,
                holds=holds,
            ),
        )
        for recipient in recipients
    ]


def _holds(session: Session, execution: PurchaseExecution) -> list[str]:
    """What would keep the row from starting at its time, as the reminder says it."""
    holds = []
    freeze = schedules.active_freeze(session)
    if freeze is not None:
        holds.append(
            f"Purchases are frozen ({freeze.reason}): it waits until the freeze is lifted."
        )
    if execution.plan_id is not None:
        plan = session.get(PurchasePlan, execution.plan_id)
        if plan is not None and not plan.enabled:
            holds.append(f"Its plan {plan.name!r} is paused: it waits until the plan is resumed.")
    return holds
