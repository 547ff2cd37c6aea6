"""The purchase tasks. Thin: the rules live in `app.services.retry_settle` and
`app.services.executor`; these tasks own the transactions, the leases and what follows
them.

- `purchases.retry_execution(batch_id, chunk)`: settle one chunk of a retry (a single
  retry is a batch of one: chunk 0).
- `purchases.execute(execution_id)`: run one approved execution.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

from celery import current_task

from app import background
from app.config import get_settings
from app.db import unit_of_work, utcnow
from app.domain.statuses import Status
from app.providers import current_registry
from app.services import approvals, digests, executor, leases, retry, retry_settle
from app.task_names import (
    EXECUTE,
    RETRY,
    SEND_APPROVAL_DIGEST,
    SEND_APPROVAL_EMAILS,
    SEND_OUTCOME_EMAIL,
)
from tasks.transient import ProductTask, database_task, is_transient_database_error

log = logging.getLogger(__name__)


def _fail_chunk(batch_id: str, chunk: int = 0, *, reason: str) -> None:
    """Give up on the chunk's items this run holds (or nobody does)."""
    owner = (current_task.request.id if current_task else None) or ""
    with unit_of_work() as session:
        retry_settle.fail_items(
            session, uuid.UUID(batch_id), chunk, reason, owner=owner, now=utcnow()
        )
    _send_digest_when_settled(uuid.UUID(batch_id))


# The outcome is recorded on the batch's items; Flower sees each run through task events.
@database_task(RETRY, give_up=_fail_chunk, ignore_result=True)
def retry_execution(task: ProductTask, batch_id: str, chunk: int = 0) -> int:
    """Settle a chunk of a retry in one transaction, under a lease on its items, then
    queue its approval emails: a single retry's at once; a bulk retry's, one digest per
    person, once its last chunk is settled.

    A redelivered chunk writes nothing twice: its items are settled once. A chunk
    another live run holds is left to it. Should the chunk's transaction fail for a
    reason other than a database hiccup, its rows are settled one at a time, so one bad
    row fails alone.
    """
    settings = get_settings()
    batch, owner = uuid.UUID(batch_id), task.run_id
    settle = functools.partial(
        retry_settle.settle_chunk,
        batch_id=batch,
        chunk=chunk,
        owner=owner,
        policy=retry.current_policy(),
        approvals=approvals.current_policy(),
        grace=timedelta(days=settings.grace_period_days),
    )
    with leases.holding(owner):
        with unit_of_work() as session:
            held = retry_settle.claim_chunk(session, batch, chunk, owner=owner, now=utcnow())
            single = retry_settle.is_single(session, batch)
        if not held:
            return 0
        try:
            with unit_of_work() as session:
                created = settle(session, now=utcnow())
        except Exception as exc:
            if is_transient_database_error(exc):
                raise
            log.warning("retry %s chunk %s: settling row by row after %r", batch_id, chunk, exc)
            created = _settle_row_by_row(settle, batch, chunk, owner)
    if single:
        if created:
            background.enqueue(SEND_APPROVAL_EMAILS, [str(id_) for id_ in created])
    else:
        _send_digest_when_settled(batch)
    return len(created)


def _send_digest_when_settled(batch_id: uuid.UUID) -> None:
    """Queue a bulk retry's digest once its last chunk has committed (asked after every
    chunk's commit, so the last one to commit sees the others; two that both see it
    queue the digest twice, and its claim sends it once)."""
    with unit_of_work() as session:
        due = digests.digest_due(session, batch_id)
    if due:
        background.enqueue(SEND_APPROVAL_DIGEST, [str(batch_id)])


def _settle_row_by_row(
    settle: Callable[..., list[uuid.UUID]], batch: uuid.UUID, chunk: int, owner: str
) -> list[uuid.UUID]:
    with unit_of_work() as session:
        positions = retry_settle.queued_positions(session, batch, chunk)
    created: list[uuid.UUID] = []
    for position in positions:
        try:
            with unit_of_work() as session:
                created += settle(session, now=utcnow(), positions=[position])
        except Exception as exc:
            if is_transient_database_error(exc):
                raise
            reason = f"{type(exc).__name__}: {exc}"[:2000]
            with unit_of_work() as session:
                retry_settle.fail_items(
                    session, batch, chunk, reason, owner=owner, now=utcnow(), positions=[position]
                )
    return created


def _abandon(execution_id: str, *, reason: str) -> None:
    with unit_of_work() as session:
        failed = executor.abandon(session, uuid.UUID(execution_id), reason, now=utcnow())
    if failed:
        background.enqueue(SEND_OUTCOME_EMAIL, [execution_id])


@database_task(EXECUTE, give_up=_abandon, ignore_result=True)
def execute(task: ProductTask, execution_id: str) -> str | None:
    """Run an approved execution: `running` (under a lease its heartbeat renews while
    the provider works), one purchase per selected item, then its final status; its
    outcome email is queued after that commits.

    A redelivery finds the row no longer `approved` and does nothing. Should the run
    break off (an error in the worker), the row fails at once with the reason, ready
    for a retry that buys only what the lineage has not bought; should the worker die,
    its lease lapses and the sweep fails the row the same way.
    """
    owner = task.run_id
    with leases.holding(owner):
        with unit_of_work() as session:
            started = executor.start(
                session,
                uuid.UUID(execution_id),
                owner=owner,
                policy=approvals.current_policy(),
                now=utcnow(),
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
