"""The Purchase History list's filters and search, as Flask-Admin filters that delegate
to `app.services.execution_reads.HistoryFilter`: the panel, `GET /api/history`, the CSV
export and the bulk retry narrow the table by the same rules, parsed and applied in one
place. A filter's cleaned value *is* a `HistoryFilter`, so the list can also hand the
active filters to the CSV export as that filter's own query arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

from flask_admin.contrib.sqla.filters import BaseSQLAFilter
from flask_admin.model.base import filter_char_re, filter_compact_re
from flask_login import current_user
from sqlalchemy import exists, select
from sqlalchemy.orm import InstrumentedAttribute, Session, scoped_session

from app.domain.errors import DomainError
from app.domain.providers import PROVIDERS
from app.domain.rbac import PURCHASES, Principal
from app.domain.statuses import Status
from app.models import CloudAccount, PurchaseExecution, PurchasePlan, User
from app.services.execution_reads import HistoryFilter
from app.services.identity import principal_for

Options = Callable[[], list[tuple[str, str]]]

# A session, or the scoped one the panel reads through (`db.session`).
AnySession = Session | scoped_session[Session]


class HistoryFilterField(BaseSQLAFilter):
    """One field of `HistoryFilter` as a panel filter (`operation` is its label).

    `options` are fixed; `choices` are read from the database each time the list is
    drawn (`with_choices`): Flask-Admin reads a filter's options once, when the view is
    built, before there is a database to ask and long before the next account is added.
    """

    def __init__(
        self,
        column: InstrumentedAttribute[Any],
        field: str,
        name: str,
        operation: str,
        options: Sequence[tuple[str, str]] | None = None,
        data_type: str | None = None,
        choices: Options | None = None,
    ) -> None:
        super().__init__(column, name, options, data_type)
        self.field = field
        self.choices = choices
        self._operation = operation

    def clean(self, value: str) -> HistoryFilter:
        """The value parsed by `HistoryFilter.parse`; a ValueError saying why when it
        refuses it (the list then refuses the request: `admin.list_args`)."""
        try:
            return HistoryFilter.parse({self.field: value})
        except DomainError as refusal:
            raise ValueError(refusal.message) from None

    def apply(self, query: Any, value: HistoryFilter, alias: Any = None) -> Any:
        # Flask-Admin's query is a legacy ORM Query; `HistoryFilter.apply` only calls
        # `.where()`, which a Query has too.
        return value.apply(query)

    def operation(self) -> str:
        return self._operation


def _choices(session: AnySession, key: Any, label: Any) -> Options:
    """Choices read when the list is drawn (one small query each, whatever the page
    size): accounts, plans and users are few next to executions."""
    return lambda: [(str(k), v) for k, v in session.execute(select(key, label).order_by(label))]


def sees_every_creator(principal: Principal) -> bool:
    """Whether the Creator filter offers `principal` other users: admins and holders of
    an `-any` purchases permission act on other users' rows and need to pick them out.
    Everyone else acts on their own rows only, and is offered only themselves: the list
    of every user's email is not theirs to read."""
    return principal.is_admin or any(
        permission.endswith(f"-any:{PURCHASES}") for permission in principal.permissions
    )


def _creator_choices(session: AnySession) -> Options:
    """The Creator filter's options for the signed-in user (`sees_every_creator`):
    the users who created at least one execution, or only the user."""

    def choices() -> list[tuple[str, str]]:
        principal = principal_for(current_user)
        if not sees_every_creator(principal):
            return [(str(principal.user_id), principal.email)] if principal.user_id else []
        creators = select(User.id, User.email).where(
            exists().where(PurchaseExecution.created_by_user_id == User.id)
        )
        return [(str(k), v) for k, v in session.execute(creators.order_by(User.email))]

    return choices


def history_filters(session: AnySession) -> list[HistoryFilterField]:
    """The list's filters: status, account, provider, plan, creator and a date range."""
    execution = PurchaseExecution
    # A date, or a date and time; UTC unless it names a zone (HistoryFilter.parse).
    when = "datetimepicker"
    return [
        HistoryFilterField(
            execution.status, "status", "Status", "equals", [(s.value, s.value) for s in Status]
        ),
        HistoryFilterField(
            execution.cloud_account_id,
            "cloud_account_id",
            "Account",
            "equals",
            choices=_choices(session, CloudAccount.id, CloudAccount.name),
        ),
        HistoryFilterField(
            execution.cloud_account_id,
            "provider",
            "Provider",
            "equals",
            [(provider, provider) for provider in PROVIDERS],
        ),
        HistoryFilterField(
            execution.plan_id,
            "plan_id",
            "Plan",
            "equals",
            choices=_choices(session, PurchasePlan.id, PurchasePlan.name),
        ),
        HistoryFilterField(
            execution.created_by_user_id,
            "created_by_user_id",
            "Creator",
            "equals",
            choices=_creator_choices(session),
        ),
        HistoryFilterField(
            execution.created_at, "created_after", "Created", "on or after", None, when
        ),
        HistoryFilterField(execution.created_at, "created_before", "Created", "before", None, when),
        # A failure's cause as "Failures by cause" names it (its signature), typed or linked.
        HistoryFilterField(execution.failure_signature, "cause", "Cause", "equals"),
    ]


def active_history_filter(
    filters: Sequence[Any], flask_admin_filters: Sequence[Any], search: str | None
) -> HistoryFilter:
    """The one `HistoryFilter` that the list's active filters and search add up to (for
    the CSV export link). `filters` are Flask-Admin's (index, name, value) triples, all
    valid (`admin.list_args` refused the request otherwise); a search the list refused
    and flashed is left out."""
    combined = HistoryFilter()
    if search:
        with suppress(DomainError):
            combined = HistoryFilter.for_search(search)
    for index, _name, value in filters:
        field = flask_admin_filters[index]
        if isinstance(field, HistoryFilterField):
            combined = combined.merged(field.clean(value))
    return combined


def with_choices(
    groups: dict[str, list[dict[str, Any]]] | None, flask_admin_filters: Sequence[Any]
) -> dict[str, list[dict[str, Any]]] | None:
    """Flask-Admin's filter groups (as the list template receives them), with the
    current choices of every filter that reads them from the database."""
    if not groups:
        return groups
    fresh: dict[str, list[dict[str, Any]]] = {}
    for label, items in groups.items():
        fresh[label] = []
        for item in items:
            field = flask_admin_filters[item["index"]]
            if isinstance(field, HistoryFilterField) and field.choices is not None:
                item = {**item, "options": field.choices()}
            fresh[label].append(item)
    return fresh


def list_args(filters: HistoryFilter, fields: Sequence[Any]) -> dict[str, str]:
    """The list's query-string arguments that open it narrowed by `filters`
    (`flt0_status_equals=failed&flt1_account_equals=…`), for links from other pages to
    the rows behind a number. `fields` are the list view's filters (`column_filters`);
    each argument is named by Flask-Admin's own rule for named filter URLs. A field with
    no list filter is a ValueError: a link that silently dropped it would show more rows
    than the number it stands for."""
    wanted = filters.as_args()
    args: dict[str, str] = {}
    for field in fields:
        if isinstance(field, HistoryFilterField) and field.field in wanted:
            name = filter_char_re.sub("", f"{field.name} {field.operation()}".lower())
            args[f"flt{len(args)}_{filter_compact_re.sub('_', name)}"] = wanted.pop(field.field)
    if wanted:
        raise ValueError(f"the history list has no filter for {', '.join(sorted(wanted))}")
    return args
