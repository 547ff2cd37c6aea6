"""Failures by cause: what broke, how much money it holds up, and whether it was fixed.

The retryable failures (`app.domain.retry.RETRYABLE`: failed and partially completed
rows) that nobody has retried yet are grouped by their stored signature
(`purchase_executions.failure_signature`, `app.domain.causes`) in SQL: one GROUP BY over
the (status, failure_signature) index, at most `MAX_CAUSES` groups, largest first; then
one statement for the newest row of each group shown, and one for their newest fixes.
Three statements whatever the size of the history.

A group is named by its cause (`app.domain.causes.cause_label`): the ops hint of its
newest error when one applies, else the signature. Its rows are the history filter
`{"cause": signature}` (`HistoryFilter.cause`), which is what "Retry all N with this
cause" hands the bulk retry (with the status, as a retry by filter needs one).

Who sees what: the reader needs `view:purchases` (`rbac.require`), and the rows grouped
are exactly the rows Purchase History lists for them. That list has no per-account read
scope today, so neither has this page; `accounts` narrows every statement to the given
accounts (rows without an account left out), the one place a read scope plugs in so that
no count or sum covers a row outside it.

"Mark fixed" (`mark_fixed`) needs the retry permission (whoever may retry something,
`bulk_refusal`), records who and when, and is audited (`failure_cause.fixed`).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from app.db import unit_of_work, utcnow
from app.domain.bulk_retry import bulk_refusal
from app.domain.causes import MAX_SIGNATURE_LENGTH, cause_label, parse_note, parse_signature
from app.domain.errors import DomainError
from app.domain.rbac import Action, Principal, require
from app.domain.retry import RETRYABLE, RetryPolicy
from app.domain.statuses import Status
from app.models import FailureCauseFix, PurchaseExecution
from app.services import audit

# A page of causes: an outage makes a handful; past this many, the rest are summed up.
MAX_CAUSES = 100
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Fix:
    """The newest "mark fixed" of a cause."""

    fixed_at: datetime
    fixed_by_email: str
    note: str | None


@dataclass(frozen=True)
class Cause:
    """One group of open failures: its signature (None: rows inserted failed without
    one, by SQL outside the app), what it is called, its rows and their money."""

    signature: str | None
    label: str
    ops_hint: str | None
    failed: int
    partially_completed: int
    total_upfront_cost: Decimal
    estimated_savings: Decimal
    newest_execution_id: uuid.UUID | None
    newest_error: str | None
    newest_created_at: datetime | None
    last_failed_at: datetime
    fix: Fix | None

    @property
    def count(self) -> int:
        return self.failed + self.partially_completed

    @property
    def recurred(self) -> bool:
        """Whether a row of this cause failed after it was marked fixed."""
        return self.fix is not None and self.last_failed_at > self.fix.fixed_at

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape (`GET /api/failures/causes`): money as decimal strings."""
        return {
            "signature": self.signature,
            "cause": self.label,
            "ops_hint": self.ops_hint,
            "count": self.count,
            "failed": self.failed,
            "partially_completed": self.partially_completed,
            "total_upfront_cost": f"{self.total_upfront_cost:.2f}",
            "estimated_savings": f"{self.estimated_savings:.2f}",
            "newest_execution_id": _text(self.newest_execution_id),
            "newest_error": self.newest_error,
            "newest_created_at": _iso(self.newest_created_at),
            "last_failed_at": _iso(self.last_failed_at),
            "fixed": None
            if self.fix is None
            else {
                "fixed_at": self.fix.fixed_at.isoformat(),
                "fixed_by_email": self.fix.fixed_by_email,
                "note": self.fix.note,
                "recurred": self.recurred,
            },
        }


@dataclass(frozen=True)
class Causes:
    causes: list[Cause]
    # More groups than `MAX_CAUSES` exist: the page shows the largest.
    truncated: bool


def open_failures(accounts: Collection[uuid.UUID] | None) -> list[ColumnElement[bool]]:
    """The rows a cause counts: retryable, not retried yet, within the reader's scope."""
    execution = PurchaseExecution
    conditions: list[ColumnElement[bool]] = [
        execution.status.in_(sorted(status.value for status in RETRYABLE)),
        execution.retry_execution_id.is_(None),
    ]
    if accounts is not None:
        conditions.append(execution.cloud_account_id.in_(sorted(accounts, key=str)))
    return conditions


