"""The read side of executions: one row, a page of history, the history filter, and the
JSON shape rows are shown in.

Read-only. The API, the CLI and the panel all show executions through `as_item`, so a
field means the same thing everywhere.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from app.domain.causes import parse_signature
from app.domain.errors import DomainError
from app.domain.inputs import is_text, parse_uuid
from app.domain.providers import PROVIDERS
from app.domain.recommendations import malformed_reason
from app.domain.retry import RetryPolicy, persistent_hint
from app.domain.statuses import Status
from app.models import CloudAccount, PurchaseExecution, PurchasePlan, User

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50
# A search needle longer than any useful error excerpt is a mistake, not a query.
MAX_SEARCH_LENGTH = 200


def find_execution(session: Session, raw_id: str | uuid.UUID) -> PurchaseExecution:
    """The execution with this id: 400 if the id is malformed, 404 if there is none."""
    execution_id = raw_id if isinstance(raw_id, uuid.UUID) else parse_uuid(raw_id)
    query = select(PurchaseExecution).where(PurchaseExecution.execution_id == execution_id)
    execution = session.scalars(query.execution_options(populate_existing=True)).one_or_none()
    if execution is None:
        raise unknown_execution(execution_id)
    return execution


def unknown_execution(execution_id: uuid.UUID) -> DomainError:
    """The 404 of an id that names no execution."""
    return DomainError(404, f"no execution {execution_id}")


def predecessors_of(session: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """For each id that is some row's successor, that row's id (the lineage backwards)."""
    if not ids:
        return {}
    rows = session.execute(
        select(PurchaseExecution.retry_execution_id, PurchaseExecution.execution_id).where(
            PurchaseExecution.retry_execution_id.in_(ids)
        )
    )
    return {successor: predecessor for successor, predecessor in rows if successor is not None}


@dataclass(frozen=True)
class HistoryFilter:
    """The one set of history filter rules: /api/history, the panel list, the CSV export
    and the bulk retry API narrow the table through `parse` and `apply`, so a filter
    means the same thing everywhere. Every field is backed by an index (migration 0006:
    each filter column leads an index that ends in the default sort; `execution_id` is
    the primary key), except `error_contains`, a substring search no B-tree can serve.
    `provider` is the provider of the row's account (rows without an account have none):
    the account index, over the few accounts of that provider."""

    status: str | None = None
    cloud_account_id: uuid.UUID | None = None
    plan_id: uuid.UUID | None = None
    created_by_user_id: uuid.UUID | None = None
    error_contains: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    execution_id: uuid.UUID | None = None
    provider: str | None = None
    # A failure's cause: the signature of its error (`app.domain.causes`), stored on it.
    cause: str | None = None

    @classmethod
    def parse(cls, args: Mapping[str, Any]) -> HistoryFilter:
        """From a mapping of str to str (or None): query-string args, form fields or a
        JSON object's values. A value that is not text, or does not parse, is a 400
        naming the field."""

        def text_arg(name: str) -> str | None:
            raw = args.get(name)
            if raw is None:
                return None
            # A NUL is text to Python and SQLite, but PostgreSQL refuses it outright.
            if not is_text(raw) or "\x00" in raw:
                raise DomainError(400, f"{name} must be text without NUL characters")
            return raw.strip() or None

        status = text_arg("status")
        if status is not None and status not in {s.value for s in Status}:
            known = ", ".join(s.value for s in Status)
            raise DomainError(400, f"unknown status {status[:40]!r} (known: {known})")

        def optional_id(name: str) -> uuid.UUID | None:
            raw = text_arg(name)
            return parse_uuid(raw, name) if raw else None

        provider = text_arg("provider")
        if provider is not None and provider not in PROVIDERS:
            known = ", ".join(PROVIDERS)
            raise DomainError(400, f"unknown provider {provider[:40]!r} (known: {known})")

        cause = text_arg("cause")
        error_contains = text_arg("error_contains")
        if error_contains is not None and len(error_contains) > MAX_SEARCH_LENGTH:
            raise DomainError(400, f"error_contains is longer than {MAX_SEARCH_LENGTH} characters")
        return cls(
            status=status,
            cloud_account_id=optional_id("cloud_account_id"),
            plan_id=optional_id("plan_id"),
            created_by_user_id=optional_id("created_by_user_id"),
            error_contains=error_contains,
            created_after=parse_moment(text_arg("created_after"), "created_after"),
            created_before=parse_moment(text_arg("created_before"), "created_before"),
            execution_id=optional_id("execution_id"),
            provider=provider,
            cause=parse_signature(cause) if cause is not None else None,
        )

    @classmethod
    def parse_known(cls, args: Any) -> HistoryFilter:
        """`parse` for a JSON object that may name only this filter's fields: anything
        else is a 400 naming it (a typo must not widen the filter)."""
        if not isinstance(args, Mapping):
            raise DomainError(400, "a filter must be a JSON object")
        known = cls.field_names()
        unknown = sorted(str(key) for key in args if key not in known)
        if unknown:
            names = ", ".join(sorted(known))
            raise DomainError(400, f"unknown filter field {unknown[0][:40]!r} (known: {names})")
        return cls.parse({key: value for key, value in args.items() if value != ""})

    @classmethod
    def field_names(cls) -> frozenset[str]:
        return frozenset(field.name for field in fields(cls))

    @classmethod
    def for_search(cls, term: str) -> HistoryFilter:
        """The panel's search box: a whole execution id finds that row (by its primary
        key); any other text is a case-insensitive substring of the error."""
        text = term.strip()
        try:
            uuid.UUID(text)
        except ValueError:
            return cls.parse({"error_contains": text})
        return cls.parse({"execution_id": text})

    def as_args(self) -> dict[str, str]:
        """The query-string arguments `parse` reads back into this filter."""
        args: dict[str, str] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, datetime):
                args[field.name] = value.isoformat()
            elif value is not None:
                args[field.name] = str(value)
        return args

    def merged(self, other: HistoryFilter) -> HistoryFilter:
        """This filter with `other`'s fields that are set laid over it."""
        return replace(self, **{k: v for k, v in vars(other).items() if v is not None})

    def apply(self, query: Select[Any]) -> Select[Any]:
        """`query` with a WHERE clause per filter that is set."""
        if self.status is not None:
            query = query.where(PurchaseExecution.status == self.status)
        if self.cloud_account_id is not None:
            query = query.where(PurchaseExecution.cloud_account_id == self.cloud_account_id)
        if self.plan_id is not None:
            query = query.where(PurchaseExecution.plan_id == self.plan_id)
        if self.created_by_user_id is not None:
            query = query.where(PurchaseExecution.created_by_user_id == self.created_by_user_id)
        if self.error_contains is not None:
            query = query.where(error_contains(self.error_contains))
        if self.created_after is not None:
            query = query.where(PurchaseExecution.created_at >= self.created_after)
        if self.created_before is not None:
            query = query.where(PurchaseExecution.created_at < self.created_before)
        if self.execution_id is not None:
            query = query.where(PurchaseExecution.execution_id == self.execution_id)
        if self.provider is not None:
            of_provider = select(CloudAccount.id).where(CloudAccount.provider == self.provider)
            query = query.where(PurchaseExecution.cloud_account_id.in_(of_provider))
        if self.cause is not None:
            query = query.where(PurchaseExecution.failure_signature == self.cause)
        return query


