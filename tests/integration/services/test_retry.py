"""The retry service on each database: the request, the three writes, and their guards."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.db import unit_of_work, utcnow
from app.domain.approvals import ApprovalPolicy
from app.domain.errors import DomainError
from app.domain.retry import RetryPolicy
from app.domain.statuses import Status
from app.models import (
    AuditEvent,
    PurchaseExecution,
    PurchaseSuppression,
    RetryBatch,
    RetryBatchItem,
    User,
)
from app.services import audit, retry, retry_settle, successors
from app.services.identity import principal_for
from tests.factories import make_account, make_execution, make_plan, make_user, recommendation
from tests.support import retries

POLICY = RetryPolicy(threshold=5)
GRACE = timedelta(days=7)
APPROVALS = ApprovalPolicy()


def failed_purchase(session, creator, **fields):
    account = make_account(session)
    plan = make_plan(session)
    items = [
        recommendation(count=2, error="capacity", purchased=False),
        recommendation(count=3, purchased=True, purchase_id="ri-1"),
        recommendation(resource_type="c5.xlarge", count=1, engine="linux"),
        recommendation(resource_type="r5.large", count=0),
    ]
    defaults = {
        "error": "InsufficientInstanceCapacity",
        "recommendations": items,
        "cloud_account_id": account.id,
        "plan_id": plan.id,
        "step_number": 2,
        "total_upfront_cost": Decimal("4200.00"),
        "estimated_savings": Decimal("310.25"),
        "retry_attempt_n": 1,
    }
    return make_execution(session, Status.FAILED, created_by=creator, **(defaults | fields))


def actions(session, execution_id=None) -> list[str]:
    query = select(AuditEvent.action).order_by(AuditEvent.id)
    if execution_id is not None:
        query = query.where(AuditEvent.execution_id == execution_id)
    return list(session.scalars(query))


def settle(session, request, now=None, owner="test-run"):
    """What the worker's task does with a single retry: lease, then settle; None when
    there was nothing left to settle (a redelivery)."""
    now = now or utcnow()
    if not retry_settle.claim_chunk(session, request.id, 0, owner=owner, now=now):
        return None
    retry_settle.settle_chunk(
        session,
        request.id,
        0,
        owner=owner,
        policy=POLICY,
        approvals=APPROVALS,
        grace=GRACE,
        now=now,
    )
    return retries.request_state(session, request.id)


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_the_three_writes(db_session):
    alice = make_user(db_session)
    predecessor = failed_purchase(db_session, alice)
    requester = make_user(db_session, groups=("Purchasers",))
    principal = principal_for(requester)
    request = retries.request_retry(
        db_session, principal, str(predecessor.execution_id), force=False, policy=POLICY
    )
    now = utcnow()
    settled = settle(db_session, request, now)

    assert settled.state == "succeeded"
    successor = db_session.get(PurchaseExecution, settled.successor_execution_id)
    db_session.refresh(predecessor)
    # Write 1: a pending copy that stays alice's purchase (the requester is recorded as
    # its retrier, never as its creator), with plan, step, account, costs.
    assert successor.status == Status.PENDING
    assert successor.retry_attempt_n == 2 == settled.retry_attempt_n
    assert successor.created_by_user_id == alice.id
    assert successor.retried_by_user_id == requester.id
    assert (successor.plan_id, successor.step_number) == (predecessor.plan_id, 2)
    assert successor.cloud_account_id == predecessor.cloud_account_id
    assert successor.total_upfront_cost == Decimal("4200.00")
    assert successor.estimated_savings == Decimal("310.25")
    assert [item["error"] for item in successor.recommendations] == [None] * 4
    assert [item["purchased"] for item in successor.recommendations] == [False] * 4
    assert [item["purchase_id"] for item in successor.recommendations] == [None] * 4
    assert predecessor.recommendations[1]["purchase_id"] == "ri-1"  # history untouched
    # Write 2: the failed row stays failed and points at its successor.
    assert predecessor.status == Status.FAILED
    assert predecessor.retry_execution_id == successor.execution_id
    # Write 3: one suppression per scope, counts summed, empty items skipped.
    suppressions = db_session.scalars(
        select(PurchaseSuppression).where(
            PurchaseSuppression.execution_id == successor.execution_id
        )
    ).all()
    assert sorted((s.resource_type, s.engine, s.suppressed_count) for s in suppressions) == [
        ("c5.xlarge", "linux", 1),
        ("m5.large", "", 5),
    ]
    assert {s.expires_at for s in suppressions} == {now + GRACE}
    assert actions(db_session, predecessor.execution_id) == ["retry.requested", "retry.succeeded"]
    assert actions(db_session, successor.execution_id) == ["execution.created"]


def test_a_redelivered_request_writes_nothing_new(db_session):
    alice = make_user(db_session)
    predecessor = failed_purchase(db_session, alice)
    request = retries.request_retry(
        db_session, principal_for(alice), predecessor.execution_id, force=False, policy=POLICY
    )
    assert settle(db_session, request).state == "succeeded"
    executions_before, audit_before = (
        count(db_session, PurchaseExecution),
        count(db_session, AuditEvent),
    )
    assert settle(db_session, request) is None
    assert count(db_session, PurchaseExecution) == executions_before
    assert count(db_session, AuditEvent) == audit_before


def test_permissions_revoked_before_the_worker_runs_reject_and_write_nothing(db_session):
    owner = make_user(db_session)
    predecessor = failed_purchase(db_session, owner)
    buyer = make_user(db_session, groups=("Purchasers",))
    request = retries.request_retry(
        db_session, principal_for(buyer), predecessor.execution_id, force=False, policy=POLICY
    )
    buyer.groups = [g for g in buyer.groups if g.name != "Purchasers"]
    db_session.flush()

    settled = settle(db_session, request)
    assert settled.state == "rejected"
    assert settled.refusal_status == 403
    assert "retry-any:purchases" in settled.error
    assert settled.details == {}
    db_session.refresh(predecessor)
    assert predecessor.retry_execution_id is None
    assert count(db_session, PurchaseSuppression) == 0
    assert count(db_session, PurchaseExecution) == 1
    assert actions(db_session)[-1] == "retry.rejected"


def test_a_deactivated_requester_is_rejected(db_session):
    alice = make_user(db_session)
    predecessor = failed_purchase(db_session, alice)
    request = retries.request_retry(
        db_session, principal_for(alice), predecessor.execution_id, force=False, policy=POLICY
    )
    alice.is_active = False
    db_session.flush()
    settled = settle(db_session, request)
    assert (settled.state, settled.refusal_status) == ("rejected", 403)
    assert "no longer active" in settled.error


def test_the_worker_refuses_a_row_retried_since_the_request(db_session):
    alice = make_user(db_session)
    predecessor = failed_purchase(db_session, alice)
    first, second = (
        retries.request_retry(
            db_session, principal_for(alice), predecessor.execution_id, force=False, policy=POLICY
        )
        for _ in range(2)
    )
    winner = settle(db_session, first)
    loser = settle(db_session, second)
    assert loser.state == "rejected" and loser.refusal_status == 409
    assert loser.details == {"retry_execution_id": str(winner.successor_execution_id)}
    assert count(db_session, PurchaseExecution) == 2


def test_refusals_in_the_web_layer_are_audited_and_record_no_request(app, committed_db):
    with unit_of_work() as session:
        alice = make_user(session)
        other = make_user(session)
        row = failed_purchase(session, other)
    with pytest.raises(DomainError) as refused:
        retry.ask_for_retry(principal_for(alice), row.execution_id, force=False)
    assert refused.value.status == 403
    with unit_of_work() as session:
        assert count(session, RetryBatch) == 0
        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "retry.refused"))
        assert event.execution_id == row.execution_id
        assert event.actor_user_id == alice.id
        assert event.details["status"] == 403


def test_a_service_that_writes_then_refuses_leaves_only_the_refusal_audited(app, committed_db):
    """The unit of work commits on success only: a refusal rolls back what was written
    before it, and the refusal's audit event is recorded on purpose, on its own. (Before,
    a `DomainError` passing through the unit of work committed the half-done work.)"""
    with unit_of_work() as session:
        alice = principal_for(make_user(session, "alice@example.com"))

    def half_done_service(session) -> None:
        make_user(session, "written-before-refusing@example.com")
        raise DomainError(409, "refused after a write")

    with pytest.raises(DomainError) as refused, unit_of_work() as session:
        half_done_service(session)
    audit.record_refusal("test.refused", refused.value, actor=alice, execution_id=None)

    with unit_of_work() as session:
        assert count(session, User) == 1
        (event,) = session.scalars(select(AuditEvent))
        assert (event.action, event.details["status"]) == ("test.refused", 409)


def test_an_error_between_the_second_and_third_write_leaves_no_trace(
    app, committed_db, monkeypatch
):
    with unit_of_work() as session:
        alice = make_user(session)
        predecessor = failed_purchase(session, alice)
        request = retries.request_retry(
            session, principal_for(alice), predecessor.execution_id, force=False, policy=POLICY
        )

    def crash(*_args, **_kwargs):
        raise RuntimeError("disk full while writing suppressions")

    monkeypatch.setattr(successors, "insert_suppressions", crash)
    with pytest.raises(RuntimeError), unit_of_work() as session:
        settle(session, request)

    with unit_of_work() as session:
        assert count(session, PurchaseExecution) == 1
        assert count(session, PurchaseSuppression) == 0
        assert session.get(PurchaseExecution, predecessor.execution_id).retry_execution_id is None
        assert session.get(RetryBatchItem, (request.id, 0)).state == "queued"
        assert actions(session) == ["retry.requested"]
