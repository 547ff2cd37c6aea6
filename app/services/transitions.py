"""Every change of an execution's status goes through `move`, which asks the table of
allowed transitions (`app.domain.statuses`) and applies what follows from the move.

A move is one conditional `UPDATE ... WHERE status IN (...) RETURNING`: a row that
changed status since the caller looked (approved a moment ago, say) is left alone, and
two movers racing on one row cannot both win. Its audit events and, for a row leaving
`pending` unapproved, the deletion of its suppressions go in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, update
from sqlalchemy.orm import Session

from app.domain.causes import failure_signature
from app.domain.rbac import Principal
from app.domain.statuses import Status, can_transition, releases_suppressions
from app.models import PurchaseExecution, PurchaseSuppression
from app.services import audit


def move(
    session: Session,
    where: ColumnElement[bool],
    *,
    sources: Collection[Status],
    target: Status,
    now: datetime,
    action: str,
    actor: Principal | None = None,
    details: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
) -> list[uuid.UUID]:
    """Move the rows matching `where` whose status is one of `sources` to `target`.

    Returns the ids of the rows moved; each gets an audit event `action`. `values` are
    further columns to set; an `error` among them sets the row's `failure_signature`
    too (`app.domain.causes.failure_signature`: the error's signature when `target` is
    a failure a retry starts from, else none). Raises `ValueError` for a transition the
    table forbids (a bug, not a refusal), and for sources that disagree about the
    suppressions.
    """
    forbidden = [source for source in sources if not can_transition(source, target)]
    if forbidden or not sources:
        raise ValueError(f"no transition from {sorted(forbidden) or 'nothing'} to {target}")
    releases = {releases_suppressions(source, target) for source in sources}
    if len(releases) != 1:
        raise ValueError(f"moving {sorted(sources)} to {target} treats suppressions unalike")
    values = dict(values or {})
    if "error" in values:
        # The one place a failing row's error is written: its signature goes with it.
        values["failure_signature"] = failure_signature(target, values["error"])
    moved = list(
        session.scalars(
            update(PurchaseExecution)
            .where(where, PurchaseExecution.status.in_([source.value for source in sources]))
            .values(status=target.value, updated_at=now, **values)
            .returning(PurchaseExecution.execution_id)
            .execution_options(synchronize_session=False)
        )
    )
    if moved and releases.pop():
        session.execute(
            delete(PurchaseSuppression).where(PurchaseSuppression.execution_id.in_(moved))
        )
    for execution_id in moved:
        audit.record(session, action, actor=actor, execution_id=execution_id, details=details)
    return moved


def fail_pending(
    session: Session, execution_ids: Collection[uuid.UUID], reason: str, *, now: datetime
) -> list[uuid.UUID]:
    """Pending rows that can never be decided (their approval email cannot be sent,
    nobody may approve them) fail with `reason` as their error; they give their
    suppressions back, as any row leaving `pending` unapproved. Rows no longer pending
    are left as they are."""
    if not execution_ids:
        return []
    return move(
        session,
        PurchaseExecution.execution_id.in_(list(execution_ids)),
        sources={Status.PENDING},
        target=Status.FAILED,
        now=now,
        action="execution.failed",
        details={"error": reason},
        values={"error": reason},
    )
