"""The pure rules of notification channels: targets, events, masking and signing."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from app.domain.channels import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ChannelEvent,
    ChannelKind,
    check_events,
    check_secret,
    check_target,
    hears,
    mask,
    sign,
    verify,
    webhook_body,
)
from app.domain.errors import DomainError


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        (ChannelKind.SLACK, "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"),
        (ChannelKind.SLACK, "https://hooks.slack.com/services/T1/B1/XYZ"),
        (ChannelKind.TEAMS, "msteams://team/tokenA/tokenB/tokenC"),
        (ChannelKind.WEBHOOK, "https://hooks.example.com/ccp?x=1"),
        (ChannelKind.WEBHOOK, "http://127.0.0.1:8080/in"),
        (ChannelKind.EMAIL, "ops@example.com"),
    ],
)
def test_targets_each_kind_accepts(kind, target):
    assert check_target(kind, f"  {target} ") == target


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        (ChannelKind.SLACK, "msteams://team/a/b/c"),
        (ChannelKind.TEAMS, "slack://a/b/c"),
        (ChannelKind.WEBHOOK, "ftp://example.com/x"),
        (ChannelKind.WEBHOOK, "https://user:pw@example.com/x"),
        (ChannelKind.WEBHOOK, "javascript:alert(1)"),
        (ChannelKind.EMAIL, "not an address"),
        (ChannelKind.EMAIL, ""),
        (ChannelKind.WEBHOOK, "https://example.com/\x00"),
        (ChannelKind.WEBHOOK, "https://example.com/" + "a" * 3000),
    ],
)
def test_targets_refused_with_a_400_that_never_repeats_them(kind, target):
    with pytest.raises(DomainError) as refused:
        check_target(kind, target)
    assert refused.value.status == 400
    assert refused.value.details["field"] == "target"
    if len(target) > 12:
        assert target not in refused.value.message


def test_a_target_must_be_text():
    with pytest.raises(DomainError, match="must be text"):
        check_target(ChannelKind.WEBHOOK, ["https://x"])


def test_events_are_known_names_without_repeats_and_test_is_not_one():
    assert check_events(["purchase_failed", " PURCHASE_FAILED ", "", "freeze_switched"]) == [
        "purchase_failed",
        "freeze_switched",
    ]
    assert check_events(None) == []
    with pytest.raises(DomainError, match="unknown event"):
        check_events(["test"])


def test_a_channel_hears_what_it_subscribes_to_all_when_none_and_tests_always():
    assert hears([], ChannelEvent.PURCHASE_FAILED)
    assert hears(["purchase_failed"], ChannelEvent.PURCHASE_FAILED)
    assert not hears(["purchase_failed"], ChannelEvent.APPROVAL_NEEDED)
    assert hears(["purchase_failed"], ChannelEvent.TEST)


def test_only_webhooks_have_a_secret_of_at_least_16_characters():
    assert check_secret(ChannelKind.SLACK, "whatever") is None
    assert check_secret(ChannelKind.WEBHOOK, " a-secret-of-16-chars ") == "a-secret-of-16-chars"
    for short in ("", None, "short"):
        with pytest.raises(DomainError, match="signing secret"):
            check_secret(ChannelKind.WEBHOOK, short)


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ", "slack://t1jj3t3l2/***"),
        ("https://hooks.slack.com/services/T1/B1/XYZ", "https://hooks.slack.com/***"),
        ("https://hooks.example.com/in?token=abc", "https://hooks.example.com/***"),
        ("ops@example.com", "o***@example.com"),
    ],
)
def test_a_target_is_shown_masked(target, shown):
    assert mask(target) == shown
    assert "XYZ" not in mask(target) and "token" not in mask(target)


def test_the_signature_is_the_hmac_of_timestamp_dot_exact_body():
    body = webhook_body({"subject": "S", "id": "1", "body": "é"})
    assert (
        body
        == json.dumps(
            {"body": "é", "id": "1", "subject": "S"}, sort_keys=True, separators=(",", ":")
        ).encode()
    )
    signed = sign(body, "k" * 16, 1700000000)
    expected = hmac.new(b"k" * 16, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signed.headers[SIGNATURE_HEADER] == f"sha256={expected}"
    assert signed.headers[TIMESTAMP_HEADER] == "1700000000"
    assert verify(body, "k" * 16, "1700000000", signed.headers[SIGNATURE_HEADER])
    assert not verify(body + b" ", "k" * 16, "1700000000", signed.headers[SIGNATURE_HEADER])
    assert not verify(body, "k" * 16, "1700000001", signed.headers[SIGNATURE_HEADER])
    assert not verify(body, "x" * 16, "1700000000", signed.headers[SIGNATURE_HEADER])
