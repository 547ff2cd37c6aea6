"""The landing page: how much money is waiting, where, and how purchases went lately.

The figures come from `app.services.dashboard` (aggregates in SQL, a fixed handful of
statements per visit). Every number links to the Purchase History list of the rows
behind it, narrowed by that list's own filters (`admin.history_filters.list_args`), so
following a number shows exactly the rows it counts. The chart's points are embedded as
JSON in a `<script type="application/json">` block and drawn by panel/home.js with
uPlot (served from panel/vendor/uplot/): the Content-Security-Policy runs no inline
script.
"""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask_admin import AdminIndexView, expose
from flask_login import current_user

from admin.history_filters import list_args
from admin.security import PermissionRequiredMixin
from admin.views import PurchaseHistoryView
from app.db import db, utcnow
from app.domain.statuses import Status
from app.services import dashboard
from app.services.execution_reads import HistoryFilter
from app.services.identity import principal_for

# How the page names each place money waits.
WAITING_LABELS = {
    Status.PENDING: "Pending approval",
    Status.APPROVED: "Approved, waiting to start",
    Status.FAILED: "Failed (retryable)",
    Status.PARTIALLY_COMPLETED: "Partially completed (retryable)",
}


def history_url(**fields: str) -> str:
    """The Purchase History list narrowed by `fields` (`HistoryFilter` field names and
    values as the list's own filters read them)."""
    filters = HistoryFilter.parse(fields)
    args: dict[str, Any] = list_args(filters, PurchaseHistoryView.column_filters)
    return url_for("purchases.index_view", **args)


class HomeView(PermissionRequiredMixin, AdminIndexView):
    """The home page, for whoever may view purchases (`PermissionRequiredMixin`)."""

    @expose("/")
    def index(self) -> str:
        figures = dashboard.home_figures(db.session(), principal_for(current_user), now=utcnow())
        return self.render(
            "panel/home.html",
            figures=figures,
            waiting=dashboard.WAITING,
            labels=WAITING_LABELS,
            chart=chart_data(figures),
            history_url=history_url,
            principal=principal_for(current_user),
        )


def chart_data(figures: dashboard.HomeFigures) -> dict[str, Any]:
    """The chart's series as JSON: the UTC days ("YYYY-MM-DD") and a count per outcome
    per day, with the label of each series."""
    return {
        "days": [day.day.isoformat() for day in figures.days],
        "series": [
            {
                "status": status.value,
                "label": status.value.replace("_", " "),
                "counts": [day.counts[status] for day in figures.days],
            }
            for status in dashboard.OUTCOMES
        ],
    }
