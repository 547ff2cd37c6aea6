"""Failures by cause over JSON: the open failures grouped by cause (`GET
/api/failures/causes`, whoever may view purchases) and "mark fixed" (`POST
/api/failures/causes/<signature>/fixed`, whoever may retry; audited). The rules and the
grouping are `app.services.causes`'; this module only reads the request and writes the
answer. Its answer models live here, beside the only routes that use them."""

from __future__ import annotations

from flask import jsonify
from flask_login import current_user, login_required
from pydantic import BaseModel, Field
from werkzeug.wrappers import Response

from app.api import blueprint
from app.api import schemas as s
from app.api.fields import Request, Text
from app.api.openapi import operation
from app.db import db
from app.domain.causes import MAX_NOTE_LENGTH
from app.services import causes, retry
from app.services.identity import principal_for


class CauseFixed(BaseModel):
    fixed_at: str = Field(description="ISO 8601, UTC")
    fixed_by_email: str
    note: str | None
    recurred: bool = Field(description="a row of this cause failed after it was marked fixed")


class CauseItem(BaseModel):
    signature: str | None = Field(
        description="the stored signature of the errors (the history filter `cause`); null "
        "for rows inserted failed without one"
    )
    cause: str = Field(description="the ops hint when one applies, else the signature")
    ops_hint: str | None
    count: int
    failed: int
    partially_completed: int
    total_upfront_cost: str = Field(description="a decimal string")
    estimated_savings: str = Field(description="a decimal string")
    newest_execution_id: str | None
    newest_error: str | None
    newest_created_at: str | None
    last_failed_at: str
    fixed: CauseFixed | None


class CauseList(BaseModel):
    items: list[CauseItem]
    truncated: bool = Field(description="more causes exist than the largest ones listed")


class MarkFixedBody(Request):
    note: Text | None = Field(default=None, max_length=MAX_NOTE_LENGTH)


class MarkedFixed(BaseModel):
    signature: str
    fixed_at: str
    fixed_by_email: str
    note: str | None


@blueprint.get("/failures/causes")
@login_required
@operation(
    summary="The open failures grouped by cause, with their money and fixes",
    responses={200: CauseList, 401: s.ErrorBody, 403: s.ErrorBody},
    tags=("failures",),
)
def failure_causes() -> Response:
    """Failed and partially completed rows nobody has retried yet, grouped by the
    signature of their error, the largest groups first (at most 100)."""
    found = causes.failure_causes(db.session(), principal_for(current_user), retry.current_policy())
    return jsonify(items=[cause.as_dict() for cause in found.causes], truncated=found.truncated)


@blueprint.post("/failures/causes/<path:signature>/fixed")
@login_required
@operation(
    summary="Mark a cause fixed (whoever may retry): audited",
    body=MarkFixedBody,
    responses={
        201: MarkedFixed,
        400: s.ErrorBody,
        401: s.ErrorBody,
        403: s.ErrorBody,
        404: s.ErrorBody,
    },
    tags=("failures",),
)
def mark_cause_fixed(signature: str, body: MarkFixedBody | None) -> tuple[Response, int]:
    """`{"note": ...}` optional. The signature is URL-encoded in the path. 404 when no
    failed row has it."""
    fixed = causes.mark_fixed(
        principal_for(current_user), signature, body.note if body is not None else None
    )
    return jsonify(
        signature=fixed.signature,
        fixed_at=fixed.fixed_at.isoformat(),
        fixed_by_email=fixed.fixed_by_email,
        note=fixed.note,
    ), 201
