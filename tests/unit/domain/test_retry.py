"""The retry decision over every branch, in the documented order of checks
(docs/api.md, "Retry"), with no database."""

from __future__ import annotations

import json

import pytest

from app.domain.rbac import ADMIN, Principal
from app.domain.retry import (
    MALFORMED_HINT,
    OPS_HINTS,
    RetryPolicy,
    fresh_recommendations,
    persistent_hint,
    retry_refusal,
    suppression_counts,
)
from tests.unit.domain.fakes import ME, POLICY, SOMEONE_ELSE, SUCCESSOR, Row, user


def refusal(row: Row, principal: Principal | None = None, *, force: bool = False, policy=POLICY):
    return retry_refusal(principal or user(), row, policy, force=force)


def test_a_retryable_own_failed_row_is_allowed():
    assert refusal(Row()) is None


@pytest.mark.parametrize(
    ("principal", "creator", "allowed"),
    [
        (user(), ME, True),
        (user(), SOMEONE_ELSE, False),
        (user(), None, False),  # a NULL creator is never anyone's own
        (user("retry-any:purchases"), SOMEONE_ELSE, True),
        (user("retry-any:purchases"), None, True),
        (user(ADMIN, defaults=False), None, True),
        (user("view:purchases", defaults=False), ME, False),
    ],
)
def test_who_may_retry(principal, creator, allowed):
    result = refusal(Row(created_by_user_id=creator), principal)
    assert (result is None) == allowed
    if not allowed:
        assert result.status == 403


def test_authorization_comes_before_anything_that_reveals_lineage_or_state():
    row = Row(
        created_by_user_id=SOMEONE_ELSE,
        retry_execution_id=SUCCESSOR,
        status="failed",
        error="FROM_EMAIL not configured for this deployment",
        retry_attempt_n=9,
    )
    result = refusal(row)
    assert result.status == 403
    body = json.dumps(result.as_dict())
    assert str(SUCCESSOR) not in body
    assert set(result.details) == set()


@pytest.mark.parametrize("status", ["pending", "approved", "running", "completed", "cancelled"])
def test_only_failed_rows_can_be_retried(status):
    result = refusal(Row(status=status, retry_execution_id=SUCCESSOR))
    assert result.status == 409
    assert status in result.message
    assert "retry_execution_id" not in result.details  # status is checked before lineage


def test_an_already_retried_row_names_its_successor():
    result = refusal(Row(retry_execution_id=SUCCESSOR, error="IAM denied", retry_attempt_n=7))
    assert result.status == 409
    assert result.details == {"retry_execution_id": str(SUCCESSOR)}


def test_redrive_unsafe_provider_is_refused_even_with_force():
    policy = RetryPolicy(threshold=5, redrive_unsafe_providers=frozenset({"azure"}))
    row = Row(recommendations=[{"provider": "aws"}, {"provider": "Azure"}], error="IAM denied")
    for force in (False, True):
        result = refusal(row, force=force, policy=policy)
        assert result.status == 409
        assert result.details["redrive_unsafe"] is True
        assert "azure" in result.details["ops_hint"]
        assert "failure_reason" not in result.details  # redrive comes before hints


@pytest.mark.parametrize(
    "row",
    [
        # The account's provider counts, not just the items'.
        Row(account_provider="azure", recommendations=[{"provider": "aws"}]),
        # Providers are compared as the rules spell them: stripped, lower case.
        Row(account_provider=None, recommendations=[{"provider": "  AZURE "}]),
        # A row whose items cannot be read is still judged by its account.
        Row(account_provider="azure", recommendations={"provider": "aws"}),
    ],
)
def test_redrive_safety_asks_the_account_and_every_item_normalized(row):
    policy = RetryPolicy(threshold=5, redrive_unsafe_providers=frozenset({"azure"}))
    result = refusal(row, force=True, policy=policy)
    assert result.status == 409 and result.details["redrive_unsafe"] is True
    assert persistent_hint(row, policy) == result.details["ops_hint"]


