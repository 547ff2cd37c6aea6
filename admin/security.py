"""Access control shared by every panel view, decided by the RBAC rules in app.domain.

A view names the action it needs; the decision, and the reason given on refusal, come
from `app.domain.rbac.refusal`, the same function the API and the worker ask. The
management views (users, groups, accounts, the audit log) are for admins only: the
same `Principal.is_admin` (`admin:*`) that short-circuits every purchase check.

Flask-Admin asks `is_accessible` before every exposed URL of a view (GET and POST
alike) and when it draws the menu, so a refused view is both closed and left out of
the menu.
"""

from __future__ import annotations

from typing import Any, ClassVar

from flask_login import current_user
from werkzeug.wrappers import Response

from app.auth.session import redirect_to_login
from app.domain.errors import DomainError
from app.domain.rbac import ADMIN, Action, refusal
from app.services.identity import principal_for


class PermissionRequiredMixin:
    """Signed-in users allowed `required_action` on purchases (default: view).

    Others are sent to the login page and back if signed out, or refused with 403.
    """

    required_action: ClassVar[Action] = Action.VIEW

    def _refusal(self) -> DomainError | None:
        return refusal(principal_for(current_user), self.required_action)

    def is_accessible(self) -> bool:
        return bool(current_user.is_authenticated) and self._refusal() is None

    def inaccessible_callback(self, name: str, **kwargs: Any) -> Response:
        if current_user.is_authenticated:
            denied = self._refusal()
            raise denied or DomainError(403, "not allowed")
        return redirect_to_login()


class AdminRequiredMixin(PermissionRequiredMixin):
    """Signed-in admins only (`admin:*`): everyone else gets 403 on every URL of the
    view, and the menu leaves it out. Signed-out users go to the login page."""

    def _refusal(self) -> DomainError | None:
        if principal_for(current_user).is_admin:
            return None
        name = getattr(self, "name", None) or "this view"
        return DomainError(403, f"not allowed to manage {name}: {ADMIN} is required")
