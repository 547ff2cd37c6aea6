"""Approving and cancelling a pending execution, by a signed-in user
(panel, JSON API, CLI) or by the link of an approval email.

Each decision is one unit of work: check (`app.domain.approvals`), then one conditional
move out of `pending` (`transitions.move`), so of an approve and a cancel (or two
approves) racing on one row exactly one wins, on PostgreSQL and on SQLite; the loser
is refused with 409 and the row's current status. A refusal rolls back and is audited
on its own. An approval queues the executor after the commit, never before.

A link's token opens one action on one execution until it expires or is used: it is
looked up by its SHA-256 (only hashes are stored), compared in constant time, and
consumed in the transaction that acts, so a refusal of the action leaves it unused.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import background, task_names
from app.config import get_settings
from app.db import rowcount, unit_of_work, utcnow
from app.domain.approvals import (
    DECISIONS,
    ApprovalPolicy,
    authority_refusal,
    decision_refusal,
    state_refusal,
)
from app.domain.errors import DomainError
from app.domain.inputs import is_text
from app.domain.rbac import Action, Principal
from app.domain.statuses import Status
from app.models import ApprovalToken, PurchaseExecution
from app.services import audit, schedules, spending, transitions
from app.services.execution_reads import find_execution
from app.services.identity import find_user_by_email, principal_for
from app.services.link_tokens import hash_token

INVALID_LINK = "this link is not valid: use the latest approval email for this execution"


def current_policy() -> ApprovalPolicy:
    """The policy of the app in the current context."""
    return ApprovalPolicy(require_different_approver=get_settings().require_different_approver)


def decide(
    principal: Principal, raw_execution_id: str | uuid.UUID, action: Action
) -> PurchaseExecution:
    """A signed-in user approves or cancels: 400, 404, 403 (RBAC, four-eyes), 409
    (not pending, or another decision won first), each refusal audited."""
    try:
        with unit_of_work() as session:
            execution = find_execution(session, raw_execution_id)
            refusal = decision_refusal(principal, action, execution, current_policy())
            if refusal is not None:
                raise refusal
            _within_limits(session, execution, action, principal)
            decided = _move(session, execution, action, actor=principal, via="session")
    except DomainError as refusal:
        _audit_refusal(refusal, action, principal, raw_execution_id)
        raise
    _after_commit(decided)
    return decided


@dataclass(frozen=True)
class LinkCheck:
    """What a valid link opens: the execution, who the email went to, and who the click
    acts as (the recipient's user, or, for an address that is no user's, the address on
    the token's authority alone).

    `sign_in_as` names the recipient when they must sign in before the link acts: with
    four-eyes on, an approval must be provably theirs, not that of whoever the email
    was forwarded to."""

    execution: PurchaseExecution
    recipient: str
    actor: Principal
    token_hash: str
    sign_in_as: str | None = None


def check_link(
    session: Session,
    raw_execution_id: str,
    action: Action,
    token: str | None,
    *,
    now: datetime,
    signed_in: Principal | None = None,
) -> LinkCheck:
    """Everything the link's page shows and the POST acts on, refusing in the retry's
    order: 400 malformed id, 404 unknown, 403 the token does not open this action on
    this row (unknown, tampered, another row's or action's, expired, used), 403 its
    recipient may not do it now (a deactivated user, a permission revoked, four-eyes),
    409 the row is no longer pending. Changes nothing.

    `signed_in` is the session's user, if any: with four-eyes on, an approve link sent
    to a user acts only in that user's own session."""
    execution = find_execution(session, raw_execution_id)
    return _check_token(
        session, execution, _token_row(session, token), action, now=now, signed_in=signed_in
    )


def _check_token(
    session: Session,
    execution: PurchaseExecution,
    found: ApprovalToken | None,
    action: Action,
    *,
    now: datetime,
    signed_in: Principal | None,
) -> LinkCheck:
    if (
        found is None
        or found.execution_id != execution.execution_id
        or found.action != action.value
    ):
        raise DomainError(403, INVALID_LINK)
    if found.used_at is not None:
        used = f"{found.used_at:%Y-%m-%d %H:%M} UTC"
        raise DomainError(403, f"this link has already been used (at {used})")
    if found.expires_at <= now:
        raise DomainError(403, "this link has expired: ask for a new purchase approval")
    policy = current_policy()
    recipient = found.recipient or "approval email link"
    user = find_user_by_email(session, found.recipient) if found.recipient else None
    if user is None:
        actor = Principal(None, recipient, frozenset())
        refusal = state_refusal(action, execution)
    elif not user.is_active:
        raise DomainError(403, f"this link was sent to {user.email}, who is no longer active")
    else:
        actor = principal_for(user)
        refusal = authority_refusal(actor, action, execution, policy) or state_refusal(
            action, execution
        )
    if refusal is not None:
        raise refusal
    must_sign_in = (
        user is not None
        and action is Action.APPROVE
        and policy.require_different_approver
        and (signed_in is None or signed_in.user_id != user.id)
    )
    return LinkCheck(
        execution,
        recipient,
        actor,
        token_hash=found.token_hash,
        sign_in_as=recipient if must_sign_in else None,
    )


def decide_by_link(
    raw_execution_id: str,
    action: Action,
    token: str | None,
    *,
    signed_in: Principal | None = None,
) -> PurchaseExecution:
    """The email link's POST: check as `check_link`, consume the token and act as the
    recipient, in one unit of work; the recipient is recorded as the one who decided
    (and, when a user, as the approver the executor checks again)."""
    return _decide_by_token(
        raw_execution_id,
        action,
        lambda session, _execution, _now: _token_row(session, token),
        signed_in=signed_in,
        via="link",
    )


def approve_from_digest(
    raw_execution_id: str, recipient: str, *, signed_in: Principal | None = None
) -> PurchaseExecution:
    """One ticked row of a digest's page: approved exactly as a click on the row's own
    approve link in that digest would approve it (the recipient's latest approve link
    for the row, checked and consumed as `decide_by_link` does)."""
    return _decide_by_token(
        raw_execution_id,
        Action.APPROVE,
        lambda session, execution, now: _recipient_token(session, execution, recipient, now),
        signed_in=signed_in,
        via="digest",
    )


def _decide_by_token(
    raw_execution_id: str,
    action: Action,
    find_token: Callable[[Session, PurchaseExecution, datetime], ApprovalToken | None],
    *,
    signed_in: Principal | None,
    via: str,
) -> PurchaseExecution:
    actor = Principal(None, "approval email link", frozenset())
    try:
        with unit_of_work() as session:
            now = utcnow()
            execution = find_execution(session, raw_execution_id)
            check = _check_token(
                session,
                execution,
                find_token(session, execution, now),
                action,
                now=now,
                signed_in=signed_in,
            )
            actor = check.actor
            if check.sign_in_as is not None:
                raise DomainError(
                    403,
                    f"sign in as {check.sign_in_as} to approve: this deployment requires a "
                    "different approver (REQUIRE_DIFFERENT_APPROVER), so the approval must "
                    "be made in your own session",
                    sign_in_as=check.sign_in_as,
                )
            _within_limits(session, check.execution, action, actor)
            consumed = session.execute(
                update(ApprovalToken)
                .where(
                    ApprovalToken.token_hash == check.token_hash, ApprovalToken.used_at.is_(None)
                )
                .values(used_at=now)
            )
            if rowcount(consumed) != 1:  # another click of the same link got there first
                raise DomainError(403, "this link has already been used")
            decided = _move(session, check.execution, action, actor=actor, via=via)
    except DomainError as refusal:
        _audit_refusal(refusal, action, actor, raw_execution_id, via=via)
        raise
    _after_commit(decided)
    return decided


def _within_limits(
    session: Session, execution: PurchaseExecution, action: Action, actor: Principal
) -> None:
    """An approval is refused (403) when it breaks a spend limit of the approver's
    groups; a link's approval by an address that is no user's has no groups."""
    if action is not Action.APPROVE:
        return
    refusal = spending.execution_refusal(session, execution, (actor.user_id,), now=utcnow())
    if refusal is not None:
        raise refusal


def decision_as_dict(execution: PurchaseExecution) -> dict[str, object]:
    """What the API answers for a decision made."""
    return {
        "execution_id": str(execution.execution_id),
        "status": execution.status,
        "approved_by": execution.approved_by,
        "cancelled_by": execution.cancelled_by,
    }


def _move(
    session: Session, execution: PurchaseExecution, action: Action, *, actor: Principal, via: str
) -> PurchaseExecution:
    """The decision's one conditional write; 409 with the current status if the row left
    `pending` since it was read (a concurrent decision won)."""
    target = DECISIONS[action]
    now = utcnow()
    values: dict[str, object] = (
        {"approved_by": actor.email, "approved_by_user_id": actor.user_id, "approved_at": now}
        if action is Action.APPROVE
        else {"cancelled_by": actor.email}
    )
    moved = transitions.move(
        session,
        PurchaseExecution.execution_id == execution.execution_id,
        sources={Status.PENDING},
        target=target,
        now=now,
        action=f"execution.{target.value}",
        actor=actor,
        details={"via": via},
        values=values,
    )
    current = find_execution(session, execution.execution_id)
    if not moved:
        refusal = state_refusal(action, current)
        raise refusal or RuntimeError("the decision matched no row, yet the row is pending")
    return current


def _after_commit(execution: PurchaseExecution) -> None:
    """Queue an approved row, unless it must wait (its time, its plan, the freeze): it
    is released when it stops waiting (`app.services.schedules`)."""
    if execution.status != Status.APPROVED:
        return
    with unit_of_work() as session:
        if schedules.is_waiting(session, execution.execution_id, now=utcnow()):
            return
    enqueue_execution(execution.execution_id)


def enqueue_execution(execution_id: uuid.UUID) -> None:
    """Hand an approved execution to the executor (ids only). Should the broker be
    unreachable, the sweep queues approved rows that have not started."""
    background.enqueue(task_names.EXECUTE, [str(execution_id)])


def _token_row(session: Session, token: str | None) -> ApprovalToken | None:
    if not token or len(token) > 200 or not is_text(token):  # a lone surrogate cannot hash
        return None
    digest = hash_token(token)
    found = session.get(ApprovalToken, digest, populate_existing=True)
    # The lookup compares digests through the index; the explicit comparison is constant
    # time, so nothing about a stored hash leaks through timing either way.
    if found is None or not hmac.compare_digest(found.token_hash, digest):
        return None
    return found


def _recipient_token(
    session: Session, execution: PurchaseExecution, recipient: str, now: datetime
) -> ApprovalToken | None:
    """The recipient's approve link for the row that a click would still open (unused,
    unexpired), else their latest (so the refusal says why it no longer opens)."""
    return session.scalars(
        select(ApprovalToken)
        .where(
            ApprovalToken.execution_id == execution.execution_id,
            ApprovalToken.recipient == recipient,
            ApprovalToken.action == Action.APPROVE.value,
        )
        .order_by(
            ApprovalToken.used_at.is_(None).desc(),
            (ApprovalToken.expires_at > now).desc(),
            ApprovalToken.expires_at.desc(),
        )
        .limit(1)
    ).first()


def _audit_refusal(
    refusal: DomainError,
    action: Action,
    actor: Principal,
    raw_execution_id: str | uuid.UUID,
    *,
    via: str = "session",
) -> None:
    audit.record_refusal(
        f"execution.{action.value}_refused",
        refusal,
        actor=actor,
        execution_id=audit.refused_execution_id(raw_execution_id, refusal),
        via=via,
    )
