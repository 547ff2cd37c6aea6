"""Every spend limit refuses on every path of the JSON API that lets money be spent.

The limits (allowed accounts, providers, services, a maximum per purchase and per day)
bind the members of a group. The paths: a single retry (`POST
/api/purchases/retry/<id>`), a bulk retry (`POST /api/purchases/retry`: the refused
row's item outcome), an approval by session and by an approval email's token (`POST
/api/purchases/approve/<id>` with `{"token": ...}`), and creating a purchase (`POST
/api/purchases`). Each refusal is a 403 naming the group, the limit and the amount,
recorded in the trail, writes nothing else, and says nothing of any other account.
The executor's own re-check, with a real worker, is in
tests/integration/tasks/test_spend_limit_executor.py.

The purchase is one EC2 item of 1,200.00 upfront, for one year: it commits 1,200.00.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from app.db import utcnow
from app.domain.statuses import Status
from app.models import (
    ApprovalToken,
    AuditEvent,
    CloudAccount,
    PurchaseExecution,
    RetryBatch,
    RetryBatchItem,
    SpendLimit,
    User,
)
from app.services.identity import create_group
from app.services.link_tokens import new_token
from tests.e2e.helpers import sign_in
from tests.factories import make_account, make_execution, make_user, recommendation

AMOUNT = "1200.00"
PATHS = ["retry", "bulk-retry", "approve", "approve-by-link", "create"]


@dataclass
class World:
    member: User  # in "Capped": may create, retry and approve any purchase
    creator: User  # whose rows they are
    account: CloudAccount  # where the purchases are
    other: CloudAccount  # an account the member never sees a word of


@pytest.fixture
def world(db_session) -> World:
    create_group(
        db_session,
        "Capped",
        ["create-any:purchases", "retry-any:purchases", "approve-any:purchases"],
    )
    account = make_account(db_session)
    other = make_account(db_session, provider="aws")
    other.name, other.external_id = "secret-other-account", "999999999999"
    db_session.flush()
    return World(
        member=make_user(db_session, "capped@example.com", groups=("Capped",)),
        creator=make_user(db_session, "creator@example.com"),
        account=account,
        other=other,
    )


def limit(session, world: World, **fields: Any) -> SpendLimit:
    """The Capped group's limit, as `fields` say."""
    group_id = world.member.groups[0].id
    row = SpendLimit(group_id=group_id, **fields)
    session.add(row)
    session.flush()
    return row


def spent_today(session, world: World, amount: str = AMOUNT) -> PurchaseExecution:
    """A purchase the member approved earlier today, committing `amount`."""
    return make_execution(
        session,
        Status.APPROVED,
        created_by=world.creator,
        cloud_account_id=world.account.id,
        recommendations=[recommendation(upfront_cost=amount)],
        approved_by="capped@example.com",
        approved_by_user_id=world.member.id,
        approved_at=utcnow(),
    )


# Each rule: the limit's fields, given the world, and a part of the message it gives.
RULES: dict[str, tuple[Any, str]] = {
    "allowed_accounts": (
        lambda world: {"allowed_account_ids": [str(world.other.id)]},
        "this account is not one its members may buy for",
    ),
    "allowed_providers": (
        lambda world: {"allowed_providers": ["azure"]},
        "provider 'aws' is not allowed (allowed: azure)",
    ),
    "allowed_services": (
        lambda world: {"allowed_services": ["rds", "savingsplans"]},
        "service 'ec2' is not allowed (allowed: rds, savingsplans)",
    ),
    "max_per_purchase": (
        lambda world: {"max_per_purchase": Decimal("1199.99")},
        "this purchase commits 1,200.00, over its maximum per purchase of 1,199.99",
    ),
    "max_per_day": (
        lambda world: {"max_per_day": Decimal("2000.00")},
        "this purchase commits 1,200.00, which would bring today's approved commitments to "
        "2,400.00, over its maximum per day of 2,000.00",
    ),
}

# Limits the purchase keeps to exactly: nothing refuses.
GENEROUS = {
    "allowed_account_ids": None,
    "allowed_providers": ["aws"],
    "allowed_services": ["ec2"],
    "max_per_purchase": Decimal("1200.00"),
    "max_per_day": Decimal("2400.00"),
}


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def events(session) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def fresh(session, row: PurchaseExecution) -> PurchaseExecution:
    found = session.get(PurchaseExecution, row.execution_id, populate_existing=True)
    assert found is not None
    return found


