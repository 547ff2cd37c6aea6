"""Purchases over JSON: retry and bulk retry, approve and cancel
(section 4), retry requests and batches, history, one execution."""

from __future__ import annotations

from flask import jsonify, stream_with_context, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.api import blueprint, body_token, viewer
from app.api import schemas as s
from app.api.bulk_schemas import (
    BatchAccepted,
    BatchQuery,
    BatchState,
    BulkRetryBody,
    BulkRetryQuery,
    RetryPreview,
)
from app.api.openapi import operation
from app.db import db
from app.domain.errors import DomainError
from app.domain.rbac import Action
from app.links import link_rate_limit, signed_in
from app.services import approvals, creating, execution_reads, retry, retry_batches
from app.services.history_export import csv_lines
from app.services.identity import principal_for

# What any route that takes an id may answer besides its success.
REFUSALS = {status: s.ErrorBody for status in (400, 401, 403, 404)}


@blueprint.post("/purchases")
@login_required
@operation(
    summary="Create a purchase (pending approval), or preview it with ?preview=true",
    query=s.CreateQuery,
    body=s.CreatePurchaseBody,
    body_required=True,
    responses={
        201: s.PurchaseCreated,
        200: s.PurchasePreview,
        **REFUSALS,
        409: s.ErrorBody,
    },
)
def create_purchase(
    query: s.CreateQuery, body: s.CreatePurchaseBody
) -> tuple[Response, int] | tuple[Response, int, dict[str, str]]:
    """Check and create a pending purchase with its approval email; `?preview=true`
    answers each item's quote and the totals and writes nothing."""
    principal = principal_for(current_user)
    if query.preview:
        return jsonify(creating.preview_purchase(principal, body.as_request())), 200
    execution = creating.create_purchase(principal, body.as_request(), via="api")
    location = url_for("api.execution_detail", execution_id=str(execution.execution_id))
    answer = {"execution_id": str(execution.execution_id), "status": execution.status}
    return jsonify(answer), 201, {"Location": location}


@blueprint.post("/purchases/retry/<path:execution_id>")
@login_required
@operation(
    summary="Retry a failed execution (the documented checks, in order)",
    query=s.RetryQuery,
    responses={202: s.RetryQueued, **REFUSALS, 409: s.ErrorBody},
)
def retry_execution(execution_id: str, query: s.RetryQuery) -> tuple[Response, int, dict[str, str]]:
    """Check, record a retry request, queue it; answer 202 with where to follow it."""
    retry_request = retry.ask_for_retry(
        principal_for(current_user), execution_id, force=query.force
    )
    status_url = url_for("api.retry_request_state", request_id=retry_request.id)
    body = {"request_id": str(retry_request.id), "status": "queued", "status_url": status_url}
    return jsonify(body), 202, {"Location": status_url}


@blueprint.post("/purchases/retry")
@login_required
@operation(
    summary="Retry many executions: by ids, or by a history filter (or preview it)",
    query=BulkRetryQuery,
    body=BulkRetryBody,
    body_required=True,
    body_example='{"execution_ids": [...]} or {"filter": {...}}, and "force"',
    responses={
        200: RetryPreview,
        202: BatchAccepted,
        400: s.ErrorBody,
        401: s.ErrorBody,
        403: s.ErrorBody,
    },
)
def bulk_retry_executions(
    body: BulkRetryBody, query: BulkRetryQuery
) -> tuple[Response, int] | tuple[Response, int, dict[str, str]]:
    """Bulk retry: `{"execution_ids": [...]}` (at most 10,000) or `{"filter": {...}}`,
    and `"force"`; answer 202 with the batch, whose rows the worker settles. With
    `?preview=true`, write nothing and answer 200 with the rows grouped by what would
    happen to them (queued, or refused and why) and the money of each group."""
    if query.preview:
        preview = retry.preview_bulk_retry(principal_for(current_user), body.as_request())
        return jsonify(preview), 200
    batch = retry.ask_for_bulk_retry(principal_for(current_user), body.as_request())
    status_url = url_for("api.retry_batch_state", batch_id=batch.id)
    answer = {"batch_id": str(batch.id), "total": batch.total, "status_url": status_url}
    return jsonify(answer), 202, {"Location": status_url}


@blueprint.get("/purchases/retry-batches/<path:batch_id>")
@login_required
@operation(
    summary="A bulk retry's state and each row's outcome",
    query=BatchQuery,
    responses={200: BatchState, **REFUSALS},
)
def retry_batch_state(batch_id: str, query: BatchQuery) -> Response:
    """The batch's state and each row's outcome (`?items=false` leaves the rows out);
    only its requester (or an admin) may read it."""
    session = db.session()
    batch = retry_batches.find_batch(session, principal_for(current_user), batch_id)
    return jsonify(retry_batches.batch_as_dict(session, batch, with_items=query.items))


