"""Retrying a partially completed execution, and grouping a bulk retry's refusals for its
preview: the pure rules, with no database."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.domain.errors import DomainError
from app.domain.retry import (
    RETRYABLE,
    persistent_hint,
    preview_reason,
    retry_refusal,
    successor_recommendations,
    suppression_counts,
    to_buy,
)
from app.domain.row_actions import action_cell
from app.domain.spending import totals_of
from app.domain.statuses import Status
from tests.factories import recommendation
from tests.unit.domain.fakes import POLICY, SUCCESSOR, Row, user

PARTIAL = Status.PARTIALLY_COMPLETED.value


def partly_bought() -> list[dict]:
    """Three items as a partially completed run left them: 0 and 2 bought, 1 failed."""
    return [
        recommendation(upfront_cost="1000.00", monthly_savings="40.00")
        | {"purchased": True, "purchase_id": "sim-0", "quote": {"term_total": "1000.00"}},
        recommendation(resource_type="c5.xlarge", upfront_cost="500.00", monthly_savings="10.00")
        | {"purchased": False, "error": "InsufficientInstanceCapacity"},
        recommendation(resource_type="r5.large", upfront_cost="300.00")
        | {"purchased": True, "purchase_id": "sim-2"},
    ]


def test_only_failed_and_partially_completed_rows_are_retryable():
    assert {status.value for status in RETRYABLE} == {"failed", "partially_completed"}
    assert retry_refusal(user(), Row(status=PARTIAL), POLICY, force=False) is None
    for status in Status:
        if status not in RETRYABLE:
            refused = retry_refusal(user(), Row(status=status.value), POLICY, force=True)
            assert refused is not None and refused.status == 409
            assert status.value in refused.message


def test_a_partially_completed_row_gets_every_other_check_of_a_failed_one():
    linked = retry_refusal(
        user(), Row(status=PARTIAL, retry_execution_id=SUCCESSOR), POLICY, force=True
    )
    assert linked is not None and linked.details == {"retry_execution_id": str(SUCCESSOR)}
    at_threshold = Row(status=PARTIAL, retry_attempt_n=5)
    assert retry_refusal(user(), at_threshold, POLICY, force=False).details["threshold"] == 5
    assert retry_refusal(user(), at_threshold, POLICY, force=True) is None
    persistent = Row(status=PARTIAL, error="1 of 3 purchases failed: IAM denied: ec2")
    refused = retry_refusal(user(), persistent, POLICY, force=True)
    assert refused is not None and refused.details["ops_hint"].startswith("Grant the purchasing")
    assert persistent_hint(persistent, POLICY) == refused.details["ops_hint"]
    assert persistent_hint(Row(status="completed", error="IAM denied"), POLICY) is None


def test_the_action_cell_offers_retry_on_a_partially_completed_row_with_its_own_prompt():
    (button,) = action_cell(user(), Row(status=PARTIAL), POLICY).buttons
    assert button.action == "retry"
    assert button.confirm.startswith("Retry the rest of this partially completed purchase?")
    (failed,) = action_cell(user(), Row(), POLICY).buttons
    assert failed.confirm.startswith("Retry this failed purchase?")
    assert action_cell(user(), Row(status="completed"), POLICY).buttons == ()


def test_the_successor_keeps_every_item_at_its_index_and_what_was_bought_as_bought():
    items = partly_bought()
    successor = successor_recommendations(items, {0: "sim-0", 2: "sim-2-ledger"})
    assert len(successor) == 3
    carried = {name: value for name, value in items[0].items() if name != "quote"}
    assert successor[0] == carried | {
        "selected": False,
        "purchased": True,
        "purchase_id": "sim-0",
        "error": None,
    }
    assert "quote" not in successor[0]  # the run's own quote is not carried
    assert successor[2]["purchase_id"] == "sim-2-ledger"  # the ledger's word, not the item's
    assert successor[1]["selected"] is not False
    assert (successor[1]["purchased"], successor[1]["purchase_id"], successor[1]["error"]) == (
        False,
        None,
        None,
    )
    # Nothing written into the copy reaches the predecessor's history.
    successor[1]["purchased"] = True
    assert items[1]["purchased"] is False and items[1]["error"] == "InsufficientInstanceCapacity"
    assert items[0].get("selected", True) is True and items[0]["purchase_id"] == "sim-0"


def test_the_successor_s_money_and_suppressions_count_only_what_it_will_buy():
    successor = successor_recommendations(partly_bought(), {0: "sim-0", 2: "sim-2"})
    totals = totals_of(successor)
    assert (totals.items, totals.upfront, totals.yearly_savings) == (
        1,
        Decimal("500.00"),
        Decimal("120.00"),
    )
    assert [item["resource_type"] for item in to_buy(successor)] == ["c5.xlarge"]
    scopes = suppression_counts(to_buy(successor))
    assert [scope.resource_type for scope in scopes] == ["c5.xlarge"]


def test_an_index_outside_the_items_is_ignored_and_nothing_bought_means_a_fresh_copy():
    items = partly_bought()
    assert successor_recommendations(items, {7: "ghost", -1: "ghost"}) == successor_recommendations(
        items, {}
    )
    fresh = successor_recommendations(items, {})
    assert all(item["purchased"] is False and item["purchase_id"] is None for item in fresh)
    assert totals_of(fresh).items == 3


@pytest.mark.parametrize(
    ("refusal", "reason"),
    [
        (DomainError(400, "malformed execution id: 'x' is not a UUID"), "not an execution id"),
        (DomainError(404, "no execution 6f1c0000-0000-0000-0000-000000000000"), "no such"),
        (
            DomainError(
                403, "spend limit …: commits 1,200.00", limit="max_per_purchase", group="G"
            ),
            'over the spend limit of group "G": max_per_purchase',
        ),
        (
            DomainError(409, "retried 7 times already", retry_attempt_n=7, threshold=5),
            "retried 5 times or more (the threshold)",
        ),
        (
            DomainError(409, "will recur", ops_hint="Set FROM_EMAIL", failure_reason="FROM_EMAIL"),
            "will recur: Set FROM_EMAIL",
        ),
        (DomainError(403, "not allowed to retry this execution: x"), "not allowed to retry"),
    ],
)
def test_a_preview_groups_refusals_by_what_does_not_differ_from_row_to_row(refusal, reason):
    assert preview_reason(refusal).startswith(reason)
    # Nothing row-specific: no id, no amount, no attempt count.
    for specific in ("6f1c", "1,200.00", "7 times", "'x'"):
        assert specific not in preview_reason(refusal)
