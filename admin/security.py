"""Access control shared by every panel view, decided by the RBAC rules in app.domain.

A view names what it needs (`required_action`, or admin); the decision itself is
`app.domain.rbac.authorize`, the same function the API and the worker ask.
"""

from __future__ import annotations

from typing import Any, ClassVar

from flask_login import current_user
from werkzeug.wrappers import Response

from app.auth.session import redirect_to_login
from app.domain.rbac import Action, authorize
from app.services.identity import principal_for


class LoginRequiredMixin:
    """Signed-in users holding `required_action` on purchases (default: view).

    Others are sent to the login page and back if signed out, or refused with 403.
    """

    required_action: ClassVar[Action] = Action.VIEW
    admin_only: ClassVar[bool] = False

    def is_accessible(self) -> bool:
        if not current_user.is_authenticated:
            return False
        principal = principal_for(current_user)
        if self.admin_only:
            return principal.is_admin
        return authorize(principal, self.required_action, None).allowed

    def inaccessible_callback(self, name: str, **kwargs: Any) -> Response:
        if current_user.is_authenticated:
            needed = "admin:*" if self.admin_only else f"{self.required_action.value}:purchases"
            return Response(f"Forbidden: this page needs the {needed} permission.", status=403)
        return redirect_to_login()


class AdminRequiredMixin(LoginRequiredMixin):
    """Views for holders of `admin:*` only (users, groups, accounts)."""

    admin_only = True
