"""`flask executions create --account NAME FILE` as a process: JSON, CSV and standard
input, a preview that writes nothing, and refusals (a malformed item naming its field,
a suppressed item with its reason) that exit 1 and write nothing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.db import unit_of_work
from app.domain.statuses import Status
from app.models import Group, PurchaseExecution, User
from app.services.identity import create_group
from tests.factories import make_account, make_execution, make_suppression, make_user
from tests.support.commands import flask_cli

pytestmark = pytest.mark.processes

ITEM = {
    "provider": "aws",
    "service": "ec2",
    "region": "us-east-1",
    "resource_type": "m5.large",
    "account_id": "123456789012",
    "count": 2,
    "term_years": 1,
    "payment_option": "all-upfront",
    "upfront_cost": "1200.00",
    "monthly_savings": "80.00",
}
CSV = (
    "provider,service,region,resource_type,account_id,count,term_years,payment_option,"
    "upfront_cost,monthly_savings,selected\n"
    "aws,ec2,us-east-1,m5.large,123456789012,2,1,all-upfront,1200.00,80.00,true\n"
    "aws,rds,us-east-1,db.r6g.large,123456789012,1,3,no-upfront,0,40.5,false\n"
)


def rows() -> int:
    with unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(PurchaseExecution)) or 0


@pytest.fixture
def account(committed_db):
    with unit_of_work() as session:
        found = make_account(session)
        found.name = "prod"
        return found


def test_json_file_creates_a_pending_row(settings, account, tmp_path: Path):
    path = tmp_path / "items.json"
    path.write_text(json.dumps([ITEM]))
    result = flask_cli(settings, "executions", "create", "--account", "prod", str(path))
    assert result.returncode == 0, result.stderr
    assert " pending" in result.stdout and "upfront 1200.00" in result.stdout
    execution_id = result.stdout.split()[1]
    with unit_of_work() as session:
        row = session.get(PurchaseExecution, uuid.UUID(execution_id))
        assert row is not None and row.status == Status.PENDING
        assert row.created_by_user_id is None  # the operator at the shell owns nothing


def test_csv_on_standard_input_as_a_user(settings, account):
    with unit_of_work() as session:
        user = make_user(session, "ops@example.com")
        user_id = user.id
    with unit_of_work() as session:
        create_group(session, "Creators", ["create-any:purchases"])
        found = session.get(User, user_id)
        assert found is not None
        found.groups.append(session.scalars(select(Group).where(Group.name == "Creators")).one())
    result = flask_cli(
        settings,
        "executions",
        "create",
        "--account",
        "prod",
        "-",
        "--as",
        "ops@example.com",
        stdin=CSV,
    )
    assert result.returncode == 0, result.stderr
    assert "1 items: upfront 1200.00" in result.stdout
    with unit_of_work() as session:
        row = session.scalars(select(PurchaseExecution)).one()
        assert row.created_by_user_id == user_id
        assert [item["selected"] for item in row.recommendations] == [True, False]
        assert row.recommendations[1]["monthly_savings"] == "40.5"


def test_preview_writes_nothing(settings, account):
    result = flask_cli(
        settings,
        "executions",
        "create",
        "--account",
        "prod",
        "-",
        "--preview",
        stdin=json.dumps([ITEM]),
    )
    assert result.returncode == 0, result.stderr
    assert "item 0: commitment 1200.00" in result.stdout and "sim-offering-" in result.stdout
    assert rows() == 0


def test_a_malformed_item_and_a_suppressed_one_are_refused(settings, account):
    bad = flask_cli(
        settings,
        "executions",
        "create",
        "--account",
        "prod",
        "-",
        stdin=json.dumps([ITEM, {**ITEM, "count": "two"}]),
    )
    assert bad.returncode == 1
    assert "item 1: field 'count'" in bad.stderr
    with unit_of_work() as session:
        make_suppression(session, make_execution(session, Status.APPROVED))
    before = rows()
    suppressed = flask_cli(
        settings, "executions", "create", "--account", "prod", "-", stdin=json.dumps([ITEM])
    )
    assert suppressed.returncode == 1
    assert "item 0 is suppressed" in suppressed.stderr
    assert rows() == before


def test_unreadable_input_is_a_clear_error(settings, account, tmp_path: Path):
    missing = flask_cli(
        settings, "executions", "create", "--account", "prod", str(tmp_path / "none.json")
    )
    assert missing.returncode != 0 and "none.json" in missing.stderr
    broken = flask_cli(settings, "executions", "create", "--account", "prod", "-", stdin="[{")
    assert broken.returncode == 1 and "not valid JSON" in broken.stderr
    unknown = flask_cli(settings, "executions", "create", "--account", "nope", "-", stdin="[]")
    assert unknown.returncode == 1
    assert rows() == 0
