"""Access control shared by every panel view: sign-in required, admin where asked."""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.auth.session import safe_next_url
from app.services.identity import principal_for


class LoginRequiredMixin:
    """Views for any signed-in user; others are sent to the login page and back."""

    def is_accessible(self) -> bool:
        return bool(current_user.is_authenticated)

    def inaccessible_callback(self, name: str, **kwargs: Any) -> Response:
        if current_user.is_authenticated:
            return Response("Forbidden: this view is for administrators.", status=403)
        next_path = request.full_path if request.query_string else request.path
        return redirect(url_for("auth.login", next=safe_next_url(next_path)))


class AdminRequiredMixin(LoginRequiredMixin):
    """Views for holders of `admin:*` only (users, groups, accounts)."""

    def is_accessible(self) -> bool:
        return super().is_accessible() and principal_for(current_user).is_admin