def failure_causes(
    session: Session,
    principal: Principal,
    policy: RetryPolicy,
    *,
    accounts: Collection[uuid.UUID] | None = None,
    limit: int = MAX_CAUSES,
) -> Causes:
    """The open failures `principal` may see (403 without `view:purchases`), narrowed
    to `accounts` when given, grouped by cause, the largest groups first."""
    require(principal, Action.VIEW)
    execution = PurchaseExecution
    visible = open_failures(accounts)
    rows = session.execute(
        select(
            execution.failure_signature,
            func.count().label("rows"),
            func.sum(case((execution.status == Status.FAILED.value, 1), else_=0)).label("failed"),
            func.coalesce(func.sum(execution.total_upfront_cost), 0).label("upfront"),
            func.coalesce(func.sum(execution.estimated_savings), 0).label("savings"),
            func.max(execution.updated_at).label("last_failed_at"),
        )
        .where(*visible)
        .group_by(execution.failure_signature)
        .order_by(func.count().desc(), execution.failure_signature)
        .limit(limit + 1)
    ).all()
    truncated = len(rows) > limit
    rows = rows[:limit]
    signatures = [row.failure_signature for row in rows]
    newest = _newest_rows(session, visible, signatures)
    fixes = newest_fixes(session, [s for s in signatures if s is not None])
    causes = []
    for row in rows:
        example = newest.get(row.failure_signature)
        error = example.error if example is not None else None
        label, hint = cause_label(error, policy)
        causes.append(
            Cause(
                signature=row.failure_signature,
                label=label if row.failure_signature is not None else f"(unclassified) {label}",
                ops_hint=hint,
                failed=int(row.failed or 0),
                partially_completed=int(row.rows) - int(row.failed or 0),
                total_upfront_cost=_cents(row.upfront),
                estimated_savings=_cents(row.savings),
                newest_execution_id=example.execution_id if example is not None else None,
                newest_error=error,
                newest_created_at=example.created_at if example is not None else None,
                last_failed_at=_moment(row.last_failed_at),
                fix=fixes.get(row.failure_signature) if row.failure_signature else None,
            )
        )
    return Causes(causes=causes, truncated=truncated)


def _newest_rows(
    session: Session, visible: list[ColumnElement[bool]], signatures: Sequence[str | None]
) -> dict[str | None, Any]:
    """The newest visible row of each signature (created_at, then the id: the list's
    order), in one statement."""
    if not signatures:
        return {}
    execution = PurchaseExecution
    named = [s for s in signatures if s is not None]
    which: ColumnElement[bool] = execution.failure_signature.in_(named)
    if None in signatures:
        which = which | execution.failure_signature.is_(None)
    ranked = (
        select(
            execution.failure_signature,
            execution.execution_id,
            execution.error,
            execution.created_at,
            func.row_number()
            .over(
                partition_by=execution.failure_signature,
                order_by=(execution.created_at.desc(), execution.execution_id.desc()),
            )
            .label("place"),
        )
        .where(*visible, which)
        .subquery()
    )
    found = session.execute(select(ranked).where(ranked.c.place == 1))
    return {row.failure_signature: row for row in found}


def newest_fixes(session: Session, signatures: Sequence[str]) -> dict[str, Fix]:
    """The newest fix of each signature that has one."""
    if not signatures:
        return {}
    fix = FailureCauseFix
    ranked = (
        select(
            fix.signature,
            fix.fixed_at,
            fix.fixed_by_email,
            fix.note,
            func.row_number()
            .over(partition_by=fix.signature, order_by=(fix.fixed_at.desc(), fix.id.desc()))
            .label("place"),
        )
        .where(fix.signature.in_(list(signatures)))
        .subquery()
    )
    found = session.execute(select(ranked).where(ranked.c.place == 1))
    return {
        row.signature: Fix(_moment(row.fixed_at), row.fixed_by_email, row.note) for row in found
    }


def mark_fixed(principal: Principal, raw_signature: Any, raw_note: Any = None) -> FailureCauseFix:
    """Record that `principal` fixed the cause `raw_signature`, audited as
    `failure_cause.fixed` with the signature and the note. 403 unless they may retry
    something (who may retry a cause's rows may say its cause is fixed); 400 for a
    malformed signature or note; 404 for a signature no failed row has. A refusal is
    audited as `failure_cause.fix_refused`."""
    try:
        denied = bulk_refusal(principal)
        if denied is not None:
            raise denied
        signature = parse_signature(raw_signature, "signature")
        note = parse_note(raw_note)
        with unit_of_work() as session:
            known = session.scalar(
                select(PurchaseExecution.execution_id)
                .where(PurchaseExecution.failure_signature == signature)
                .limit(1)
            )
            if known is None:
                raise DomainError(404, "no failure has this cause")
            fixed = FailureCauseFix(
                signature=signature,
                fixed_by_user_id=principal.user_id,
                fixed_by_email=principal.email,
                note=note,
                fixed_at=utcnow(),
            )
            session.add(fixed)
            audit.record(
                session,
                "failure_cause.fixed",
                actor=principal,
                details={"signature": signature, "note": note},
            )
        return fixed
    except DomainError as refusal:
        shown = raw_signature[:MAX_SIGNATURE_LENGTH] if isinstance(raw_signature, str) else None
        audit.record_refusal(
            "failure_cause.fix_refused",
            refusal,
            actor=principal,
            execution_id=None,
            signature=shown,
        )
        raise


def _cents(value: Any) -> Decimal:
    # SQLite sums a Numeric column as a float: back to cents here, on both databases.
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def _moment(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
