"""The executor checks the spend limits again before it buys, as they are then.

Each purchase is approved within its approver's group's limit (its task waits in Redis,
no worker running yet), then an admin changes the limit so that the purchase breaks it,
then a real worker (`celery -A tasks worker`) takes the task: the row fails
naming the limit and the amount, and nothing is bought (`provider_purchases` stays
empty). Unchanged, the same purchase is bought: the re-check is what stops it.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from app.db import fresh_read, unit_of_work
from app.domain.rbac import Action
from app.domain.statuses import Status
from app.models import AuditEvent, ProviderPurchase, User
from app.services import approvals, spend_limits
from app.services.identity import create_group, principal_for
from app.services.management import CLI_ACTOR
from tests.factories import make_account, make_execution, make_user, recommendation
from tests.integration.tasks.flows import execution
from tests.support.commands import wait_until

pytestmark = pytest.mark.worker

# One EC2 item, 1,200.00 upfront for a year: it commits 1,200.00.
AMOUNT = "1200.00"

# What the admin changes after the approval, and the refusal's message then.
LOWERED: dict[str, tuple[Any, str]] = {
    "allowed_accounts": (
        lambda other: {"allowed_accounts": [other]},
        "this account is not one its members may buy for",
    ),
    "allowed_providers": (
        lambda other: {"allowed_providers": ["gcp"]},
        "provider 'aws' is not allowed (allowed: gcp)",
    ),
    "allowed_services": (
        lambda other: {"allowed_services": ["rds"]},
        "service 'ec2' is not allowed (allowed: rds)",
    ),
    "max_per_purchase": (
        lambda other: {"max_per_purchase": "1000"},
        "this purchase commits 1,200.00, over its maximum per purchase of 1,000.00",
    ),
    "max_per_day": (
        lambda other: {"max_per_day": "1199.99"},
        "this purchase commits 1,200.00, which would bring today's approved commitments to "
        "1,200.00, over its maximum per day of 1,199.99",
    ),
}


def approved_within_the_limit(group: str) -> Any:
    """A member of `group` (limit: up to 5,000.00 a purchase and a day) approves a
    purchase of 1,200.00 on an AWS account; the row's id."""
    with unit_of_work() as session:
        create_group(session, group, ["approve-any:purchases"])
        spend_limits.set_limit(
            session, CLI_ACTOR, group, {"max_per_purchase": "5000", "max_per_day": "5000"}
        )
        member = make_user(session, f"member-of-{group.lower()}@example.com", groups=(group,))
        creator = make_user(session, f"creator-for-{group.lower()}@example.com")
        row = make_execution(
            session,
            Status.PENDING,
            created_by=creator,
            cloud_account_id=make_account(session).id,
            recommendations=[recommendation()],
        )
        row_id = row.execution_id
    approve(member, row_id)
    assert execution(row_id).status == Status.APPROVED
    return row_id


def other_account() -> str:
    with unit_of_work() as session:
        return str(make_account(session, provider="gcp").id)


def approve(user: User, execution_id: Any) -> None:
    with fresh_read() as session:
        principal = principal_for(session.merge(user))
    approvals.decide(principal, execution_id, Action.APPROVE)


def finished(execution_id: Any) -> Any:
    def load() -> Any:
        row = execution(execution_id)
        return row if row.status not in {Status.APPROVED, Status.RUNNING} else None

    return wait_until(load, timeout=30, what=f"execution {execution_id} to finish")


def bought() -> int:
    with fresh_read() as session:
        return session.scalar(select(func.count()).select_from(ProviderPurchase))


def test_every_limit_changed_after_the_approval_stops_the_purchase(worker_processes, mailbox):
    """One group per rule, each member's approval queued; then every limit is changed,
    and only then does a worker start."""
    rows = {rule: approved_within_the_limit(rule.replace("_", "-")) for rule in LOWERED}
    other = other_account()
    with unit_of_work() as session:
        for rule, (fields, _) in LOWERED.items():
            spend_limits.set_limit(session, CLI_ACTOR, rule.replace("_", "-"), fields(other))

    worker_processes("executor")

    for rule, (_, message) in LOWERED.items():
        done = finished(rows[rule])
        assert done.status == Status.FAILED, rule
        assert done.error == f'spend limit of group "{rule.replace("_", "-")}": {message}'
        assert not any(item.get("purchased") for item in done.recommendations)
        assert other not in done.error
    assert bought() == 0
    with fresh_read() as session:
        changes = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "spend_limit.changed")
        )
    assert changes == 2 * len(LOWERED)  # each limit set, then changed after its approval


def test_unchanged_the_same_purchase_is_bought(worker_processes, mailbox):
    row_id = approved_within_the_limit("Capped")

    worker_processes("executor")
    done = finished(row_id)

    assert done.status == Status.COMPLETED, done.error
    assert bought() == 1


def test_a_limit_of_the_creators_group_binds_too(worker_processes, mailbox):
    """The executor checks the spend limits of the approver's groups and the creator's."""
    row_id = approved_within_the_limit("Capped")
    with unit_of_work() as session:
        creators = create_group(session, "Creators", [])
        creator = session.scalar(select(User).where(User.email == "creator-for-capped@example.com"))
        assert creator is not None
        creator.groups = [*creator.groups, creators]
        spend_limits.set_limit(session, CLI_ACTOR, "Creators", {"max_per_purchase": "100.00"})

    worker_processes("executor")
    done = finished(row_id)

    assert done.status == Status.FAILED
    assert done.error == (
        'spend limit of group "Creators": this purchase commits 1,200.00, over its maximum '
        "per purchase of 100.00"
    )
    assert bought() == 0
