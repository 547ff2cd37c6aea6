"""Bulk retry end to end through a real Celery worker, Redis, the database and SMTP."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from kombu import Connection
from sqlalchemy import func, select, update

from app.db import db, unit_of_work, utcnow
from app.domain.bulk_retry import CHUNK_SIZE
from app.domain.errors import DomainError
from app.domain.statuses import Status
from app.models import AuditEvent, Notification, PurchaseExecution, PurchaseSuppression
from app.services import approvals, retry, retry_batches, retry_settle, successors
from app.services.identity import principal_for
from tests.conftest import drain
from tests.factories import make_account, make_execution, make_user, recommendation
from tests.integration.tasks.flows import execution, failed_row
from tests.support.commands import wait_until

pytestmark = pytest.mark.worker


def ask(user, body):
    with unit_of_work() as session:
        principal = principal_for(session.merge(user))
    return retry.ask_for_bulk_retry(principal, body)


def done(batch_id, timeout=60):
    def load():
        with unit_of_work() as session:
            batch = retry_batches.find_batch(session, _admin(session), str(batch_id))
            body = retry_batches.batch_as_dict(session, batch)
        return body if body["state"] == "done" else None

    return wait_until(load, timeout=timeout, what=f"batch {batch_id} to finish")


def _admin(session):
    from app.domain.rbac import Principal

    return Principal(None, "test@example.com", frozenset({"admin:*"}))


def approval_emails_for(mailbox, execution_ids) -> Counter:
    """How many approval emails name each successor (its id is in the links)."""
    found: Counter = Counter()
    for mail in mailbox.received():
        for execution_id in execution_ids:
            if f"/purchases/approve/{execution_id}?" in mail.text:
                found[execution_id] += 1
    return found


def test_every_row_gets_its_own_outcome_in_the_single_retry_s_order(
    committed_db, celery_worker, mailbox
):
    with unit_of_work() as session:
        alice = make_user(session)
        bob = make_user(session)
        mine = failed_row(session, alice)
        persistent = failed_row(session, alice, error="AccessDenied: IAM denied for ec2:Purchase")
        not_mine = failed_row(session, bob)
        at_threshold = failed_row(session, alice, retry_attempt_n=5)
        already = failed_row(session, alice)
        already.retry_execution_id = make_execution(session, created_by=alice).execution_id
    unknown = uuid.uuid4()
    batch = ask(
        alice,
        {
            "execution_ids": [
                str(mine.execution_id),
                str(persistent.execution_id),
                str(not_mine.execution_id),
                str(at_threshold.execution_id),
                str(already.execution_id),
                "not-an-id",
                str(unknown),
                str(mine.execution_id).upper(),  # the same row again: once per batch
            ]
        },
    )
    assert batch.total == 7

    body = done(batch.id)
    items = {item["execution_id"]: item for item in body["items"]}
    assert (body["succeeded"], body["rejected"], body["failed"]) == (1, 6, 0)
    successor = items[str(mine.execution_id)]["successor_execution_id"]
    assert items[str(mine.execution_id)]["state"] == "succeeded"
    assert execution(mine.execution_id).retry_execution_id == uuid.UUID(successor)
    assert items[str(persistent.execution_id)]["status_code"] == 409
    assert items[str(persistent.execution_id)]["ops_hint"].startswith("Grant the purchasing role")
    assert items[str(not_mine.execution_id)]["status_code"] == 403
    assert items[str(at_threshold.execution_id)]["threshold"] == 5
    assert items[str(already.execution_id)]["retry_execution_id"] == str(already.retry_execution_id)
    assert items["not-an-id"]["status_code"] == 400
    assert items[str(unknown)]["status_code"] == 404
    # Nothing but the one successor was written; its email went out, once.
    for refused in (persistent, not_mine, at_threshold):
        assert execution(refused.execution_id).retry_execution_id is None
    wait_until(lambda: approval_emails_for(mailbox, [successor]), what="the approval email")
    assert approval_emails_for(mailbox, [successor]) == {successor: 1}
    with unit_of_work() as session:
        actions = Counter(session.scalars(select(AuditEvent.action)))
    assert actions["retry.batch_requested"] == 1
    assert actions["retry.succeeded"] == 1 and actions["retry.rejected"] == 6


def test_many_chunks_one_successor_each_and_one_digest_over_one_connection(
    committed_db, celery_worker, mailbox
):
    rows = CHUNK_SIZE + 20
    with unit_of_work() as session:
        alice = make_user(session, groups=("Purchasers",))
        account = make_account(session, contact_email="finops@example.com")
        ids = [
            make_execution(
                session,
                Status.FAILED,
                created_by=alice,
                cloud_account_id=account.id,
                error="InsufficientInstanceCapacity",
                recommendations=[recommendation(), recommendation(resource_type="c5.xlarge")],
            ).execution_id
            for _ in range(rows)
        ]
    sessions_before = mailbox.handler.sessions
    batch = ask(alice, {"filter": {"cloud_account_id": str(account.id)}})
    assert batch.total == rows

    body = done(batch.id)
    assert body["succeeded"] == rows
    new_ids = [item["successor_execution_id"] for item in body["items"]]
    wait_until(lambda: mailbox.messages, timeout=60, what="the digest")
    time.sleep(0.5)  # a second message would arrive about now
    # The account's contact gets one email naming every successor, once.
    assert len(mailbox.messages) == 1
    assert approval_emails_for(mailbox, new_ids) == dict.fromkeys(new_ids, 1)
    assert mailbox.handler.sessions - sessions_before == 1
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(PurchaseSuppression)) == rows * 2
        linked = session.scalars(
            select(PurchaseExecution.retry_execution_id).where(
                PurchaseExecution.execution_id.in_(ids)
            )
        ).all()
        assert sorted(map(str, linked)) == sorted(new_ids)
        sent = session.scalar(
            select(func.count()).select_from(Notification).where(Notification.state == "sent")
        )
        assert sent == rows


def test_one_row_that_breaks_the_chunk_fails_alone(committed_db, celery_worker, monkeypatch):
    with unit_of_work() as session:
        alice = make_user(session)
        good = [failed_row(session, alice) for _ in range(3)]
        bad = failed_row(session, alice, recommendations=[recommendation(region="break-me")])
    real = successors.insert_suppressions

    def crash_on_bad_row(session, rows, **kwargs):
        if any(row["recommendations"][0]["region"] == "break-me" for row in rows):
            raise RuntimeError("suppression index corrupt")
        return real(session, rows, **kwargs)

    monkeypatch.setattr(successors, "insert_suppressions", crash_on_bad_row)
    batch = ask(alice, {"execution_ids": [str(row.execution_id) for row in [*good, bad]]})

    body = done(batch.id)
    items = {item["execution_id"]: item for item in body["items"]}
    assert (body["succeeded"], body["failed"]) == (3, 1)
    assert items[str(bad.execution_id)]["error"] == "RuntimeError: suppression index corrupt"
    assert execution(bad.execution_id).retry_execution_id is None
    for row in good:
        assert execution(row.execution_id).retry_execution_id is not None


def test_a_redelivered_chunk_writes_nothing_twice(committed_db, celery_worker, mailbox, redis_db):
    with unit_of_work() as session:
        alice = make_user(session)
        rows = [failed_row(session, alice) for _ in range(4)]
    batch = ask(alice, {"execution_ids": [str(row.execution_id) for row in rows]})
    first = done(batch.id)
    new_ids = [item["successor_execution_id"] for item in first["items"]]
    wait_until(lambda: len(approval_emails_for(mailbox, new_ids)) == 4, what="4 emails")

    retry.enqueue_chunks(batch, [0])  # the broker delivers the same chunk again
    drain(redis_db, ["purchases", "notifications"])  # it, and the email task it queues
    assert done(batch.id)["items"] == first["items"]
    assert set(approval_emails_for(mailbox, new_ids).values()) == {1}
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(PurchaseExecution)) == 8


def test_a_request_is_refused_whole_only_for_its_shape_or_a_requester_who_may_retry_nothing(
    committed_db,
):
    with unit_of_work() as session:
        reader = make_user(session, groups=("Read-only",))
        alice = make_user(session)
    with pytest.raises(DomainError) as refused:
        ask(reader, {"execution_ids": [str(uuid.uuid4())]})
    assert refused.value.status == 403
    for body in (
        None,
        [],
        {"execution_ids": []},
        {"execution_ids": [str(uuid.uuid4())] * 10_001},
        {"execution_ids": [7]},
        {"execution_ids": ["x"], "filter": {}},
        {"filter": {"colour": "red"}},
        {"filter": {"created_after": "yesterday"}},
        {"execution_ids": ["x"], "force": "yes"},
    ):
        with pytest.raises(DomainError) as refused:
            ask(alice, body)
        assert refused.value.status == 400, body
    with unit_of_work() as session:
        from app.models import RetryBatch

        assert session.scalar(select(func.count()).select_from(RetryBatch)) == 0
        refusals = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "retry.batch_refused")
        )
    assert refusals == 10


def test_the_worker_checks_each_row_again_as_it_is_then(committed_db, redis_db):
    with unit_of_work() as session:
        alice = make_user(session)
        rows = [failed_row(session, alice) for _ in range(3)]
    batch = ask(alice, {"execution_ids": [str(row.execution_id) for row in rows]})
    with unit_of_work() as session:  # meanwhile: one row is retried, one revoked
        session.merge(rows[0]).retry_execution_id = make_execution(
            session, created_by=alice
        ).execution_id
        session.merge(rows[1]).created_by_user_id = make_user(session).id
    with unit_of_work() as session:
        retry_settle.claim_chunk(session, batch.id, 0, owner="test-run", now=utcnow())
        created = retry_settle.settle_chunk(
            session,
            batch.id,
            0,
            owner="test-run",
            policy=retry.current_policy(),
            approvals=approvals.current_policy(),
            grace=timedelta(days=7),
            now=utcnow(),
        )
    items = done(batch.id, timeout=1)["items"]
    assert [item["state"] for item in items] == ["rejected", "rejected", "succeeded"]
    assert items[0]["retry_execution_id"] and items[1]["status_code"] == 403
    assert [uuid.UUID(items[2]["successor_execution_id"])] == created


def test_a_chunk_redelivered_after_its_worker_was_killed_mid_way_writes_and_sends_once(
    settings, worker_processes, mailbox, redis_db, backend
):
    """The worker is killed -9 inside the chunk's transaction (held there by a lock the
    test takes); the broker then redelivers the unacknowledged message to a new worker."""
    with unit_of_work() as session:
        alice = make_user(session)
        rows = [failed_row(session, alice) for _ in range(6)]
    batch = ask(alice, {"execution_ids": [str(row.execution_id) for row in rows]})

    with db.engine.connect() as blocker:
        blocker.begin()
        if backend == "sqlite":  # the chunk waits for the write lock, which a write takes
            blocker.execute(
                update(PurchaseExecution)
                .where(PurchaseExecution.execution_id == rows[-1].execution_id)
                .values(error=PurchaseExecution.error)
            )
        else:  # the chunk inserts its successors, then waits to link the last row
            blocker.execute(
                select(PurchaseExecution.execution_id)
                .where(PurchaseExecution.execution_id == rows[-1].execution_id)
                .with_for_update()
            )
        doomed = worker_processes("doomed", wait=False)
        wait_until(lambda: redis_db.hlen("unacked"), what="the worker to take the chunk")
        if backend == "sqlite":
            time.sleep(0.5)
        else:
            wait_until(_waiting_on_a_lock, what="the chunk to block")
        doomed.kill()
        doomed.wait(timeout=10)
        blocker.rollback()

    assert done_or_none(batch.id) is None  # nothing of the chunk was committed
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(PurchaseExecution)) == 6
    _redeliver_unacknowledged(settings.redis_url)
    worker_processes("survivor")

    body = done(batch.id)
    assert body["succeeded"] == 6
    new_ids = [item["successor_execution_id"] for item in body["items"]]
    wait_until(lambda: len(approval_emails_for(mailbox, new_ids)) == 6, what="6 emails")
    time.sleep(1.0)  # a second copy would arrive about now
    assert set(approval_emails_for(mailbox, new_ids).values()) == {1}
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(PurchaseExecution)) == 12


def done_or_none(batch_id):
    with unit_of_work() as session:
        batch = retry_batches.find_batch(session, _admin(session), str(batch_id))
        body = retry_batches.batch_as_dict(session, batch)
    return body if body["state"] != "queued" else None


def _waiting_on_a_lock() -> bool:
    """A fresh connection each time: PostgreSQL snapshots pg_stat_activity for the rest
    of a transaction."""
    with db.engine.connect() as connection:
        waiting = connection.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return waiting.scalar() > 0


def _redeliver_unacknowledged(redis_url: str) -> None:
    """What Redis does for a dead worker's message once the visibility timeout has
    passed (an hour in production): put it back on its queue, now."""
    with Connection(redis_url, transport_options={"visibility_timeout": 0}) as connection:
        connection.default_channel.qos.restore_visible()
