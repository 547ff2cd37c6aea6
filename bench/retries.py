"""Failed executions to retry, and the checks that every retry of them succeeded and
sent one approval email: seeded with the test suite's factories (`tests.factories`),
checked in the database and at the SMTP server.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.domain.statuses import Status
from bench import BenchError, wait_for
from bench.mail import CountingSmtp
from bench.processes import Product
from tests.factories import make_account, make_execution, make_user, recommendation

# Signs in with `tests.factories.PASSWORD`.
ADMIN_EMAIL = "admin@bench.example"
CONTACT_EMAIL = "finops@bench.example"
FAILURE = "purchase failed: InsufficientInstanceCapacity in us-east-1a"
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2")
INSTANCE_TYPES = ("m5.large", "m5.xlarge", "c5.2xlarge", "r5.large", "t3.medium")
PAYMENT_OPTIONS = ("no-upfront", "partial-upfront", "all-upfront")


def failed_recommendations(rng: random.Random) -> list[dict[str, Any]]:
    items = []
    for _ in range(rng.randint(1, 3)):
        upfront = Decimal(rng.randint(100, 5000))
        items.append(
            recommendation(
                region=rng.choice(REGIONS),
                resource_type=rng.choice(INSTANCE_TYPES),
                count=rng.randint(1, 8),
                term_years=rng.choice((1, 3)),
                payment_option=rng.choice(PAYMENT_OPTIONS),
                upfront_cost=str(upfront),
                monthly_savings=str((upfront / 30).quantize(Decimal("0.01"))),
                error="InsufficientInstanceCapacity",
            )
        )
    return items


def seed(engine: Engine, *counts: int) -> list[list[uuid.UUID]]:
    """An administrator, an account with a contact email, and a list of failed executions
    of theirs for each of `counts` (a warm-up, a timed run...)."""
    rng = random.Random(20240601)  # noqa: S311 - reproducible data, not security
    with Session(engine) as session, session.begin():
        admin = make_user(session, ADMIN_EMAIL, ("Administrators",))
        account = make_account(session, contact_email=CONTACT_EMAIL)

        def failed() -> uuid.UUID:
            items = failed_recommendations(rng)
            upfront = sum(Decimal(item["upfront_cost"]) for item in items)
            savings = sum(Decimal(item["monthly_savings"]) for item in items) * 12
            return make_execution(
                session,
                Status.FAILED,
                created_by=admin,
                cloud_account_id=account.id,
                recommendations=items,
                error=FAILURE,
                total_upfront_cost=upfront,
                estimated_savings=savings,
            ).execution_id

        return [[failed() for _ in range(count)] for count in counts]


def wait_for_mail(
    handler: CountingSmtp,
    timeout: float,
    product: Product,
    engine: Engine,
    rows: Sequence[uuid.UUID],
) -> None:
    """Until the expected emails have arrived; fails early if a process dies or a retry
    goes wrong (checked once a second: more often would load the machine measured)."""

    def arrived() -> bool:
        if handler.done.wait(1.0):
            return True
        product.check_alive("the run")
        failures = failures_among(engine, rows)
        if failures:
            raise BenchError("retries went wrong during the run:\n  " + "\n  ".join(failures))
        return False

    wait_for(
        arrived,
        timeout=timeout,
        what=f"{handler.expected} approval emails",
        context=lambda: f"only {len(handler.times)} arrived; see the logs",
    )


FAILURES = text(
    "SELECT 'retry request ' || r.state || ': ' || coalesce(r.error, ''), count(*)"
    " FROM retry_requests r"
    " WHERE r.execution_id = ANY(:ids) AND r.state IN ('rejected', 'failed')"
    " GROUP BY 1"
    " UNION ALL"
    " SELECT 'successor failed: ' || coalesce(s.error, ''), count(*)"
    " FROM purchase_executions p"
    " JOIN purchase_executions s ON s.execution_id = p.retry_execution_id"
    " WHERE p.execution_id = ANY(:ids) AND s.status = 'failed'"
    " GROUP BY 1"
)


def failures_among(engine: Engine, rows: Sequence[uuid.UUID]) -> list[str]:
    """Settled-but-wrong outcomes so far: a refused or failed retry request, or a successor
    that failed (its approval email could not be sent). Empty while all is well."""
    with engine.connect() as conn:
        found = conn.execute(FAILURES, {"ids": list(rows)}).all()
    return [f"{count} x {what}" for what, count in found]


# Of the retries of `ids`: succeeded requests, all requests, pending successors,
# successors with notification_sent_at, and approval notifications sent at their first
# attempt (the outbox: one email per successor, none sent again).
COUNTS = text(
    "SELECT"
    " (SELECT count(*) FROM retry_requests"
    "   WHERE execution_id = ANY(:ids) AND state = 'succeeded'),"
    " (SELECT count(*) FROM retry_requests WHERE execution_id = ANY(:ids)),"
    " (SELECT count(*) FROM purchase_executions p"
    "   JOIN purchase_executions s ON s.execution_id = p.retry_execution_id"
    "   WHERE p.execution_id = ANY(:ids) AND s.status = 'pending'),"
    " (SELECT count(*) FROM purchase_executions p"
    "   JOIN purchase_executions s ON s.execution_id = p.retry_execution_id"
    "   WHERE p.execution_id = ANY(:ids) AND s.notification_sent_at IS NOT NULL),"
    " (SELECT count(*) FROM purchase_executions p"
    "   JOIN notifications n ON n.execution_id = p.retry_execution_id"
    "   WHERE p.execution_id = ANY(:ids) AND n.kind = 'approval' AND n.state = 'sent'"
    "   AND n.attempts = 1)"
)
STATES = text(
    "SELECT state, count(*), min(error) FROM retry_requests"
    " WHERE execution_id = ANY(:ids) GROUP BY state"
)
TIMELINE = text(
    "SELECT r.execution_id, s.execution_id,"
    " extract(epoch FROM r.created_at), extract(epoch FROM r.finished_at),"
    " extract(epoch FROM n.claimed_at)"
    " FROM retry_requests r"
    " JOIN purchase_executions s ON s.execution_id = r.successor_execution_id"
    " JOIN notifications n ON n.execution_id = s.execution_id AND n.kind = 'approval'"
    " WHERE r.execution_id = ANY(:ids)"
)


@dataclass
class Timeline:
    """When each stage of the retries happened (epoch seconds)."""

    predecessor_of: dict[str, uuid.UUID]  # by successor id, as the emails name it
    request_created: list[float]  # the web's transaction start
    task_settled: list[float]  # the retry task's start
    email_claimed: list[float]  # the email task's start


def verify(engine: Engine, rows: Sequence[uuid.UUID], timeout: float = 30.0) -> Timeline:
    """N of each of `COUNTS`, waiting a little for the commits that follow the SMTP
    accept; raises BenchError on any mismatch."""
    ids = list(rows)
    counts: list[tuple[int, ...]] = [()]

    def settled() -> bool:
        with engine.connect() as conn:
            counts[0] = tuple(conn.execute(COUNTS, {"ids": ids}).one())
        return counts[0] == (len(ids),) * 5

    def mismatch() -> str:
        succeeded, requests, successors, notified, sent_once = counts[0]
        with engine.connect() as conn:
            states = [tuple(row) for row in conn.execute(STATES, {"ids": ids})]
        return (
            f"expected {len(ids)} of each; got {succeeded} succeeded of {requests} retry "
            f"requests, {successors} pending successors, {notified} with "
            f"notification_sent_at, {sent_once} approval notifications sent at the first "
            f"attempt; request states: {states}"
        )

    wait_for(settled, timeout=timeout, what="every retry to be recorded", context=mismatch)
    with engine.connect() as conn:
        found = conn.execute(TIMELINE, {"ids": ids}).all()
    return Timeline(
        predecessor_of={str(row[1]): row[0] for row in found},
        request_created=[float(row[2]) for row in found],
        task_settled=[float(row[3]) for row in found],
        email_claimed=[float(row[4]) for row in found],
    )


def check_emails(handler: CountingSmtp, timeline: Timeline) -> list[str]:
    """The successor each email names, in arrival order; one email per successor."""
    named = handler.approved_ids()
    if None in named or len(set(named)) != len(timeline.predecessor_of):
        raise BenchError("the emails do not name N distinct successors")
    unknown = [successor for successor in named if successor not in timeline.predecessor_of]
    if unknown:
        raise BenchError(f"{len(unknown)} emails name executions that are not successors")
    return [successor for successor in named if successor is not None]
