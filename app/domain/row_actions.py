"""What the Purchase History action cell shows for one row, and to whom
(docs/operations.md, "The panel").

One decision tree, pure: the panel's template only renders the `ActionCell` it gets.
Approve and Cancel are offered exactly when `decision_refusal` would let them through,
Retry exactly when `retry_refusal` would (on failed and on partially completed rows), so
a button and its service never disagree.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Protocol

from app.domain.approvals import ApprovalPolicy, DecidableRow, decision_refusal
from app.domain.rbac import Action, Principal
from app.domain.retry import RetryableRow, RetryPolicy, persistent_hint, retry_refusal
from app.domain.statuses import Status


class ActionRow(RetryableRow, DecidableRow, Protocol):
    """What the cell reads: a row the retry rules and the decision rules both read (a
    `PurchaseExecution` is one)."""


@dataclass(frozen=True)
class Button:
    """A row action: a POST form with `data-action` and a confirmation prompt."""

    action: str  # "approve" | "cancel" | "retry" | "force-retry"
    label: str
    confirm: str
    force: bool = False


@dataclass(frozen=True)
class ActionCell:
    buttons: tuple[Button, ...] = ()
    ops_hint: str | None = None
    attempt: int = 0
    retry_of: uuid.UUID | None = None
    retried_by: uuid.UUID | None = None
    queued_request_id: uuid.UUID | None = None


DECISION_BUTTONS = (
    (
        Action.APPROVE,
        Button("approve", "Approve", "Approve this purchase? It is bought right away."),
    ),
    (
        Action.CANCEL,
        Button("cancel", "Cancel", "Cancel this purchase? Nothing will be bought."),
    ),
)


def action_cell(
    principal: Principal,
    row: ActionRow,
    policy: RetryPolicy,
    *,
    retry_of: uuid.UUID | None = None,
    queued_request_id: uuid.UUID | None = None,
    approvals: ApprovalPolicy | None = None,
) -> ActionCell:
    """The cell for `row` as `principal` sees it.

    `retry_of` is the row's predecessor, if it is a successor. `queued_request_id` is a
    retry request of this row, made by `principal`, that the worker has not settled yet.
    """
    cell = ActionCell(
        attempt=row.retry_attempt_n,
        retry_of=retry_of,
        retried_by=row.retry_execution_id,
        queued_request_id=queued_request_id,
    )
    if queued_request_id is not None:
        return cell
    decisions = tuple(
        button
        for action, button in DECISION_BUTTONS
        if decision_refusal(principal, action, row, approvals or ApprovalPolicy()) is None
    )
    if decisions:
        return replace(cell, buttons=decisions)
    hint = persistent_hint(row, policy)
    if hint is not None:
        return replace(cell, ops_hint=hint)
    if retry_refusal(principal, row, policy, force=False) is None:
        return replace(cell, buttons=(Button("retry", "Retry", _retry_prompt(row)),))
    if retry_refusal(principal, row, policy, force=True) is None:
        button = Button(
            "force-retry",
            f"Retried {row.retry_attempt_n}× — override",  # noqa: RUF001  (the documented label)
            f"This purchase has been retried {row.retry_attempt_n} times "
            f"(threshold {policy.threshold}). Retry it anyway?",
            force=True,
        )
        return replace(cell, buttons=(button,))
    return cell


def _retry_prompt(row: ActionRow) -> str:
    """What Retry asks: a partially completed row's retry buys only what it did not."""
    if row.status == Status.PARTIALLY_COMPLETED:
        return (
            "Retry the rest of this partially completed purchase? A new pending execution "
            "is created for the items not bought yet (the bought ones are kept, not bought "
            "again) and its approval email sent."
        )
    return (
        "Retry this failed purchase? A new pending execution is created and its "
        "approval email sent."
    )
