"""`purchases.retry_execution`: settle one retry request. Thin: the rules live in
`app.services.retry`; this task owns the transaction and what follows it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from celery import Task

from app import background, get_settings
from app.db import unit_of_work, utcnow
from app.domain.retry import RequestState
from app.services import retry
from tasks.notifications import SEND_APPROVAL_EMAIL
from tasks.transient import database_task


def _mark_failed(request_id: str, *, reason: str) -> None:
    with unit_of_work() as session:
        retry.record_failure(session, uuid.UUID(request_id), reason, now=utcnow())


# The outcome is recorded on the retry request; Flower sees it through task events.
@database_task(retry.RETRY_TASK, give_up=_mark_failed, ignore_result=True)
def retry_execution(task: Task, request_id: str) -> dict[str, Any] | None:
    """Re-check the request against fresh rows and permissions, then write or refuse.

    A redelivery of a settled request writes nothing and queues nothing. After the
    commit, and only then, a new successor's approval email is queued (it was recorded
    as owed with the successor; beat queues it again should this message be lost).
    """
    settings = get_settings()
    with unit_of_work() as session:
        request = retry.settle_request(
            session,
            uuid.UUID(request_id),
            policy=retry.policy_from(settings),
            grace=timedelta(days=settings.grace_period_days),
            now=utcnow(),
        )
        outcome = retry.request_outcome(request) if request is not None else None
    if outcome is not None and outcome["state"] == RequestState.SUCCEEDED:
        background.enqueue(SEND_APPROVAL_EMAIL, [outcome["execution_id"]])
    return outcome
