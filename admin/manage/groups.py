"""Groups and their permissions: list, create, edit. Admins only.

Permissions are `verb:resource` strings, checked one by one by
`app.domain.rbac.validate_permission` (the rule `flask groups create` applies, through
`identity.create_group`): a form with a bad one shows the error and saves nothing.

No delete: removing a group silently changes what its members may do, and the seeded
ones (Administrators, Purchasers, Read-only) are what the docs and the demo name. To
retire a group, take its members out or empty its permissions; both are audited.
An edit that would take `admin:*` away from the acting admin is refused.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from admin.manage.base import ManagedModelView, NoDeleteMixin, keep_own_admin_rights
from admin.manage.forms import GroupForm
from admin.security import AdminRequiredMixin
from app.domain.errors import DomainError
from app.domain.rbac import Principal
from app.models import Group
from app.services import audit, identity


def _snapshot(group: Group) -> dict[str, Any]:
    return {
        "name": group.name,
        "permissions": list(group.permissions),
        "restricts_defaults": bool(group.restricts_defaults),
    }


def create_group(
    session: Session, actor: Principal, name: str, permissions: list[str], restricts: bool
) -> Group:
    group = identity.create_group(session, name, permissions, restricts_defaults=restricts)
    audit.record(
        session,
        "group.created",
        actor=actor,
        details={"group_id": group.id, **_snapshot(group)},
    )
    return group


def update_group(
    session: Session,
    actor: Principal,
    group_id: int,
    name: str,
    permissions: list[str],
    restricts: bool,
) -> Group:
    """Rename and re-permission a group, with the checks `identity.create_group` makes."""
    group = session.get(Group, group_id, with_for_update=True, populate_existing=True)
    if group is None:
        raise DomainError(404, f"no group with id {group_id}")
    clean_name, canonical = identity.group_fields(session, name, permissions, group_id=group.id)
    before = _snapshot(group)
    group.name, group.permissions, group.restricts_defaults = clean_name, canonical, restricts
    after = _snapshot(group)
    keep_own_admin_rights(session, actor)
    if before != after:
        changes = {key: [before[key], after[key]] for key in before if before[key] != after[key]}
        audit.record(
            session,
            "group.updated",
            actor=actor,
            details={"group_id": group.id, "name": group.name, "changes": changes},
        )
    return group


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
            lambda session, actor: create_group(
                session,
                actor,
                name,
                list(form.permissions.data or []),
                bool(form.restricts_defaults.data),
            ),
            name=name.strip()[:100],
        )
        return created or False

    def update_model(self, form: GroupForm, model: Group) -> bool:
        group_id = model.id
        updated = self.write(
            "update",
            lambda session, actor: update_group(
                session,
                actor,
                group_id,
                form.name.data or "",
                list(form.permissions.data or []),
                bool(form.restricts_defaults.data),
            ),
            group_id=group_id,
        )
        return updated is not None
