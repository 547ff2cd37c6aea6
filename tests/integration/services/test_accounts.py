"""Cloud accounts against the real database: the AWS role and the Azure billing scope
among an account's fields, a new account's mode, and who may change the mode.

The mode is changed only by `set_mode`, for an admin or the command line, and the change
is audited in its own transaction; through `management.write` a refusal writes nothing
but its own audit event. Connection checks ask the provider the registry holds for the
account's mode.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from app.domain.errors import DomainError
from app.domain.providers import PurchaseMode
from app.domain.rbac import Principal
from app.models import AuditEvent, CloudAccount
from app.providers import AccountTarget, ConnectionReport, ProviderRegistry
from app.providers.simulator import SimulatedProvider
from app.services import management
from app.services.accounts import (
    account_fields,
    check_connection,
    create_account,
    find_account,
    set_mode,
    update_account,
)
from app.services.identity import principal_for
from app.services.management import CLI_ACTOR
from tests.factories import make_account, make_user

ROLE = "arn:aws:iam::123456789012:role/commitment-purchaser"
SCOPE = "/providers/Microsoft.Billing/billingAccounts/1234:5678_2019-05-31"


@pytest.fixture
def admin(db_session) -> Principal:
    return principal_for(make_user(db_session, "root@example.com", groups=("Administrators",)))


@pytest.fixture
def purchaser(db_session) -> Principal:
    return principal_for(make_user(db_session, "buyer@example.com", groups=("Purchasers",)))


def events(session, action: str) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def fresh(session, account: CloudAccount) -> CloudAccount:
    found = session.get(CloudAccount, account.id, populate_existing=True)
    assert found is not None
    return found


def aws_fields(**overrides):
    values = {
        "name": "prod",
        "provider": "aws",
        "external_id": "ext-42",
        "contact_email": None,
        "aws_role_arn": ROLE,
    }
    values.update(overrides)
    return account_fields(**values)


# --- Fields ----------------------------------------------------------------------------


def test_a_new_account_starts_in_dry_run_and_the_trail_says_so(db_session, admin):
    account = create_account(db_session, admin, aws_fields(aws_role_arn=f"  {ROLE} "))

    stored = fresh(db_session, account)
    assert (stored.purchase_mode, stored.aws_role_arn) == ("dry_run", ROLE)
    assert stored.azure_billing_scope is None
    [created] = events(db_session, "account.created")
    assert created.details["purchase_mode"] == "dry_run"
    assert created.details["aws_role_arn"] == ROLE


def test_an_azure_account_keeps_its_billing_scope(db_session, admin):
    fields = account_fields("billing", "azure", "sub-1", None, azure_billing_scope=f" {SCOPE} ")
    account = create_account(db_session, admin, fields)
    assert fresh(db_session, account).azure_billing_scope == SCOPE


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"aws_role_arn": "arn:aws:iam::12345:role/x"}, "aws role arn is not an IAM role's ARN"),
        ({"aws_role_arn": "arn:aws:iam::123456789012:user/x"}, "aws role arn is not"),
        ({"aws_role_arn": "role/x"}, "aws role arn is not"),
        ({"provider": "gcp"}, "aws role arn applies to AWS accounts only"),
        (
            {"aws_role_arn": None, "azure_billing_scope": SCOPE},
            "azure billing scope applies to Azure accounts only",
        ),
        (
            {"provider": "azure", "aws_role_arn": "", "azure_billing_scope": "a\x00b"},
            "azure billing scope holds a control character",
        ),
    ],
)
def test_unusable_coordinates_are_refused_naming_the_field(overrides, message):
    with pytest.raises(DomainError) as refused:
        aws_fields(**overrides)
    assert refused.value.status == 400
    assert message in refused.value.message


def test_empty_coordinates_are_none():
    fields = aws_fields(aws_role_arn="   ", azure_billing_scope="")
    assert (fields.aws_role_arn, fields.azure_billing_scope) == (None, None)


def test_an_edit_changes_the_coordinates_and_never_the_mode(db_session, admin):
    account = make_account(db_session, mode="live")

    update_account(db_session, admin, account.id, aws_fields(aws_role_arn=None))

    stored = fresh(db_session, account)
    assert (stored.name, stored.aws_role_arn, stored.purchase_mode) == ("prod", None, "live")
    [updated] = events(db_session, "account.updated")
    assert "purchase_mode" not in updated.details["changes"]
    assert updated.details["changes"]["external_id"] == ["123456789012", "ext-42"]


# --- The mode --------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["admin", "cli"])
def test_changing_the_mode_is_audited_from_and_to(request, db_session, who):
    actor = request.getfixturevalue("admin") if who == "admin" else CLI_ACTOR
    account = make_account(db_session, mode="dry_run")

    set_mode(db_session, actor, account.id, "live")

    assert fresh(db_session, account).purchase_mode == "live"
    [changed] = events(db_session, "account.mode_changed")
    assert (changed.details["from"], changed.details["to"]) == ("dry_run", "live")
    assert changed.details["account_id"] == str(account.id)
    assert (changed.actor_email, changed.actor_user_id) == (actor.email, actor.user_id)


def test_the_same_mode_writes_nothing(db_session, admin):
    account = make_account(db_session, mode="simulate")

    set_mode(db_session, admin, account.id, PurchaseMode.SIMULATE)

    assert fresh(db_session, account).purchase_mode == "simulate"
    assert events(db_session, "account.mode_changed") == []


@pytest.mark.parametrize(
    ("who", "mode", "status", "message"),
    [
        ("purchaser", "live", 403, "admin:* is required"),
        ("nobody", "live", 403, "admin:* is required"),
        ("admin", "yolo", 400, "purchase mode must be one of simulate, dry_run, live"),
    ],
)
def test_a_refused_mode_change_writes_nothing_but_its_refusal(
    request, app, db_session, who, mode, status, message
):
    actor = (
        Principal(None, "someone", frozenset()) if who == "nobody" else request.getfixturevalue(who)
    )
    account = make_account(db_session, mode="dry_run")

    with app.app_context(), pytest.raises(DomainError) as refused:
        management.write(
            "account",
            "mode_change",
            actor,
            lambda session, who: set_mode(session, who, account.id, mode),
            account_id=str(account.id),
        )

    assert (refused.value.status, message in refused.value.message) == (status, True)
    assert fresh(db_session, account).purchase_mode == "dry_run"
    assert events(db_session, "account.mode_changed") == []
    [refusal] = events(db_session, "account.mode_change_refused")
    assert refusal.details["account_id"] == str(account.id)
    assert refusal.actor_email == actor.email


def test_the_mode_of_an_unknown_account_is_a_404(db_session, admin):
    with pytest.raises(DomainError) as refused:
        set_mode(db_session, admin, uuid.uuid4(), "live")
    assert refused.value.status == 404


# --- Finding an account by name --------------------------------------------------------


def test_an_account_is_found_by_name_or_id_and_a_shared_name_asks_for_the_id(db_session):
    first = make_account(db_session, provider="aws")
    assert find_account(db_session, " aws account ").id == first.id
    assert find_account(db_session, str(first.id)).id == first.id

    second = CloudAccount(name="aws account", provider="aws", external_id="210987654321")
    db_session.add(second)
    db_session.flush()
    with pytest.raises(DomainError) as shared:
        find_account(db_session, "aws account")
    assert shared.value.status == 409
    assert str(first.id) in shared.value.message and str(second.id) in shared.value.message
    assert find_account(db_session, str(second.id)).id == second.id

    for missing in ("nobody", str(uuid.uuid4())):
        with pytest.raises(DomainError) as unknown:
            find_account(db_session, missing)
        assert unknown.value.status == 404


# --- Connection checks -----------------------------------------------------------------


@dataclass
class RecordingProvider:
    """A provider whose `check` answers `report` and records the targets it was asked."""

    name: str
    report: ConnectionReport
    asked: list[AccountTarget] = field(default_factory=list)

    def check(self, account: AccountTarget) -> ConnectionReport:
        self.asked.append(account)
        return self.report


DENIED = ConnectionReport(
    ok=False,
    message="IAM denied: the role cannot describe offerings",
    missing=("ec2:DescribeReservedInstancesOfferings", "ec2:PurchaseReservedInstancesOffering"),
)


def test_a_check_asks_the_cloud_client_for_a_dry_run_account_with_its_coordinates(db_session):
    cloud = RecordingProvider("aws", DENIED)
    registry = ProviderRegistry.of([SimulatedProvider("aws")], [cloud])  # type: ignore[list-item]
    account = make_account(db_session, mode="dry_run", aws_role_arn=ROLE)

    assert check_connection(registry, account) == DENIED
    [target] = cloud.asked
    assert (target.name, target.aws_role_arn, target.external_id) == (
        "aws account",
        ROLE,
        "123456789012",
    )


def test_a_simulated_account_is_checked_by_the_simulator(db_session):
    cloud = RecordingProvider("aws", DENIED)
    registry = ProviderRegistry.of([SimulatedProvider("aws")], [cloud])  # type: ignore[list-item]
    account = make_account(db_session, mode="simulate")

    report = check_connection(registry, account)

    assert report.ok and "simulated" in report.message
    assert cloud.asked == []


def test_a_mode_no_client_serves_is_a_failed_report(db_session):
    registry = ProviderRegistry.of([SimulatedProvider("gcp")])
    account = make_account(db_session, provider="gcp", mode="live")

    report = check_connection(registry, account)

    assert not report.ok
    assert "no gcp client serves accounts in live mode" in report.message


@dataclass
class BrokenProvider:
    name: str = "azure"

    def check(self, account: AccountTarget) -> ConnectionReport:
        raise RuntimeError("DefaultAzureCredential failed to retrieve a token")


def test_a_check_that_raises_is_a_failed_report(db_session):
    registry = ProviderRegistry.of([], [BrokenProvider()])  # type: ignore[list-item]
    account = make_account(db_session, provider="azure", mode="dry_run")

    report = check_connection(registry, account)

    assert not report.ok
    assert report.message == (
        "the azure check failed: RuntimeError: DefaultAzureCredential failed to retrieve a token"
    )
