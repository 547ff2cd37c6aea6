"""The management views: users, groups, cloud accounts and the audit log (admins
only, under "Administration"), and the active suppressions (everyone who may view
purchases). `add_views(panel, session)` mounts them."""

from __future__ import annotations

from typing import Any

from flask_admin import Admin

from admin.manage.accounts import CloudAccountAdminView
from admin.manage.audit_log import AuditLogView
from admin.manage.groups import GroupAdminView
from admin.manage.suppressions import ActiveSuppressionsView
from admin.manage.users import UserAdminView
from app.models import AuditEvent, CloudAccount, Group, PurchaseSuppression, User

ADMINISTRATION = "Administration"


def add_views(panel: Admin, session: Any) -> None:
    panel.add_view(
        ActiveSuppressionsView(
            PurchaseSuppression, session, name="Active Suppressions", endpoint="suppressions"
        )
    )
    for view, model, name, endpoint in (
        (UserAdminView, User, "Users", "users"),
        (GroupAdminView, Group, "Groups", "groups"),
        (CloudAccountAdminView, CloudAccount, "Cloud Accounts", "accounts"),
        (AuditLogView, AuditEvent, "Audit Log", "audit"),
    ):
        panel.add_view(view(model, session, name=name, endpoint=endpoint, category=ADMINISTRATION))
