"""The home page's figures: how much money is waiting, where, and how purchases went lately.

Money waits in four places (`WAITING`): rows pending approval, rows approved and not yet
started (a schedule or the freeze may hold them), and the retryable failures
(`app.domain.retry.RETRYABLE`: failed and partially completed rows). For each, and for
each of those statuses per account and per provider: the row count, the upfront cost
(sum of `total_upfront_cost`), the monthly savings (`estimated_savings`, a year's, / 12)
and what waiting costs, the savings lost per day (a year's savings / 365). Beside them, the outcomes
of the last `CHART_DAYS` UTC days: completed, partially completed and failed rows per
day, each row counted on the day it was created (the day Purchase History's Created
filter finds it on, so every point has a list behind it).

Every figure is an aggregate computed by the database (GROUP BY status, account,
provider, day) into a bounded result: four statements per call whatever the size of the
history, at most `TOP_ACCOUNTS` accounts, three providers, `CHART_DAYS` days.

Who sees what: the reader needs `view:purchases` (`rbac.require`), and the rows counted
are exactly the rows Purchase History lists for them. That list has no per-account read
scope today, so neither do these figures; `accounts` narrows every statement to the
given accounts (rows without an account left out), the one place a read scope plugs in
so that no total, breakdown or chart point counts a row outside it.

Read-only.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import ColumnElement, FunctionElement, String, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler

from app.domain.rbac import Action, Principal, require
from app.domain.retry import RETRYABLE
from app.domain.statuses import Status
from app.models import CloudAccount, PurchaseExecution

# Where money waits, in the order the page shows it: failed before partially completed.
WAITING: tuple[Status, ...] = (
    Status.PENDING,
    Status.APPROVED,
    *sorted(RETRYABLE, key=lambda status: status is not Status.FAILED),
)
# The outcomes the chart draws, one series each.
OUTCOMES: tuple[Status, ...] = (Status.COMPLETED, Status.PARTIALLY_COMPLETED, Status.FAILED)
TOP_ACCOUNTS = 10
CHART_DAYS = 30
CENT = Decimal("0.01")
DAYS_PER_YEAR = 365
MONTHS_PER_YEAR = 12


@dataclass(frozen=True)
class Money:
    """Rows and their money, in US dollars: upfront cost and the savings a year
    (`estimated_savings` holds a year's)."""

    rows: int = 0
    upfront: Decimal = Decimal("0.00")
    yearly_savings: Decimal = Decimal("0.00")

    @property
    def monthly_savings(self) -> Decimal:
        return (self.yearly_savings / MONTHS_PER_YEAR).quantize(CENT, rounding=ROUND_HALF_UP)

    @property
    def savings_lost_per_day(self) -> Decimal:
        """What a day of waiting costs: a year's savings / 365, to the cent."""
        return (self.yearly_savings / DAYS_PER_YEAR).quantize(CENT, rounding=ROUND_HALF_UP)

    def __add__(self, other: Money) -> Money:
        return Money(
            self.rows + other.rows,
            self.upfront + other.upfront,
            self.yearly_savings + other.yearly_savings,
        )


@dataclass(frozen=True)
class Breakdown:
    """One account's or provider's money, per waiting status (`key`: the account id or
    the provider name)."""

    key: str
    label: str
    provider: str
    by_status: dict[Status, Money] = field(default_factory=dict)

    def money(self, status: Status) -> Money:
        return self.by_status.get(status, Money())

    @property
    def total(self) -> Money:
        return sum(self.by_status.values(), Money())


@dataclass(frozen=True)
class Day:
    """One UTC day of the chart: how many rows created that day ended in each outcome."""

    day: date
    counts: dict[Status, int]

    @property
    def until(self) -> date:
        """The next day: the day's rows were created at or after `day`, before this."""
        return self.day + timedelta(days=1)


@dataclass(frozen=True)
class HomeFigures:
    waiting: dict[Status, Money]
    accounts: list[Breakdown]
    providers: list[Breakdown]
    days: list[Day]
    top_accounts: int

    @property
    def retryable_failures(self) -> Money:
        return sum((self.waiting[status] for status in WAITING if status in RETRYABLE), Money())


class utc_day(FunctionElement[str]):
    """The UTC calendar day of a timestamp column, as 'YYYY-MM-DD' text on both
    databases (SQLite stores the column as naive UTC text, `app.db.UTCDateTime`)."""

    type = String()
    inherit_cache = True


@compiles(utc_day)
def _utc_day_postgresql(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return f"to_char({compiler.process(column, **kw)} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return f"substr({compiler.process(column, **kw)}, 1, 10)"


def home_figures(
    session: Session,
    principal: Principal,
    *,
    now: datetime,
    accounts: Collection[uuid.UUID] | None = None,
    top_accounts: int = TOP_ACCOUNTS,
) -> HomeFigures:
    """The home page's figures as `principal` may see them (403 without
    `view:purchases`), narrowed to `accounts` when given; the chart ends on `now`'s UTC
    day."""
    require(principal, Action.VIEW)
    visible = _visible(accounts)
    return HomeFigures(
        waiting=_waiting(session, visible),
        accounts=_by_account(session, visible, top_accounts),
        providers=_by_provider(session, visible),
        days=_days(session, visible, now.astimezone(UTC).date()),
        top_accounts=top_accounts,
    )


def _visible(accounts: Collection[uuid.UUID] | None) -> list[ColumnElement[bool]]:
    """The conditions every statement carries: the waiting or outcome statuses are
    added per statement; this is the reader's scope."""
    if accounts is None:
        return []
    return [PurchaseExecution.cloud_account_id.in_(sorted(accounts, key=str))]


def _sums() -> tuple[Any, ...]:
    execution = PurchaseExecution
    return (
        func.count().label("rows"),
        func.coalesce(func.sum(execution.total_upfront_cost), 0).label("upfront"),
        func.coalesce(func.sum(execution.estimated_savings), 0).label("savings"),
    )


def _money(rows: int, upfront: Any, savings: Any) -> Money:
    # SQLite sums a Numeric column as a float: back to cents here, on both databases.
    return Money(
        int(rows),
        Decimal(str(upfront)).quantize(CENT, rounding=ROUND_HALF_UP),
        Decimal(str(savings)).quantize(CENT, rounding=ROUND_HALF_UP),
    )


def _waiting(session: Session, visible: list[ColumnElement[bool]]) -> dict[Status, Money]:
    query = (
        select(PurchaseExecution.status, *_sums())
        .where(PurchaseExecution.status.in_([status.value for status in WAITING]), *visible)
        .group_by(PurchaseExecution.status)
    )
    found = {Status(status): _money(*money) for status, *money in session.execute(query)}
    return {status: found.get(status, Money()) for status in WAITING}


def _by_account(session: Session, visible: list[ColumnElement[bool]], top: int) -> list[Breakdown]:
    """The `top` accounts by upfront money waiting (then savings, then id), each with
    its money per waiting status: one statement, at most `top` x 4 rows."""
    execution = PurchaseExecution
    waiting = [execution.status.in_([status.value for status in WAITING]), *visible]
    account = execution.cloud_account_id
    upfront = func.sum(execution.total_upfront_cost)
    ranked = (
        select(account)
        .where(account.is_not(None), *waiting)
        .group_by(account)
        .order_by(upfront.desc(), func.sum(execution.estimated_savings).desc(), account)
        .limit(top)
    )
    query = (
        select(account, CloudAccount.name, CloudAccount.provider, execution.status, *_sums())
        .join(CloudAccount, CloudAccount.id == account)
        .where(account.in_(ranked.scalar_subquery()), *waiting)
        .group_by(account, CloudAccount.name, CloudAccount.provider, execution.status)
    )
    breakdowns = _breakdowns(
        (str(key), name, provider, status, money)
        for key, name, provider, status, *money in session.execute(query)
    )
    return sorted(
        breakdowns,
        key=lambda b: (-b.total.upfront, -b.total.yearly_savings, b.key),
    )


def _by_provider(session: Session, visible: list[ColumnElement[bool]]) -> list[Breakdown]:
    """Each provider with money waiting, most upfront money first (rows without an
    account have no provider and are in the totals only)."""
    execution = PurchaseExecution
    query = (
        select(CloudAccount.provider, execution.status, *_sums())
        .join(CloudAccount, CloudAccount.id == execution.cloud_account_id)
        .where(execution.status.in_([status.value for status in WAITING]), *visible)
        .group_by(CloudAccount.provider, execution.status)
    )
    breakdowns = _breakdowns(
        (provider, provider, provider, status, money)
        for provider, status, *money in session.execute(query)
    )
    return sorted(breakdowns, key=lambda b: (-b.total.upfront, -b.total.yearly_savings, b.key))


def _breakdowns(rows: Iterable[tuple[str, str, str, str, list[Any]]]) -> list[Breakdown]:
    found: dict[str, Breakdown] = {}
    for key, label, provider, status, money in rows:
        breakdown = found.setdefault(key, Breakdown(key, label, provider))
        breakdown.by_status[Status(status)] = _money(*money)
    return list(found.values())


def _days(session: Session, visible: list[ColumnElement[bool]], today: date) -> list[Day]:
    """The last `CHART_DAYS` UTC days up to `today`, every day present (zeros too)."""
    first = today - timedelta(days=CHART_DAYS - 1)
    execution = PurchaseExecution
    day = utc_day(execution.created_at)
    query = (
        select(day, execution.status, func.count())
        .where(
            execution.status.in_([status.value for status in OUTCOMES]),
            execution.created_at >= datetime.combine(first, time(), UTC),
            execution.created_at < datetime.combine(today + timedelta(days=1), time(), UTC),
            *visible,
        )
        .group_by(day, execution.status)
    )
    counts: dict[tuple[date, Status], int] = {
        (date.fromisoformat(day_text), Status(status)): int(n)
        for day_text, status, n in session.execute(query)
    }
    return [
        Day(
            first + timedelta(days=offset),
            {
                status: counts.get((first + timedelta(days=offset), status), 0)
                for status in OUTCOMES
            },
        )
        for offset in range(CHART_DAYS)
    ]
