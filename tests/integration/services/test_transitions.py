"""Every status write goes through `transitions.move` and the table of transitions."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from app.db import fresh_read, unit_of_work, utcnow
from app.domain.statuses import Status
from app.models import AuditEvent, PurchaseExecution, PurchaseSuppression
from app.services import transitions
from tests.factories import make_execution, make_suppression


def with_suppression(session, status: Status) -> PurchaseExecution:
    row = make_execution(session, status)
    make_suppression(session, row)
    return row


def suppressions_of(session, row) -> int:
    return session.scalar(
        select(func.count())
        .select_from(PurchaseSuppression)
        .where(PurchaseSuppression.execution_id == row.execution_id)
    )


def move(session, row, sources, target):
    return transitions.move(
        session,
        PurchaseExecution.execution_id == row.execution_id,
        sources=sources,
        target=target,
        now=utcnow(),
        action=f"execution.{target}",
    )


def test_leaving_pending_unapproved_drops_the_suppressions(db_session):
    cancelled = with_suppression(db_session, Status.PENDING)
    approved = with_suppression(db_session, Status.PENDING)
    assert move(db_session, cancelled, {Status.PENDING}, Status.CANCELLED) == [
        cancelled.execution_id
    ]
    assert move(db_session, approved, {Status.PENDING}, Status.APPROVED) == [approved.execution_id]
    assert suppressions_of(db_session, cancelled) == 0
    assert suppressions_of(db_session, approved) == 1
    actions = db_session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["execution.cancelled", "execution.approved"]


def test_a_row_in_another_status_is_left_alone(db_session):
    row = with_suppression(db_session, Status.COMPLETED)
    assert move(db_session, row, {Status.PENDING}, Status.EXPIRED) == []
    assert db_session.get(PurchaseExecution, row.execution_id).status == Status.COMPLETED
    assert suppressions_of(db_session, row) == 1


@pytest.mark.parametrize(
    ("sources", "target"),
    [
        ({Status.FAILED}, Status.PENDING),
        ({Status.PENDING, Status.RUNNING}, Status.FAILED),
        ((), Status.FAILED),
    ],
    ids=["forbidden", "sources-disagree-on-suppressions", "no-sources"],
)
def test_a_move_the_table_does_not_allow_is_a_bug(db_session, sources, target):
    row = make_execution(db_session, Status.FAILED)
    with pytest.raises(ValueError):
        move(db_session, row, sources, target)


def test_of_two_movers_racing_on_one_row_one_wins(app, committed_db):
    with unit_of_work() as session:
        row = make_execution(session, Status.PENDING)

    def mover(target: Status) -> list:
        with app.app_context(), unit_of_work() as session:
            return move(session, row, {Status.PENDING}, target)

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(mover, [Status.APPROVED, Status.CANCELLED] * 4))
    assert sum(bool(moved) for moved in outcomes) == 1
    with fresh_read() as session:
        moved = session.get(PurchaseExecution, row.execution_id, populate_existing=True)
        assert moved.status in {"approved", "cancelled"}
