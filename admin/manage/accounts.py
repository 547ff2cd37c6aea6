"""Cloud accounts: list, create, edit, delete. Admins only.

Deleting an account that purchase executions reference is refused, with the count,
and nothing changes. The foreign key alone would not refuse it: it is ON DELETE SET
NULL (SPEC section 1), so those executions would silently lose the account their
purchases ran against and where their approval emails go. The count is taken with the
account row locked (FOR UPDATE on PostgreSQL, where an execution being inserted for it
holds a key-share lock; the write lock SQLite's unit of work begins with), so an
execution cannot be added between the count and the delete.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from admin.manage.base import ManagedModelView
from admin.manage.forms import CloudAccountForm
from admin.security import AdminRequiredMixin
from app.domain.errors import DomainError
from app.domain.providers import PROVIDERS
from app.domain.rbac import Principal
from app.models import CloudAccount, PurchaseExecution, normalize_email
from app.services import audit


def _snapshot(account: CloudAccount) -> dict[str, Any]:
    return {
        "name": account.name,
        "provider": account.provider,
        "external_id": account.external_id,
        "contact_email": account.contact_email,
    }


def _fields(form: CloudAccountForm) -> dict[str, Any]:
    provider = form.provider.data or ""
    if provider not in PROVIDERS:  # the form's choices already refuse it
        raise DomainError(400, f"provider must be one of {', '.join(PROVIDERS)}")
    contact = normalize_email(form.contact_email.data or "")
    return {
        "name": (form.name.data or "").strip(),
        "provider": provider,
        "external_id": (form.external_id.data or "").strip(),
        "contact_email": contact or None,
    }


def create_account(session: Session, actor: Principal, fields: dict[str, Any]) -> CloudAccount:
    account = CloudAccount(**fields)
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
    session: Session, actor: Principal, account_id: uuid.UUID, fields: dict[str, Any]
) -> CloudAccount:
    account = _locked(session, account_id)
    before = _snapshot(account)
    for key, value in fields.items():
        setattr(account, key, value)
    after = _snapshot(account)
    if before != after:
        changes = {key: [before[key], after[key]] for key in before if before[key] != after[key]}
        audit.record(
            session,
            "account.updated",
            actor=actor,
            details={"account_id": str(account.id), "name": account.name, "changes": changes},
        )
    return account


def delete_account(session: Session, actor: Principal, account_id: uuid.UUID) -> CloudAccount:
    """Delete an account no execution references; otherwise refuse with the count."""
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


class CloudAccountAdminView(AdminRequiredMixin, ManagedModelView):
    """Cloud accounts: name, provider, external id, contact email."""

    audit_subject = "account"
    can_create = True
    can_edit = True
    can_delete = True
    can_view_details = False
    column_list = ("name", "provider", "external_id", "contact_email", "created_at")
    column_sortable_list = ("name", "provider", "created_at")
    column_default_sort = [("name", False), ("id", False)]
    column_searchable_list = ("name", "external_id")
    column_filters = ("provider",)
    column_labels = {"external_id": "External id", "created_at": "Created"}

    def get_create_form(self) -> type[CloudAccountForm]:
        return CloudAccountForm

    def get_edit_form(self) -> type[CloudAccountForm]:
        return CloudAccountForm

    def create_model(self, form: CloudAccountForm) -> CloudAccount | bool:
        created = self.write(
            "create",
            lambda session, actor: create_account(session, actor, _fields(form)),
            name=(form.name.data or "").strip()[:200],
        )
        return created or False

    def update_model(self, form: CloudAccountForm, model: CloudAccount) -> bool:
        account_id = model.id
        updated = self.write(
            "update",
            lambda session, actor: update_account(session, actor, account_id, _fields(form)),
            account_id=str(account_id),
        )
        return updated is not None

    def delete_model(self, model: CloudAccount) -> bool:
        account_id = model.id
        deleted = self.write(
            "delete",
            lambda session, actor: delete_account(session, actor, account_id),
            account_id=str(account_id),
        )
        return deleted is not None
