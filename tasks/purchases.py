"""`purchases.retry_execution`: settle one retry request. Thin: the rules live in
`app.services.retry`; this task owns the transaction, the retries and what follows it."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from celery import Task

from app import get_settings
from app.db import unit_of_work, utcnow
from app.domain.retry import RequestState
from app.models import RetryRequest
from app.services import retry
from tasks.notifications import send_approval_email
from tasks.transient import DATABASE_MAX_RETRIES, backoff_seconds, is_transient_database_error
from tasks.worker import celery

log = logging.getLogger(__name__)


# The outcome is recorded on the retry request; Flower sees it through task events.
@celery.task(name=retry.RETRY_TASK, bind=True, max_retries=DATABASE_MAX_RETRIES, ignore_result=True)
def retry_execution(self: Task, request_id: str) -> dict[str, Any]:
    """Re-check the request against fresh rows and permissions, then write or refuse.

    A redelivery of a settled request writes nothing. A transient database error is
    retried with backoff; any other error (or the last transient one) marks the request
    `failed` with the reason and fails the task, so it shows in Flower and the logs.
    After the commit, and only then, a succeeded request's approval email is queued
    (again on redelivery: the email task sends once per execution).
    """
    settings = get_settings()
    key = uuid.UUID(request_id)
    try:
        with unit_of_work() as session:
            request = retry.settle_request(
                session,
                key,
                policy=retry.policy_from(settings),
                grace=timedelta(days=settings.grace_period_days),
                now=utcnow(),
            )
            if request is None:
                request = session.get(RetryRequest, key)
            outcome = {
                "request_id": request_id,
                "state": request.state if request else None,
                "execution_id": str(request.successor_execution_id)
                if request and request.successor_execution_id
                else None,
            }
    except Exception as exc:
        if is_transient_database_error(exc) and self.request.retries < self.max_retries:
            raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries)) from exc
        _record_failure(key, exc)
        raise
    if outcome["state"] == RequestState.SUCCEEDED and outcome["execution_id"]:
        send_approval_email.delay(outcome["execution_id"])
    return outcome


def _record_failure(request_id: uuid.UUID, exc: BaseException) -> None:
    reason = f"{type(exc).__name__}: {exc}"[:2000]
    log.error("retry request %s failed: %s", request_id, reason)
    with unit_of_work() as session:
        retry.record_failure(session, request_id, reason, now=utcnow())
