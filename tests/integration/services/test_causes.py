"""Failures by cause on both databases: the signature written with the failure, the
grouping against a hand count, the reader's scope, the history filter by cause, and
"mark fixed" with its audit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import db, unit_of_work, utcnow
from app.domain.causes import NO_ERROR, signature
from app.domain.errors import DomainError
from app.domain.rbac import DEFAULT_PERMISSIONS, Principal
from app.domain.retry import RetryPolicy
from app.domain.statuses import Status
from app.models import AuditEvent, CloudAccount, FailureCauseFix, PurchaseExecution
from app.services import causes, maintenance, transitions
from app.services.execution_reads import HistoryFilter, history_page
from app.services.identity import principal_for
from tests.factories import make_account, make_execution, make_user
from tests.support.statements import recorded_statements

NOW = datetime(2026, 12, 5, 17, 0, tzinfo=UTC)
READER = Principal(uuid.uuid4(), "reader@example.com", DEFAULT_PERMISSIONS)
POLICY = RetryPolicy()
CAPACITY = "InsufficientInstanceCapacity: no capacity for {} in us-east-1a after {} tries"
CAPACITY_SIGNATURE = signature(CAPACITY.format("r-1abc", 3))
IAM = "AccessDenied: IAM denied for ec2:PurchaseReservedInstancesOffering"
IAM_HINT = "Grant the purchasing role the missing IAM permission, then retry"


def failed(
    session: Session,
    error: str | None,
    account: CloudAccount | None,
    *,
    hours_ago: float,
    upfront: str = "0",
    savings: str = "0",
    status: Status = Status.FAILED,
    **fields,
) -> PurchaseExecution:
    return make_execution(
        session,
        status,
        error=error,
        cloud_account_id=account.id if account else None,
        total_upfront_cost=Decimal(upfront),
        estimated_savings=Decimal(savings),
        created_at=NOW - timedelta(hours=hours_ago),
        **fields,
    )


def test_a_row_inserted_failed_gets_its_signature(db_session):
    row = failed(db_session, CAPACITY.format("r-9", 12), None, hours_ago=1)
    done = make_execution(db_session, Status.COMPLETED, error="boom 3")
    blank = failed(db_session, None, None, hours_ago=1)
    assert row.failure_signature == CAPACITY_SIGNATURE
    assert done.failure_signature is None
    assert blank.failure_signature == NO_ERROR


def test_the_move_that_fails_a_row_writes_its_signature(db_session):
    pending = make_execution(db_session, Status.PENDING)
    running = make_execution(db_session, Status.RUNNING, updated_at=utcnow() - timedelta(hours=2))
    transitions.fail_pending(db_session, [pending.execution_id], "no approver 7", now=utcnow())
    maintenance.reap_stuck(db_session, now=utcnow(), after=timedelta(minutes=10))
    for row in (pending, running):
        db_session.refresh(row)
    assert (pending.status, pending.failure_signature) == ("failed", "no approver <n>")
    assert running.status == "failed"
    assert running.failure_signature == "reaped: no progress for more than <n> minutes"


def test_a_move_to_a_status_that_is_no_failure_clears_it(db_session):
    row = make_execution(db_session, Status.RUNNING, failure_signature="stale")
    transitions.move(
        db_session,
        PurchaseExecution.execution_id == row.execution_id,
        sources={Status.RUNNING},
        target=Status.COMPLETED,
        now=utcnow(),
        action="execution.completed",
        values={"error": None},
    )
    db_session.refresh(row)
    assert row.failure_signature is None


def seed(session: Session) -> dict[str, object]:
    """Three causes over two accounts (the money to count by hand is in each row)."""
    east = make_account(session)
    west = make_account(session, provider="gcp")
    rows = {
        "cap1": failed(
            session, CAPACITY.format("r-1", 3), east, hours_ago=5, upfront="100.10", savings="10.01"
        ),
        "cap2": failed(
            session,
            CAPACITY.format("r-22", 9),
            east,
            hours_ago=1,
            upfront="200.20",
            savings="20.02",
        ),
        "cap3": failed(
            session,
            CAPACITY.format("r-333x", 1),
            west,
            hours_ago=3,
            upfront="1000",
            savings="100",
            status=Status.PARTIALLY_COMPLETED,
        ),
        "iam1": failed(session, IAM, west, hours_ago=2, upfront="5000", savings="500"),
        "iam2": failed(session, IAM, west, hours_ago=4, upfront="5000", savings="500"),
        "odd": failed(
            session, "Throttling: slow down 7", east, hours_ago=6, upfront="1", savings="1"
        ),
        "unassigned": failed(session, "Throttling: slow down 8", None, hours_ago=7),
    }
    successor = make_execution(session, Status.PENDING)
    # Retried already: not an open failure, in no group.
    rows["retried"] = failed(
        session,
        CAPACITY.format("r-4", 2),
        east,
        hours_ago=0.5,
        upfront="9999",
        retry_execution_id=successor.execution_id,
    )
    make_execution(session, Status.COMPLETED, cloud_account_id=east.id)
    return {"east": east, "west": west, **rows}


def by_signature(found: causes.Causes) -> dict[str | None, causes.Cause]:
    return {cause.signature: cause for cause in found.causes}


def test_open_failures_grouped_by_cause_with_their_money(db_session):
    seeded = seed(db_session)
    found = causes.failure_causes(db_session, READER, POLICY)
    groups = by_signature(found)
    assert [cause.count for cause in found.causes] == [3, 2, 2]
    assert found.truncated is False

    capacity = groups[CAPACITY_SIGNATURE]
    assert (capacity.failed, capacity.partially_completed) == (2, 1)
    assert capacity.total_upfront_cost == Decimal("1300.30")
    assert capacity.estimated_savings == Decimal("130.03")
    assert capacity.newest_execution_id == seeded["cap2"].execution_id
    assert capacity.label == CAPACITY_SIGNATURE and capacity.ops_hint is None

    iam = groups[signature(IAM)]
    assert (iam.count, iam.label, iam.ops_hint) == (2, IAM_HINT, IAM_HINT)
    assert iam.total_upfront_cost == Decimal("10000.00")
    assert iam.newest_execution_id == seeded["iam1"].execution_id

    throttling = groups["Throttling: slow down <n>"]
    assert throttling.count == 2
    assert throttling.newest_execution_id == seeded["odd"].execution_id
    assert all(cause.fix is None for cause in found.causes)


def test_a_reader_narrowed_to_an_account_sees_no_other_accounts_causes_or_money(db_session):
    seeded = seed(db_session)
    east, west = seeded["east"], seeded["west"]
    found = causes.failure_causes(db_session, READER, POLICY, accounts=[east.id])
    groups = by_signature(found)
    # The IAM cause is the west account's only: not even its name is shown.
    assert set(groups) == {CAPACITY_SIGNATURE, "Throttling: slow down <n>"}
    capacity = groups[CAPACITY_SIGNATURE]
    assert (capacity.count, capacity.failed, capacity.partially_completed) == (2, 2, 0)
    assert capacity.total_upfront_cost == Decimal("300.30")
    assert capacity.estimated_savings == Decimal("30.03")
    assert groups["Throttling: slow down <n>"].count == 1  # the unassigned row is out
    west_only = by_signature(causes.failure_causes(db_session, READER, POLICY, accounts=[west.id]))
    assert west_only[CAPACITY_SIGNATURE].newest_execution_id == seeded["cap3"].execution_id
    assert west_only[CAPACITY_SIGNATURE].total_upfront_cost == Decimal("1000.00")
    assert causes.failure_causes(db_session, READER, POLICY, accounts=[]).causes == []


def test_reading_needs_view(db_session):
    nobody = Principal(uuid.uuid4(), "nobody@example.com", frozenset())
    with pytest.raises(DomainError) as refused:
        causes.failure_causes(db_session, nobody, POLICY)
    assert refused.value.status == 403


def test_the_largest_causes_only_when_there_are_many(db_session):
    for n in range(5):
        for _ in range(n + 1):
            failed(db_session, f"Error{'X' * n}: boom", None, hours_ago=1)
    found = causes.failure_causes(db_session, READER, POLICY, limit=3)
    assert found.truncated is True
    assert [cause.count for cause in found.causes] == [5, 4, 3]


def test_the_history_filter_by_cause(db_session):
    seeded = seed(db_session)
    page = history_page(db_session, HistoryFilter.parse({"cause": CAPACITY_SIGNATURE}), limit=50)
    assert [row.execution_id for row in page.rows] == [
        seeded[name].execution_id for name in ("retried", "cap2", "cap3", "cap1")
    ]
    narrowed = HistoryFilter.parse({"cause": CAPACITY_SIGNATURE, "status": "partially_completed"})
    assert [row.execution_id for row in history_page(db_session, narrowed, limit=50).rows] == [
        seeded["cap3"].execution_id
    ]
    for bad in ("x" * 201, "a\x00b"):
        with pytest.raises(DomainError) as refused:
            HistoryFilter.parse({"cause": bad})
        assert refused.value.status == 400


def test_mark_fixed_is_recorded_audited_and_shown(app, committed_db):
    with unit_of_work() as session:
        operator = make_user(session, groups=("Purchasers",))
        row = failed(session, IAM, None, hours_ago=1)
        failed_at = row.updated_at
    principal = principal_for(operator)
    fixed = causes.mark_fixed(principal, signature(IAM), "  granted the role  ")
    assert (fixed.signature, fixed.note, fixed.fixed_by_email) == (
        signature(IAM),
        "granted the role",
        operator.email,
    )
    with unit_of_work() as session:
        (event,) = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "failure_cause.fixed")
        )
        assert event.actor_user_id == operator.id
        assert event.details == {"signature": signature(IAM), "note": "granted the role"}
        (cause,) = causes.failure_causes(session, principal, POLICY).causes
        assert cause.fix is not None and cause.fix.fixed_by_email == operator.email
        assert cause.recurred is False
        assert cause.fix.fixed_at >= failed_at
        # It fails again after the fix: the page says so.
        failed(session, IAM, None, hours_ago=0, updated_at=utcnow() + timedelta(minutes=5))
    with unit_of_work() as session:
        (cause,) = causes.failure_causes(session, principal, POLICY).causes
        assert cause.count == 2 and cause.recurred is True


def test_mark_fixed_refusals_are_audited_and_record_nothing(app, committed_db):
    with unit_of_work() as session:
        reader = make_user(session, groups=("Read-only",))
        operator = make_user(session)
        failed(session, IAM, None, hours_ago=1)
    for who, raw, status in (
        (principal_for(reader), signature(IAM), 403),
        (principal_for(operator), "nothing failed like this", 404),
        (principal_for(operator), "x" * 500, 400),
        (principal_for(operator), None, 400),
    ):
        with pytest.raises(DomainError) as refused:
            causes.mark_fixed(who, raw)
        assert refused.value.status == status
    with unit_of_work() as session:
        assert session.scalars(select(FailureCauseFix)).all() == []
        refusals = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "failure_cause.fix_refused")
        ).all()
        assert [event.details["status"] for event in refusals] == [403, 404, 400, 400]


def test_the_page_costs_three_statements_however_many_rows_and_causes(db_session):
    def statements() -> list[str]:
        with recorded_statements(db.engine) as seen:
            causes.failure_causes(db_session, READER, POLICY)
        return seen

    seed(db_session)
    few = statements()
    for n in range(40):
        failed(db_session, f"Failure{'X' * n}: boom {n}", None, hours_ago=n % 5)
        failed(db_session, CAPACITY.format(f"r-{n}", n), None, hours_ago=1)
    assert len(few) == len(statements()) == 3
