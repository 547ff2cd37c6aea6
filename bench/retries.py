"""Failed executions to retry, and the checks that every retry of them succeeded and
sent one approval email: seeded with the test suite's factories (`tests.factories`)
and one multi-row insert, checked in the database and at the SMTP server. The retries
are one retry request per row (`SINGLE`, the single-click path) or a bulk batch's
items (`BULK`).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert, text
from sqlalchemy.orm import Session

from app.db import new_uuid, utcnow
from app.domain.statuses import Status
from app.models import PurchaseExecution
from bench import BenchError, wait_for
from bench.mail import CountingSmtp
from bench.processes import Product
from tests.factories import make_account, make_user, recommendation

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


def contact_email(account: int, accounts: int) -> str:
    """The contact of the account-th of `accounts` accounts (`CONTACT_EMAIL` when one)."""
    return CONTACT_EMAIL if accounts == 1 else f"finops-{account + 1:02d}@bench.example"


def seed(engine: Engine, *counts: int, accounts: int = 1) -> list[list[uuid.UUID]]:
    """An administrator, `accounts` cloud accounts with a contact email each, and a list
    of failed executions of theirs (spread over the accounts in turn) for each of
    `counts` (a warm-up, a timed run...).

    The executions go in with one multi-row INSERT per list (ORM bulk insert, so the
    model's column types apply), not a flush per row: 5,250 rows took 0.7 s against
    4.6 s flushed one at a time."""
    rng = random.Random(20240601)  # noqa: S311 - reproducible data, not security
    with Session(engine) as session, session.begin():
        admin = make_user(session, ADMIN_EMAIL, ("Administrators",))
        account_ids = [
            make_account(session, contact_email=contact_email(index, accounts)).id
            for index in range(accounts)
        ]
        now = utcnow()
        made: list[list[uuid.UUID]] = []
        serial = 0
        for count in counts:
            rows = []
            for _ in range(count):
                items = failed_recommendations(rng)
                upfront = sum(Decimal(item["upfront_cost"]) for item in items)
                savings = sum(Decimal(item["monthly_savings"]) for item in items) * 12
                rows.append(
                    {
                        "execution_id": new_uuid(),
                        "status": Status.FAILED.value,
                        "created_by_user_id": admin.id,
                        "cloud_account_id": account_ids[serial % accounts],
                        "recommendations": items,
                        "error": FAILURE,
                        "total_upfront_cost": upfront,
                        "estimated_savings": savings,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                serial += 1
            if rows:
                session.execute(insert(PurchaseExecution), rows)
            made.append([row["execution_id"] for row in rows])
        return made


@dataclass(frozen=True)
class Retries:
    """Where the retries of a run's rows are recorded: one retry request per row (the
    single-click path, `SINGLE`), or the items of bulk batches (`BULK`). `relation` is
    SQL for a derived table with one row per retry: the predecessor's `execution_id`
    (uuid), its `state` and `error`, the `successor_execution_id`, when it was asked
    for (`asked_at`, NULL when not recorded per row) and when it was settled
    (`settled_at`: the task's start)."""

    what: str
    relation: str


SINGLE = Retries(
    "retry request",
    "SELECT CAST(i.execution_id AS uuid) AS execution_id, i.state, i.error,"
    " i.successor_execution_id, b.created_at AS asked_at, i.settled_at"
    " FROM retry_batch_items i JOIN retry_batches b ON b.id = i.batch_id"
    " WHERE b.kind = 'single'",
)
# An item keeps the id as it was given (text); the benchmarks give only valid ids.
BULK = Retries(
    "batch item",
    "SELECT CAST(execution_id AS uuid) AS execution_id, state, error,"
    " successor_execution_id, CAST(NULL AS timestamptz) AS asked_at, settled_at"
    " FROM retry_batch_items i JOIN retry_batches b ON b.id = i.batch_id"
    " WHERE b.kind = 'bulk'",
)


def wait_for_mail(
    handler: CountingSmtp,
    timeout: float,
    product: Product,
    engine: Engine,
    rows: Sequence[uuid.UUID],
    retries: Retries = SINGLE,
) -> None:
    """Until the expected emails have arrived; fails early if a process dies or a retry
    goes wrong (checked once a second: more often would load the machine measured)."""

    def arrived() -> bool:
        if handler.done.wait(1.0):
            return True
        product.check_alive("the run")
        failures = failures_among(engine, rows, retries)
        if failures:
            raise BenchError("retries went wrong during the run:\n  " + "\n  ".join(failures))
        return False

    wait_for(
        arrived,
        timeout=timeout,
        what=f"{handler.expected} approval emails",
        context=lambda: f"only {len(handler.times)} arrived; see the logs",
    )


FAILURES = (
    "SELECT '{what} ' || r.state || ': ' || coalesce(r.error, ''), count(*)"
    " FROM ({relation}) r"
    " WHERE r.execution_id = ANY(:ids) AND r.state IN ('rejected', 'failed')"
    " GROUP BY 1"
    " UNION ALL"
    " SELECT 'successor failed: ' || coalesce(s.error, ''), count(*)"
    " FROM purchase_executions p"
    " JOIN purchase_executions s ON s.execution_id = p.retry_execution_id"
    " WHERE p.execution_id = ANY(:ids) AND s.status = 'failed'"
    " GROUP BY 1"
)


def _sql(template: str, retries: Retries) -> Any:
    return text(template.format(what=retries.what, relation=retries.relation))


def failures_among(
    engine: Engine, rows: Sequence[uuid.UUID], retries: Retries = SINGLE
) -> list[str]:
    """Settled-but-wrong outcomes so far: a refused or failed retry (request or batch
    item), or a successor that failed (its approval email could not be sent). Empty
    while all is well."""
    with engine.connect() as conn:
        found = conn.execute(_sql(FAILURES, retries), {"ids": list(rows)}).all()
    return [f"{count} x {what}" for what, count in found]


# Of the retries of `ids`: succeeded retries, all retries, pending successors,
# successors with notification_sent_at, and approval notifications sent at their first
# attempt (the outbox: one email per successor, none sent again).
COUNTS = (
    "SELECT"
    " (SELECT count(*) FROM ({relation}) r"
    "   WHERE r.execution_id = ANY(:ids) AND r.state = 'succeeded'),"
    " (SELECT count(*) FROM ({relation}) r WHERE r.execution_id = ANY(:ids)),"
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
STATES = (
    "SELECT r.state, count(*), min(r.error) FROM ({relation}) r"
    " WHERE r.execution_id = ANY(:ids) GROUP BY r.state"
)
TIMELINE = (
    "SELECT r.execution_id, s.execution_id,"
    " extract(epoch FROM r.asked_at), extract(epoch FROM r.settled_at),"
    " extract(epoch FROM n.claimed_at)"
    " FROM ({relation}) r"
    " JOIN purchase_executions s ON s.execution_id = r.successor_execution_id"
    " JOIN notifications n ON n.execution_id = s.execution_id AND n.kind = 'approval'"
    " WHERE r.execution_id = ANY(:ids)"
)


@dataclass
class Timeline:
    """When each stage of the retries happened (epoch seconds)."""

    predecessor_of: dict[str, uuid.UUID]  # by successor id, as the emails name it
    request_created: list[float]  # the web's transaction start (none for batch items)
    task_settled: list[float]  # the retry task's start (a batch chunk's start)
    email_claimed: list[float]  # the email task's start


def verify(
    engine: Engine,
    rows: Sequence[uuid.UUID],
    timeout: float = 30.0,
    retries: Retries = SINGLE,
) -> Timeline:
    """N of each of `COUNTS`, waiting a little for the commits that follow the SMTP
    accept; raises BenchError on any mismatch."""
    ids = list(rows)
    counts: list[tuple[int, ...]] = [()]

    def settled() -> bool:
        with engine.connect() as conn:
            counts[0] = tuple(conn.execute(_sql(COUNTS, retries), {"ids": ids}).one())
        return counts[0] == (len(ids),) * 5

    def mismatch() -> str:
        succeeded, requests, successors, notified, sent_once = counts[0]
        with engine.connect() as conn:
            states = [tuple(row) for row in conn.execute(_sql(STATES, retries), {"ids": ids})]
        return (
            f"expected {len(ids)} of each; got {succeeded} succeeded of {requests} "
            f"{retries.what}s, {successors} pending successors, {notified} with "
            f"notification_sent_at, {sent_once} approval notifications sent at the first "
            f"attempt; {retries.what} states: {states}"
        )

    wait_for(settled, timeout=timeout, what="every retry to be recorded", context=mismatch)
    with engine.connect() as conn:
        found = conn.execute(_sql(TIMELINE, retries), {"ids": ids}).all()
    return Timeline(
        predecessor_of={str(row[1]): row[0] for row in found},
        request_created=[float(row[2]) for row in found if row[2] is not None],
        task_settled=[float(row[3]) for row in found],
        email_claimed=[float(row[4]) for row in found],
    )


def check_emails(handler: CountingSmtp, timeline: Timeline) -> list[str]:
    """The successor each email names, in arrival order; one email per successor."""
    named = handler.approved_ids()
    if None in named or len(set(named)) != len(timeline.predecessor_of):
        raise BenchError("the emails do not name N distinct successors")
    if len(named) != len(timeline.predecessor_of):
        raise BenchError(
            f"{len(named)} emails for {len(timeline.predecessor_of)} successors (duplicates)"
        )
    unknown = [successor for successor in named if successor not in timeline.predecessor_of]
    if unknown:
        raise BenchError(f"{len(unknown)} emails name executions that are not successors")
    return [successor for successor in named if successor is not None]
