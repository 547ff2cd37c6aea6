"""Approve and cancel decisions as the pure rules see them (SPEC sections 2 and 4)."""

from __future__ import annotations

import pytest

from app.domain.approvals import ApprovalPolicy, decision_refusal
from app.domain.rbac import Action
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
