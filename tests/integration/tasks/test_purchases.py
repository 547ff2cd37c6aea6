"""Retry end to end through a real Celery worker, Redis, PostgreSQL and an SMTP server."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from app import task_names
from app.db import unit_of_work
from app.domain.statuses import Status
from app.models import (
    ApprovalToken,
    AuditEvent,
    PurchaseExecution,
)
from app.services import retry, successors
from app.services.identity import principal_for
from tests.factories import link_opens, make_user
from tests.integration.tasks.flows import (
    email_settled,
    execution,
    failed_row,
    queue_retry,
    settled,
)
from tests.support.commands import start_worker, stop_worker, wait_until
from tests.support.retries import request_retry
from tests.support.smtp import read

pytestmark = pytest.mark.worker


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
    mail = read(envelope)
    text, html = mail.text, mail.html
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
            assert link_opens(
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
        request = request_retry(session, principal_for(alice), predecessor.execution_id)
    for _ in range(2):  # what a redelivery after a lost ack looks like to the worker
        app.extensions["celery"].send_task(
            task_names.RETRY, args=[str(request.id), 0], task_id="one-task-id"
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
                request_retry(
                    session, principal_for(session.merge(buyer)), predecessor.execution_id
                )
                for _ in range(30)
            ]
        for request in requests:
            retry.enqueue_chunks(request)
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
