"""Groups and their permissions: list, create, edit. Admins only.

Permissions are `verb:resource` strings, checked one by one by
`app.domain.rbac.validate_permission`: a form with a bad one shows the error and saves
nothing. Every write is `app.services.management`'s (the functions `flask groups
create` calls too), each audited.

No delete: removing a group silently changes what its members may do, and the seeded
ones (Administrators, Purchasers, Read-only) are what the docs and the demo name. To
retire a group, take its members out or empty its permissions; both are audited.
An edit that would take `admin:*` away from the acting admin is refused.
"""

from __future__ import annotations

from typing import Any

from admin.manage.base import ManagedModelView, NoDeleteMixin
from admin.manage.forms import GroupForm
from admin.security import AdminRequiredMixin
from app.models import Group
from app.services import management


def _permissions_column(_view: Any, _context: Any, model: Group, _name: str) -> str:
    return ", ".join(model.permissions) or "(none)"


class GroupAdminView(AdminRequiredMixin, NoDeleteMixin, ManagedModelView):
    """Groups: name, permissions, whether they restrict the defaults."""

    audit_subject = "group"
    id_kind = "int"
    can_create = True
    can_edit = True
    can_view_details = False
    column_list = ("name", "permissions", "restricts_defaults", "created_at")
    column_sortable_list = ("name", "created_at")
    column_default_sort = [("name", False)]
    column_labels = {"restricts_defaults": "Restricts defaults", "created_at": "Created"}
    column_formatters = {"permissions": _permissions_column}

    def get_create_form(self) -> type[GroupForm]:
        return GroupForm

    def get_edit_form(self) -> type[GroupForm]:
        return GroupForm

    def create_model(self, form: GroupForm) -> Group | bool:
        name = form.name.data or ""
        created = self.write(
            "create",
            lambda session, actor: management.create_group(
                session,
                actor,
                name,
                list(form.permissions.data or []),
                restricts_defaults=bool(form.restricts_defaults.data),
            ),
            name=name.strip()[:100],
        )
        return created or False

    def update_model(self, form: GroupForm, model: Group) -> bool:
        group_id = model.id
        updated = self.write(
            "update",
            lambda session, actor: management.update_group(
                session,
                actor,
                group_id,
                form.name.data or "",
                list(form.permissions.data or []),
                restricts_defaults=bool(form.restricts_defaults.data),
            ),
            group_id=group_id,
        )
        return updated is not None
