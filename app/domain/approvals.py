"""Approving and cancelling a pending execution (SPEC section 4): may this actor do it
now, and if not, why.

Pure rules, asked by the service (`app.services.approvals`) before it writes, by the
panel's action cell before it offers a button, and by the executor, which asks again
whether the approver still may approve (SPEC section 2: permissions may have been
revoked since). The checks run in the retry's order: authorization (403) before
anything that reveals the row's state (409).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from app.domain.errors import DomainError
from app.domain.rbac import Action, Principal, refusal
from app.domain.statuses import Status

# The two decisions a pending row waits for, and the status each one leads to.
DECISIONS: dict[Action, Status] = {Action.APPROVE: Status.APPROVED, Action.CANCEL: Status.CANCELLED}


class DecidableRow(Protocol):
    """What the rules read from an execution (a `PurchaseExecution` satisfies it)."""

    status: str
    created_by_user_id: uuid.UUID | None


@dataclass(frozen=True)
class ApprovalPolicy:
    """`REQUIRE_DIFFERENT_APPROVER`: nobody approves an execution they created."""

    require_different_approver: bool = False


def four_eyes_refusal(
    action: Action,
    approver_user_id: uuid.UUID | None,
    created_by_user_id: uuid.UUID | None,
    policy: ApprovalPolicy,
) -> DomainError | None:
    """The four-eyes rule: it binds admins too, and only approvals (anyone allowed may
    cancel their own purchase)."""
    if (
        action is Action.APPROVE
        and policy.require_different_approver
        and approver_user_id is not None
        and approver_user_id == created_by_user_id
    ):
        return DomainError(
            403,
            "not allowed to approve this execution: you created it, and this deployment "
            "requires a different approver (REQUIRE_DIFFERENT_APPROVER)",
        )
    return None


def authority_refusal(
    principal: Principal, action: Action, row: DecidableRow, policy: ApprovalPolicy
) -> DomainError | None:
    """May `principal` decide `action` on rows like `row` at all: RBAC, then four-eyes."""
    return refusal(principal, action, row.created_by_user_id) or four_eyes_refusal(
        action, principal.user_id, row.created_by_user_id, policy
    )


def state_refusal(action: Action, row: DecidableRow) -> DomainError | None:
    """Only a pending row can be approved or cancelled; the refusal says where it is."""
    if row.status == Status.PENDING:
        return None
    return DomainError(
        409,
        f"only pending executions can be {_past(action)}; this one is {row.status}",
        status=row.status,
    )


def decision_refusal(
    principal: Principal, action: Action, row: DecidableRow, policy: ApprovalPolicy
) -> DomainError | None:
    """Why `principal` may not `action` (approve or cancel) `row` now, or None."""
    if action not in DECISIONS:
        raise ValueError(f"{action} is not a decision on a pending execution")
    return authority_refusal(principal, action, row, policy) or state_refusal(action, row)


def _past(action: Action) -> str:
    return "approved" if action is Action.APPROVE else "cancelled"
