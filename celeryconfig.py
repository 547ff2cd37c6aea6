"""Celery settings, and only those: JSON only, at-least-once delivery, queues, beat.

Read by `app.background.celery_init_app`, which then points the broker and the result
backend at the Redis of the app's validated `Settings` (REDIS_URL), read once.
"""

from __future__ import annotations

from celery.schedules import crontab
from kombu import Queue

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

# Hard limit for one run, and the longest delay a task's retries wait in total. The
# visibility timeout must exceed both together, or Redis redelivers a task (or an ETA
# retry) that is still legitimately waiting.
TASK_TIME_LIMIT_SECONDS = 300
MAX_RETRY_DELAY_SECONDS = 30 * 60
VISIBILITY_TIMEOUT_SECONDS = 2 * (TASK_TIME_LIMIT_SECONDS + MAX_RETRY_DELAY_SECONDS)
task_time_limit = TASK_TIME_LIMIT_SECONDS
task_soft_time_limit = TASK_TIME_LIMIT_SECONDS - 30
broker_transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS}
result_backend_transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS}

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
    "maintenance.*": {"queue": "maintenance"},
}

timezone = "UTC"
enable_utc = True
beat_schedule = {
    "expire-pending-executions": {
        "task": "maintenance.expire_pending_executions",
        "schedule": crontab(minute="*/5"),
    },
    "reap-stuck-executions": {
        "task": "maintenance.reap_stuck_executions",
        "schedule": crontab(minute="*"),
    },
    "requeue-unstarted-executions": {
        "task": "maintenance.requeue_unstarted_executions",
        "schedule": crontab(minute="*"),
    },
    "requeue-stalled-retry-requests": {
        "task": "maintenance.requeue_stalled_retry_requests",
        "schedule": crontab(minute="*/5"),
    },
    "requeue-stalled-retry-batches": {
        "task": "maintenance.requeue_stalled_retry_batches",
        "schedule": crontab(minute="*/5"),
    },
    "requeue-lost-approval-emails": {
        "task": "maintenance.requeue_lost_approval_emails",
        "schedule": crontab(minute="*"),
    },
    "forget-old-sign-in-failures": {
        "task": "maintenance.forget_old_sign_in_failures",
        "schedule": crontab(minute="*/15"),
    },
}
