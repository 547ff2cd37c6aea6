"""Active suppressions: what new purchases must not buy again yet, and until when.

Read-only, for every signed-in user who may view purchases (`view:purchases`). Only
rows in force (`expires_at` after now) are listed; expired rows that maintenance has
not deleted yet are not shown.
"""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask_admin.contrib.sqla import filters
from markupsafe import Markup

from admin.manage.base import ManagedModelView, ReadOnlyMixin
from admin.security import PermissionRequiredMixin
from app.db import utcnow
from app.models import PurchaseSuppression


def _execution_column(_view: Any, _context: Any, model: PurchaseSuppression, _name: str) -> Markup:
    href = url_for("purchases.details_view", id=str(model.execution_id))
    return Markup('<a href="{}" data-execution-id="{}">{}</a>').format(
        href, model.execution_id, model.execution_id
    )


class ActiveSuppressionsView(PermissionRequiredMixin, ReadOnlyMixin, ManagedModelView):
    """Suppressions in force, soonest to expire first."""

    audit_subject = "suppression"
    id_kind = "int"
    can_view_details = False
    column_list = (
        "execution_id",
        "account_id",
        "provider",
        "service",
        "region",
        "resource_type",
        "engine",
        "suppressed_count",
        "expires_at",
    )
    column_sortable_list = ("expires_at", "account_id", "provider", "service", "region")
    column_default_sort = [("expires_at", False), ("id", False)]
    column_labels = {
        "execution_id": "Execution",
        "account_id": "Account",
        "resource_type": "Resource type",
        "suppressed_count": "Count",
        "expires_at": "Expires",
    }
    column_formatters = {"execution_id": _execution_column}
    named_filter_urls = True
    column_filters = (
        filters.FilterEqual(PurchaseSuppression.provider, "Provider"),
        filters.FilterEqual(PurchaseSuppression.account_id, "Account"),
        filters.FilterLike(PurchaseSuppression.service, "Service"),
        filters.FilterLike(PurchaseSuppression.region, "Region"),
        filters.UuidFilterEqual(PurchaseSuppression.execution_id, "Execution"),
    )

    def get_query(self) -> Any:
        return super().get_query().filter(PurchaseSuppression.expires_at > utcnow())

    def get_count_query(self) -> Any:
        return super().get_count_query().filter(PurchaseSuppression.expires_at > utcnow())