def queued(redis_db) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in redis_db.lrange("purchases", 0, -1)]


# --- The paths ----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a path answered, the refusal as it reports it, and what it wrote."""

    status: int
    text: str
    refusal: dict[str, Any] | None
    row: PurchaseExecution | None


def target_row(session, world: World, path: str) -> PurchaseExecution | None:
    if path == "create":
        return None
    status = Status.FAILED if "retry" in path else Status.PENDING
    return make_execution(
        session,
        status,
        created_by=world.creator,
        cloud_account_id=world.account.id,
        recommendations=[recommendation()],
        error="InsufficientInstanceCapacity" if status is Status.FAILED else None,
    )


def take(client, session, world: World, path: str, row: PurchaseExecution | None) -> Outcome:
    """Take `path` as the member, on `row` (none for create)."""
    if path == "approve-by-link":
        assert row is not None
        token, token_hash = new_token()
        session.add(
            ApprovalToken(
                token_hash=token_hash,
                execution_id=row.execution_id,
                action="approve",
                recipient=world.member.email,
                expires_at=utcnow().replace(year=utcnow().year + 1),
            )
        )
        session.flush()
        response = client.post(f"/api/purchases/approve/{row.execution_id}", json={"token": token})
        body = response.json
        return Outcome(response.status_code, response.text, body, row)
    csrf = sign_in(client, world.member)
    headers = {"X-CSRFToken": csrf}
    if path == "create":
        payload = {"cloud_account_id": str(world.account.id), "recommendations": [recommendation()]}
        response = client.post("/api/purchases", json=payload, headers=headers)
        return Outcome(response.status_code, response.text, response.json, None)
    assert row is not None
    if path == "retry":
        response = client.post(f"/api/purchases/retry/{row.execution_id}", headers=headers)
        return Outcome(response.status_code, response.text, response.json, row)
    if path == "approve":
        response = client.post(f"/api/purchases/approve/{row.execution_id}", headers=headers)
        return Outcome(response.status_code, response.text, response.json, row)
    response = client.post(
        "/api/purchases/retry", json={"execution_ids": [str(row.execution_id)]}, headers=headers
    )
    assert response.status_code == 202, response.text
    batch = client.get(response.json["status_url"])
    assert batch.status_code == 200, batch.text
    [item] = batch.json["items"]
    refusal = None if item["state"] != "rejected" else {**item, "error": item["error"]}
    text = response.text + batch.text
    return Outcome(item["status_code"] or 202, text, refusal, row)


REFUSAL_EVENTS = {
    "retry": "retry.refused",
    "bulk-retry": "retry.rejected",
    "approve": "execution.approve_refused",
    "approve-by-link": "execution.approve_refused",
}


def assert_nothing_written(session, redis_db, path: str, row, executions_before: int) -> None:
    assert count(session, PurchaseExecution) == executions_before
    assert queued(redis_db) == []
    if path == "retry":
        assert count(session, RetryBatch) == 0
    if path == "bulk-retry":
        assert session.scalar(select(RetryBatchItem.state)) == "rejected"
    if row is not None:
        after = fresh(session, row)
        assert after.status == row.status
        assert (after.approved_by, after.approved_at, after.retry_execution_id) == (
            None,
            None,
            None,
        )
    if path == "approve-by-link":
        assert session.scalar(select(ApprovalToken.used_at)) is None


def assert_leaks_nothing(text: str, world: World) -> None:
    for secret in (world.other.name, str(world.other.id), world.other.external_id):
        assert secret not in text


