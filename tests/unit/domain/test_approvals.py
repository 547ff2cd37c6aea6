"""Approve and cancel decisions as the pure rules see them (permissions and four-eyes)."""

from __future__ import annotations

import uuid

import pytest

from app.domain.approvals import (
    NO_APPROVER,
    ApprovalPolicy,
    Recipient,
    approval_recipients,
    decision_refusal,
)
from app.domain.rbac import DEFAULT_PERMISSIONS, Action, Principal
from app.domain.statuses import Status
from tests.unit.domain.fakes import ME, SOMEONE_ELSE, Row, user

FOUR_EYES = ApprovalPolicy(require_different_approver=True)


@pytest.mark.parametrize("action", [Action.APPROVE, Action.CANCEL])
def test_own_pending_row_may_be_decided_with_the_defaults(action):
    assert decision_refusal(user(), action, Row(status="pending"), ApprovalPolicy()) is None


@pytest.mark.parametrize("action", [Action.APPROVE, Action.CANCEL])
def test_authorization_comes_before_the_state(action):
    row = Row(status="completed", created_by_user_id=SOMEONE_ELSE)
    result = decision_refusal(user(), action, row, ApprovalPolicy())
    assert result.status == 403 and "completed" not in result.message


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.PENDING])
def test_a_row_not_pending_is_409_with_its_status(status):
    result = decision_refusal(user(), Action.APPROVE, Row(status=status.value), ApprovalPolicy())
    assert result.status == 409 and result.details == {"status": status.value}


def test_four_eyes_binds_admins_and_approvals_only():
    admin = user("admin:*")
    own = Row(status="pending", created_by_user_id=ME)
    assert decision_refusal(admin, Action.APPROVE, own, FOUR_EYES).status == 403
    assert decision_refusal(admin, Action.CANCEL, own, FOUR_EYES) is None
    others = Row(status="pending", created_by_user_id=SOMEONE_ELSE)
    assert decision_refusal(admin, Action.APPROVE, others, FOUR_EYES) is None
    assert decision_refusal(admin, Action.APPROVE, own, ApprovalPolicy()) is None


def test_a_null_creator_needs_the_any_permission():
    row = Row(status="pending", created_by_user_id=None)
    assert decision_refusal(user(), Action.APPROVE, row, ApprovalPolicy()).status == 403
    purchaser = user("approve-any:purchases")
    assert decision_refusal(purchaser, Action.APPROVE, row, ApprovalPolicy()) is None


def test_retry_is_not_a_decision():
    with pytest.raises(ValueError, match="not a decision"):
        decision_refusal(user(), Action.RETRY, Row(status="pending"), ApprovalPolicy())


def test_four_eyes_refuses_the_retrier_as_it_refuses_the_creator():
    """A retry must not become a way to approve one's own request: the successor stays
    the creator's, and the retrier may not approve it either."""
    purchaser = user("approve-any:purchases", "cancel-any:purchases")
    retried_by_me = Row(status="pending", created_by_user_id=SOMEONE_ELSE, retried_by_user_id=ME)
    refused = decision_refusal(purchaser, Action.APPROVE, retried_by_me, FOUR_EYES)
    assert refused.status == 403 and "you retried it" in refused.message
    assert decision_refusal(purchaser, Action.APPROVE, retried_by_me, ApprovalPolicy()) is None
    assert decision_refusal(purchaser, Action.CANCEL, retried_by_me, FOUR_EYES) is None


def test_retrying_someone_elses_row_never_lends_approve_own():
    """The successor of a row nobody created is nobody's own, whoever retried it."""
    retrier = user("retry-any:purchases")  # approve-own only, from the defaults
    successor = Row(status="pending", created_by_user_id=None, retried_by_user_id=ME)
    assert decision_refusal(retrier, Action.APPROVE, successor, ApprovalPolicy()).status == 403


# --- Who the approval email goes to ---------------------------------------------------

CREATOR = Principal(user_id=ME, email="creator@example.com", permissions=DEFAULT_PERMISSIONS)
VIEWER = Principal(
    user_id=ME, email="viewer@example.com", permissions=frozenset({"view:purchases"})
)
PURCHASER = Principal(uuid.uuid4(), "purchaser@example.com", frozenset({"approve-any:purchases"}))
ADMIN = Principal(uuid.uuid4(), "admin@example.com", frozenset({"admin:*"}))


ANYONE = ApprovalPolicy()


def recipients(row, *, contact=None, creator=None, approvers=(), policy=ANYONE):
    chosen = approval_recipients(
        row, contact=contact, creator=creator, approvers=approvers, policy=policy
    )
    return [recipient.email for recipient in chosen]


def test_the_contact_address_of_no_user_decides_on_the_tokens_authority():
    row = Row(status="pending")
    contact = Recipient("finops@example.com")
    assert recipients(row, contact=contact, creator=CREATOR, approvers=[ADMIN]) == [
        "finops@example.com"
    ]


def test_a_contact_who_is_a_user_gets_it_only_if_they_may_approve():
    row = Row(status="pending", created_by_user_id=SOMEONE_ELSE)
    contact = Recipient(VIEWER.email, VIEWER)
    assert recipients(row, contact=contact, approvers=[PURCHASER]) == ["purchaser@example.com"]
    able = Recipient(PURCHASER.email, PURCHASER)
    assert recipients(row, contact=able, approvers=[ADMIN]) == ["purchaser@example.com"]


def test_the_creator_only_when_they_may_approve_else_every_other_who_may():
    row = Row(status="pending", created_by_user_id=ME)
    assert recipients(row, creator=CREATOR, approvers=[ADMIN]) == ["creator@example.com"]
    assert recipients(row, creator=VIEWER, approvers=[PURCHASER, ADMIN, VIEWER]) == [
        "admin@example.com",
        "purchaser@example.com",
    ]


def test_four_eyes_keeps_the_email_from_the_creator_and_the_retrier():
    row = Row(status="pending", created_by_user_id=ME, retried_by_user_id=PURCHASER.user_id)
    assert recipients(row, creator=CREATOR, approvers=[PURCHASER, ADMIN], policy=FOUR_EYES) == [
        "admin@example.com"
    ]


def test_nobody_who_may_approve_means_no_recipient():
    row = Row(status="pending", created_by_user_id=None, retried_by_user_id=ME)
    assert recipients(row, creator=None, approvers=[VIEWER]) == []
    assert NO_APPROVER == "no approver for this account"
