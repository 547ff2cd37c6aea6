"""Cloud accounts: list, create, edit, delete. Admins only.

Every write is `app.services.accounts`'s, run through `management.write`, and audited.
Deleting an account that purchase executions reference is refused, with the count,
and changes nothing (the foreign key alone would set their account to NULL).
"""

from __future__ import annotations

from admin.manage.base import ManagedModelView
from admin.manage.forms import CloudAccountForm
from admin.security import AdminRequiredMixin
from app.models import CloudAccount
from app.services.accounts import (
    AccountFields,
    account_fields,
    create_account,
    delete_account,
    update_account,
)


def _fields(form: CloudAccountForm) -> AccountFields:
    return account_fields(
        form.name.data or "",
        form.provider.data or "",
        form.external_id.data or "",
        form.contact_email.data,
    )


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
