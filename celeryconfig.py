"""Celery settings, and only those: JSON only, at-least-once delivery, queues, beat.

Read by `app.background.celery_init_app`, which then points the broker and the result
backend at the Redis of the app's validated `Settings` (REDIS_URL), read once.
"""

from __future__ import annotations

from celery.schedules import crontab
from kombu import Queue

from app import task_names
from app.domain.staleness import (
    SWEEP_EVERY,
    TASK_SOFT_TIME_LIMIT,
    TASK_TIME_LIMIT,
    VISIBILITY_TIMEOUT,
)

broker_connection_retry_on_startup = True

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]
result_expires = 24 * 3600

# At-least-once: a task is acknowledged only when it has finished, and a task whose
# worker died is redelivered. Every task is idempotent under redelivery.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1

# Derived from the product's staleness thresholds (app.domain.staleness): the visibility
# timeout outlasts the longest countdown and the longest run, and nothing waits on it.
task_time_limit = TASK_TIME_LIMIT.total_seconds()
task_soft_time_limit = TASK_SOFT_TIME_LIMIT.total_seconds()
broker_transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT.total_seconds()}
result_backend_transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT.total_seconds()}

# Monitoring (Flower): task events on, started state tracked.
worker_send_task_events = True
task_send_sent_event = True
task_track_started = True

# One queue per area; `celery -A tasks worker` consumes all of them.
task_queues = (Queue("purchases"), Queue("notifications"), Queue("maintenance"))
task_default_queue = "purchases"
task_routes = {
    "purchases.*": {"queue": "purchases"},
    "notifications.*": {"queue": "notifications"},
    "channels.*": {"queue": "notifications"},
    "maintenance.*": {"queue": "maintenance"},
}

timezone = "UTC"
enable_utc = True
beat_schedule = {
    "expire-pending-executions": {
        "task": task_names.EXPIRE_PENDING,
        "schedule": crontab(minute="*/5"),
    },
    "reap-stuck-executions": {
        "task": task_names.REAP_STUCK,
        "schedule": crontab(minute="*"),
    },
    # Work whose worker died or whose message was lost, queued again within seconds.
    "recover-lapsed-work": {
        "task": task_names.RECOVER_LAPSED,
        "schedule": SWEEP_EVERY.total_seconds(),
        "options": {"expires": SWEEP_EVERY.total_seconds()},
    },
    "forget-old-sign-in-failures": {
        "task": task_names.FORGET_SIGN_IN_FAILURES,
        "schedule": crontab(minute="*/15"),
    },
    # Scheduled purchases whose time has come, handed to the executor. The interval is
    # the operators' SCHEDULE_CHECK_SECONDS (`app.background.celery_init_app` sets it
    # from the validated settings); a run that waits longer than that is dropped, the
    # next one does its work.
    "release-due-executions": {
        "task": task_names.RELEASE_DUE,
        "schedule": 30.0,
        "options": {"expires": 30.0},
    },
    # The window is hours wide: a minute late is on time; a row is reminded once.
    "send-schedule-reminders": {
        "task": task_names.SEND_SCHEDULE_REMINDERS,
        "schedule": crontab(minute="*"),
    },
    # Money stuck in failed rows over CHANNEL_FAILED_MONEY_THRESHOLD: one digest a day.
    "check-failed-money": {
        "task": task_names.CHECK_FAILED_MONEY,
        "schedule": crontab(minute="*/5"),
    },
}
