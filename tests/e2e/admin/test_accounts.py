"""The Cloud Accounts pages over HTTP: the mode in the list, the AWS role and the Azure
billing scope in the forms, switching the mode, and "Test connection".

Each write is a POST form with the CSRF token; the tests check what was stored, what the
page shows (the hooks `data-purchase-mode`, `data-action`, `data-account-id`), what the
trail records, and that refusals (an unknown mode, not an admin, no CSRF token) change
nothing. "Test connection" asks the registry the app holds: the test hands the app its
own (`app.extensions["providers"]`, the product's provider seam) whose cloud client
answers what the test needs and records what it was asked.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from app.domain.providers import PROVIDERS
from app.models import AuditEvent, CloudAccount
from app.providers import AccountTarget, ConnectionReport, ProviderRegistry
from app.providers.simulator import SimulatedProvider
from tests.e2e.helpers import csrf_from, page_login
from tests.factories import PASSWORD, make_account, make_user

ROLE = "arn:aws:iam::123456789012:role/commitment-purchaser"
SCOPE = "/providers/Microsoft.Billing/billingAccounts/1234"


@pytest.fixture
def root(client, db_session):
    """An admin, signed in on `client`."""
    user = make_user(db_session, "root@example.com", groups=("Administrators",))
    assert page_login(client, user.email, PASSWORD).status_code == 302
    return user


def token(client) -> str:
    return csrf_from(client.get("/admin/").text)


def events(session, action: str) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def fresh(session, account: CloudAccount) -> CloudAccount:
    found = session.get(CloudAccount, account.id, populate_existing=True)
    assert found is not None
    return found


def flashes(page: str, category: str) -> list[str]:
    found = re.findall(rf'data-flash="{category}">([^<]*)<', page)
    return [html.unescape(text) for text in found]


def follow(client, response) -> str:
    assert response.status_code == 302, response.text
    return client.get(response.headers["Location"]).text


def switch(client, account, mode, *, with_token=True):
    form = {"id": str(account.id), "mode": mode, "next": "/admin/accounts/"}
    if with_token:
        form["csrf_token"] = token(client)
    return client.post("/admin/accounts/mode/", data=form)


def check_connection(client, account, *, with_token=True):
    form = {"id": str(account.id), "next": "/admin/accounts/"}
    if with_token:
        form["csrf_token"] = token(client)
    return client.post("/admin/accounts/test/", data=form)


# --- The list and the forms ------------------------------------------------------------


def test_the_list_labels_each_mode_and_offers_a_test_per_account(client, db_session, root):
    accounts = {
        mode: make_account(db_session, provider=provider, mode=mode)
        for provider, mode in zip(PROVIDERS, ("simulate", "dry_run", "live"), strict=True)
    }

    page = client.get("/admin/accounts/").text

    labels = re.findall(r'class="badge ([\w-]+)"\s+data-purchase-mode="(\w+)"', page)
    assert sorted(labels, key=lambda label: label[1]) == [
        ("badge-info", "dry_run"),
        ("badge-danger", "live"),
        ("badge-secondary", "simulate"),
    ]
    assert "LIVE: buys for real" in page
    buttons = re.findall(r'data-action="test-connection"\s+data-account-id="([^"]+)"', page)
    assert sorted(buttons) == sorted(str(account.id) for account in accounts.values())


def test_the_coordinates_round_trip_through_the_forms(client, db_session, root):
    form = {
        "csrf_token": token(client),
        "name": "prod",
        "provider": "aws",
        "external_id": "ext-42",
        "aws_role_arn": f" {ROLE} ",
        "azure_billing_scope": "",
    }
    page = follow(client, client.post("/admin/accounts/new/", data=form))

    [account] = db_session.scalars(select(CloudAccount).where(CloudAccount.name == "prod"))
    assert (account.aws_role_arn, account.purchase_mode) == (ROLE, "dry_run")
    assert "prod starts in dry_run mode" in " ".join(flashes(page, "info"))
    [created] = events(db_session, "account.created")
    assert created.details["purchase_mode"] == "dry_run"

    edit = client.get(f"/admin/accounts/edit/?id={account.id}").text
    assert f'name="aws_role_arn" type="text" value="{ROLE}"' in edit
    assert "No secret is stored here" in edit

    form.update(
        csrf_token=token(client), provider="azure", aws_role_arn="", azure_billing_scope=SCOPE
    )
    assert client.post(f"/admin/accounts/edit/?id={account.id}", data=form).status_code == 302
    stored = fresh(db_session, account)
    assert (stored.provider, stored.aws_role_arn, stored.azure_billing_scope) == (
        "azure",
        None,
        SCOPE,
    )
    assert f'name="azure_billing_scope" type="text" value="{SCOPE}"' in (
        client.get(f"/admin/accounts/edit/?id={account.id}").text
    )


def test_a_malformed_role_is_flashed_and_nothing_changes(client, db_session, root):
    account = make_account(db_session, aws_role_arn=ROLE)
    form = {
        "csrf_token": token(client),
        "name": account.name,
        "provider": "aws",
        "external_id": account.external_id,
        "aws_role_arn": "arn:aws:iam::42:role/x",
    }

    response = client.post(f"/admin/accounts/edit/?id={account.id}", data=form)

    assert response.status_code == 200
    [message] = flashes(response.text, "error")
    assert message.startswith("aws role arn is not an IAM role's ARN")
    assert fresh(db_session, account).aws_role_arn == ROLE
    assert events(db_session, "account.updated") == []
    assert len(events(db_session, "account.update_refused")) == 1


def test_an_edit_never_changes_the_mode(client, db_session, root):
    account = make_account(db_session, mode="live")
    form = {
        "csrf_token": token(client),
        "name": "renamed",
        "provider": "aws",
        "external_id": account.external_id,
        "purchase_mode": "simulate",
    }
    assert client.post(f"/admin/accounts/edit/?id={account.id}", data=form).status_code == 302
    stored = fresh(db_session, account)
    assert (stored.name, stored.purchase_mode) == ("renamed", "live")


# --- Switching the mode ----------------------------------------------------------------


def test_the_edit_page_offers_each_other_mode_and_warns_before_live(client, db_session, root):
    account = make_account(db_session, mode="dry_run")

    page = client.get(f"/admin/accounts/edit/?id={account.id}").text

    forms = re.findall(
        r'<form method="post"[^>]*action="/admin/accounts/mode/"\s+data-confirm="([^"]*)">'
        r'.*?name="mode" value="(\w+)".*?data-action="set-mode" data-account-id="([^"]+)"',
        page,
        re.S,
    )
    assert [(mode, account_id) for _, mode, account_id in forms] == [
        ("simulate", str(account.id)),
        ("live", str(account.id)),
    ]
    live_confirmation = html.unescape(forms[1][0])
    assert "its purchases BUY FOR REAL" in live_confirmation
    assert 'data-purchase-mode="dry_run"' in page


def test_switching_to_live_is_audited_and_flashed(client, db_session, root):
    account = make_account(db_session, mode="dry_run")

    page = follow(client, switch(client, account, "live"))

    assert fresh(db_session, account).purchase_mode == "live"
    assert flashes(page, "warning") == ["aws account is now live: its purchases buy for real"]
    [changed] = events(db_session, "account.mode_changed")
    assert (changed.actor_email, changed.actor_user_id) == (root.email, root.id)
    assert (changed.details["from"], changed.details["to"]) == ("dry_run", "live")


def test_the_same_mode_writes_nothing(client, db_session, root):
    account = make_account(db_session, mode="simulate")

    page = follow(client, switch(client, account, "simulate"))

    assert flashes(page, "info") == ["aws account is already in simulate mode"]
    assert events(db_session, "account.mode_changed") == []


def test_an_unknown_mode_is_flashed_audited_and_changes_nothing(client, db_session, root):
    account = make_account(db_session, mode="dry_run")

    page = follow(client, switch(client, account, "yolo"))

    [message] = flashes(page, "error")
    assert message.startswith("purchase mode must be one of simulate, dry_run, live")
    assert fresh(db_session, account).purchase_mode == "dry_run"
    [refused] = events(db_session, "account.mode_change_refused")
    assert refused.details["mode"] == "yolo" and refused.actor_email == root.email


def test_without_the_csrf_token_nothing_switches(client, db_session, root):
    account = make_account(db_session, mode="dry_run")
    assert switch(client, account, "live", with_token=False).status_code == 400
    assert check_connection(client, account, with_token=False).status_code == 400
    assert fresh(db_session, account).purchase_mode == "dry_run"


def test_unknown_and_malformed_ids_are_refused(client, db_session, root):
    for url in ("/admin/accounts/mode/", "/admin/accounts/test/"):
        form = {"csrf_token": token(client), "mode": "live"}
        assert client.post(url, data={**form, "id": "nope"}).status_code == 400
        unknown = "6f1c0e5a-0000-4000-8000-000000000000"
        assert client.post(url, data={**form, "id": unknown}).status_code == 404


@pytest.mark.parametrize("email", ["purchaser@example.com", "viewer@example.com"])
def test_a_non_admin_is_refused_and_nothing_changes(client, db_session, email):
    groups = ("Purchasers",) if email.startswith("purchaser") else ("Read-only",)
    user = make_user(db_session, email, groups=groups)
    assert page_login(client, user.email, PASSWORD).status_code == 302
    account = make_account(db_session, mode="dry_run")
    csrf = csrf_from(client.get("/admin/").text)

    for url in ("/admin/accounts/mode/", "/admin/accounts/test/"):
        form = {"csrf_token": csrf, "id": str(account.id), "mode": "live"}
        assert client.post(url, data=form).status_code == 403, url
    assert fresh(db_session, account).purchase_mode == "dry_run"
    assert events(db_session, "account.mode_changed") == []


# --- Test connection -------------------------------------------------------------------


@dataclass
class ScriptedCheck:
    """A cloud client whose `check` answers `report`, recording the targets asked."""

    name: str
    report: ConnectionReport
    asked: list[AccountTarget] = field(default_factory=list)

    def check(self, account: AccountTarget) -> ConnectionReport:
        self.asked.append(account)
        return self.report


@pytest.fixture
def hand_cloud(app, monkeypatch):
    """`hand_cloud(client)`: the app's registry becomes the simulators plus `client`."""

    def hand(cloud: ScriptedCheck) -> ScriptedCheck:
        registry = ProviderRegistry.of(
            (SimulatedProvider(name) for name in PROVIDERS),
            [cloud],  # type: ignore[list-item]
        )
        monkeypatch.setitem(app.extensions, "providers", registry)
        return cloud

    return hand


