"""When an approved purchase may start: its time, its plan, and the global freeze.

An approved row **waits** while any of these holds:

- its `scheduled_for` is still in the future;
- its plan is paused (`purchase_plans.enabled` is false);
- a freeze is on (`purchase_freezes.active`).

A waiting row is never started (the executor's move to `running` carries `not waiting`
in its WHERE clause, so a task queued before the freeze does nothing), never reaped
(its clock starts when it stops waiting), and never failed: it stays `approved`. When it
stops waiting it is released to the executor: by beat (`release_due`, every beat
interval) when its time comes, and at once when the freeze is lifted, its plan is
resumed, or its plan is run now.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, false, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.domain.errors import DomainError
from app.domain.inputs import parse_uuid, text_problem
from app.domain.rbac import ADMIN, PURCHASES, Principal
from app.domain.statuses import Status
from app.models import PurchaseExecution, PurchaseFreeze, PurchasePlan
from app.services import audit, channels, leases

MAX_REASON = 500


def frozen() -> ColumnElement[bool]:
    """True while a freeze is on."""
    return exists(select(PurchaseFreeze.id).where(PurchaseFreeze.active.is_(True)))


def plan_paused() -> ColumnElement[bool]:
    # `plan_id IS NOT NULL` first: `NULL IN (...)` is NULL, and `NOT waiting` must be
    # true, not NULL, for a row without a plan.
    return and_(
        PurchaseExecution.plan_id.is_not(None),
        PurchaseExecution.plan_id.in_(
            select(PurchasePlan.id).where(PurchasePlan.enabled.is_(false()))
        ),
    )


def not_yet(now: datetime) -> ColumnElement[bool]:
    return and_(PurchaseExecution.scheduled_for.is_not(None), PurchaseExecution.scheduled_for > now)


def waiting(now: datetime) -> ColumnElement[bool]:
    """An approved row that may not start yet (see the module's docstring)."""
    return or_(not_yet(now), plan_paused(), frozen())


def active_freeze(session: Session) -> PurchaseFreeze | None:
    return session.scalar(select(PurchaseFreeze).where(PurchaseFreeze.active.is_(True)))


def is_waiting(session: Session, execution_id: uuid.UUID, *, now: datetime) -> bool:
    """Whether an approved row must wait (asked after an approval commits)."""
    return bool(
        session.scalar(
            select(func.count())
            .select_from(PurchaseExecution)
            .where(PurchaseExecution.execution_id == execution_id, waiting(now))
        )
    )


def release(session: Session, where: ColumnElement[bool], *, now: datetime) -> list[uuid.UUID]:
    """Hand the approved rows matching `where` that no longer wait to the broker (a
    lease in the broker, and the reaper's clock starts now); the caller queues them
    after the commit."""
    return list(
        session.scalars(
            update(PurchaseExecution)
            .where(
                PurchaseExecution.status == Status.APPROVED.value,
                where,
                ~waiting(now),
            )
            .values(updated_at=now, **leases.in_broker(now))
            .returning(PurchaseExecution.execution_id)
            .execution_options(synchronize_session=False)
        )
    )


def release_due(session: Session, *, now: datetime) -> list[uuid.UUID]:
    """Beat's job: scheduled rows whose time has come, not yet handed to the broker (or
    whose hand-off lapsed)."""
    return release(
        session,
        and_(
            PurchaseExecution.scheduled_for.is_not(None),
            PurchaseExecution.scheduled_for <= now,
            or_(
                PurchaseExecution.lease_expires_at.is_(None),
                PurchaseExecution.lease_expires_at < now,
            ),
        ),
        now=now,
    )


# The freeze ------------------------------------------------------------------------


def _require_admin(actor: Principal, what: str) -> None:
    if not actor.is_admin:
        raise DomainError(403, f"not allowed to {what}: {ADMIN} is required")


def freeze(
    session: Session, actor: Principal, raw_reason: object, *, now: datetime
) -> PurchaseFreeze:
    """Switch the freeze on (admins, with a reason): nothing starts until it is lifted.
    409 when one is on already."""
    _require_admin(actor, "freeze purchases")
    reason = _reason(raw_reason)
    if active_freeze(session) is not None:
        raise DomainError(409, "purchases are already frozen")
    entry = PurchaseFreeze(
        active=True,
        reason=reason,
        frozen_by=actor.email,
        frozen_by_user_id=actor.user_id,
        frozen_at=now,
    )
    try:
        with session.begin_nested():
            session.add(entry)
            session.flush()
    except IntegrityError:  # another admin's freeze committed first
        raise DomainError(409, "purchases are already frozen") from None
    audit.record(session, "freeze.on", actor=actor, details={"reason": reason})
    channels.owe_freeze_switched(session, on=True, actor_email=actor.email, reason=reason, now=now)
    return entry


def lift(session: Session, actor: Principal, *, now: datetime) -> list[uuid.UUID]:
    """Lift the freeze (admins); returns the approved rows it releases, for the caller
    to queue after the commit. 409 when no freeze is on."""
    _require_admin(actor, "lift the freeze")
    lifted = session.scalars(
        update(PurchaseFreeze)
        .where(PurchaseFreeze.active.is_(True))
        .values(active=None, lifted_by=actor.email, lifted_at=now)
        .returning(PurchaseFreeze.reason)
        .execution_options(synchronize_session=False)
    ).first()
    if lifted is None:
        raise DomainError(409, "purchases are not frozen")
    released = release(session, PurchaseExecution.execution_id.is_not(None), now=now)
    audit.record(
        session, "freeze.lifted", actor=actor, details={"reason": lifted, "released": len(released)}
    )
    channels.owe_freeze_switched(session, on=False, actor_email=actor.email, reason=lifted, now=now)
    return released


def _reason(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise DomainError(400, "a reason is required to freeze purchases", field="reason")
    problem = text_problem(raw)
    if problem is not None:
        raise DomainError(400, f'"reason" {problem}', field="reason")
    if len(raw.strip()) > MAX_REASON:
        raise DomainError(400, f'"reason" is longer than {MAX_REASON} characters', field="reason")
    return raw.strip()


# Plans -----------------------------------------------------------------------------

PLAN_CONTROL = f"approve-any:{PURCHASES}"


def _may_control_plans(actor: Principal) -> None:
    if not (actor.is_admin or PLAN_CONTROL in actor.permissions):
        raise DomainError(403, f"not allowed to control plans: {PLAN_CONTROL} is required")


def find_plan(session: Session, raw_id: str | uuid.UUID) -> PurchasePlan:
    plan_id = raw_id if isinstance(raw_id, uuid.UUID) else parse_uuid(raw_id)
    plan = session.get(PurchasePlan, plan_id, populate_existing=True)
    if plan is None:
        raise DomainError(404, f"no plan {plan_id}")
    return plan


def pause(
    session: Session, actor: Principal, raw_id: str | uuid.UUID, *, now: datetime
) -> PurchasePlan:
    """Pause a plan: its approved rows wait until it is resumed."""
    _may_control_plans(actor)
    plan = find_plan(session, raw_id)
    if not plan.enabled:
        raise DomainError(409, f"plan {plan.name!r} is already paused")
    plan.enabled = False
    audit.record(session, "plan.paused", actor=actor, details={"plan_id": str(plan.id)})
    return plan


def resume(
    session: Session, actor: Principal, raw_id: str | uuid.UUID, *, now: datetime
) -> tuple[PurchasePlan, list[uuid.UUID]]:
    """Resume a paused plan; returns the rows it releases, for the caller to queue."""
    _may_control_plans(actor)
    plan = find_plan(session, raw_id)
    if plan.enabled:
        raise DomainError(409, f"plan {plan.name!r} is not paused")
    plan.enabled = True
    session.flush()
    released = release(session, PurchaseExecution.plan_id == plan.id, now=now)
    audit.record(
        session,
        "plan.resumed",
        actor=actor,
        details={"plan_id": str(plan.id), "released": len(released)},
    )
    return plan, released


def run_now(
    session: Session, actor: Principal, raw_id: str | uuid.UUID, *, now: datetime
) -> tuple[PurchasePlan, int, list[uuid.UUID]]:
    """Bring the plan's next scheduled step forward to now: its pending and approved
    rows scheduled later are scheduled now (pending ones still need their approval).
    Returns the plan, the step, and the approved rows released. 409 while the plan is
    paused, purchases are frozen, or nothing of the plan is scheduled later."""
    _may_control_plans(actor)
    plan = find_plan(session, raw_id)
    if not plan.enabled:
        raise DomainError(409, f"plan {plan.name!r} is paused: resume it first")
    if active_freeze(session) is not None:
        raise DomainError(409, "purchases are frozen: nothing starts until the freeze is lifted")
    later = and_(
        PurchaseExecution.plan_id == plan.id,
        PurchaseExecution.status.in_([Status.PENDING.value, Status.APPROVED.value]),
        not_yet(now),
    )
    step = session.scalar(select(func.min(PurchaseExecution.step_number)).where(later))
    if step is None:
        raise DomainError(409, f"plan {plan.name!r} has nothing scheduled later")
    moved = list(
        session.scalars(
            update(PurchaseExecution)
            .where(later, PurchaseExecution.step_number == step)
            .values(scheduled_for=now, updated_at=now)
            .returning(PurchaseExecution.execution_id)
            .execution_options(synchronize_session=False)
        )
    )
    released = release(session, PurchaseExecution.execution_id.in_(moved), now=now)
    audit.record(
        session,
        "plan.run_now",
        actor=actor,
        details={"plan_id": str(plan.id), "step_number": step, "rows": len(moved)},
    )
    return plan, step, released
