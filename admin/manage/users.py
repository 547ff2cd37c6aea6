"""Users: list, create, edit (active flag, groups, a new password). Admins only.

No delete: a user's id is kept by the audit trail, their executions (`created_by`) and
their retry requests, and deleting would null those out and cut the history off from a
person; deactivating stops them signing in and ends their sessions, and can be undone.

Passwords are never shown: not in the list, not on the edit form (there is no field
holding the hash), not echoed back after a refusal. They are set through a password
field, hashed by `app.services.identity` (argon2, the function the CLI's `users
create` and `users set-password` use); an edit with the field left empty keeps the
old hash.

An admin cannot lock themselves out: deactivating their own account, or taking
`admin:*` away from themselves, is refused (`keep_own_admin_rights`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from admin.manage.base import ManagedModelView, NoDeleteMixin, keep_own_admin_rights
from admin.manage.forms import UserCreateForm, UserEditForm
from admin.security import AdminRequiredMixin
from app.domain.errors import DomainError
from app.domain.rbac import Principal
from app.models import Group, User
from app.services import audit, identity


def _group_names(groups: list[Group]) -> list[str]:
    return sorted(group.name for group in groups)


def create_user(
    session: Session, actor: Principal, email: str, password: str, groups: list[Group]
) -> User:
    """Add the user through `identity.create_user` (normalized email, argon2 hash)."""
    user = identity.create_user(session, email, password, [group.name for group in groups])
    audit.record(
        session,
        "user.created",
        actor=actor,
        details={"user_id": str(user.id), "email": user.email, "groups": _group_names(groups)},
    )
    return user


def update_user(
    session: Session,
    actor: Principal,
    user_id: Any,
    *,
    is_active: bool,
    groups: list[Group],
    new_password: str | None,
) -> User:
    """Apply an edit. Deactivating or a new password ends the user's sessions."""
    user = session.get(User, user_id, with_for_update=True, populate_existing=True)
    if user is None:
        raise DomainError(404, f"no user with id {user_id}")
    changes: dict[str, Any] = {}
    if is_active != user.is_active:
        changes["is_active"] = [user.is_active, is_active]
        if is_active:
            user.is_active = True
        else:
            identity.deactivate(session, user.email)
    before, after = _group_names(user.groups), _group_names(groups)
    if before != after:
        changes["groups"] = [before, after]
        user.groups = list(groups)
    if new_password:
        identity.set_password(session, user.email, new_password)
        changes["password"] = "changed"  # noqa: S105  (that it changed, never what to)
    keep_own_admin_rights(session, actor)
    if changes:
        audit.record(
            session,
            "user.updated",
            actor=actor,
            details={"user_id": str(user.id), "email": user.email, "changes": changes},
        )
    return user


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
            lambda session, actor: create_user(
                session, actor, email, form.password.data or "", list(form.groups.data)
            ),
            email=email.strip().lower()[:320],
        )
        return created or False

    def update_model(self, form: UserEditForm, model: User) -> bool:
        user_id = model.id
        updated = self.write(
            "update",
            lambda session, actor: update_user(
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
