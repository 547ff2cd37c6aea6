"""Spend limits, read from the database and checked (the rules: `app.domain.spending`).

Every path that lets money be spent asks `limit_refusal` here: creating a purchase
(its creator's limits), retrying one (the retrier's), approving one (the approver's),
and the executor before it buys (the approver's and the creator's, as they are then:
a limit lowered after the approval still holds).

A group's spend for the day is the commitment of the rows approved that UTC day that a
member created or approved, and that are approved, running or ended having bought
(completed or partially completed).

Limits are set and cleared in `app.services.spend_limits`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.domain.errors import DomainError
from app.domain.spending import ZERO, Spend, SpendLimit, commitment_of, limit_refusal
from app.domain.statuses import Status
from app.models import Group, PurchaseExecution
from app.models import SpendLimit as SpendLimitRow
from app.models.identity import user_groups

# Rows whose commitment counts towards a group's day: approved, or ended having bought.
COUNTED = (
    Status.APPROVED.value,
    Status.RUNNING.value,
    Status.COMPLETED.value,
    Status.PARTIALLY_COMPLETED.value,
)


def limits_of(session: Session, user_id: uuid.UUID | None) -> list[SpendLimit]:
    """The limits that bind a user: one per limited group they belong to."""
    if user_id is None:
        return []
    rows = session.execute(
        select(SpendLimitRow, Group.name)
        .join(Group, Group.id == SpendLimitRow.group_id)
        .join(user_groups, user_groups.c.group_id == Group.id)
        .where(user_groups.c.user_id == user_id)
        .order_by(Group.name)
    ).all()
    return [rule_of(row, name) for row, name in rows]


def rule_of(row: SpendLimitRow, group: str) -> SpendLimit:
    def listed(values: list[str] | None) -> frozenset[str] | None:
        return None if values is None else frozenset(str(value) for value in values)

    return SpendLimit(
        group_id=row.group_id,
        group=group,
        account_ids=listed(row.allowed_account_ids),
        providers=listed(row.allowed_providers),
        services=listed(row.allowed_services),
        max_per_purchase=row.max_per_purchase,
        max_per_day=row.max_per_day,
    )


def day_start(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)


def spent_today(
    session: Session,
    limits: Iterable[SpendLimit],
    *,
    now: datetime,
    excluding: uuid.UUID | None = None,
) -> dict[int, Decimal]:
    """What each per-day-limited group has had approved today (UTC), by group id."""
    groups = [limit.group_id for limit in limits if limit.max_per_day is not None]
    spent: dict[int, Decimal] = {}
    for group_id in groups:
        members = select(user_groups.c.user_id).where(user_groups.c.group_id == group_id)
        query = select(PurchaseExecution.recommendations).where(
            PurchaseExecution.approved_at >= day_start(now),
            PurchaseExecution.status.in_(COUNTED),
            or_(
                PurchaseExecution.created_by_user_id.in_(members),
                PurchaseExecution.approved_by_user_id.in_(members),
            ),
        )
        if excluding is not None:
            query = query.where(PurchaseExecution.execution_id != excluding)
        spent[group_id] = sum(
            (commitment_of(items) for items in session.scalars(query)), start=ZERO
        )
    return spent


@dataclass(frozen=True)
class Binding:
    """The limits that bind some users, and what their groups have had approved today."""

    limits: list[SpendLimit]
    spent: dict[int, Decimal]

    def refusal(self, spend: Spend) -> DomainError | None:
        return limit_refusal(self.limits, spend, self.spent) if self.limits else None

    @property
    def caps_money(self) -> bool:
        return any(limit.caps_money for limit in self.limits)


def binding(
    session: Session,
    user_ids: Iterable[uuid.UUID | None],
    *,
    now: datetime,
    excluding: uuid.UUID | None = None,
) -> Binding:
    """Every limit of these users' groups (each once), read once for many checks."""
    limits: list[SpendLimit] = []
    for user_id in dict.fromkeys(user_ids):
        limits += [limit for limit in limits_of(session, user_id) if limit not in limits]
    spent = spent_today(session, limits, now=now, excluding=excluding) if limits else {}
    return Binding(limits, spent)


def spend_of(execution: PurchaseExecution) -> Spend:
    """An execution as the limits see it."""
    return Spend(
        account_id=str(execution.cloud_account_id) if execution.cloud_account_id else None,
        account_provider=execution.account_provider,
        recommendations=execution.recommendations,
    )


def execution_refusal(
    session: Session,
    execution: PurchaseExecution,
    user_ids: Iterable[uuid.UUID | None],
    *,
    now: datetime,
) -> DomainError | None:
    """The first limit of these users' groups an existing row breaks (its own commitment
    never counts twice towards the day)."""
    found = binding(session, user_ids, now=now, excluding=execution.execution_id)
    return found.refusal(spend_of(execution))