def error_contains(needle: str) -> ColumnElement[bool]:
    """Case-insensitive substring of `error`, the same on PostgreSQL and SQLite (lower()
    on both sides, LIKE with % and _ escaped so they match themselves). SQLite's lower()
    folds ASCII letters only, so there "É" and "é" stay different."""
    return func.lower(PurchaseExecution.error).contains(needle.lower(), autoescape=True)


def parse_moment(raw: str | None, field: str) -> datetime | None:
    """An ISO 8601 date or date-time as an aware UTC datetime (naive means UTC; a bare
    date means its midnight); None for None; a 400 naming `field` otherwise."""
    if raw is None:
        return None
    try:
        if len(raw) > 64:
            raise ValueError("too long")
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        shown = raw if len(raw) <= 64 else raw[:64] + "…"
        raise DomainError(
            400, f"{field} must be an ISO 8601 date or date-time, not {shown!r}"
        ) from None


def parse_limit(raw: str | None) -> int:
    if raw is None or raw.strip() == "":
        return DEFAULT_PAGE_SIZE
    text = raw.strip()
    # ASCII only: str.isdigit() also accepts "²", which int() refuses with a ValueError.
    digits = text.isascii() and text.isdigit()
    if not digits or len(text) > 6 or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise DomainError(400, f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(text)


def encode_cursor(execution: PurchaseExecution) -> str:
    raw = f"{execution.created_at.isoformat()}|{execution.execution_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, execution_id) position a `next` cursor points after."""
    try:
        if len(cursor) > 200:
            raise ValueError("too long")
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, _, execution_id = base64.urlsafe_b64decode(padded).decode().partition("|")
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError("naive timestamp")
        # In UTC here, not at bind time: "9999-12-31T23:59-01:00" overflows there.
        return moment.astimezone(UTC), uuid.UUID(execution_id)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise DomainError(
            400, "malformed cursor: pass the `next` value of a previous page"
        ) from None


@dataclass(frozen=True)
class HistoryPage:
    rows: list[PurchaseExecution]
    predecessors: dict[uuid.UUID, uuid.UUID]
    creators: dict[uuid.UUID, str]
    next_cursor: str | None


def history_page(
    session: Session, filters: HistoryFilter, *, limit: int, before: str | None = None
) -> HistoryPage:
    """Newest first, `limit` rows after the cursor `before`, with lineage and creators."""
    query = filters.apply(select(PurchaseExecution))
    if before:
        created_at, execution_id = decode_cursor(before)
        query = query.where(
            or_(
                PurchaseExecution.created_at < created_at,
                and_(
                    PurchaseExecution.created_at == created_at,
                    PurchaseExecution.execution_id < execution_id,
                ),
            )
        )
    query = query.order_by(
        PurchaseExecution.created_at.desc(), PurchaseExecution.execution_id.desc()
    ).limit(limit + 1)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return HistoryPage(
        rows=rows,
        predecessors=predecessors_of(session, [row.execution_id for row in rows]),
        creators=creator_emails(session, rows),
        next_cursor=encode_cursor(rows[-1]) if more and rows else None,
    )


def creator_emails(session: Session, rows: Sequence[PurchaseExecution]) -> dict[uuid.UUID, str]:
    ids = {row.created_by_user_id for row in rows if row.created_by_user_id is not None}
    if not ids:
        return {}
    found = session.execute(select(User.id, User.email).where(User.id.in_(ids)))
    # Not dict(result): a Result has .keys() (its columns), so dict() would index it.
    return {user_id: email for user_id, email in found}


def plan_names(session: Session, rows: Sequence[PurchaseExecution]) -> dict[uuid.UUID, str]:
    """The name of each plan the rows belong to: one query for a whole page."""
    ids = {row.plan_id for row in rows if row.plan_id is not None}
    if not ids:
        return {}
    found = session.execute(
        select(PurchasePlan.id, PurchasePlan.name).where(PurchasePlan.id.in_(ids))
    )
    return {plan_id: name for plan_id, name in found}


def as_item(
    execution: PurchaseExecution,
    policy: RetryPolicy,
    *,
    retry_of: uuid.UUID | None,
    creator_email: str | None,
    with_recommendations: bool = False,
) -> dict[str, Any]:
    """The JSON shape of one execution (history items and `GET /api/purchases/<id>`)."""
    item: dict[str, Any] = {
        "execution_id": str(execution.execution_id),
        "status": execution.status,
        "error": execution.error,
        "ops_hint": persistent_hint(execution, policy),
        "recommendations_error": malformed_reason(execution.recommendations),
        "retry_execution_id": _str_or_none(execution.retry_execution_id),
        "retry_of": _str_or_none(retry_of),
        "retry_attempt_n": execution.retry_attempt_n,
        "created_by_user_id": _str_or_none(execution.created_by_user_id),
        "created_by_email": creator_email,
        "retried_by_user_id": _str_or_none(execution.retried_by_user_id),
        "cloud_account_id": _str_or_none(execution.cloud_account_id),
        "plan_id": _str_or_none(execution.plan_id),
        "step_number": execution.step_number,
        "purchase_mode": execution.purchase_mode,
        "total_upfront_cost": _money(execution.total_upfront_cost),
        "estimated_savings": _money(execution.estimated_savings),
        "approved_by": execution.approved_by,
        "cancelled_by": execution.cancelled_by,
        "notification_sent_at": _iso_or_none(execution.notification_sent_at),
        "completed_at": _iso_or_none(execution.completed_at),
        "created_at": _iso_or_none(execution.created_at),
        "updated_at": _iso_or_none(execution.updated_at),
    }
    if with_recommendations:
        item["recommendations"] = execution.recommendations
    return item


def _str_or_none(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _money(value: Decimal | None) -> str | None:
    """Money as a decimal string ("1234.50"): exact, unlike a JSON float."""
    return None if value is None else f"{Decimal(value):.2f}"


def lineage_root(session: Session, execution_id: uuid.UUID) -> uuid.UUID:
    """The first attempt of the retry lineage `execution_id` belongs to (itself, if it is
    nobody's successor). A lineage is as long as its retries, a handful of rows."""
    current = execution_id
    seen = {current}
    while True:
        predecessor = predecessors_of(session, [current]).get(current)
        if predecessor is None or predecessor in seen:
            return current
        seen.add(predecessor)
        current = predecessor
