"""Retry end to end through a real Celery worker, Redis, PostgreSQL and an SMTP server."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from app.db import unit_of_work
from app.domain.statuses import Status
from app.models import (
    ApprovalToken,
    AuditEvent,
    PurchaseExecution,
    PurchaseSuppression,
    RetryRequest,
)
from app.services import notifications, retry, successors
from app.services.identity import principal_for
from tasks.notifications import SEND_APPROVAL_EMAIL
from tests.factories import make_account, make_execution, make_user, recommendation
from tests.support.commands import start_worker, stop_worker, wait_until
from tests.support.smtp import ScriptedSmtp, free_port

pytestmark = pytest.mark.worker


@pytest.fixture
def scripted_smtp(app, settings, monkeypatch):
    """Start SMTP servers on demand; the app's settings point at the latest one."""
    controllers: list[Controller] = []

    def start(reply: str | None = None, port: int | None = None, **overrides) -> ScriptedSmtp:
        handler = ScriptedSmtp(reply)
        port = port or free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        point_settings_at(port, **overrides)
        return handler

    def point_settings_at(port: int, **overrides) -> None:
        changed = settings.with_overrides(smtp_port=port, **overrides)
        monkeypatch.setitem(app.extensions, "settings", changed)

    start.point_settings_at = point_settings_at
    yield start
    for controller in controllers:
        controller.stop()


def failed_row(session, creator, **fields):
    account = make_account(session, contact_email="finops@example.com")
    items = [
        recommendation(count=2, upfront_cost="1000.00", monthly_savings="40.00"),
        recommendation(resource_type="c5.xlarge", count=1, upfront_cost="500.00"),
        recommendation(resource_type="r5.large", region="eu-west-1", count=3),
    ]
    values = {
        "error": "InsufficientInstanceCapacity",
        "recommendations": items,
        "cloud_account_id": account.id,
        "total_upfront_cost": "4200.00",
        "estimated_savings": "310.25",
    }
    return make_execution(session, Status.FAILED, created_by=creator, **(values | fields))


def queue_retry(user, execution_id, *, force=False):
    with unit_of_work() as session:
        request = retry.request_retry(
            session,
            principal_for(session.merge(user)),
            execution_id,
            force=force,
            policy=retry.RetryPolicy(),
        )
    retry.enqueue_retry(request)
    return request.id


def settled(request_id, timeout=30) -> RetryRequest:
    def load():
        with unit_of_work() as session:
            found = session.get(RetryRequest, request_id, populate_existing=True)
            return found if found.state != "queued" else None

    return wait_until(load, timeout=timeout, what=f"retry request {request_id} to settle")


def execution(execution_id) -> PurchaseExecution:
    with unit_of_work() as session:
        return session.get(PurchaseExecution, execution_id, populate_existing=True)


def email_settled(execution_id, timeout=30) -> PurchaseExecution:
    def load():
        row = execution(execution_id)
        return row if row.notification_sent_at or row.status != Status.PENDING else None

    return wait_until(load, timeout=timeout, what="the approval email to be sent or fail")


def test_retry_through_the_worker_sends_one_approval_email(committed_db, celery_worker, mailbox):
    with unit_of_work() as session:
        alice = make_user(session)
        predecessor = failed_row(session, alice)
    request = settled(queue_retry(alice, predecessor.execution_id))
    assert request.state == "succeeded"
    successor = email_settled(request.successor_execution_id)
    assert successor.status == Status.PENDING
    assert execution(predecessor.execution_id).retry_execution_id == successor.execution_id

    wait_until(lambda: mailbox.messages, what="the email at the SMTP server")
    (envelope,) = mailbox.messages
    assert envelope.rcpt_tos == ["finops@example.com"]
    assert envelope.mail_from == "purchases@example.com"
    message = message_from_bytes(envelope.original_content, policy=default_policy)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "$4,200.00" in text and "$310.25" in text and "$4,200.00" in html
    assert sum(line.startswith("- aws ec2") for line in text.splitlines()) == 3
    assert html.count("<tr><td>aws ec2") == 3

    links = {}
    for action in ("approve", "cancel"):
        line = next(line for line in text.splitlines() if line.startswith(f"{action.title()}:"))
        url = urlsplit(line.split(":", 1)[1].strip())
        assert url.path == f"/purchases/{action}/{successor.execution_id}"
        (links[action],) = parse_qs(url.query)["token"]
        assert f'href="http://127.0.0.1:5000/purchases/{action}/{successor.execution_id}' in html
    assert links["approve"] != links["cancel"]  # a token opens one action
    assert successor.approval_token_hash == hashlib.sha256(links["approve"].encode()).hexdigest()
    with unit_of_work() as session:
        stored = {token.action: token for token in session.scalars(select(ApprovalToken))}
        for action, token in links.items():
            assert stored[action].token_hash == hashlib.sha256(token.encode()).hexdigest()
            assert token not in stored[action].token_hash
            assert notifications.token_opens(
                session, successor.execution_id, action, token, now=successor.notification_sent_at
            )
    # The links expire 168 hours after they were made, just before the message was sent.
    ttl = successor.approval_token_expires_at - successor.notification_sent_at
    assert timedelta(hours=168) - timedelta(seconds=5) < ttl <= timedelta(hours=168)


