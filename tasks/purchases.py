"""The purchase tasks. Thin: the rules live in `app.services.retry` and
`app.services.executor`; these tasks own the transactions and what follows them.

- `purchases.retry_execution(request_id)`: settle one retry request.
- `purchases.retry_batch_chunk(batch_id, chunk)`: settle one chunk of a bulk retry.
- `purchases.execute(execution_id)`: run one approved execution.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from celery import Task

from app import background, get_settings
from app.db import unit_of_work, utcnow
from app.domain.retry import RequestState
from app.domain.statuses import Status
from app.providers import current_registry
from app.services import approvals, bulk_retry, bulk_settle, executor, retry
from tasks.notifications import SEND_APPROVAL_EMAIL, SEND_APPROVAL_EMAILS, SEND_OUTCOME_EMAIL
from tasks.transient import database_task, is_transient_database_error

log = logging.getLogger(__name__)


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
            policy=retry.current_policy(),
            approvals=approvals.current_policy(),
            grace=timedelta(days=settings.grace_period_days),
            now=utcnow(),
        )
        outcome = retry.request_outcome(request) if request is not None else None
    if outcome is not None and outcome["state"] == RequestState.SUCCEEDED:
        background.enqueue(SEND_APPROVAL_EMAIL, [outcome["execution_id"]])
    return outcome


def _fail_chunk(batch_id: str, chunk: int, *, reason: str) -> None:
    with unit_of_work() as session:
        bulk_settle.fail_items(session, uuid.UUID(batch_id), chunk, reason, now=utcnow())


@database_task(bulk_retry.CHUNK_TASK, give_up=_fail_chunk, ignore_result=True)
def retry_batch_chunk(task: Task, batch_id: str, chunk: int) -> int:
    """Settle a chunk of a bulk retry in one transaction, then queue its approval emails
    (one task: one SMTP connection).

    A redelivered chunk writes nothing twice: its items are claimed once. It queues the
    chunk's emails again, which sends none twice: each email is claimed once. Should the
    chunk's transaction fail for a reason other than a database hiccup, its rows are
    settled one at a time, so one bad row fails alone.
    """
    settings = get_settings()
    batch = uuid.UUID(batch_id)
    settle = functools.partial(
        bulk_settle.settle_chunk,
        batch_id=batch,
        chunk=chunk,
        policy=retry.current_policy(),
        approvals=approvals.current_policy(),
        grace=timedelta(days=settings.grace_period_days),
    )
    try:
        with unit_of_work() as session:
            settle(session, now=utcnow())
            created = bulk_settle.chunk_successors(session, batch, chunk)
    except Exception as exc:
        if is_transient_database_error(exc):
            raise
        log.warning("bulk retry %s chunk %s: settling row by row after %r", batch_id, chunk, exc)
        created = _settle_row_by_row(settle, batch, chunk)
    if created:
        background.enqueue(SEND_APPROVAL_EMAILS, [str(id_) for id_ in created])
    return len(created)


def _settle_row_by_row(
    settle: Callable[..., list[uuid.UUID]], batch: uuid.UUID, chunk: int
) -> list[uuid.UUID]:
    with unit_of_work() as session:
        positions = bulk_settle.queued_positions(session, batch, chunk)
    for position in positions:
        try:
            with unit_of_work() as session:
                settle(session, now=utcnow(), positions=[position])
        except Exception as exc:
            if is_transient_database_error(exc):
                raise
            reason = f"{type(exc).__name__}: {exc}"[:2000]
            with unit_of_work() as session:
                bulk_settle.fail_items(
                    session, batch, chunk, reason, now=utcnow(), positions=[position]
                )
    with unit_of_work() as session:
        return bulk_settle.chunk_successors(session, batch, chunk)


def _abandon(execution_id: str, *, reason: str) -> None:
    with unit_of_work() as session:
        failed = executor.abandon(session, uuid.UUID(execution_id), reason, now=utcnow())
    if failed:
        background.enqueue(SEND_OUTCOME_EMAIL, [execution_id])


@database_task(approvals.EXECUTE_TASK, give_up=_abandon, ignore_result=True)
def execute(task: Task, execution_id: str) -> str | None:
    """Run an approved execution: `running`, one purchase per selected item, then its
    final status; its outcome email is queued after that commits.

    A redelivery finds the row no longer `approved` and does nothing. Should the run
    break off (an error in the worker), the row fails at once with the reason, ready
    for a retry that buys only what the lineage has not bought.
    """
    with unit_of_work() as session:
        started = executor.start(
            session, uuid.UUID(execution_id), policy=approvals.current_policy(), now=utcnow()
        )
    if started is None:
        return None
    if isinstance(started, Status):  # settled at once: the approval no longer stands
        status: Status | None = started
    else:
        status = _run(execution_id, started)
    if status is not None:
        background.enqueue(SEND_OUTCOME_EMAIL, [execution_id])
    return None if status is None else status.value


def _run(execution_id: str, started: executor.Run) -> Status | None:
    try:
        return executor.run(started, current_registry())
    except Exception as exc:
        _abandon(execution_id, reason=f"interrupted: {type(exc).__name__}: {exc}"[:2000])
        raise
