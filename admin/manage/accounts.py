"""Cloud accounts: list, create, edit, delete, switch the purchase mode, test the
connection. Admins only.

Every write is `app.services.accounts`'s, run through `management.write`, and audited.
Deleting an account that purchase executions reference is refused, with the count,
and changes nothing (the foreign key alone would set their account to NULL).

The list shows each account's mode (live stands out: it buys for real). The mode is
not a field of the edit form: the edit page has a button per other mode, each a POST
with its own confirmation, through `set_mode` (a refusal is flashed and audited like
every other write). "Test connection" asks the provider that serves the account in its
mode (`check_connection`) and flashes its report: ok, or what is wrong and which
permissions are missing. It writes nothing. "Import recommendations" links to the New
purchase page for the account, which fetches the provider's recommendations into it.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from flask import flash, redirect, request, url_for
from flask_admin import expose
from flask_admin.model.template import macro
from sqlalchemy.orm import Session
from werkzeug.routing import BuildError
from werkzeug.wrappers import Response

from admin.manage.base import ManagedModelView
from admin.manage.forms import CloudAccountForm
from admin.security import AdminRequiredMixin
from app.auth.session import safe_next_url
from app.domain.providers import PurchaseMode
from app.domain.rbac import Principal
from app.models import CloudAccount
from app.providers import ConnectionReport, current_registry
from app.services.accounts import (
    AccountFields,
    account_fields,
    check_connection,
    create_account,
    delete_account,
    set_mode,
    update_account,
)

# Where the New purchase page lives, for a deployment where its endpoint is not registered.
NEW_PURCHASE_PATH = "/admin/purchases/new/"

# What each mode does, as the edit page's buttons and confirmations say it.
MODE_EFFECTS = {
    PurchaseMode.SIMULATE.value: "the simulator answers; nothing reaches the cloud",
    PurchaseMode.DRY_RUN.value: "the cloud is asked for quotes; nothing is bought",
    PurchaseMode.LIVE.value: "purchases are made for real and billed by the cloud",
}


def _fields(form: CloudAccountForm) -> AccountFields:
    return account_fields(
        form.name.data or "",
        form.provider.data or "",
        form.external_id.data or "",
        form.contact_email.data,
        aws_role_arn=form.aws_role_arn.data,
        azure_billing_scope=form.azure_billing_scope.data,
    )


def report_text(account: CloudAccount, report: ConnectionReport) -> str:
    """A connection check's report as one flash line."""
    label = f"{account.name} ({account.provider}, {account.purchase_mode})"
    if report.ok:
        return f"{label}: connection ok: {report.message}"
    text = f"{label}: connection failed: {report.message}"
    if report.missing:
        text += " — missing permissions: " + ", ".join(report.missing)
    return text


def confirmation(account: CloudAccount, mode: str) -> str:
    """What the button switching `account` to `mode` asks before it posts."""
    if mode == PurchaseMode.LIVE.value:
        return (
            f"Switch {account.name} to live? From now on its purchases BUY FOR REAL, billed "
            f"to {account.provider} {account.external_id}."
        )
    return f"Switch {account.name} to {mode}? Then {MODE_EFFECTS[mode]}."


class CloudAccountAdminView(AdminRequiredMixin, ManagedModelView):
    """Cloud accounts: name, provider, mode, external id, contact email."""

    audit_subject = "account"
    list_template = "panel/accounts_list.html"
    edit_template = "panel/account_edit.html"
    can_create = True
    can_edit = True
    can_delete = True
    can_view_details = False
    column_list = (
        "name",
        "provider",
        "purchase_mode",
        "external_id",
        "contact_email",
        "created_at",
    )
    column_sortable_list = ("name", "provider", "purchase_mode", "created_at")
    column_default_sort = [("name", False), ("id", False)]
    column_searchable_list = ("name", "external_id")
    column_filters = ("provider", "purchase_mode")
    column_labels = {
        "external_id": "External id",
        "created_at": "Created",
        "purchase_mode": "Mode",
    }
    column_formatters = {"purchase_mode": macro("mode_cell")}
    mode_effects = MODE_EFFECTS

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
        if created:
            flash(
                f"{created.name} starts in {created.purchase_mode} mode: nothing is bought "
                "until an admin switches it to live",
                "info",
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

    def confirmation(self, account: CloudAccount, mode: str) -> str:
        return confirmation(account, mode)

    def import_recommendations_url(self, account: CloudAccount) -> str:
        """The New purchase page, importing this account's recommendations."""
        values: dict[str, Any] = {"account": str(account.id), "import": "1"}
        try:
            return url_for("purchase_new.index", **values)
        except BuildError:  # a deployment without the New purchase page
            return f"{NEW_PURCHASE_PATH}?{urlencode(values)}"

    @expose("/mode/", methods=("POST",))
    def set_mode_view(self) -> Response:
        """Switch the account `id` to `mode` (both form fields), then go back."""
        account_id = self.get_one(request.form.get("id", "")).id
        mode = (request.form.get("mode") or "")[:40]
        changed = self.write(
            "mode_change",
            lambda session, actor: _switch(session, actor, account_id, mode),
            account_id=str(account_id),
            mode=mode,
        )
        if changed is not None:
            name, before, after = changed
            if before == after:
                flash(f"{name} is already in {after} mode", "info")
            elif after == PurchaseMode.LIVE.value:
                flash(f"{name} is now live: its purchases buy for real", "warning")
            else:
                flash(f"{name} is now in {after} mode: {MODE_EFFECTS[after]}", "success")
        return self._back(account_id)

    @expose("/test/", methods=("POST",))
    def test_connection_view(self) -> Response:
        """Check the account `id` (a form field) in its mode; flash the report."""
        account = self.get_one(request.form.get("id", ""))
        report = check_connection(current_registry(), account)
        flash(report_text(account, report), "success" if report.ok else "error")
        return redirect(safe_next_url(request.form.get("next")) or self.get_url(".index_view"))

    def _back(self, account_id: uuid.UUID) -> Response:
        target = safe_next_url(request.form.get("next"))
        return redirect(target or self.get_url(".edit_view", id=str(account_id)))


def _switch(
    session: Session, actor: Principal, account_id: uuid.UUID, mode: str
) -> tuple[str, str, str]:
    """`set_mode`, answering the account's name and its mode before and after."""
    account = session.get(CloudAccount, account_id, with_for_update=True, populate_existing=True)
    before = account.purchase_mode if account is not None else ""
    switched = set_mode(session, actor, account_id, mode)
    return switched.name, before, switched.purchase_mode
