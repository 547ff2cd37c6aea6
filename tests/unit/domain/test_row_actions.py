"""The Purchase History action cell: one decision, asked of the same retry rules."""

from __future__ import annotations

import uuid

from app.domain.retry import OPS_HINTS
from app.domain.row_actions import action_cell
from tests.unit.domain.fakes import POLICY, SOMEONE_ELSE, SUCCESSOR, Row, user


def test_retry_button_on_a_retryable_row():
    cell = action_cell(user(), Row(retry_attempt_n=2), POLICY)
    assert [button.action for button in cell.buttons] == ["retry"]
    assert cell.attempt == 2 and cell.ops_hint is None


def test_hint_badge_instead_of_retry_for_everyone():
    for principal in (user(), user("view:purchases", defaults=False)):
        cell = action_cell(principal, Row(error="ses SANDBOX: recipient"), POLICY)
        assert cell.buttons == ()
        assert cell.ops_hint == OPS_HINTS[1][1]


def test_override_button_at_the_threshold():
    cell = action_cell(user(), Row(retry_attempt_n=5), POLICY)
    (button,) = cell.buttons
    assert button.action == "force-retry" and button.force
    assert button.label == "Retried 5× — override"  # noqa: RUF001  (the documented label)
    assert "threshold 5" in button.confirm


def test_no_button_for_a_user_who_may_not_retry():
    cell = action_cell(user(), Row(created_by_user_id=SOMEONE_ELSE, retry_attempt_n=5), POLICY)
    assert cell.buttons == ()


def test_lineage_and_queued_request():
    predecessor, request = uuid.uuid4(), uuid.uuid4()
    cell = action_cell(user(), Row(retry_execution_id=SUCCESSOR), POLICY, retry_of=predecessor)
    assert (cell.retry_of, cell.retried_by, cell.buttons) == (predecessor, SUCCESSOR, ())
    queued = action_cell(user(), Row(), POLICY, queued_request_id=request)
    assert queued.queued_request_id == request and queued.buttons == ()
