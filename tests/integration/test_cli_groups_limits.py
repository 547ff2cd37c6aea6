"""`flask groups limit|limits`, invoked as an operator would, on the test database: what
it prints, its exit status, what it stored and what the trail records (as `cli`, no
user id), refusals included.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from app.models import AuditEvent, Group, SpendLimit
from app.services.identity import create_group
from tests.factories import make_account


@pytest.fixture
def cli(app, db_session):
    """Runs `flask --app app ...` commands; `output` holds stdout and stderr."""
    return app.test_cli_runner()


@pytest.fixture
def finance(db_session) -> Group:
    return create_group(db_session, "Finance", ["approve-any:purchases"])


def events(session, action: str) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def limit_of(session, group: Group) -> SpendLimit | None:
    query = select(SpendLimit).where(SpendLimit.group_id == group.id)
    return session.scalars(query.execution_options(populate_existing=True)).one_or_none()


def named_account(session, name: str, provider: str = "aws"):
    account = make_account(session, provider=provider)
    account.name = name
    session.flush()
    return account


def by_cli(event: AuditEvent) -> bool:
    return event.actor_email == "cli" and event.actor_user_id is None


def test_a_limit_is_set_stored_normalized_shown_and_audited(cli, db_session, finance):
    prod = named_account(db_session, "prod")
    staging = named_account(db_session, "staging", "azure")

    result = cli.invoke(
        args=[
            "groups",
            "limit",
            "Finance",
            "--account=prod",
            f"--account={staging.id}",
            "--provider=AWS",
            "--provider",
            "azure",
            "--service=Savings-Plans",
            "--service=ec2",
            "--max-per-purchase=25000",
            "--max-per-day",
            "100000.50",
        ]
    )

    assert result.exit_code == 0, result.output
    stored = limit_of(db_session, finance)
    assert stored is not None
    assert stored.allowed_account_ids == sorted([str(prod.id), str(staging.id)])
    assert stored.allowed_providers == ["aws", "azure"]
    assert stored.allowed_services == ["ec2", "savingsplans"]
    assert (stored.max_per_purchase, stored.max_per_day) == (
        Decimal("25000.00"),
        Decimal("100000.50"),
    )
    assert result.output.splitlines() == [
        "Finance: spend limit",
        "  accounts: prod, staging",
        "  providers: aws, azure",
        "  services: ec2, savingsplans",
        "  max per purchase: 25,000.00",
        "  max per day: 100,000.50",
    ]
    [changed] = events(db_session, "spend_limit.changed")
    assert by_cli(changed)
    assert changed.details["group"] == "Finance"
    assert changed.details["before"] is None
    assert changed.details["after"]["max_per_purchase"] == "25000.00"


def test_what_is_not_given_is_kept_and_unset_makes_it_unlimited(cli, db_session, finance):
    named_account(db_session, "prod")
    assert cli.invoke(args=["groups", "limit", "Finance", "--account=prod"]).exit_code == 0
    assert cli.invoke(args=["groups", "limit", "Finance", "--max-per-day=10"]).exit_code == 0
    stored = limit_of(db_session, finance)
    assert stored is not None and stored.allowed_account_ids is not None
    assert stored.max_per_day == Decimal("10.00")

    result = cli.invoke(args=["groups", "limit", "Finance", "--unset=accounts"])

    assert result.exit_code == 0, result.output
    stored = limit_of(db_session, finance)
    assert stored is not None
    assert (stored.allowed_account_ids, stored.max_per_day) == (None, Decimal("10.00"))
    assert "  accounts: any" in result.output.splitlines()
    latest = events(db_session, "spend_limit.changed")[-1]
    assert latest.details["before"]["allowed_account_ids"] is not None
    assert latest.details["after"]["allowed_account_ids"] is None


def test_the_same_limit_again_records_nothing(cli, db_session, finance):
    for _ in range(2):
        assert cli.invoke(args=["groups", "limit", "Finance", "--max-per-day=5"]).exit_code == 0
    assert len(events(db_session, "spend_limit.changed")) == 1


def test_clear_removes_the_limit_and_is_audited(cli, db_session, finance):
    assert cli.invoke(args=["groups", "limit", "Finance", "--provider=gcp"]).exit_code == 0

    result = cli.invoke(args=["groups", "limit", "Finance", "--clear"])

    assert result.exit_code == 0, result.output
    assert "cleared the spend limit of group Finance" in result.output
    assert limit_of(db_session, finance) is None
    [cleared] = events(db_session, "spend_limit.cleared")
    assert by_cli(cleared)
    assert cleared.details["before"]["allowed_providers"] == ["gcp"]


def test_clearing_a_group_without_a_limit_is_refused_and_audited(cli, db_session, finance):
    result = cli.invoke(args=["groups", "limit", "Finance", "--clear"])
    assert result.exit_code == 1
    assert 'group "Finance" has no spend limit to clear' in result.output
    [refused] = events(db_session, "spend_limit.clear_refused")
    assert refused.details["status"] == 404


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--account=nowhere"], "allowed accounts: no account named 'nowhere'"),
        (["--provider=oracle"], "allowed providers: 'oracle' is not one of aws, azure, gcp"),
        (["--service=mainframe"], "allowed services: 'mainframe' is not a service"),
        (["--max-per-purchase=-1"], "max per purchase: expected an amount from 0 to"),
        (["--max-per-purchase=1.234"], "max per purchase: expected an amount"),
        (["--max-per-day=1000000000000"], "max per day: expected an amount"),
        (["--max-per-day=NaN"], "max per day: expected an amount"),
        (["--max-per-day=1,000"], "max per day: expected an amount"),
        (["--service=\udc80"], "allowed services: an entry is not valid Unicode"),
    ],
    ids=[
        "account",
        "provider",
        "service",
        "negative",
        "three-places",
        "too-big",
        "nan",
        "comma",
        "surrogate",
    ],
)
def test_a_bad_field_is_refused_naming_it_and_nothing_is_stored(
    cli, db_session, finance, args, field
):
    result = cli.invoke(args=["groups", "limit", "Finance", *args])

    assert result.exit_code == 1, result.output
    assert field in result.output
    assert "Traceback" not in result.output
    assert limit_of(db_session, finance) is None
    assert events(db_session, "spend_limit.changed") == []
    [refused] = events(db_session, "spend_limit.change_refused")
    assert by_cli(refused)
    assert refused.details["status"] == 400


def test_an_unknown_group_is_refused(cli, db_session):
    result = cli.invoke(args=["groups", "limit", "Nobody", "--max-per-day=1"])
    assert result.exit_code == 1
    assert "no group named 'Nobody'" in result.output
    assert db_session.scalar(select(SpendLimit)) is None


@pytest.mark.parametrize(
    "args",
    [[], ["--clear", "--max-per-day=1"], ["--unset=max-per-day", "--max-per-day=1"]],
    ids=["nothing", "clear-and-more", "given-and-unset"],
)
def test_usage_errors_change_nothing(cli, db_session, finance, args):
    result = cli.invoke(args=["groups", "limit", "Finance", *args])
    assert result.exit_code == 2, result.output
    assert limit_of(db_session, finance) is None


def test_limits_lists_every_group_accounts_by_name(cli, db_session, finance):
    prod = named_account(db_session, "prod")
    assert cli.invoke(args=["groups", "limit", "Finance", f"--account={prod.id}"]).exit_code == 0

    result = cli.invoke(args=["groups", "limits"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "Administrators: no spend limit" in lines
    assert "Purchasers: no spend limit" in lines
    at = lines.index("Finance: spend limit")
    assert lines[at + 1 : at + 6] == [
        "  accounts: prod",
        "  providers: any",
        "  services: any",
        "  max per purchase: no cap",
        "  max per day: no cap",
    ]