def _decide(execution_id: str, action: Action, body: s.DecisionBody | None) -> Response:
    token = body.token if body is not None else None
    if token is not None:
        execution = approvals.decide_by_link(execution_id, action, token, signed_in=signed_in())
    else:
        execution = approvals.decide(principal_for(current_user), execution_id, action)
    return jsonify(approvals.decision_as_dict(execution))


def _no_body_token() -> bool:
    try:
        return body_token() is None
    except DomainError:
        return False  # a malformed token is still a try: it counts


DECISION = {
    "body": s.DecisionBody,
    "responses": {200: s.Decision, **REFUSALS, 409: s.ErrorBody, 429: s.ErrorBody},
    "auth": "session-or-token",
}


@blueprint.post("/purchases/approve/<path:execution_id>")
@link_rate_limit(exempt_when=_no_body_token)
@operation(summary="Approve a pending execution", **DECISION)
def approve_execution(execution_id: str, body: s.DecisionBody | None) -> Response:
    """Approve a pending execution (session and `X-CSRFToken`, or `{"token": ...}` from
    the approval email); the executor is queued once the approval commits."""
    return _decide(execution_id, Action.APPROVE, body)


@blueprint.post("/purchases/cancel/<path:execution_id>")
@link_rate_limit(exempt_when=_no_body_token)
@operation(summary="Cancel a pending execution", **DECISION)
def cancel_execution(execution_id: str, body: s.DecisionBody | None) -> Response:
    """Cancel a pending execution (session and `X-CSRFToken`, or `{"token": ...}`)."""
    return _decide(execution_id, Action.CANCEL, body)


@blueprint.get("/purchases/retry-requests/<path:request_id>")
@login_required
@operation(summary="A retry request's state", responses={200: s.RetryRequestState, **REFUSALS})
def retry_request_state(request_id: str) -> Response:
    """The request's state; only its requester (or an admin) may read it, while they may
    view purchases."""
    session = db.session()
    found = retry_batches.find_request(session, principal_for(current_user), request_id)
    return jsonify(retry_batches.request_as_dict(session, found))


@blueprint.get("/history")
@login_required
@operation(
    summary="Executions, newest first, a page at a time",
    query=s.HistoryQuery,
    responses={200: s.HistoryPage, 400: s.ErrorBody, 401: s.ErrorBody, 403: s.ErrorBody},
)
def history(query: s.HistoryQuery) -> Response:
    """`?status=&limit=&before=` and the other `HistoryFilter` fields (`cloud_account_id`,
    `plan_id`, `created_by_user_id`, `error_contains`, `created_after`,
    `created_before`, `execution_id`): newest first; `next` is the cursor of the
    following page (keyset: every page costs the same, however deep)."""
    viewer()
    filters = execution_reads.HistoryFilter.parse(query.filter_args())
    limit = query.limit or execution_reads.DEFAULT_PAGE_SIZE
    before = query.before
    policy = retry.current_policy()
    page = execution_reads.history_page(db.session(), filters, limit=limit, before=before)
    items = [
        execution_reads.as_item(
            row,
            policy,
            retry_of=page.predecessors.get(row.execution_id),
            creator_email=page.creators.get(row.created_by_user_id)
            if row.created_by_user_id
            else None,
        )
        for row in page.rows
    ]
    return jsonify(items=items, next=page.next_cursor)


@blueprint.get("/history/export.csv")
@login_required
@operation(
    summary="Every execution the filters match, as CSV",
    query=s.HistoryFilterQuery,
    responses={200: "text/csv", 400: s.ErrorBody, 401: s.ErrorBody, 403: s.ErrorBody},
)
def history_export(query: s.HistoryFilterQuery) -> Response:
    """Every execution `/api/history`'s filters match, newest first, as CSV (streamed;
    cells a spreadsheet would run as formulas are neutralised). Filters are checked
    before the first byte, so a bad one is still a JSON 400."""
    viewer()
    filters = execution_reads.HistoryFilter.parse(query.filter_args())
    lines = csv_lines(db.session(), filters)
    return Response(
        stream_with_context(lines),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=purchase-history.csv"},
    )


@blueprint.get("/purchases/<path:execution_id>")
@login_required
@operation(
    summary="One execution, with its recommendations",
    responses={200: s.ExecutionDetail, **REFUSALS},
)
def execution_detail(execution_id: str) -> Response:
    """One execution with its recommendations and lineage."""
    viewer()
    policy = retry.current_policy()
    session = db.session()
    row = execution_reads.find_execution(session, execution_id)
    retry_of = execution_reads.predecessors_of(session, [row.execution_id]).get(row.execution_id)
    creators = execution_reads.creator_emails(session, [row])
    return jsonify(
        execution_reads.as_item(
            row,
            policy,
            retry_of=retry_of,
            creator_email=creators.get(row.created_by_user_id) if row.created_by_user_id else None,
            with_recommendations=True,
        )
    )
