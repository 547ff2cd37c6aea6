"""Users: list, create, edit (active flag, groups, a new password). Admins only.

No delete: a user's id is kept by the audit trail, their executions (`created_by`) and
their retry requests, and deleting would null those out and cut the history off from a
person; deactivating stops them signing in and ends their sessions, and can be undone.

Passwords are never shown: not in the list, not on the edit form (there is no field
holding the hash), not echoed back after a refusal. They are set through a password
field, hashed by `app.services.identity` (argon2); an edit with the field left empty
keeps the old hash. Every write is `app.services.management`'s, the CLI's `users
create`, `set-password` and `deactivate` call the same functions, and each is audited.

An admin cannot lock themselves out: deactivating their own account, or taking
`admin:*` away from themselves, is refused (`management.keep_own_admin_rights`).
"""

from __future__ import annotations

from typing import Any

from admin.manage.base import ManagedModelView, NoDeleteMixin
from admin.manage.forms import UserCreateForm, UserEditForm
from admin.security import AdminRequiredMixin
from app.models import Group, User
from app.services import management


def _group_names(groups: list[Group]) -> list[str]:
    return sorted(group.name for group in groups)


def _groups_column(_view: Any, _context: Any, model: User, _name: str) -> str:
    return ", ".join(_group_names(model.groups))


class UserAdminView(AdminRequiredMixin, NoDeleteMixin, ManagedModelView):
    """Users: email, active, groups, created; create and edit, never delete."""

    audit_subject = "user"
    can_create = True
    can_edit = True
    can_view_details = False
    column_list = ("email", "is_active", "groups", "created_at")
    column_sortable_list = ("email", "is_active", "created_at")
    column_default_sort = [("email", False)]
    column_searchable_list = ("email",)
    column_filters = ("is_active",)
    column_labels = {"is_active": "Active", "created_at": "Created"}
    column_formatters = {"groups": _groups_column}

    def get_create_form(self) -> type[UserCreateForm]:
        return UserCreateForm

    def get_edit_form(self) -> type[UserEditForm]:
        return UserEditForm

    def create_model(self, form: UserCreateForm) -> User | bool:
        email = form.email.data or ""
        created = self.write(
            "create",
            lambda session, actor: management.create_user(
                session, actor, email, form.password.data or "", _group_names(form.groups.data)
            ),
            email=email.strip().lower()[:320],
        )
        return created or False

    def update_model(self, form: UserEditForm, model: User) -> bool:
        user_id = model.id
        updated = self.write(
            "update",
            lambda session, actor: management.update_user(
                session,
                actor,
                user_id,
                is_active=bool(form.is_active.data),
                groups=list(form.groups.data),
                new_password=form.password.data or None,
            ),
            user_id=str(user_id),
        )
        return updated is not None
