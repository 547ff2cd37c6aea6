"""Approving and cancelling a pending execution (docs/api.md, "Approve and cancel"):
may this actor do it now, and if not, why.

Pure rules, asked by the service (`app.services.approvals`) before it writes, by the
panel's action cell before it offers a button, and by the executor, which asks again
whether the approver still may approve (permissions are read as they are at each
check, and may have been revoked since). The checks run in the retry's order:
authorization (403) before anything that reveals the row's state (409).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from app.domain.errors import DomainError
from app.domain.rbac import Action, Principal, refusal
from app.domain.statuses import Status

# The two decisions a pending row waits for, and the status each one leads to.
DECISIONS: dict[Action, Status] = {Action.APPROVE: Status.APPROVED, Action.CANCEL: Status.CANCELLED}


# When nobody may approve a pending row, it cannot be decided: it fails with this error,
# whose ops hint (`app.domain.retry.OPS_HINTS`) says what to fix.
NO_APPROVER = "no approver for this account"


class DecidableRow(Protocol):
    """What the rules read from an execution (a `PurchaseExecution` satisfies it).

    `created_by_user_id` is whose purchase it is (a retry keeps the lineage's creator);
    `retried_by_user_id` is who asked for this attempt, if it is a retry.
    """

    @property
    def status(self) -> str: ...
    @property
    def created_by_user_id(self) -> uuid.UUID | None: ...
    @property
    def retried_by_user_id(self) -> uuid.UUID | None: ...


@dataclass(frozen=True)
class ApprovalPolicy:
    """`REQUIRE_DIFFERENT_APPROVER`: nobody approves an execution they created or
    retried."""

    require_different_approver: bool = False


def four_eyes_refusal(
    action: Action, approver_user_id: uuid.UUID | None, row: DecidableRow, policy: ApprovalPolicy
) -> DomainError | None:
    """The four-eyes rule: it binds admins too, and only approvals (anyone allowed may
    cancel their own purchase). It refuses the row's creator and whoever retried it:
    a retry must not become a way to approve one's own request."""
    if action is not Action.APPROVE or not policy.require_different_approver:
        return None
    if approver_user_id is None:
        return None
    if approver_user_id == row.created_by_user_id:
        why = "you created it"
    elif approver_user_id == row.retried_by_user_id:
        why = "you retried it"
    else:
        return None
    return DomainError(
        403,
        f"not allowed to approve this execution: {why}, and this deployment requires a "
        "different approver (REQUIRE_DIFFERENT_APPROVER)",
    )


def authority_refusal(
    principal: Principal, action: Action, row: DecidableRow, policy: ApprovalPolicy
) -> DomainError | None:
    """May `principal` decide `action` on `row` at all: RBAC, then four-eyes."""
    return refusal(principal, action, row.created_by_user_id) or four_eyes_refusal(
        action, principal.user_id, row, policy
    )


@dataclass(frozen=True)
class Recipient:
    """Someone an approval email may go to. `user` is None for an address that is no
    user's (an account's contact): the link's token is then the whole authority; for a
    user, the click acts as that user, checked at the click."""

    email: str
    user: Principal | None = None


def approval_recipients(
    row: DecidableRow,
    *,
    contact: Recipient | None,
    creator: Principal | None,
    approvers: Iterable[Principal],
    policy: ApprovalPolicy,
) -> list[Recipient]:
    """Who the approval email of `row` goes to: only people who may approve it now.

    The account's contact first (when the address is no user's, or its user may
    approve); else the creator, if they may; else every other user who may (the
    holders of `approve-any` and the admins, four-eyes applied). Empty when nobody
    may: the row cannot be decided, and fails with `NO_APPROVER`. The callers pass
    active users only.
    """

    def may_approve(principal: Principal) -> bool:
        return authority_refusal(principal, Action.APPROVE, row, policy) is None

    if contact is not None and (contact.user is None or may_approve(contact.user)):
        return [contact]
    if creator is not None and may_approve(creator):
        return [Recipient(creator.email, creator)]
    seen: set[str] = set()
    chosen = []
    for principal in sorted(approvers, key=lambda p: p.email):
        if principal.email not in seen and may_approve(principal):
            seen.add(principal.email)
            chosen.append(Recipient(principal.email, principal))
    return chosen


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
