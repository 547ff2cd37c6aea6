"""The audit log: every state change and every refusal of one, newest first. Admins
only, read-only (its create, edit, delete and action URLs answer 404).

Filterable by action, actor email, execution id and time (UTC). The table only grows,
so the list never counts it (`simple_list_pager`: a next/previous pager instead of
page numbers) and sorts only on `at`, which is indexed.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask_admin.contrib.sqla import filters
from flask_admin.model.filters import BaseDateFilter
from markupsafe import Markup

from admin.manage.base import BIGINT_MAX, ManagedModelView, ReadOnlyMixin
from admin.security import AdminRequiredMixin
from app.models import AuditEvent, normalize_email


class ActorEmailEqual(filters.FilterEqual):
    def clean(self, value: str) -> str:
        return normalize_email(value)


class AtAfter(filters.DateTimeGreaterFilter):
    """Times in the filter are UTC, as the list shows them."""

    def clean(self, value: str) -> datetime:
        return super().clean(value).replace(tzinfo=UTC)

    def operation(self) -> str:
        return "after (UTC)"


class AtBefore(filters.DateTimeSmallerFilter):
    def clean(self, value: str) -> datetime:
        return super().clean(value).replace(tzinfo=UTC)

    def operation(self) -> str:
        return "before (UTC)"


class AtOnDay(filters.BaseSQLAFilter, BaseDateFilter):
    """Events of one UTC day: a range on the indexed column, not a function of it."""

    def clean(self, value: str) -> date:
        day = super().clean(value)
        if day == date.max:  # the range would end on a day no datetime can hold
            raise ValueError(f"the last day it searches is {date.max - timedelta(days=1)}")
        return day

    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        start = datetime.combine(value, time.min, tzinfo=UTC)
        column = self.get_column(alias)
        return query.filter(column >= start, column < start + timedelta(days=1))

    def operation(self) -> str:
        return "on day (UTC)"


def _details_column(_view: Any, _context: Any, model: AuditEvent, _name: str) -> Markup:
    # Markup.format escapes the JSON text: an event's details may quote user input.
    text = json.dumps(model.details or {}, sort_keys=True, ensure_ascii=False)
    return Markup('<code class="text-wrap" data-audit-details>{}</code>').format(text)


class AuditLogView(AdminRequiredMixin, ReadOnlyMixin, ManagedModelView):
    """The audit trail, newest first."""

    audit_subject = "audit event"
    id_kind = "int"
    id_max = BIGINT_MAX
    can_view_details = True
    simple_list_pager = True
    column_list = ("at", "action", "actor_email", "execution_id", "details")
    column_details_list = (
        "id",
        "at",
        "action",
        "actor_email",
        "actor_user_id",
        "execution_id",
        "details",
    )
    column_sortable_list = ("at",)
    column_default_sort = [("at", True), ("id", True)]
    column_labels = {"at": "At", "actor_email": "Actor", "execution_id": "Execution"}
    column_formatters = {"details": _details_column}
    column_formatters_detail = {"details": _details_column}
    named_filter_urls = True
    column_filters = (
        filters.FilterEqual(AuditEvent.action, "Action"),
        filters.FilterLike(AuditEvent.action, "Action"),
        ActorEmailEqual(AuditEvent.actor_email, "Actor"),
        filters.FilterLike(AuditEvent.actor_email, "Actor"),
        filters.UuidFilterEqual(AuditEvent.execution_id, "Execution"),
        AtOnDay(AuditEvent.at, "At"),
        AtAfter(AuditEvent.at, "At"),
        AtBefore(AuditEvent.at, "At"),
    )