def test_the_same_task_delivered_twice_creates_one_successor_and_one_email(
    app, committed_db, celery_worker, mailbox
):
    with unit_of_work() as session:
        alice = make_user(session)
        predecessor = failed_row(session, alice)
        request = retry.request_retry(
            session,
            principal_for(alice),
            predecessor.execution_id,
            force=False,
            policy=retry.RetryPolicy(),
        )
    for _ in range(2):  # what a redelivery after a lost ack looks like to the worker
        app.extensions["celery"].send_task(
            retry.RETRY_TASK, args=[str(request.id)], task_id=request.task_id
        )
    done = settled(request.id)
    email_settled(done.successor_execution_id)
    time.sleep(1)  # give a second delivery every chance to do harm
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(PurchaseExecution)) == 2
        succeeded = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "retry.succeeded")
        ).all()
        assert len(succeeded) == 1
    assert len(mailbox.messages) == 1


def test_smtp_down_then_up_delivers_once(committed_db, celery_worker, scripted_smtp):
    port = free_port()
    scripted_smtp.point_settings_at(port, email_retry_base_seconds=0.2)
    with unit_of_work() as session:
        alice = make_user(session)
        predecessor = failed_row(session, alice)
    successor_id = settled(queue_retry(alice, predecessor.execution_id)).successor_execution_id
    time.sleep(1.0)  # several attempts find nothing listening
    down = execution(successor_id)
    assert (down.status, down.notification_sent_at) == (Status.PENDING, None)

    server = scripted_smtp(port=port, email_retry_base_seconds=0.2)
    sent = email_settled(successor_id)
    assert sent.notification_sent_at is not None and sent.status == Status.PENDING
    time.sleep(0.5)
    assert len(server.messages) == 1


def test_a_permanent_refusal_fails_the_successor_and_keeps_its_lineage(
    committed_db, celery_worker, scripted_smtp
):
    scripted_smtp("550 5.1.1 mailbox unavailable")
    with unit_of_work() as session:
        alice = make_user(session)
        predecessor = failed_row(session, alice)
    successor_id = settled(queue_retry(alice, predecessor.execution_id)).successor_execution_id
    failed = email_settled(successor_id)
    assert failed.status == Status.FAILED
    assert failed.error == "send failed: 550 5.1.1 mailbox unavailable"
    assert execution(predecessor.execution_id).retry_execution_id == successor_id
    with unit_of_work() as session:
        left = session.scalars(
            select(PurchaseSuppression).where(PurchaseSuppression.execution_id == successor_id)
        ).all()
        assert left == []  # nothing is in flight any more


def test_a_transient_failure_is_retried_then_fails_the_same_way(
    committed_db, celery_worker, scripted_smtp
):
    server = scripted_smtp(
        "451 4.3.0 try again later", email_retry_base_seconds=0.1, email_max_retries=2
    )
    with unit_of_work() as session:
        alice = make_user(session)
        predecessor = failed_row(session, alice)
    successor_id = settled(queue_retry(alice, predecessor.execution_id)).successor_execution_id
    failed = email_settled(successor_id)
    assert failed.error == "send failed: 451 4.3.0 try again later"
    assert server.messages == []


