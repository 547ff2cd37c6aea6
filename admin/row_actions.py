"""The Purchase History action cells of one page, and the panel's words for an outcome.

The decision of what a cell shows is `app.domain.row_actions.action_cell`; this module
only gathers what it needs for a whole page, in one query per kind of fact (lineage,
the viewer's queued retry requests), so a page costs the same whatever its size.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.orm import Session

from app.domain.approvals import ApprovalPolicy
from app.domain.errors import DomainError
from app.domain.rbac import Principal
from app.domain.retry import RetryPolicy
from app.domain.row_actions import ActionCell, action_cell
from app.models import PurchaseExecution
from app.services import retry_batches
from app.services.execution_reads import predecessors_of


def cells_for_page(
    session: Session,
    principal: Principal,
    rows: Sequence[PurchaseExecution],
    policy: RetryPolicy,
    approvals: ApprovalPolicy,
) -> dict[uuid.UUID, ActionCell]:
    """The action cell of each row, keyed by execution id, as `principal` sees it."""
    ids = [row.execution_id for row in rows]
    predecessors = predecessors_of(session, ids)
    queued = retry_batches.queued_for(session, principal, ids)
    return {
        row.execution_id: action_cell(
            principal,
            row,
            policy,
            retry_of=predecessors.get(row.execution_id),
            queued_request_id=queued.get(row.execution_id),
            approvals=approvals,
        )
        for row in rows
    }


def refusal_text(refusal: DomainError) -> str:
    """A refusal as one flash line: the message, then what the operator can do about it."""
    details = refusal.details
    if details.get("ops_hint"):
        return f"{refusal.message} — {details['ops_hint']}"
    if "threshold" in details:
        return (
            f"{refusal.message} (attempt {details.get('retry_attempt_n')}, "
            f"threshold {details['threshold']})"
        )
    if details.get("retry_execution_id"):
        return f"{refusal.message} (successor {details['retry_execution_id']})"
    return refusal.message
