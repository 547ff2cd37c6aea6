"""The panel's views."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import flash, redirect, request
from flask_admin import AdminIndexView, expose
from flask_admin.contrib.sqla import ModelView
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from admin.bulk import BulkRetryMixin
from admin.row_actions import cells_for_page, refusal_text
from admin.security import PermissionRequiredMixin
from app.auth.session import safe_next_url
from app.db import db
from app.domain.errors import DomainError
from app.domain.inputs import parse_bool
from app.domain.rbac import Action
from app.domain.statuses import Status
from app.models import PurchaseExecution
from app.services import approvals, executions, retry
from app.services.identity import principal_for

# Deeper than any real history (50 million rows at 50 a page); past it, OFFSET overflows.
MAX_PAGE = 1_000_000


class HomeView(PermissionRequiredMixin, AdminIndexView):
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


class PurchaseHistoryView(BulkRetryMixin, PermissionRequiredMixin, ModelView):
    """Purchase History: newest first, read-only records, an action cell per row.

    Row actions are POST forms (CSRF token, confirmation) to this view's own endpoints;
    Flask-Admin's built-in row-action links are GETs and are not used for them.
    """

    list_template = "panel/purchases_list.html"
    form_base_class = FlaskForm  # one CSRF mechanism: Flask-WTF's
    can_create = False
    can_edit = False
    can_delete = False
    can_view_details = True
    page_size = 50
    # The id breaks ties: rows created in the same instant keep their places between
    # page loads, so paging never shows one twice and skips another.
    column_default_sort = [("created_at", True), ("execution_id", True)]
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

    def get_one(self, id: str) -> PurchaseExecution:
        """The row of a details page: a malformed id answers 400, an unknown one 404."""
        return executions.find_execution(self.session, id)

    def get_list(self, page: int | None, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """A page of rows, and, for the template, the action cell of each (computed per
        request into Flask-Admin's per-request `_template_args`, never kept on `self`:
        one view instance serves every request thread)."""
        if page is not None and not 0 <= page <= MAX_PAGE:
            raise DomainError(400, f"page must be a whole number from 1 to {MAX_PAGE + 1}")
        count, data = super().get_list(page, *args, **kwargs)
        self._template_args["action_cells"] = cells_for_page(
            self.session,
            principal_for(current_user),
            data,
            retry.current_policy(),
            approvals.current_policy(),
        )
        return count, data

    @expose("/retry/<path:execution_id>", methods=("POST",))
    def retry_view(self, execution_id: str) -> Response:
        """The Retry row action: check and record the request, queue it once committed,
        and go back to the list with the outcome as a flash message."""
        force = bool(parse_bool(request.form.get("force")))
        try:
            retry_request = retry.ask_for_retry(
                principal_for(current_user), execution_id, force=force
            )
        except DomainError as refusal:
            flash(refusal_text(refusal), "error")
        else:
            flash(
                f"Retry of {retry_request.execution_id} queued (request {retry_request.id})",
                "success",
            )
        return self._back()

    @expose("/approve/<path:execution_id>", methods=("POST",))
    def approve_view(self, execution_id: str) -> Response:
        """The Approve row action: approve, queue the purchase, report as a flash."""
        return self._decide(execution_id, Action.APPROVE)

    @expose("/cancel/<path:execution_id>", methods=("POST",))
    def cancel_view(self, execution_id: str) -> Response:
        """The Cancel row action: cancel (the suppressions go), report as a flash."""
        return self._decide(execution_id, Action.CANCEL)

    def _decide(self, execution_id: str, action: Action) -> Response:
        try:
            execution = approvals.decide(principal_for(current_user), execution_id, action)
        except DomainError as refusal:
            flash(refusal_text(refusal), "error")
        else:
            then = " — the purchase runs now" if execution.status == "approved" else ""
            flash(f"{execution.execution_id} {execution.status}{then}", "success")
        return self._back()

    def _back(self) -> Response:
        return redirect(safe_next_url(request.form.get("next")) or self.get_url(".index_view"))
