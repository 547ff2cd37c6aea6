"""The panel's views."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import flash, redirect, request
from flask_admin import expose
from flask_admin.contrib.sqla import ModelView
from flask_admin.model.template import macro
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import false
from werkzeug.wrappers import Response

from admin import formatting
from admin.bulk import BulkRetryMixin
from admin.details import ExecutionDetailsMixin
from admin.history_filters import active_history_filter, history_filters, with_choices
from admin.list_args import StrictListArgsMixin
from admin.row_actions import cells_for_page, refusal_text
from admin.security import PermissionRequiredMixin
from app.auth.session import safe_next_url
from app.db import db
from app.domain.errors import DomainError
from app.domain.inputs import parse_bool
from app.domain.rbac import Action
from app.models import PurchaseExecution
from app.services import approvals, execution_reads, retry
from app.services.identity import principal_for


class PurchaseHistoryView(
    ExecutionDetailsMixin, BulkRetryMixin, PermissionRequiredMixin, StrictListArgsMixin, ModelView
):
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
    # No count: Flask-Admin's simple pager (previous / next) instead of `count(*)` over
    # the whole table on every page. Each page is an index walk in the list's order
    # (migration 0006); OFFSET skips at most page x 200 entries of that index.
    simple_list_pager = True
    page_size = 50
    can_set_page_size = True
    page_size_options = (20, 50, 100, 200)
    # The id breaks ties: rows created in the same instant keep their places between
    # page loads, so paging never shows one twice and skips another. Every sort ends in
    # (created_at, execution_id), the tail of every history index.
    column_default_sort = [("created_at", True), ("execution_id", True)]
    column_sortable_list = (
        ("created_at", ("created_at", "execution_id")),
        ("status", ("status", "created_at", "execution_id")),
        # Savings at risk: the money a failure keeps from being saved (migration 0014's
        # index walks it in this order).
        ("estimated_savings", ("estimated_savings", "created_at", "execution_id")),
    )
    column_list = (
        "created_at",
        "status",
        "execution_id",
        "cloud_account_id",
        "plan_id",
        "created_by_user_id",
        "total_upfront_cost",
        "estimated_savings",
        "retry_attempt_n",
        "error",
    )
    # Macros of the list template, reading the names `get_list` looked up for the page.
    column_formatters = {
        "status": macro("status_cell"),
        "execution_id": formatting.id_column,
        "total_upfront_cost": formatting.money_column,
        "estimated_savings": formatting.money_column,
        "cloud_account_id": macro("account_cell"),
        "plan_id": macro("plan_cell"),
        "created_by_user_id": macro("creator_cell"),
        "error": macro("error_cell"),
    }
    column_formatters_detail: dict[str, Any] = {}  # the details page renders its own
    column_details_list = (
        "execution_id",
        "status",
        "purchase_mode",
        "created_at",
        "updated_at",
        "created_by_user_id",
        "retried_by_user_id",
        "cloud_account_id",
        "plan_id",
        "step_number",
        "total_upfront_cost",
        "estimated_savings",
        "retry_attempt_n",
        "retry_execution_id",
        "scheduled_for",
        "approved_by",
        "cancelled_by",
        "notification_sent_at",
        "completed_at",
        "error",
        "recommendations",
    )
    column_type_formatters = {**ModelView.column_type_formatters, datetime: formatting.time_column}
    column_filters = history_filters(db.session)
    named_filter_urls = True  # ?flt0_status_equals=failed, not ?flt0_0=failed
    # Searched by `_apply_search` below (an exact id, or text in the error); the list
    # only tells Flask-Admin that there is a search box.
    column_searchable_list = ("error",)
    column_labels = {
        "created_at": "When",
        "retry_attempt_n": "Attempt",
        "execution_id": "Execution",
        "cloud_account_id": "Account",
        "plan_id": "Plan / step",
        "created_by_user_id": "Creator",
        "retried_by_user_id": "Retried by",
        "total_upfront_cost": "Upfront",
        "estimated_savings": "Savings",
        "purchase_mode": "Mode",
    }

    def get_one(self, id: str) -> PurchaseExecution:
        """The row of a details page: a malformed id answers 400, an unknown one 404."""
        return execution_reads.find_execution(self.session, id)

    def search_placeholder(self) -> str:
        return "Execution id or error text"

    def _apply_search(
        self, query: Any, count_query: Any, joins: Any, count_joins: Any, search: str
    ) -> tuple[Any, Any, Any, Any]:
        """The search box as `HistoryFilter.for_search` reads it: a whole execution id
        (the primary key), or a case-insensitive substring of the error, % and _ taken
        literally. (Flask-Admin's own search would cast the id to text and LIKE every
        word over the whole table.) Overridden here because `ModelView.get_list`, which
        the bulk "retry all matching" also calls, applies the search through it. A
        search it refuses matches nothing (`get_list` says why, once): dropping it would
        widen the list, and the bulk retry with it."""
        try:
            found = execution_reads.HistoryFilter.for_search(search)
        except DomainError:
            nothing = false()
            if count_query is not None:
                count_query = count_query.where(nothing)
            return query.where(nothing), count_query, joins, count_joins
        if count_query is not None:
            count_query = found.apply(count_query)
        return found.apply(query), count_query, joins, count_joins

    def get_list(
        self,
        page: int | None,
        sort_column: Any,
        sort_desc: bool,
        search: str | None,
        filters: Any,
        execute: bool = True,
        page_size: int | None = None,
    ) -> tuple[Any, Any]:
        """A page of rows and, for the template, what its cells show beyond the row: the
        action cell, plan name and creator email of each (one query per kind of fact
        for the whole page, so 20 rows and 200 cost the same number of statements; the
        account comes with the rows, `selectin`), and the CSV export's arguments. Kept
        in Flask-Admin's per-request `_template_args`, never on `self`: one view
        instance serves every request thread."""
        count, data = super().get_list(
            page, sort_column, sort_desc, search, filters, execute, page_size
        )
        if execute:
            if search:
                try:
                    execution_reads.HistoryFilter.for_search(search)
                except DomainError as refusal:
                    flash(f"Search not run: {refusal.message}", "error")
            session = self.session
            self._template_args.update(
                action_cells=cells_for_page(
                    session,
                    principal_for(current_user),
                    data,
                    retry.current_policy(),
                    approvals.current_policy(),
                ),
                plan_names=execution_reads.plan_names(session, data),
                creator_emails=execution_reads.creator_emails(session, data),
                export_args=active_history_filter(
                    filters or (), self._filters or (), search
                ).as_args(),
                # Replaces the filter groups `index_view` passes (per-request template
                # args win): with the accounts, plans and users there are now.
                filter_groups=with_choices(self._get_filter_groups(), self._filters or ()),
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
                f"Retry of {retry_request.selection['execution_id']} queued "
                f"(request {retry_request.id})",
                "success",
            )
            warning = retry.approver_warning(retry_request, principal_for(current_user))
            if warning is not None:
                flash(warning, "warning")
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
