"""Who may approve a pending execution now, and so who its approval email goes to
(the rule is `app.domain.approvals.approval_recipients`; this module loads the people
it reads: the account's contact, the creator, and the users who may approve any row).

Only active users count, with the permissions their groups give them now. An email
that names a deactivated user is sent to nobody: a link never carries more authority
than the person who would click it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.domain.approvals import ApprovalPolicy, DecidableRow, Recipient, approval_recipients
from app.domain.rbac import Action, Principal, authorize
from app.domain.statuses import Status
from app.models import CloudAccount, PurchaseExecution, User
from app.services.identity import find_user_by_email, load_active_user, principal_for


class _Pending(DecidableRow, Protocol):
    """A pending execution as the recipients' rule reads it, with its account."""

    @property
    def cloud_account(self) -> CloudAccount | None: ...


class Approvers:
    """The users who may approve any row (approve-any holders and admins), loaded once
    for all the executions of one claim (a bulk retry's chunk asks for hundreds)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._any: list[Principal] | None = None

    def of_any_row(self) -> list[Principal]:
        if self._any is None:
            users = self._session.scalars(
                select(User).where(User.is_active.is_(True)).options(selectinload(User.groups))
            ).all()
            principals = (principal_for(user) for user in users)
            # A row with no creator is nobody's own: only `-any` and admins may approve it.
            self._any = [p for p in principals if authorize(p, Action.APPROVE, None)]
        return self._any

    def recipients(self, execution: _Pending, policy: ApprovalPolicy) -> list[Recipient]:
        """Who the approval email of `execution` goes to; empty when nobody may approve."""
        account = execution.cloud_account
        contact = None
        if account is not None and account.contact_email:
            contact_user = find_user_by_email(self._session, account.contact_email)
            if contact_user is None:
                contact = Recipient(account.contact_email)
            elif contact_user.is_active:
                contact = Recipient(contact_user.email, principal_for(contact_user))
        creator_user = (
            load_active_user(self._session, execution.created_by_user_id)
            if execution.created_by_user_id is not None
            else None
        )
        return approval_recipients(
            execution,
            contact=contact,
            creator=principal_for(creator_user) if creator_user is not None else None,
            approvers=self.of_any_row(),
            policy=policy,
        )


@dataclass(frozen=True)
class _Successor:
    """A retry's successor before it exists: pending, the lineage's creator, the retrier."""

    status: str
    created_by_user_id: uuid.UUID | None
    retried_by_user_id: uuid.UUID | None
    cloud_account: CloudAccount | None


def successor_has_approver(
    session: Session, execution: PurchaseExecution, retrier: Principal, policy: ApprovalPolicy
) -> bool:
    """Would anyone be allowed to approve a retry of `execution` by `retrier`? When not,
    the successor fails as soon as its approval email is due (`NO_APPROVER`), and the
    panel says so when it queues the retry."""
    successor = _Successor(
        Status.PENDING.value, execution.created_by_user_id, retrier.user_id, execution.cloud_account
    )
    return bool(Approvers(session).recipients(successor, policy))
