"""Who may approve a pending execution now, and so who its approval email goes to
(the rule is `app.domain.approvals.approval_recipients`; this module loads the people
it reads: the account's contact, the creator, and the users who may approve any row).

Only active users count, with the permissions their groups give them now. An email
that names a deactivated user is sent to nobody: a link never carries more authority
than the person who would click it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.config import Settings
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
    """The people the rule reads, each loaded once for all the executions of one unit
    of work (a bulk retry's chunk asks for hundreds, mostly about the same few people):
    the users who may approve any row (approve-any holders and admins), each contact
    address's user and each creator."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._any: list[Principal] | None = None
        self._contacts: dict[str, Recipient | None] = {}
        self._creators: dict[uuid.UUID, Principal | None] = {}

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
        creator_id = execution.created_by_user_id
        return approval_recipients(
            execution,
            contact=self._contact(account.contact_email) if account is not None else None,
            creator=self._creator(creator_id) if creator_id is not None else None,
            approvers=self.of_any_row(),
            policy=policy,
        )

    def _contact(self, address: str | None) -> Recipient | None:
        """The contact as a recipient: the address alone when it is no user's, the
        user when active, and nobody when it is a deactivated user's."""
        if not address:
            return None
        if address not in self._contacts:
            user = find_user_by_email(self._session, address)
            if user is None:
                self._contacts[address] = Recipient(address)
            elif user.is_active:
                self._contacts[address] = Recipient(user.email, principal_for(user))
            else:
                self._contacts[address] = None
        return self._contacts[address]

    def _creator(self, user_id: uuid.UUID) -> Principal | None:
        if user_id not in self._creators:
            user = load_active_user(self._session, user_id)
            self._creators[user_id] = principal_for(user) if user is not None else None
        return self._creators[user_id]


@dataclass(frozen=True)
class _Successor:
    """A retry's successor as the rule reads it: pending, the lineage's creator, the
    retrier, and the predecessor's account."""

    status: str
    created_by_user_id: uuid.UUID | None
    retried_by_user_id: uuid.UUID | None
    cloud_account: CloudAccount | None


def unapprovable_successors(
    session: Session,
    predecessors: Sequence[PurchaseExecution],
    retrier: Principal,
    policy: ApprovalPolicy,
) -> set[uuid.UUID]:
    """The predecessors whose successor, retried by `retrier`, nobody may approve: it
    fails at once (`NO_APPROVER`) instead of waiting for an email nobody can act on."""
    approvers = Approvers(session)
    return {
        predecessor.execution_id
        for predecessor in predecessors
        if not approvers.recipients(_successor_of(predecessor, retrier), policy)
    }


def _successor_of(predecessor: PurchaseExecution, retrier: Principal) -> _Successor:
    return _Successor(
        Status.PENDING.value,
        predecessor.created_by_user_id,
        retrier.user_id,
        predecessor.cloud_account,
    )


def approval_recipient(
    session: Session, execution: PurchaseExecution, settings: Settings
) -> str | None:
    """The first of those who may approve `execution` now (the demo's printed links go
    where its email would), or None when nobody may."""
    policy = ApprovalPolicy(require_different_approver=settings.require_different_approver)
    recipients = Approvers(session).recipients(execution, policy)
    return recipients[0].email if recipients else None