# --- Every rule refuses on every path -------------------------------------------------


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("path", PATHS)
def test_every_limit_refuses_on_every_path(client, db_session, redis_db, world, path, rule):
    fields, message = RULES[rule]
    limit(db_session, world, **fields(world))
    if rule == "max_per_day":
        spent_today(db_session, world)
    row = target_row(db_session, world, path)
    executions_before = count(db_session, PurchaseExecution)
    events_before = len(events(db_session))

    outcome = take(client, db_session, world, path, row)

    assert outcome.status == 403, outcome.text
    refusal = outcome.refusal
    assert refusal is not None
    assert refusal["error"] == f'spend limit of group "Capped": {message}'
    assert (refusal["limit"], refusal["group"], refusal["amount"]) == (rule, "Capped", AMOUNT)
    assert_leaks_nothing(outcome.text, world)
    assert_nothing_written(db_session, redis_db, path, row, executions_before)
    recorded = events(db_session)[events_before:]
    refused = [event for event in recorded if event.details.get("limit") == rule]
    assert len(refused) == 1, [event.action for event in recorded]
    [event] = refused
    if path in REFUSAL_EVENTS:
        assert event.action == REFUSAL_EVENTS[path]
    else:
        assert "refused" in event.action or "rejected" in event.action
    assert event.details["status"] == 403
    assert event.details["error"] == refusal["error"]
    assert (event.actor_user_id, event.actor_email) == (world.member.id, world.member.email)
    assert_leaks_nothing(json.dumps(event.details), world)


@pytest.mark.parametrize("path", PATHS)
def test_within_every_limit_each_path_goes_through(client, db_session, redis_db, world, path):
    """The same purchase, under limits it keeps to exactly (and one approved today)."""
    limit(db_session, world, **GENEROUS)
    spent_today(db_session, world)
    row = target_row(db_session, world, path)

    outcome = take(client, db_session, world, path, row)

    expected = {"retry": 202, "bulk-retry": 202, "create": 201}.get(path, 200)
    assert outcome.status == expected, outcome.text
    if path == "bulk-retry":
        assert outcome.refusal is None
    if path.startswith("approve"):
        assert row is not None
        assert fresh(db_session, row).status == Status.APPROVED


def test_a_group_without_a_limit_limits_nobody(client, db_session, redis_db, world):
    row = target_row(db_session, world, "approve")
    assert take(client, db_session, world, "approve", row).status == 200


# --- Per day: two approvals in one day, the second refused ----------------------------


def test_the_second_approval_of_the_day_is_refused_over_max_per_day(
    client, db_session, redis_db, world
):
    limit(db_session, world, max_per_day=Decimal("2000.00"))
    first = target_row(db_session, world, "approve")
    second = target_row(db_session, world, "approve")
    csrf = sign_in(client, world.member)

    approved = client.post(
        f"/api/purchases/approve/{first.execution_id}", headers={"X-CSRFToken": csrf}
    )
    refused = client.post(
        f"/api/purchases/approve/{second.execution_id}", headers={"X-CSRFToken": csrf}
    )

    assert approved.status_code == 200, approved.text
    assert refused.status_code == 403, refused.text
    assert refused.json["limit"] == "max_per_day"
    assert refused.json["spent_today"] == AMOUNT
    assert "to 2,400.00, over its maximum per day of 2,000.00" in refused.json["error"]
    assert fresh(db_session, second).status == Status.PENDING
    assert len(queued(redis_db)) == 1  # the first approval's purchase only


def test_another_groups_spend_does_not_count_towards_the_day(client, db_session, redis_db, world):
    limit(db_session, world, max_per_day=Decimal("2000.00"))
    outsider = make_user(db_session, "outsider@example.com", groups=("Purchasers",))
    make_execution(
        db_session,
        Status.APPROVED,
        created_by=outsider,
        cloud_account_id=world.account.id,
        recommendations=[recommendation(upfront_cost="1900.00")],
        approved_by=outsider.email,
        approved_by_user_id=outsider.id,
        approved_at=utcnow(),
    )
    row = target_row(db_session, world, "approve")
    assert take(client, db_session, world, "approve", row).status == 200


def test_the_strictest_of_several_groups_limits_wins(client, db_session, redis_db, world):
    limit(db_session, world, max_per_purchase=Decimal("1000000.00"))
    strict = create_group(db_session, "Strict", [])
    db_session.add(SpendLimit(group_id=strict.id, max_per_purchase=Decimal("1000.00")))
    world.member.groups.append(strict)
    db_session.flush()
    row = target_row(db_session, world, "approve")

    outcome = take(client, db_session, world, "approve", row)

    assert outcome.status == 403, outcome.text
    assert outcome.refusal is not None
    assert (outcome.refusal["group"], outcome.refusal["limit"]) == ("Strict", "max_per_purchase")
