"""The panel's views."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_admin import AdminIndexView, expose
from flask_admin.contrib.sqla import ModelView
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select

from admin.security import LoginRequiredMixin
from app.db import db
from app.domain.statuses import Status
from app.models import PurchaseExecution
from app.services.identity import principal_for


class HomeView(LoginRequiredMixin, AdminIndexView):
    """The landing page: who is signed in, and how many executions are in each state."""

    @expose("/")
    def index(self) -> str:
        rows = db.session.execute(
            select(PurchaseExecution.status, func.count()).group_by(PurchaseExecution.status)
        )
        counts = {status: count for status, count in rows}
        return self.render(
            "panel/home.html",
            counts=[(status.value, counts.get(status.value, 0)) for status in Status],
            principal=principal_for(current_user),
        )


def format_timestamp(_view: Any, value: datetime, _name: str) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class PurchaseHistoryView(LoginRequiredMixin, ModelView):
    """Purchase History: newest first, read-only (row actions come with their services)."""

    form_base_class = FlaskForm  # one CSRF mechanism: Flask-WTF's
    can_create = False
    can_edit = False
    can_delete = False
    can_view_details = True
    page_size = 50
    column_default_sort = ("created_at", True)
    column_list = (
        "created_at",
        "status",
        "execution_id",
        "total_upfront_cost",
        "estimated_savings",
        "retry_attempt_n",
        "error",
    )
    column_details_list = (
        "execution_id",
        "status",
        "created_at",
        "updated_at",
        "created_by_user_id",
        "cloud_account_id",
        "plan_id",
        "step_number",
        "total_upfront_cost",
        "estimated_savings",
        "retry_attempt_n",
        "retry_execution_id",
        "approved_by",
        "cancelled_by",
        "notification_sent_at",
        "completed_at",
        "error",
        "recommendations",
    )
    column_type_formatters = {**ModelView.column_type_formatters, datetime: format_timestamp}
    column_filters = ("status",)
    column_labels = {"retry_attempt_n": "Attempt", "execution_id": "Execution"}
