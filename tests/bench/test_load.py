"""`bench.load`: its end-of-run checks catch what they promise to, and a short run of a
few operators settles everything exactly once, on either database."""

from __future__ import annotations

import signal
from email.message import EmailMessage
from types import SimpleNamespace

import pytest
from sqlalchemy.orm import Session

from app.db import db
from app.domain.statuses import Status
from bench import load, services
from bench.mail import CountingSmtp
from tests.conftest import TEST_REDIS_URL
from tests.factories import make_execution


def approval_email(execution_id: object) -> SimpleNamespace:
    """An approval email as the SMTP server keeps it (an envelope's raw content)."""
    message = EmailMessage()
    message["Subject"] = "Approval needed: 1 commitment purchase, $10.00 upfront"
    message["To"] = "finops@bench.example"
    message.set_content(f"Approve: http://127.0.0.1/purchases/approve/{execution_id}?t=x\n")
    return SimpleNamespace(original_content=message.as_bytes())


def no_requests(*samples: load.Sample) -> load.Phase:
    return load.Phase(1, 1.0, list(samples), [f"{s.action}: {s.status}" for s in samples])


def test_the_checks_catch_a_second_successor_a_doubled_or_missing_email_and_a_5xx(
    committed_db: Session,
) -> None:
    successor = make_execution(committed_db, Status.PENDING, retry_attempt_n=1)
    make_execution(
        committed_db, Status.FAILED, retry_execution_id=successor.execution_id, error="boom"
    )
    second = make_execution(committed_db, Status.PENDING, retry_attempt_n=1)
    committed_db.commit()
    engine = db.engine
    tables = load.request_tables(engine)
    handler = CountingSmtp()
    handler.messages.extend([approval_email(successor.execution_id)] * 2)

    violations, _ = load.check(
        engine, tables, handler, no_requests(load.Sample("list", 500, 0.1)), no_requests()
    )

    found = "\n".join(violations)
    assert f"1 successors no predecessor points at: ['{second.execution_id}']" in found
    assert "1 successors emailed for approval more than once" in found
    assert f"1 pending successors never emailed: ['{second.execution_id}']" in found
    assert "1 answers 5xx" in found

    # The same world without the faults passes.
    committed_db.delete(second)
    committed_db.commit()
    handler.messages[:] = [approval_email(successor.execution_id)]
    assert load.check(engine, tables, handler, no_requests(), no_requests())[0] == []


@pytest.mark.processes
def test_a_short_load_settles_everything_exactly_once(backend: str) -> None:
    # Small, and one process of each kind, to start fast on a busy machine.
    small = "--operators 3 --seconds 3 --baseline-seconds 1 --rows 300 --accounts 3"
    one_each = "--web-workers 1 --worker-processes 1 --worker-concurrency 1"
    args = load.parse_args(
        [*small.split(), *one_each.split(), "--db", backend, "--settle-seconds", "30"]
    )
    args.redis_url = TEST_REDIS_URL  # the suite's own Redis database
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert services.run(lambda borrowed: load.measure(args, borrowed), args) == 0
    finally:
        signal.signal(signal.SIGTERM, previous)
