"""Failures by cause: the open failures grouped by what broke, with the money each cause
holds up, its newest row, and whether it was marked fixed; "Mark fixed" and "Retry all N
with this cause" on each group.

The groups come from `app.services.causes` (one GROUP BY in SQL, bounded). "Mark fixed"
is a POST form with the CSRF token (`causes.mark_fixed`: permission, audit). "Retry all
N" posts the group's history filter (`cause`, and the status a retry by filter needs) to
Purchase History's "retry all matching" (`admin.bulk`), so it goes through the bulk
retry's money preview and confirmation like any other filter; "View" opens the same
filter in the list.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_login import current_user
from werkzeug.wrappers import Response

from admin.history_filters import list_args
from admin.row_actions import refusal_text
from admin.security import PermissionRequiredMixin
from admin.views import PurchaseHistoryView
from app.db import db
from app.domain.bulk_retry import bulk_refusal
from app.domain.errors import DomainError
from app.domain.statuses import Status
from app.services import causes, retry
from app.services.execution_reads import HistoryFilter
from app.services.identity import principal_for

MARK_FIXED_CONFIRM = (
    "Mark this cause fixed? It records that you fixed it, when, and your note; nothing "
    "is retried until you ask."
)


def cause_args(signature: str, status: Status | None = None) -> dict[str, Any]:
    """Purchase History's query-string arguments for the rows of a cause (with a status,
    those a retry by filter takes)."""
    fields = {"cause": signature, **({"status": status.value} if status else {})}
    return list_args(HistoryFilter.parse(fields), PurchaseHistoryView.column_filters)


class FailureCausesView(PermissionRequiredMixin, BaseView):
    """The page, for whoever may view purchases; the buttons for whoever may retry."""

    @expose("/")
    def index(self) -> str:
        principal = principal_for(current_user)
        found = causes.failure_causes(db.session(), principal, retry.current_policy())
        return self.render(
            "panel/failure_causes.html",
            causes=found.causes,
            truncated=found.truncated,
            max_causes=causes.MAX_CAUSES,
            may_retry=bulk_refusal(principal) is None,
            history_url=lambda signature, status=None: url_for(
                "purchases.index_view", **cause_args(signature, status)
            ),
            retry_url=lambda signature, status: url_for(
                "purchases.retry_matching_view", **cause_args(signature, status)
            ),
            mark_fixed_confirm=MARK_FIXED_CONFIRM,
            statuses=Status,
        )

    @expose("/fixed", methods=("POST",))
    def mark_fixed_view(self) -> Response:
        """Mark the form's `signature` fixed, with its `note`; report it as a flash.
        (Flask-WTF's CSRF protection checks the form's token before this runs.)"""
        try:
            fixed = causes.mark_fixed(
                principal_for(current_user), request.form.get("signature"), request.form.get("note")
            )
        except DomainError as refusal:
            flash(refusal_text(refusal), "error")
        else:
            flash(f"Marked fixed: {fixed.signature}", "success")
        return redirect(self.get_url(".index"))
