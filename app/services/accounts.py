"""Cloud accounts: create, edit, delete, each audited in its own transaction (run them
through `app.services.management.write`, as the panel's account pages do).

Deleting an account that purchase executions reference is refused, with the count,
and nothing changes. The foreign key alone would not refuse it: it is ON DELETE SET
NULL, so those executions would silently lose the account their purchases ran
against and where their approval emails go. The count is taken with the account row
locked (FOR UPDATE on PostgreSQL, where an execution being inserted for it holds a
key-share lock; the write lock SQLite's unit of work begins with), so an execution
cannot be added between the count and the delete.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.errors import DomainError
from app.domain.providers import PROVIDERS
from app.domain.rbac import Principal
from app.models import CloudAccount, PurchaseExecution, normalize_email
from app.providers import AccountTarget
from app.services import audit
from app.services.identity import _EMAIL_SHAPE as EMAIL_SHAPE  # the one email rule
from app.services.management import changes


@dataclass(frozen=True)
class AccountFields:
    """What an account is made of, checked and normalized by `account_fields`."""

    name: str
    provider: str
    external_id: str
    contact_email: str | None


def account_fields(
    name: str, provider: str, external_id: str, contact_email: str | None
) -> AccountFields:
    """The fields stripped (the contact email normalized, empty for none), or a 400
    naming the first one that is unusable."""
    clean_name, clean_id = name.strip(), external_id.strip()
    if not clean_name:
        raise DomainError(400, "account name must not be empty")
    if provider not in PROVIDERS:
        raise DomainError(400, f"provider must be one of {', '.join(PROVIDERS)}")
    if not clean_id:
        raise DomainError(400, "external id must not be empty")
    contact = normalize_email(contact_email or "") or None
    if contact is not None and not EMAIL_SHAPE.match(contact):
        raise DomainError(400, f"contact email is not an email address: {contact_email!r}")
    return AccountFields(clean_name, provider, clean_id, contact)


def _snapshot(account: CloudAccount) -> dict[str, Any]:
    return {
        "name": account.name,
        "provider": account.provider,
        "external_id": account.external_id,
        "contact_email": account.contact_email,
    }


def create_account(session: Session, actor: Principal, fields: AccountFields) -> CloudAccount:
    """Add an account, audited as `account.created`."""
    account = CloudAccount(**asdict(fields))
    session.add(account)
    session.flush()
    audit.record(
        session,
        "account.created",
        actor=actor,
        details={"account_id": str(account.id), **_snapshot(account)},
    )
    return account


def _locked(session: Session, account_id: uuid.UUID) -> CloudAccount:
    account = session.get(CloudAccount, account_id, with_for_update=True, populate_existing=True)
    if account is None:
        raise DomainError(404, f"no account with id {account_id}")
    return account


def update_account(
    session: Session, actor: Principal, account_id: uuid.UUID, fields: AccountFields
) -> CloudAccount:
    """Edit an account, audited as `account.updated` with what changed (if anything)."""
    account = _locked(session, account_id)
    before = _snapshot(account)
    for key, value in asdict(fields).items():
        setattr(account, key, value)
    after = _snapshot(account)
    if before != after:
        audit.record(
            session,
            "account.updated",
            actor=actor,
            details={
                "account_id": str(account.id),
                "name": account.name,
                "changes": changes(before, after),
            },
        )
    return account


def delete_account(session: Session, actor: Principal, account_id: uuid.UUID) -> CloudAccount:
    """Delete an account no execution references, audited as `account.deleted`;
    otherwise refuse with the count (409)."""
    account = _locked(session, account_id)
    referenced = session.scalar(
        select(func.count())
        .select_from(PurchaseExecution)
        .where(PurchaseExecution.cloud_account_id == account.id)
    )
    if referenced:
        noun = "execution" if referenced == 1 else "executions"
        raise DomainError(
            409,
            f"account {account.name} is referenced by {referenced} {noun}; it cannot be "
            "deleted while purchase history points at it (edit it instead)",
            account_id=str(account.id),
            executions=referenced,
        )
    snapshot = _snapshot(account)
    session.delete(account)
    audit.record(
        session,
        "account.deleted",
        actor=actor,
        details={"account_id": str(account_id), **snapshot},
    )
    return account


def target_of(account: CloudAccount) -> AccountTarget:
    """Where the cloud's SDK acts for `account`: the Azure subscription and the GCP
    project are its `external_id`; for AWS, `external_id` is the STS external id of the
    role it names, if any."""
    return AccountTarget(
        name=account.name,
        provider=account.provider,
        external_id=account.external_id,
        aws_role_arn=account.aws_role_arn or None,
        azure_subscription_id=account.external_id if account.provider == "azure" else None,
        azure_billing_scope=account.azure_billing_scope or None,
        gcp_project=account.external_id if account.provider == "gcp" else None,
    )
