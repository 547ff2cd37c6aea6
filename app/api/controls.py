"""The global freeze and the plans over JSON: read by every viewer; the freeze switched
by admins, the plans paused, resumed and run now by admins and `approve-any` holders
(`app.services.controls`, whose refusals are audited). Rows a switch releases are
queued once it has committed."""

from __future__ import annotations

from flask import jsonify
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.api import blueprint, viewer
from app.api import schemas as s
from app.api.control_schemas import FreezeBody, FreezeLifted, FreezeState, PlanList, PlanSwitched
from app.api.openapi import operation
from app.db import db
from app.services import controls
from app.services.identity import principal_for

READ_REFUSALS = {401: s.ErrorBody, 403: s.ErrorBody}
SWITCH_REFUSALS = {400: s.ErrorBody, 401: s.ErrorBody, 403: s.ErrorBody, 409: s.ErrorBody}
PLAN_REFUSALS = {**SWITCH_REFUSALS, 404: s.ErrorBody}


@blueprint.get("/freeze")
@login_required
@operation(
    summary="Whether purchases are frozen, why, by whom, since when",
    responses={200: FreezeState, **READ_REFUSALS},
    tags=("freeze",),
)
def purchase_freeze() -> Response:
    """The freeze on now, if any: while it is on, no purchase starts."""
    viewer()
    return jsonify(controls.freeze_state(db.session()))


@blueprint.post("/freeze")
@login_required
@operation(
    summary="Freeze every purchase (admins, with a reason)",
    body=FreezeBody,
    responses={201: FreezeState, **SWITCH_REFUSALS},
    tags=("freeze",),
)
def freeze_purchases(body: FreezeBody | None) -> tuple[Response, int]:
    """`{"reason": ...}`: from now on no purchase starts; approved rows wait, nothing
    fails. 409 when purchases are frozen already."""
    reason = body.reason if body is not None else None
    return jsonify(controls.freeze(principal_for(current_user), reason)), 201


@blueprint.post("/freeze/lift")
@login_required
@operation(
    summary="Lift the freeze (admins): the approved rows that waited start",
    responses={200: FreezeLifted, **SWITCH_REFUSALS},
    tags=("freeze",),
)
def lift_freeze() -> Response:
    """Lift the freeze; answers how many approved executions were queued. 409 when
    purchases are not frozen."""
    released = controls.lift(principal_for(current_user))
    return jsonify(lifted=True, released=released)


@blueprint.get("/plans")
@login_required
@operation(
    summary="Every plan: paused or not, its next scheduled time, its waiting rows",
    responses={200: PlanList, **READ_REFUSALS},
)
def plans() -> Response:
    viewer()
    return jsonify(items=controls.list_plans(db.session()))


def _switched(outcome: controls.PlanOutcome) -> Response:
    return jsonify(plan=outcome.plan, released=outcome.released, step_number=outcome.step_number)


@blueprint.post("/plans/<path:plan_id>/pause")
@login_required
@operation(
    summary="Pause a plan: its approved rows wait (admins, approve-any)",
    responses={200: PlanSwitched, **PLAN_REFUSALS},
)
def pause_plan(plan_id: str) -> Response:
    return _switched(controls.pause(principal_for(current_user), plan_id))


@blueprint.post("/plans/<path:plan_id>/resume")
@login_required
@operation(
    summary="Resume a paused plan: its approved rows start (admins, approve-any)",
    responses={200: PlanSwitched, **PLAN_REFUSALS},
)
def resume_plan(plan_id: str) -> Response:
    return _switched(controls.resume(principal_for(current_user), plan_id))


@blueprint.post("/plans/<path:plan_id>/run-now")
@login_required
@operation(
    summary="Run a plan's next scheduled step now (admins, approve-any)",
    responses={200: PlanSwitched, **PLAN_REFUSALS},
)
def run_plan_now(plan_id: str) -> Response:
    """Brings the plan's next scheduled step forward to now: its approved rows start,
    its pending rows still wait for their approval."""
    return _switched(controls.run_now(principal_for(current_user), plan_id))
