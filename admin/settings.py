"""Your settings: what a signed-in user sets for themselves, today the time zone the panel
shows times in. Any signed-in user, for themselves only: the page takes no user id, the
change is always the reader's own (`app.services.user_settings.set_own_time_zone`, which
checks the name and audits the change or the refusal).

The form is a POST with the CSRF token (Flask-WTF's app-wide check refuses a POST
without it with 400). A name the zone database does not know is refused with 400, the
reason as a flash message and the page again, and nothing is saved.
"""

from __future__ import annotations

from flask import flash, redirect, request
from flask_admin import BaseView, expose
from flask_login import current_user
from werkzeug.wrappers import Response

from admin.row_actions import refusal_text
from admin.security import PermissionRequiredMixin
from app.domain.errors import DomainError
from app.domain.time_zones import EXAMPLES, known_time_zones
from app.services import user_settings
from app.services.identity import principal_for


class SettingsView(PermissionRequiredMixin, BaseView):
    """The signed-in user's own settings page."""

    def _refusal(self) -> DomainError | None:
        return None  # signed in is enough: everyone may set their own time zone

    def is_visible(self) -> bool:
        return False  # reached from the navbar: the signed-in user's email links here

    @expose("/", methods=("GET", "POST"))
    def index(self) -> Response | str | tuple[str, int]:
        if request.method == "GET":
            return self._page(current_user.time_zone)
        chosen = request.form.get("time_zone")
        try:
            zone = user_settings.set_own_time_zone(principal_for(current_user), chosen)
        except DomainError as refusal:
            flash(f"Time zone not saved: {refusal_text(refusal)}", "error")
            return self._page(current_user.time_zone), refusal.status
        flash(f"Times now show in {zone or 'UTC'}.", "success")
        return redirect(self.get_url(".index"))

    def _page(self, current: str | None) -> str:
        return self.render(
            "panel/settings.html",
            current=current,
            zones=sorted(known_time_zones()),
            examples=EXAMPLES,
        )