@pytest.mark.parametrize(
    ("recommendations", "reason"),
    [
        ([1], "item 0 is int, not an object"),
        ({}, "expected a JSON list of objects, got dict"),
        ([{"provider": "aws"}, "x"], "item 1 is str, not an object"),
        (None, "expected a JSON list of objects, got null"),
    ],
)
def test_malformed_recommendations_are_refused_with_the_reason(recommendations, reason):
    row = Row(recommendations=recommendations, retry_attempt_n=9)
    result = refusal(row, force=True)
    assert result.status == 409
    assert result.details["ops_hint"] == MALFORMED_HINT
    assert result.details["failure_reason"].endswith(reason)
    assert persistent_hint(row, POLICY) == MALFORMED_HINT
    assert suppression_counts(recommendations) == {}
    # Authorization still comes first: nothing about the row to someone else.
    assert (
        refusal(Row(recommendations=recommendations, created_by_user_id=SOMEONE_ELSE)).details == {}
    )


@pytest.mark.parametrize(("substring", "hint"), OPS_HINTS)
@pytest.mark.parametrize("spell", [str, str.lower, str.upper, str.swapcase])
def test_persistent_failures_match_in_any_letter_case(substring, hint, spell):
    error = f"send failed: {spell(substring)} (request 42)"
    result = refusal(Row(error=error, retry_attempt_n=9), force=True)
    assert result.status == 409
    assert result.details == {"ops_hint": hint, "failure_reason": error}


def test_operators_extend_the_hint_table():
    policy = RetryPolicy(threshold=5, extra_hints=(("quota exceeded", "Raise the quota"),))
    result = refusal(Row(error="Reserved instance QUOTA EXCEEDED"), policy=policy)
    assert result.details["ops_hint"] == "Raise the quota"
    assert refusal(Row(error="Reserved instance QUOTA EXCEEDED")) is None


@pytest.mark.parametrize(
    ("attempt", "force", "allowed"),
    [(0, False, True), (4, False, True), (5, False, False), (6, False, False), (5, True, True)],
)
def test_threshold_boundaries(attempt, force, allowed):
    result = refusal(Row(retry_attempt_n=attempt), force=force)
    assert (result is None) == allowed
    if not allowed:
        assert result.status == 409
        assert result.details == {"retry_attempt_n": attempt, "threshold": 5}


def test_force_overrides_the_threshold_and_nothing_else():
    assert refusal(Row(status="completed"), force=True).status == 409
    assert refusal(Row(retry_execution_id=SUCCESSOR), force=True).status == 409
    assert refusal(Row(created_by_user_id=None), force=True).status == 403


def test_the_successor_gets_a_deep_copy_with_outcomes_cleared():
    original = [
        {
            "provider": "aws",
            "count": 2,
            "tags": {"team": "data"},
            "error": "capacity",
            "purchased": True,
            "purchase_id": "ri-123",
        }
    ]
    fresh = fresh_recommendations(original)
    assert fresh[0] == {
        "provider": "aws",
        "count": 2,
        "tags": {"team": "data"},
        "error": None,
        "purchased": False,
        "purchase_id": None,
    }
    fresh[0]["tags"]["team"] = "changed by the executor"
    fresh[0]["purchase_id"] = "ri-999"
    assert original[0]["tags"] == {"team": "data"}
    assert original[0]["purchase_id"] == "ri-123"


def test_suppressions_sum_counts_per_scope_and_skip_empty_items():
    base = {"account_id": "1", "provider": "aws", "service": "ec2", "region": "us-east-1"}
    items = [
        {**base, "resource_type": "m5.large", "count": 2},
        {**base, "resource_type": "m5.large", "count": 3, "engine": ""},
        {**base, "resource_type": "m5.large", "count": 1, "engine": "linux"},
        {**base, "resource_type": "c5.xlarge", "count": 0},
        {**base, "resource_type": "c5.xlarge", "count": -1},
        {**base, "resource_type": "r5.large", "count": "not a number"},
    ]
    counts = {
        (scope.resource_type, scope.engine): count
        for scope, count in suppression_counts(items).items()
    }
    assert counts == {("m5.large", ""): 5, ("m5.large", "linux"): 1}


def test_the_hint_shows_on_failed_rows_only():
    assert persistent_hint(Row(error="IAM denied"), POLICY) == OPS_HINTS[3][1]
    assert persistent_hint(Row(status="completed", error="IAM denied"), POLICY) is None
    assert persistent_hint(Row(), POLICY) is None
