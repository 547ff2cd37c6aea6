"""The name of every task, in one place: the web layer queues tasks by name (it never
imports `tasks`), the worker declares them under these names, and Flower and the logs
show them. A test checks that each one is registered with the worker's Celery app.
"""

from __future__ import annotations

from app.domain.outbox import NotificationKind

# A retry, single or bulk: one chunk of a batch (a single retry is a batch of one).
RETRY = "purchases.retry_execution"
# Run one approved execution.
EXECUTE = "purchases.execute"

SEND_APPROVAL_EMAIL = "notifications.send_approval_email"
# The approval emails of a retry's chunk, over one SMTP connection.
SEND_APPROVAL_EMAILS = "notifications.send_approval_emails"
# A bulk retry's approval emails: one digest per person, once the batch is settled.
SEND_APPROVAL_DIGEST = "notifications.send_approval_digest"
SEND_OUTCOME_EMAIL = "notifications.send_outcome_email"
# A bulk retry's outcome emails: one digest per creator of the rows that ended together.
SEND_OUTCOME_DIGEST = "notifications.send_outcome_digest"
# The reminder before a scheduled execution starts.
SEND_REMINDER_EMAIL = "notifications.send_reminder_email"
# The task that sends each kind of email (the sweep queues lost ones through it).
SEND_EMAIL_OF_KIND = {
    NotificationKind.APPROVAL: SEND_APPROVAL_EMAIL,
    NotificationKind.OUTCOME: SEND_OUTCOME_EMAIL,
    NotificationKind.REMINDER: SEND_REMINDER_EMAIL,
}
# The task that sends a bulk retry's digest of each kind.
SEND_DIGEST_OF_KIND = {
    NotificationKind.APPROVAL: SEND_APPROVAL_DIGEST,
    NotificationKind.OUTCOME: SEND_OUTCOME_DIGEST,
}

EXPIRE_PENDING = "maintenance.expire_pending_executions"
REAP_STUCK = "maintenance.reap_stuck_executions"
RECOVER_LAPSED = "maintenance.recover_lapsed_work"
FORGET_SIGN_IN_FAILURES = "maintenance.forget_old_sign_in_failures"
# Scheduled purchases whose time has come, handed to the executor.
RELEASE_DUE = "maintenance.release_due"
# Owe the reminders of scheduled executions that start within SCHEDULE_REMINDER_HOURS.
SEND_SCHEDULE_REMINDERS = "maintenance.send_schedule_reminders"
# Notification channels: send one outbox message; beat's check of money stuck in failures.
SEND_CHANNEL_MESSAGE = "channels.send"
CHECK_FAILED_MONEY = "channels.check_failed_money"

ALL = (
    RETRY,
    EXECUTE,
    SEND_APPROVAL_EMAIL,
    SEND_APPROVAL_EMAILS,
    SEND_APPROVAL_DIGEST,
    SEND_OUTCOME_EMAIL,
    SEND_OUTCOME_DIGEST,
    EXPIRE_PENDING,
    REAP_STUCK,
    RECOVER_LAPSED,
    FORGET_SIGN_IN_FAILURES,
    RELEASE_DUE,
    SEND_REMINDER_EMAIL,
    SEND_SCHEDULE_REMINDERS,
    SEND_CHANNEL_MESSAGE,
    CHECK_FAILED_MONEY,
)