def test_without_from_email_the_successor_fails_and_a_retry_gets_the_hint(
    committed_db, celery_worker, scripted_smtp, mailbox
):
    scripted_smtp(from_email=None)
    with unit_of_work() as session:
        alice = make_user(session)
        predecessor = failed_row(session, alice)
    successor_id = settled(queue_retry(alice, predecessor.execution_id)).successor_execution_id
    failed = email_settled(successor_id)
    assert (failed.status, failed.error) == (
        Status.FAILED,
        "FROM_EMAIL not configured for this deployment",
    )
    with pytest.raises(retry.DomainError) as refused:
        queue_retry(alice, successor_id)
    assert refused.value.status == 409
    assert refused.value.details == {
        "ops_hint": "Set FROM_EMAIL, then retry",
        "failure_reason": "FROM_EMAIL not configured for this deployment",
    }


def test_an_unexpected_error_marks_the_request_failed_with_the_reason(
    committed_db, celery_worker, monkeypatch
):
    def crash(*_args, **_kwargs):
        raise RuntimeError("suppression table is gone")

    monkeypatch.setattr(successors, "insert_suppressions", crash)
    with unit_of_work() as session:
        alice = make_user(session)
        predecessor = failed_row(session, alice)
    request = settled(queue_retry(alice, predecessor.execution_id))
    assert request.state == "failed"
    assert request.error == "RuntimeError: suppression table is gone"
    assert execution(predecessor.execution_id).retry_execution_id is None
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(PurchaseExecution)) == 1


def test_thirty_concurrent_retries_through_two_worker_processes(
    app, settings, committed_db, redis_db, mailbox
):
    env = {
        "SMTP_HOST": mailbox.host,
        "SMTP_PORT": str(mailbox.port),
        "FROM_EMAIL": "purchases@example.com",
    }
    workers = [start_worker(settings, f"racer{i}", **env) for i in range(2)]
    try:
        control = app.extensions["celery"].control
        wait_until(lambda: len(control.ping(timeout=0.5)) == 2, timeout=60, what="both workers")
        with unit_of_work() as session:
            buyer = make_user(session, groups=("Purchasers",))
            predecessor = failed_row(session, make_user(session))
        with unit_of_work() as session:
            requests = [
                retry.request_retry(
                    session,
                    principal_for(session.merge(buyer)),
                    predecessor.execution_id,
                    force=False,
                    policy=retry.RetryPolicy(),
                )
                for _ in range(30)
            ]
        for request in requests:
            retry.enqueue_retry(request)
        outcomes = [settled(request.id, timeout=90) for request in requests]
        wait_until(lambda: mailbox.messages, timeout=30, what="the approval email")
        time.sleep(1)
    finally:
        logs = [stop_worker(worker) for worker in workers]

    states = sorted(outcome.state for outcome in outcomes)
    assert states == ["rejected"] * 29 + ["succeeded"], logs
    (winner,) = [outcome for outcome in outcomes if outcome.state == "succeeded"]
    for loser in outcomes:
        if loser is not winner:
            assert loser.refusal_status == 409
            assert loser.details == {"retry_execution_id": str(winner.successor_execution_id)}
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(PurchaseExecution)) == 2
    assert len(mailbox.messages) == 1


def test_two_deliveries_of_the_email_task_at_once_send_one_email(
    app, committed_db, celery_worker, mailbox
):
    """Two workers pick up the same approval email together. (Before, on SQLite, both
    passed the `notification_sent_at` check and both sent; only the last copy's links
    worked.)"""
    with unit_of_work() as session:
        alice = make_user(session)
        account = make_account(session)
        row = make_execution(
            session,
            Status.PENDING,
            created_by=alice,
            cloud_account_id=account.id,
            recommendations=[recommendation()],
        )
        notifications.owe_approval_email(session, row.execution_id)
    for _ in range(2):
        app.extensions["celery"].send_task(SEND_APPROVAL_EMAIL, args=[str(row.execution_id)])
    email_settled(row.execution_id)
    time.sleep(1)  # give the second delivery every chance to do harm
    assert len(mailbox.messages) == 1
