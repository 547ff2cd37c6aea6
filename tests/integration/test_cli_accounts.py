"""`flask accounts`, invoked as an operator would, on the test database: what it prints,
its exit status, what it stored and what the trail records (as `cli`, no user id).

"Test connection" asks the registry the app holds: the test hands the app its own
(`app.extensions["providers"]`, the product's provider seam) with a cloud client whose
`check` answers what the test needs and records what it was asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from app.domain.providers import PROVIDERS
from app.models import AuditEvent, CloudAccount
from app.providers import AccountTarget, ConnectionReport, ProviderRegistry
from app.providers.simulator import SimulatedProvider
from tests.factories import make_account

ROLE = "arn:aws:iam::123456789012:role/commitment-purchaser"


@pytest.fixture
def cli(app, db_session):
    """Runs `flask --app app ...` commands; `output` holds stdout and stderr."""
    return app.test_cli_runner()


def events(session, action: str) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def named(session, name: str) -> list[CloudAccount]:
    query = select(CloudAccount).where(CloudAccount.name == name).order_by(CloudAccount.id)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def by_cli(event: AuditEvent) -> bool:
    return event.actor_email == "cli" and event.actor_user_id is None


def test_create_starts_in_dry_run_with_the_role_and_is_audited(cli, db_session):
    result = cli.invoke(
        args=[
            "accounts",
            "create",
            "prod",
            "--provider",
            "aws",
            "--external-id",
            "ext-42",
            "--contact-email",
            "FinOps@Example.com",
            "--aws-role-arn",
            ROLE,
        ]
    )

    assert result.exit_code == 0, result.output
    [account] = named(db_session, "prod")
    assert "in dry_run mode: nothing is bought until it is switched to live" in result.output
    assert str(account.id) in result.output
    assert (account.purchase_mode, account.aws_role_arn, account.contact_email) == (
        "dry_run",
        ROLE,
        "finops@example.com",
    )
    [created] = events(db_session, "account.created")
    assert by_cli(created) and created.details["purchase_mode"] == "dry_run"


def test_create_takes_an_azure_billing_scope(cli, db_session):
    scope = "/providers/Microsoft.Billing/billingAccounts/1234"
    result = cli.invoke(
        args=[
            "accounts",
            "create",
            "billing",
            "--provider=azure",
            "--external-id=sub-1",
            f"--azure-billing-scope={scope}",
        ]
    )
    assert result.exit_code == 0, result.output
    [account] = named(db_session, "billing")
    assert (account.azure_billing_scope, account.aws_role_arn) == (scope, None)


def test_create_refuses_a_malformed_role_and_stores_nothing(cli, db_session):
    result = cli.invoke(
        args=[
            "accounts",
            "create",
            "prod",
            "--provider=aws",
            "--external-id=1",
            "--aws-role-arn=arn:aws:iam::1:role/x",
        ]
    )
    assert result.exit_code == 1
    assert "Error: aws role arn is not an IAM role's ARN" in result.output
    assert named(db_session, "prod") == []
    assert events(db_session, "account.created") == []


def test_list_shows_name_provider_mode_and_external_id(cli, db_session):
    assert cli.invoke(args=["accounts", "list"]).output == "no accounts\n"
    aws = make_account(db_session, provider="aws", mode="live")
    gcp = make_account(db_session, provider="gcp", mode="simulate")

    result = cli.invoke(args=["accounts", "list"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"aws account  aws  live  123456789012  {aws.id}",
        f"gcp account  gcp  simulate  123456789012  {gcp.id}",
    ]


def test_mode_live_warns_is_audited_and_the_same_mode_again_writes_nothing(cli, db_session):
    account = make_account(db_session, mode="dry_run")

    result = cli.invoke(args=["accounts", "mode", "aws account", "live"])

    assert result.exit_code == 0, result.output
    assert "aws account is now in live mode" in result.output
    assert "WARNING: aws account is live: its purchases now buy for real" in result.output
    assert named(db_session, "aws account")[0].purchase_mode == "live"
    [changed] = events(db_session, "account.mode_changed")
    assert by_cli(changed)
    assert (changed.details["from"], changed.details["to"]) == ("dry_run", "live")

    again = cli.invoke(args=["accounts", "mode", str(account.id), "live"])

    assert again.exit_code == 0, again.output
    assert "aws account is already in live mode" in again.output
    assert "WARNING" not in again.output
    assert len(events(db_session, "account.mode_changed")) == 1


def test_mode_back_to_dry_run_does_not_warn(cli, db_session):
    make_account(db_session, mode="live")
    result = cli.invoke(args=["accounts", "mode", "aws account", "dry_run"])
    assert result.exit_code == 0, result.output
    assert "now in dry_run mode" in result.output and "WARNING" not in result.output


def test_an_unknown_mode_is_refused_listing_the_modes_and_audited(cli, db_session):
    make_account(db_session, mode="dry_run")

    result = cli.invoke(args=["accounts", "mode", "aws account", "yolo"])

    assert result.exit_code == 1
    assert "purchase mode must be one of simulate, dry_run, live" in result.output
    assert named(db_session, "aws account")[0].purchase_mode == "dry_run"
    [refused] = events(db_session, "account.mode_change_refused")
    assert by_cli(refused) and refused.details["mode"] == "yolo"


def test_a_shared_name_is_refused_asking_for_the_id(cli, db_session):
    first = make_account(db_session, mode="dry_run")
    second = CloudAccount(
        name="aws account", provider="aws", external_id="210987654321", purchase_mode="dry_run"
    )
    db_session.add(second)
    db_session.flush()

    result = cli.invoke(args=["accounts", "mode", "aws account", "simulate"])

    assert result.exit_code == 1
    assert "2 accounts are named 'aws account': name the one you mean by its id" in result.output
    assert str(first.id) in result.output and str(second.id) in result.output
    assert events(db_session, "account.mode_changed") == []

    by_id = cli.invoke(args=["accounts", "mode", str(second.id), "simulate"])

    assert by_id.exit_code == 0, by_id.output
    modes = {row.id: row.purchase_mode for row in named(db_session, "aws account")}
    assert modes == {first.id: "dry_run", second.id: "simulate"}


def test_an_unknown_account_is_refused(cli, db_session):
    for command in (["mode", "nobody", "live"], ["test", "nobody"]):
        result = cli.invoke(args=["accounts", *command])
        assert result.exit_code == 1
        assert "no account named 'nobody'" in result.output


# --- test ------------------------------------------------------------------------------


@dataclass
class ScriptedCheck:
    """A cloud client whose `check` answers `report`, recording the targets asked."""

    name: str
    report: ConnectionReport
    asked: list[AccountTarget] = field(default_factory=list)

    def check(self, account: AccountTarget) -> ConnectionReport:
        self.asked.append(account)
        return self.report


def hand_registry(app, monkeypatch, cloud: ScriptedCheck) -> None:
    registry = ProviderRegistry.of(
        (SimulatedProvider(name) for name in PROVIDERS),
        [cloud],  # type: ignore[list-item]
    )
    monkeypatch.setitem(app.extensions, "providers", registry)


def test_test_exits_0_when_the_cloud_answers(app, cli, db_session, monkeypatch):
    cloud = ScriptedCheck("aws", ConnectionReport(ok=True, message="assumed the role"))
    hand_registry(app, monkeypatch, cloud)
    make_account(db_session, mode="dry_run", aws_role_arn=ROLE)

    result = cli.invoke(args=["accounts", "test", "aws account"])

    assert result.exit_code == 0, result.output
    assert result.output == "aws account (aws, dry_run): ok: assumed the role\n"
    [target] = cloud.asked
    assert (target.aws_role_arn, target.external_id) == (ROLE, "123456789012")


def test_test_exits_1_with_the_message_and_the_missing_actions(app, cli, db_session, monkeypatch):
    denied = ConnectionReport(
        ok=False,
        message="IAM denied: the role cannot describe offerings",
        missing=("ec2:DescribeReservedInstancesOfferings", "savingsplans:CreateSavingsPlan"),
    )
    hand_registry(app, monkeypatch, ScriptedCheck("aws", denied))
    make_account(db_session, mode="live")

    result = cli.invoke(args=["accounts", "test", "aws account"])

    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: aws account (aws, live): connection failed: "
        "IAM denied: the role cannot describe offerings",
        "missing permissions: ec2:DescribeReservedInstancesOfferings, "
        "savingsplans:CreateSavingsPlan",
    ]


def test_a_simulated_account_is_checked_by_the_simulator(app, cli, db_session, monkeypatch):
    cloud = ScriptedCheck("aws", ConnectionReport(ok=False, message="not asked"))
    hand_registry(app, monkeypatch, cloud)
    make_account(db_session, mode="simulate")

    result = cli.invoke(args=["accounts", "test", "aws account"])

    assert result.exit_code == 0, result.output
    assert "ok: simulated" in result.output
    assert cloud.asked == []