def test_a_connection_that_works_is_flashed_ok(client, db_session, root, hand_cloud):
    cloud = hand_cloud(ScriptedCheck("aws", ConnectionReport(ok=True, message="assumed the role")))
    account = make_account(db_session, mode="dry_run", aws_role_arn=ROLE)
    before = len(list(db_session.scalars(select(AuditEvent))))

    page = follow(client, check_connection(client, account))

    assert flashes(page, "success") == [
        "aws account (aws, dry_run): connection ok: assumed the role"
    ]
    [target] = cloud.asked
    assert (target.name, target.aws_role_arn, target.external_id) == (
        "aws account",
        ROLE,
        "123456789012",
    )
    assert len(list(db_session.scalars(select(AuditEvent)))) == before


def test_a_connection_that_fails_shows_the_message_and_the_missing_actions(
    client, db_session, root, hand_cloud
):
    denied = ConnectionReport(
        ok=False,
        message="IAM denied: the role cannot describe offerings",
        missing=("ec2:DescribeReservedInstancesOfferings", "savingsplans:CreateSavingsPlan"),
    )
    hand_cloud(ScriptedCheck("aws", denied))
    account = make_account(db_session, mode="live")

    page = follow(client, check_connection(client, account))

    assert flashes(page, "error") == [
        "aws account (aws, live): connection failed: IAM denied: the role cannot describe "
        "offerings — missing permissions: ec2:DescribeReservedInstancesOfferings, "
        "savingsplans:CreateSavingsPlan"
    ]


def test_a_simulated_account_is_answered_by_the_simulator(client, db_session, root, hand_cloud):
    cloud = hand_cloud(ScriptedCheck("gcp", ConnectionReport(ok=False, message="not asked")))
    account = make_account(db_session, provider="gcp", mode="simulate")

    page = follow(client, check_connection(client, account))

    assert flashes(page, "success") == [
        "gcp account (gcp, simulate): connection ok: simulated: nothing to connect to"
    ]
    assert cloud.asked == []
