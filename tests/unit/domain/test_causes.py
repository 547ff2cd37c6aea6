"""The failure signature: one failure, one signature, whatever ids and numbers it names."""

from __future__ import annotations

import pytest

from app.domain.causes import (
    MAX_NOTE_LENGTH,
    MAX_SIGNATURE_LENGTH,
    NO_ERROR,
    cause_label,
    failure_signature,
    parse_note,
    parse_signature,
    signature,
)
from app.domain.errors import DomainError
from app.domain.retry import OPS_HINTS, RetryPolicy
from app.domain.statuses import Status

CAPACITY = "InsufficientInstanceCapacity: no capacity for <id> in <region> after <n> tries"


@pytest.mark.parametrize(
    "error",
    [
        "InsufficientInstanceCapacity: no capacity for r-123abc in us-east-1a after 3 tries",
        "InsufficientInstanceCapacity: no capacity for r-9f0e77 in eu-west-2b after 12 tries",
        "InsufficientInstanceCapacity:  no capacity for i-0abc12 in ap-southeast-1 after 1 tries",
        "InsufficientInstanceCapacity: no capacity for sg_77 in europe-west4-b after 100 tries",
    ],
)
def test_other_ids_and_numbers_give_one_signature(error: str):
    assert signature(error) == CAPACITY


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("quota 'standardDSv3Family' exceeded", "quota <value> exceeded"),
        ('quota "x y z" exceeded', "quota <value> exceeded"),
        ("quota `x` exceeded", "quota <value> exceeded"),
        ("quota \u201cx\u201d and \u2018y\u2019", "quota <value>"),
        ("denied on arn:aws:iam::123456789012:role/buyer-1", "denied on <arn>"),
        ("see https://example.com/x?id=3 now", "see <url> now"),
        ("user bob.smith+1@example.co.uk denied", "user <email> denied"),
        ("request 6f1c2d3e-1111-4222-8333-123456789abc failed", "request <uuid> failed"),
        ("request 6F1C2D3E111142228333123456789ABC failed", "request <uuid> failed"),
        ("at 2026-12-05T10:00:00Z", "at <date>"),
        ("at 2026-12-05 10:00:00.123+01:00", "at <date>"),
        ("on 2026-12-05", "on <date>"),
        ("at 12:30:01", "at <date>"),
        ("from 10.0.0.1:443", "from <ip>"),
        ("from fe80::1 and 2001:db8::8a2e:370:7334", "from <ip>"),
        ("code 0xDEADBEEF", "code <hex>"),
        ("order 7f3e9a1b2c exists", "order <hex> exists"),
        ("HTTP 503, took 12ms, 2.5% of 1,000", "HTTP <n>, took <n>ms, <n>% of <n>"),
        (
            "1 of 2 purchases failed: InsufficientCapacity",
            "<n> of <n> purchases failed: InsufficientCapacity",
        ),
        ("ids i-1, i-2 and i-3 failed", "ids <id> failed"),
        (
            "reaped: no progress for more than 10 minutes",
            "reaped: no progress for more than <n> minutes",
        ),
    ],
)
def test_what_varies_is_taken_out(error: str, expected: str):
    assert signature(error) == expected


@pytest.mark.parametrize(
    "error",
    [
        "IAM denied: ec2:PurchaseReservedInstancesOffering",
        "FROM_EMAIL not configured for this deployment",
        "Throttling: Rate exceeded (retry later)",
        "s3 and v2 and gp3 stay",
    ],
)
def test_names_and_codes_are_kept(error: str):
    assert signature(error) == error


def test_different_failures_stay_different():
    assert signature("IAM denied: ec2:Purchase") != signature("IAM denied: rds:Purchase")
    assert signature("Throttling: slow down") != signature("ServiceUnavailable: slow down")


def test_whitespace_is_collapsed_and_missing_errors_group_together():
    assert signature("  a \n\t b  ") == "a b"
    assert signature(None) == signature("") == signature("   ") == NO_ERROR


def test_signature_is_bounded_and_stable():
    long = "Boom " + "x" * 1000
    assert len(signature(long)) == MAX_SIGNATURE_LENGTH
    for error in ("no capacity for r-123abc in us-east-1a after 3 tries", "at 2026-12-05"):
        assert signature(signature(error)) == signature(error)


@pytest.mark.parametrize("status", [Status.FAILED, Status.PARTIALLY_COMPLETED])
def test_failures_a_retry_starts_from_have_a_signature(status: Status):
    assert failure_signature(status, "boom 3") == "boom <n>"
    assert failure_signature(status, None) == NO_ERROR


@pytest.mark.parametrize(
    "status", [s for s in Status if s not in (Status.FAILED, Status.PARTIALLY_COMPLETED)]
)
def test_other_statuses_have_none(status: Status):
    assert failure_signature(status, "boom") is None


def test_cause_is_the_ops_hint_when_one_applies():
    substring, hint = OPS_HINTS[0]
    assert cause_label(f"{substring} on host 7", RetryPolicy()) == (hint, hint)
    assert cause_label("boom 7", RetryPolicy()) == ("boom <n>", None)
    extra = RetryPolicy(extra_hints=(("boom", "Fix the boom, then retry"),))
    assert cause_label("BOOM 7", extra) == ("Fix the boom, then retry", "Fix the boom, then retry")


def test_parse_signature_refuses_what_is_not_one():
    assert parse_signature("  boom <n> ") == "boom <n>"
    for bad in (None, 3, "", "   ", "a\x00b", "x" * (MAX_SIGNATURE_LENGTH + 1)):
        with pytest.raises(DomainError) as refused:
            parse_signature(bad)
        assert refused.value.status == 400
        assert "cause" in refused.value.message


def test_parse_note():
    assert parse_note(None) is None
    assert parse_note("  ") is None
    assert parse_note(" raised the quota ") == "raised the quota"
    for bad in (3, "a\x00", "x" * (MAX_NOTE_LENGTH + 1)):
        with pytest.raises(DomainError):
            parse_note(bad)
