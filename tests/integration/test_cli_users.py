"""The Flask CLI, invoked as an operator would, on the test database."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import func, select

from app.domain.statuses import Status
from app.models import (
    CloudAccount,
    Group,
    ProviderPurchase,
    PurchaseExecution,
    PurchasePlan,
    User,
)


@pytest.fixture
def cli(app, db_session):
    """Runs `flask --app app ...` commands; `output` holds stdout and stderr."""
    return app.test_cli_runner()


def test_users_create_reads_the_password_from_stdin(cli, db_session, redis_db):
    result = cli.invoke(
        args=["users", "create", "Jo@Example.com", "--password-stdin", "--group", "Purchasers"],
        input="a long password\n",
    )
    assert result.exit_code == 0, result.output
    user = db_session.scalar(select(User).where(User.email == "jo@example.com"))
    assert [group.name for group in user.groups] == ["Purchasers"]


def test_users_create_without_password_stdin_is_a_usage_error(cli, db_session):
    result = cli.invoke(args=["users", "create", "kim@example.com"])
    assert result.exit_code == 2
    assert "--password-stdin" in result.output
    assert db_session.scalar(select(User).where(User.email == "kim@example.com")) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "create", "dup@example.com", "--password-stdin"], "already exists"),
        (
            ["users", "create", "x@example.com", "--password-stdin", "--group", "Nope"],
            "unknown group: Nope",
        ),
        (["users", "create", "not-an-email", "--password-stdin"], "not an email address"),
    ],
)
def test_users_create_refusals_exit_non_zero(cli, db_session, args, message):
    first = cli.invoke(
        args=["users", "create", "dup@example.com", "--password-stdin"], input="a long password\n"
    )
    assert first.exit_code == 0
    before = db_session.scalar(select(func.count()).select_from(User))
    result = cli.invoke(args=args, input="a long password\n")
    assert result.exit_code == 1
    assert message in result.output
    assert db_session.scalar(select(func.count()).select_from(User)) == before


def test_groups_create(cli, db_session):
    result = cli.invoke(
        args=[
            "groups",
            "create",
            "Auditors",
            "--permission",
            "view:purchases",
            "--restrict-defaults",
        ]
    )
    assert result.exit_code == 0, result.output
    group = db_session.scalar(select(Group).where(Group.name == "Auditors"))
    assert group.permissions == ["view:purchases"]
    assert group.restricts_defaults is True


@pytest.mark.parametrize("permission", ["retry", "fly-any:purchases", "retry-any:invoices"])
def test_groups_create_refuses_a_malformed_permission(cli, db_session, permission):
    result = cli.invoke(args=["groups", "create", "Broken", "--permission", permission])
    assert result.exit_code == 1
    assert db_session.scalar(select(Group).where(Group.name == "Broken")) is None


def test_demo_seed_covers_every_state_once(cli, db_session):
    result = cli.invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output
    assert "admin@example.com / demo-password" in result.output
    statuses = set(db_session.scalars(select(PurchaseExecution.status)))
    assert statuses == {status.value for status in Status}

    failed = list(
        db_session.scalars(select(PurchaseExecution).where(PurchaseExecution.status == "failed"))
    )
    errors = " ".join(row.error or "" for row in failed)
    assert "FROM_EMAIL not configured" in errors and "IAM denied" in errors
    assert {row.retry_attempt_n for row in failed} >= {0, 4, 5}
    assert any(row.retry_execution_id is not None for row in failed)
    assert any(row.created_by_user_id is None for row in failed)
    assert db_session.scalar(select(func.count()).select_from(CloudAccount)) == 3
    assert db_session.scalar(select(func.count()).select_from(PurchasePlan)) == 1

    before = db_session.scalar(select(func.count()).select_from(PurchaseExecution))
    again = cli.invoke(args=["demo", "seed"])
    assert again.exit_code == 0
    assert "already present" in again.output
    assert db_session.scalar(select(func.count()).select_from(PurchaseExecution)) == before


def test_demo_seed_prints_working_approval_links_and_records_what_was_bought(
    app, cli, db_session, redis_db
):
    result = cli.invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output
    links = re.findall(r"http://\S+/purchases/(approve|cancel)/(\S+)\?token=(\S+)", result.output)
    pending = set(
        db_session.scalars(
            select(PurchaseExecution.execution_id).where(PurchaseExecution.status == "pending")
        )
    )
    assert {uuid.UUID(execution_id) for _, execution_id, _ in links} == pending
    assert sorted(action for action, _, _ in links) == sorted(["approve", "cancel"] * len(pending))

    _, execution_id, token = next(link for link in links if link[0] == "approve")
    client = app.test_client()
    page = client.get(f"/purchases/approve/{execution_id}?token={token}")
    assert page.status_code == 200 and "Approve this purchase?" in page.text
    done = client.post(f"/purchases/approve/{execution_id}", data={"token": token})
    assert done.status_code == 200, done.text
    approved = db_session.get(PurchaseExecution, uuid.UUID(execution_id), populate_existing=True)
    assert approved.status == "approved"

    finished = db_session.scalars(
        select(PurchaseExecution).where(
            PurchaseExecution.status.in_(["completed", "partially_completed"])
        )
    ).all()
    bought = {
        item["purchase_id"] for row in finished for item in row.recommendations if item["purchased"]
    }
    ledger = set(db_session.scalars(select(ProviderPurchase.purchase_id)))
    assert bought and bought <= ledger
