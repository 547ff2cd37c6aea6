"""The whole product buying from AWS, on each database: a real worker runs the executor,
whose boto3 client reaches a small EC2 endpoint on loopback through `AWS_ENDPOINT_URL`
(the SDK's own setting), and the ledger and the endpoint's store are compared.

A worker is killed with SIGKILL after EC2 bought (and tagged) a reservation but before
the product recorded it. The sweep fails the row; its retry asks EC2 (`find`, by the
key's tag) before buying: the reservation is found, recorded, and not bought again.
With the lookup failing, the item fails and nothing is bought. A row killed part-way
buys, on retry, only what the lineage has not bought.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from app import background, task_names
from app.db import unit_of_work
from app.domain.rbac import Action
from app.domain.staleness import RECOVERY_WITHIN
from app.domain.statuses import Status
from app.models import ProviderPurchase
from app.services import approvals
from app.services.identity import principal_for
from tests.factories import ec2_item, make_account, make_execution, make_user
from tests.integration.tasks.flows import execution, kill, queue_retry, ready, settled
from tests.support.aws_endpoint import Ec2Endpoint
from tests.support.commands import wait_until

pytestmark = pytest.mark.worker

TIMEOUT = RECOVERY_WITHIN.total_seconds() + 30
INTERRUPTED = "interrupted: the worker running it stopped"


@pytest.fixture
def ec2() -> Iterator[Ec2Endpoint]:
    with Ec2Endpoint() as endpoint:
        yield endpoint


@pytest.fixture
def aws_workers(workers, ec2):
    """Start a worker whose boto3 reaches the endpoint, with credentials that only it
    accepts (no real AWS is reachable, and none is asked)."""

    def start(name: str):
        return workers(
            name,
            AWS_ENDPOINT_URL=ec2.url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",  # the local endpoint checks nothing
            AWS_DEFAULT_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
        )

    return start


def approved_live_row(items: list[dict[str, Any]]):
    with unit_of_work() as session:
        alice = make_user(session, groups=("Purchasers",))
        account = make_account(session, mode="live")
        row = make_execution(
            session,
            Status.APPROVED,
            created_by=alice,
            cloud_account_id=account.id,
            recommendations=items,
        )
    return alice, row


def killed_mid_purchase(app, ec2, aws_workers, row, *, hold_nth: int = 1) -> None:
    """Run `row` on a worker held after EC2 bought and tagged the `hold_nth` item, kill
    the worker, start a fresh one and wait for the sweep to fail the row."""
    ec2.set_knobs({"hold": "CreateTags", "hold_nth": hold_nth})
    doomed = aws_workers("doomed")
    background.enqueue(task_names.EXECUTE, [str(row.execution_id)])
    wait_until(ec2.held.is_set, timeout=60, what="EC2 to hold its CreateTags answer")
    kill(doomed)
    ec2.release()
    assert execution(row.execution_id).status == Status.RUNNING
    ready(app, aws_workers("fresh"), "fresh")
    failed = wait_until(
        lambda: (found := execution(row.execution_id)).status == Status.FAILED and found,
        timeout=TIMEOUT,
        what="the sweep to fail the killed run",
    )
    assert failed.error == INTERRUPTED


def retried_and_approved(alice, row):
    """Retry the failed row, approve its successor as its creator, and wait for the run."""
    request = settled(queue_retry(alice, row.execution_id), timeout=TIMEOUT)
    assert request.state == "succeeded", request
    with unit_of_work() as session:
        approver = principal_for(session.merge(alice))
    approvals.decide(approver, request.successor_execution_id, Action.APPROVE)
    return wait_until(
        lambda: (
            (found := execution(request.successor_execution_id)).status
            not in {Status.APPROVED, Status.RUNNING}
            and found
        ),
        timeout=TIMEOUT,
        what="the successor to run",
    )


def ledger() -> dict[str, tuple[str | None, str]]:
    with unit_of_work() as session:
        return {
            row.idempotency_key: (row.purchase_id, row.mode)
            for row in session.scalars(select(ProviderPurchase))
        }


def test_a_purchase_killed_before_its_commit_is_found_on_retry_and_not_bought_again(
    app, beat, ec2, aws_workers, mailbox
):
    alice, row = approved_live_row([ec2_item()])
    killed_mid_purchase(app, ec2, aws_workers, row)
    (bought,) = ec2.reservations  # EC2 bought it; the product never recorded it
    assert ledger() == {f"{row.execution_id}:0": (None, "live")}

    successor = retried_and_approved(alice, row)

    assert successor.status == Status.COMPLETED, successor.error
    (item,) = successor.recommendations
    assert item["purchased"] is True and item["purchase_id"] == bought
    assert ec2.purchases == 1
    assert ledger() == {f"{row.execution_id}:0": (bought, "live")}
    assert successor.purchase_mode == "live"


def test_a_lost_purchase_whose_lookup_fails_is_not_bought_again(
    app, beat, ec2, aws_workers, mailbox
):
    alice, row = approved_live_row([ec2_item()])
    killed_mid_purchase(app, ec2, aws_workers, row)
    ec2.set_knobs({"describe_error": "UnauthorizedOperation"})

    successor = retried_and_approved(alice, row)

    assert successor.status == Status.FAILED
    (item,) = successor.recommendations
    assert "looking it up at aws failed" in item["error"] and "nothing was bought" in item["error"]
    assert ec2.purchases == 1
    assert ledger() == {f"{row.execution_id}:0": (None, "live")}


def test_a_row_killed_part_way_buys_only_what_the_lineage_has_not_bought(
    app, beat, ec2, aws_workers, mailbox
):
    items = [
        ec2_item(payment_option=payment)
        for payment in ("all-upfront", "partial-upfront", "no-upfront")
    ]
    alice, row = approved_live_row(items)
    killed_mid_purchase(app, ec2, aws_workers, row, hold_nth=2)
    assert ec2.purchases == 2  # the first recorded, the second bought but not recorded
    first = ledger()[f"{row.execution_id}:0"][0]
    assert first is not None and ledger()[f"{row.execution_id}:1"] == (None, "live")

    successor = retried_and_approved(alice, row)

    assert successor.status == Status.COMPLETED, successor.error
    assert ec2.purchases == 3
    bought = [item["purchase_id"] for item in successor.recommendations]
    assert bought[0] == first
    assert set(bought) == set(ec2.reservations)
    assert {key: value[0] for key, value in ledger().items()} == {
        f"{row.execution_id}:{index}": purchase_id for index, purchase_id in enumerate(bought)
    }
