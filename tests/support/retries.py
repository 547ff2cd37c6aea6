"""Single retries in tests: asked for without the web layer, and read back as the
request the API shows (a single retry is a batch of one)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from sqlalchemy.orm import Session

from app.db import utcnow
from app.domain.bulk_retry import BatchKind
from app.domain.rbac import Principal
from app.domain.retry import RetryPolicy
from app.models import RetryBatch
from app.services import retry, retry_batches


def request_retry(
    session: Session,
    principal: Principal,
    execution_id: object,
    *,
    force: bool = False,
    policy: RetryPolicy | None = None,
) -> RetryBatch:
    """Record a single retry in `session`, as the entry points do (raises a refusal)."""
    batch, _ = retry.record_batch(
        session,
        principal,
        (str(execution_id),),
        kind=BatchKind.SINGLE,
        selection=None,
        force=force,
        policy=policy or RetryPolicy(),
        now=utcnow(),
    )
    return batch


def request_state(session: Session, request_id: uuid.UUID) -> SimpleNamespace:
    """The request as `GET /api/purchases/retry-requests/<id>` shows it, with the
    successor as a UUID and the refusal's status and details apart."""
    batch = session.get(RetryBatch, request_id, populate_existing=True)
    assert batch is not None
    body = retry_batches.request_as_dict(session, batch)
    successor = body["execution_id"]
    return SimpleNamespace(
        id=request_id,
        state=body["state"],
        successor_execution_id=uuid.UUID(successor) if successor else None,
        retry_attempt_n=body["retry_attempt_n"],
        refusal_status=body.get("status_code"),
        error=body["error"],
        details={k: v for k, v in body.items() if k not in retry_batches.REQUEST_FIELDS},
    )
