"""The home page's figures against a hand count on seeded rows, on both databases: the
money waiting per status, per account and per provider, the savings lost per day, the
chart's days; a reader narrowed to some accounts sees none of another's money; and the
statements a visit costs do not grow with the rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session

from app.db import db
from app.domain.errors import DomainError
from app.domain.rbac import DEFAULT_PERMISSIONS, Principal
from app.domain.statuses import Status
from app.models import CloudAccount
from app.services import dashboard
from app.services.dashboard import Money
from tests.factories import make_account, make_execution
from tests.support.statements import recorded_statements

NOW = datetime(2026, 12, 5, 17, 0, tzinfo=UTC)
READER = Principal(
    user_id=uuid.uuid4(), email="reader@example.com", permissions=DEFAULT_PERMISSIONS
)


@dataclass
class Seeded:
    aws: CloudAccount
    gcp: CloudAccount
    azure: CloudAccount
    rows: dict[str, uuid.UUID] = field(default_factory=dict)


def named_account(session: Session, name: str, provider: str = "aws") -> CloudAccount:
    account = make_account(session, provider=provider)
    account.name = name
    session.flush()
    return account


def seed(session: Session) -> Seeded:
    """Rows whose money the tests count by hand (see each test's table)."""
    seeded = Seeded(
        aws=named_account(session, "aws prod", "aws"),
        gcp=named_account(session, "gcp data", "gcp"),
        azure=named_account(session, "azure web", "azure"),
    )

    def row(name: str, status: Status, account: CloudAccount | None, upfront: str, savings: str):
        made = make_execution(
            session,
            status,
            cloud_account_id=account.id if account else None,
            total_upfront_cost=Decimal(upfront),
            estimated_savings=Decimal(savings),
            created_at=NOW - timedelta(hours=1),
        )
        seeded.rows[name] = made.execution_id

    row("aws pending 1", Status.PENDING, seeded.aws, "1000.00", "100.00")
    row("aws pending 2", Status.PENDING, seeded.aws, "2500.50", "30.25")
    row("gcp pending", Status.PENDING, seeded.gcp, "400.00", "73.00")
    row("no account pending", Status.PENDING, None, "99.99", "1.00")
    row("aws approved", Status.APPROVED, seeded.aws, "12000.00", "365.00")
    row("gcp failed", Status.FAILED, seeded.gcp, "800.00", "40.00")
    row("azure failed", Status.FAILED, seeded.azure, "0.00", "121.67")
    row("aws partial", Status.PARTIALLY_COMPLETED, seeded.aws, "300.00", "10.00")
    # Not waiting: never in a total or a breakdown.
    row("aws completed", Status.COMPLETED, seeded.aws, "50000.00", "5000.00")
    row("gcp running", Status.RUNNING, seeded.gcp, "7000.00", "700.00")
    row("azure cancelled", Status.CANCELLED, seeded.azure, "6000.00", "600.00")
    row("aws expired", Status.EXPIRED, seeded.aws, "5000.00", "500.00")
    return seeded


def money(rows: int, upfront: str, savings: str) -> Money:
    return Money(rows, Decimal(upfront), Decimal(savings))


def test_the_money_waiting_per_status_matches_a_hand_count(db_session):
    seed(db_session)

    figures = dashboard.home_figures(db_session, READER, now=NOW)

    assert list(figures.waiting) == [
        Status.PENDING,
        Status.APPROVED,
        Status.FAILED,
        Status.PARTIALLY_COMPLETED,
    ]
    assert figures.waiting == {
        Status.PENDING: money(4, "4000.49", "204.25"),  # 1000 + 2500.50 + 400 + 99.99
        Status.APPROVED: money(1, "12000.00", "365.00"),
        Status.FAILED: money(2, "800.00", "161.67"),
        Status.PARTIALLY_COMPLETED: money(1, "300.00", "10.00"),
    }
    assert figures.retryable_failures == money(3, "1100.00", "171.67")
    # `estimated_savings` is a year's: / 12 a month, / 365 a day, to the cent.
    assert figures.waiting[Status.APPROVED].savings_lost_per_day == Decimal("1.00")
    assert figures.waiting[Status.APPROVED].monthly_savings == Decimal("30.42")  # 30.4167
    assert figures.waiting[Status.PENDING].savings_lost_per_day == Decimal("0.56")  # 0.5596
    assert figures.waiting[Status.FAILED].savings_lost_per_day == Decimal("0.44")  # 0.4429


def test_the_money_by_account_and_by_provider(db_session):
    seeded = seed(db_session)

    figures = dashboard.home_figures(db_session, READER, now=NOW)

    by_account = {b.key: b for b in figures.accounts}
    # Most upfront money first: aws 15,800.50, gcp 1,200, azure 0.
    assert [b.key for b in figures.accounts] == [
        str(seeded.aws.id),
        str(seeded.gcp.id),
        str(seeded.azure.id),
    ]
    aws = by_account[str(seeded.aws.id)]
    assert (aws.label, aws.provider) == ("aws prod", "aws")
    assert aws.by_status == {
        Status.PENDING: money(2, "3500.50", "130.25"),
        Status.APPROVED: money(1, "12000.00", "365.00"),
        Status.PARTIALLY_COMPLETED: money(1, "300.00", "10.00"),
    }
    assert aws.money(Status.FAILED) == Money()
    assert by_account[str(seeded.gcp.id)].by_status == {
        Status.PENDING: money(1, "400.00", "73.00"),
        Status.FAILED: money(1, "800.00", "40.00"),
    }
    assert by_account[str(seeded.azure.id)].by_status == {Status.FAILED: money(1, "0.00", "121.67")}
    # Three accounts, one provider each: the same money by provider; the row without an
    # account is in the totals only.
    assert [(b.key, b.by_status) for b in figures.providers] == [
        ("aws", aws.by_status),
        ("gcp", by_account[str(seeded.gcp.id)].by_status),
        ("azure", by_account[str(seeded.azure.id)].by_status),
    ]


def test_only_the_top_accounts_are_listed(db_session):
    accounts = [named_account(db_session, f"account {n:02}") for n in range(5)]
    for n, account in enumerate(accounts):
        make_execution(
            db_session,
            Status.PENDING,
            cloud_account_id=account.id,
            total_upfront_cost=Decimal(100 * (n + 1)),
        )

    figures = dashboard.home_figures(db_session, READER, now=NOW, top_accounts=2)

    assert [b.label for b in figures.accounts] == ["account 04", "account 03"]
    assert figures.waiting[Status.PENDING] == money(5, "1500.00", "0.00")  # all of them


def test_the_chart_counts_outcomes_per_utc_day_created(db_session):
    account = make_account(db_session)

    def outcome(status: Status, created_at: datetime) -> None:
        make_execution(db_session, status, cloud_account_id=account.id, created_at=created_at)

    today = datetime(2026, 12, 5, tzinfo=UTC)
    outcome(Status.COMPLETED, today + timedelta(hours=16))
    outcome(Status.COMPLETED, today)  # midnight UTC belongs to its day
    outcome(Status.FAILED, today - timedelta(microseconds=1))  # the day before
    outcome(Status.PARTIALLY_COMPLETED, today - timedelta(days=3, hours=-5))
    outcome(Status.FAILED, today - timedelta(days=29))  # the chart's first day
    outcome(Status.FAILED, today - timedelta(days=30))  # before it
    outcome(Status.PENDING, today)  # not an outcome
    outcome(Status.CANCELLED, today)

    days = dashboard.home_figures(db_session, READER, now=NOW).days

    assert len(days) == 30
    assert (days[0].day.isoformat(), days[-1].day.isoformat()) == ("2026-11-06", "2026-12-05")
    counted = {
        (day.day.isoformat(), status.value): n
        for day in days
        for status, n in day.counts.items()
        if n
    }
    assert counted == {
        ("2026-12-05", "completed"): 2,
        ("2026-12-04", "failed"): 1,
        ("2026-12-02", "partially_completed"): 1,
        ("2026-11-06", "failed"): 1,
    }
    assert days[-1].until.isoformat() == "2026-12-06"


def test_a_reader_narrowed_to_one_account_sees_none_of_anothers_money(db_session):
    seeded = seed(db_session)
    make_execution(db_session, Status.COMPLETED, cloud_account_id=seeded.gcp.id, created_at=NOW)
    make_execution(db_session, Status.FAILED, cloud_account_id=seeded.aws.id, created_at=NOW)

    figures = dashboard.home_figures(db_session, READER, now=NOW, accounts={seeded.gcp.id})

    assert figures.waiting == {
        Status.PENDING: money(1, "400.00", "73.00"),
        Status.APPROVED: Money(),
        Status.FAILED: money(1, "800.00", "40.00"),
        Status.PARTIALLY_COMPLETED: Money(),
    }
    assert [b.key for b in figures.accounts] == [str(seeded.gcp.id)]
    assert [b.key for b in figures.providers] == ["gcp"]
    assert figures.providers[0].by_status == figures.accounts[0].by_status
    today = figures.days[-1]
    assert today.counts == {
        Status.COMPLETED: 1,
        Status.PARTIALLY_COMPLETED: 0,
        Status.FAILED: 1,  # gcp's, seeded; the aws failure and "aws partial" are not theirs
    }
    nothing = dashboard.home_figures(db_session, READER, now=NOW, accounts=set())
    assert set(nothing.waiting.values()) == {Money()}
    assert nothing.accounts == nothing.providers == []
    assert all(not any(day.counts.values()) for day in nothing.days)


def test_a_reader_without_view_purchases_is_refused(db_session):
    seed(db_session)
    approver = Principal(
        user_id=uuid.uuid4(),
        email="a@example.com",
        permissions=frozenset({"approve-own:purchases"}),
    )

    with pytest.raises(DomainError) as refused:
        dashboard.home_figures(db_session, approver, now=NOW)

    assert refused.value.status == 403
    assert "view:purchases" in refused.value.message


def test_the_statements_do_not_grow_with_the_rows(db_session):
    assert db.engine is not None

    def statements() -> list[str]:
        with recorded_statements(db.engine) as seen:
            dashboard.home_figures(db_session, READER, now=NOW)
        return seen

    seed(db_session)
    few = statements()
    for n in range(15):
        account = make_account(db_session, provider=("aws", "gcp", "azure")[n % 3])
        for status in (*dashboard.WAITING, *dashboard.OUTCOMES):
            make_execution(
                db_session,
                status,
                cloud_account_id=account.id,
                total_upfront_cost=Decimal(n),
                created_at=NOW - timedelta(days=n),
            )
    many = statements()

    assert len(few) == len(many) == 4
    assert all("GROUP BY" in statement for statement in many)
