"""The global freeze and the plans' switches, as every entry point (panel, JSON API,
CLI) calls them: the rules are `app.services.schedules`'; this module runs each one in
a unit of work, audits its refusal in a unit of work of its own, and hands the rows it
releases to the executor once the change has committed, never before.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from app.db import unit_of_work, utcnow
from app.domain.errors import DomainError
from app.domain.inputs import parse_uuid, text_problem
from app.domain.rbac import Principal
from app.domain.statuses import Status
from app.models import PurchaseExecution, PurchaseFreeze, PurchasePlan
from app.services import approvals, audit, schedules

_T = TypeVar("_T")
# The statuses of a plan's rows that have not started: what a schedule still moves.
_NOT_STARTED = (Status.PENDING.value, Status.APPROVED.value)
# What a refused plan name shows of itself in a message.
_MAX_NAME_SHOWN = 80


# The freeze --------------------------------------------------------------------------


def freeze_state(session: Session) -> dict[str, Any]:
    """`{frozen, reason, frozen_by, frozen_at}` of the freeze on now (all null when none)."""
    found = schedules.active_freeze(session)
    return {
        "frozen": found is not None,
        "reason": found.reason if found else None,
        "frozen_by": found.frozen_by if found else None,
        "frozen_at": _moment(found.frozen_at) if found else None,
    }


def current_freeze(session: Session) -> PurchaseFreeze | None:
    """The freeze on now, if any (the panel's banner)."""
    return schedules.active_freeze(session)


def freeze(actor: Principal, raw_reason: object) -> dict[str, Any]:
    """Switch the freeze on (admins, with a reason); answers the freeze as
    `freeze_state` does. 403, 400 (no reason, or an unusable one), 409 (on already),
    each audited."""

    def switch_on(session: Session) -> dict[str, Any]:
        schedules.freeze(session, actor, raw_reason, now=utcnow())
        return freeze_state(session)

    return _act("freeze.on_refused", actor, switch_on, {})


def lift(actor: Principal) -> int:
    """Lift the freeze (admins); every approved row that waited for it alone is queued
    once the lift has committed. How many were released. 403, 409 (not frozen), audited."""
    released = _act("freeze.lift_refused", actor, lambda s: schedules.lift(s, actor, now=utcnow()))
    _queue(released)
    return len(released)


# Plans -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanOutcome:
    """A plan after a switch: as `list_plans` shows it, with the rows it released (and,
    for "run now", the step brought forward and how many rows it moved)."""

    plan: dict[str, Any]
    released: int
    step_number: int | None = None


def list_plans(session: Session, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every plan, by name: paused or not, its ramp, when its next scheduled row starts,
    and how many approved rows wait. Two statements, however many plans and rows."""
    plans = session.scalars(select(PurchasePlan).order_by(PurchasePlan.name, PurchasePlan.id))
    return _with_schedule(session, list(plans), now or utcnow())


def pause(actor: Principal, raw_plan: str | uuid.UUID, *, by_name: bool = False) -> PlanOutcome:
    """Pause a plan: its approved rows wait until it is resumed (admins, approve-any).
    `by_name`: `raw_plan` may be the plan's name (`plan_id_by_name_or_id`)."""

    def act(session: Session) -> PlanOutcome:
        plan = schedules.pause(session, actor, _plan_id(session, raw_plan, by_name), now=utcnow())
        return PlanOutcome(_plan_dict(session, plan), 0)

    return _act("plan.pause_refused", actor, act, _plan_details(raw_plan))


def resume(actor: Principal, raw_plan: str | uuid.UUID, *, by_name: bool = False) -> PlanOutcome:
    """Resume a paused plan; its approved rows that no longer wait are queued after the
    commit."""
    released: list[uuid.UUID] = []

    def act(session: Session) -> PlanOutcome:
        plan, rows = schedules.resume(
            session, actor, _plan_id(session, raw_plan, by_name), now=utcnow()
        )
        released.extend(rows)
        return PlanOutcome(_plan_dict(session, plan), len(rows))

    outcome = _act("plan.resume_refused", actor, act, _plan_details(raw_plan))
    _queue(released)
    return outcome


def run_now(actor: Principal, raw_plan: str | uuid.UUID, *, by_name: bool = False) -> PlanOutcome:
    """Bring the plan's next scheduled step forward to now; its approved rows are
    queued after the commit (its pending ones still need their approval)."""
    released: list[uuid.UUID] = []

    def act(session: Session) -> PlanOutcome:
        plan, step, rows = schedules.run_now(
            session, actor, _plan_id(session, raw_plan, by_name), now=utcnow()
        )
        released.extend(rows)
        return PlanOutcome(_plan_dict(session, plan), len(rows), step_number=step)

    outcome = _act("plan.run_now_refused", actor, act, _plan_details(raw_plan))
    _queue(released)
    return outcome


def may_control_plans(actor: Principal) -> bool:
    """Whether `actor` may pause, resume and run plans now (the panel offers the buttons
    only then); the rule is the schedules' own."""
    try:
        schedules._may_control_plans(actor)
    except DomainError:
        return False
    return True


def plan_id_by_name_or_id(session: Session, raw: str) -> uuid.UUID:
    """The command line's PLAN: a plan id, or the name of exactly one plan (404 when
    none has it, 409 listing their ids when several do)."""
    text = raw.strip()
    problem = text_problem(text)
    if problem is not None:
        raise DomainError(400, f"the plan {problem}")
    try:
        return parse_uuid(text, "plan id")
    except DomainError:
        pass
    ids = list(session.scalars(select(PurchasePlan.id).where(PurchasePlan.name == text).limit(10)))
    shown = text if len(text) <= _MAX_NAME_SHOWN else text[:_MAX_NAME_SHOWN] + "…"
    if not ids:
        raise DomainError(404, f"no plan named {shown!r}")
    if len(ids) > 1:
        raise DomainError(
            409,
            f"several plans are named {shown!r}: name one by its id",
            plan_ids=[str(plan_id) for plan_id in ids],
        )
    return ids[0]


# Shared ------------------------------------------------------------------------------


def _act(
    refused: str,
    actor: Principal,
    change: Callable[[Session], _T],
    details: dict[str, Any] | None = None,
) -> _T:
    """`change` in a unit of work; its refusal audited as `refused`, then raised."""
    try:
        with unit_of_work() as session:
            return change(session)
    except DomainError as refusal:
        audit.record_refusal(refused, refusal, actor=actor, execution_id=None, **(details or {}))
        raise


def _queue(released: list[uuid.UUID]) -> None:
    for execution_id in released:
        approvals.enqueue_execution(execution_id)


def _plan_id(session: Session, raw: str | uuid.UUID, by_name: bool) -> uuid.UUID:
    """The plan id in a path or form field (400 naming it a plan id when malformed), or,
    `by_name` (the command line), a plan's id or name."""
    if isinstance(raw, uuid.UUID):
        return raw
    return plan_id_by_name_or_id(session, raw) if by_name else parse_uuid(raw, "plan id")


def _plan_details(raw: str | uuid.UUID) -> dict[str, Any]:
    """What a refusal's audit event keeps of the plan asked for: its id when it is one
    (never hostile text)."""
    if isinstance(raw, uuid.UUID):
        return {"plan_id": str(raw)}
    try:
        return {"plan_id": str(parse_uuid(raw, "plan id"))}
    except DomainError:
        return {}


def _plan_dict(session: Session, plan: PurchasePlan) -> dict[str, Any]:
    session.flush()
    return _with_schedule(session, [plan], utcnow())[0]


def _with_schedule(
    session: Session, plans: list[PurchasePlan], now: datetime
) -> list[dict[str, Any]]:
    ids = [plan.id for plan in plans]
    stats: dict[uuid.UUID, tuple[datetime | None, int, int]] = {}
    if ids:
        is_approved = PurchaseExecution.status == Status.APPROVED.value
        rows = session.execute(
            select(
                PurchaseExecution.plan_id,
                func.min(
                    case(
                        (schedules.not_yet(now), PurchaseExecution.scheduled_for),
                        else_=None,
                    )
                ),
                func.sum(case((and_(is_approved, schedules.waiting(now)), 1), else_=0)),
                func.sum(case((schedules.not_yet(now), 1), else_=0)),
            )
            .where(
                PurchaseExecution.plan_id.in_(ids),
                PurchaseExecution.status.in_(_NOT_STARTED),
            )
            .group_by(PurchaseExecution.plan_id)
        )
        stats = {
            plan_id: (at, int(wait or 0), int(later or 0)) for plan_id, at, wait, later in rows
        }
    return [_as_item(plan, *stats.get(plan.id, (None, 0, 0))) for plan in plans]


def _as_item(
    plan: PurchasePlan, next_at: datetime | None, waiting: int, scheduled_later: int
) -> dict[str, Any]:
    return {
        "id": str(plan.id),
        "name": plan.name,
        "enabled": bool(plan.enabled),
        "paused": not plan.enabled,
        "auto_purchase": bool(plan.auto_purchase),
        "current_step": plan.current_step,
        "total_steps": plan.total_steps,
        "percent_per_step": f"{plan.percent_per_step:.2f}",
        "step_interval_days": plan.step_interval_days,
        "next_scheduled_for": _moment(next_at),
        "scheduled_later": scheduled_later,
        "waiting": waiting,
    }


def _moment(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
