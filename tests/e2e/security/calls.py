"""How to call each route of the URL map: which kind of target it names (an execution, a
retry request or batch, an approval link's token, a management view's row, or nothing),
and the smallest request that would do its job, so that a refusal is the product's
decision and not a malformed request's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from app.domain.statuses import Status
from tests.e2e.security.world import World

# Where a route takes the execution it acts on, and in which status it can act on it.
EXECUTION_IN_PATH = {
    "purchases.approve_view": Status.PENDING,
    "purchases.cancel_view": Status.PENDING,
    "purchases.retry_view": Status.FAILED,
    "api.approve_execution": Status.PENDING,
    "api.cancel_execution": Status.PENDING,
    "api.retry_execution": Status.FAILED,
    "api.execution_detail": Status.FAILED,
}
EXECUTION_IN_QUERY = {"purchases.details_view", "purchases.edit_view"}
EXECUTION_IN_FORM = {"purchases.action_view": "rowid", "purchases.delete_view": "id"}
REQUEST_IN_PATH = {"api.retry_request_state"}
BATCH_IN_PATH = {"api.retry_batch_state", "retry_batches.details"}
LINK_ENDPOINTS = {"links.confirm", "links.act"}
MANAGEMENT_VIEWS = {"users", "groups", "accounts", "audit", "suppressions"}
MANAGEMENT_ID_ENDPOINTS = {
    "details_view",
    "edit_view",
    "delete_view",
    "set_mode_view",
    "test_connection_view",
}
# The management endpoints that name their row in the form, not the query string.
ID_IN_FORM = {"delete_view", "set_mode_view", "test_connection_view"}
# Static files: public by design, for every role.
STATIC_ENDPOINTS = {
    "static": "/static/missing.txt",
    "admin.static": "/admin/static/admin/js/helpers.js",
    "panel.static": "/panel-static/panel/poll.js",
}
LOGOUT_ENDPOINTS = {"auth.logout", "api.logout"}
# The plan switches: the plan they take (by id, in the path), in the state they act on.
PLAN_IN_PATH = {
    "api.pause_plan": "active",
    "api.resume_plan": "paused",
    "api.run_plan_now": "scheduled",
    "plans.pause_view": "active",
    "plans.resume_view": "paused",
    "plans.run_now_view": "scheduled",
}
# The freeze's switches, and whether purchases must be frozen for each to act.
FROZEN_BEFORE = {
    "api.freeze_purchases": False,
    "freeze.freeze_view": False,
    "api.lift_freeze": True,
    "freeze.lift_view": True,
    **{endpoint: False for endpoint in PLAN_IN_PATH},
}


@dataclass
class Call:
    """One request, and the execution whose status tells whether it acted."""

    method: str
    url: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    target: str | None = None


def id_kinds_of(endpoint: str) -> tuple[str, ...]:
    """The kinds of id a route is tried with (one pseudo-kind, "-", when it takes none)."""
    view, _, name = endpoint.partition(".")
    if endpoint in LINK_ENDPOINTS:
        return ("valid", "foreign", "none")
    if (
        endpoint in EXECUTION_IN_PATH
        or endpoint in EXECUTION_IN_QUERY
        or endpoint in EXECUTION_IN_FORM
        or endpoint in REQUEST_IN_PATH
        or endpoint in BATCH_IN_PATH
    ):
        return ("own", "other", "none", "unknown", "malformed")
    if (view in MANAGEMENT_VIEWS and name in MANAGEMENT_ID_ENDPOINTS) or endpoint in PLAN_IN_PATH:
        return ("existing", "unknown", "malformed")
    return ("-",)


def build(
    world: World, endpoint: str, method: str, rule: str, role: str, kind: str, *, csrf: bool = True
) -> Call:
    """The request for (endpoint, method) as `role` with an id of `kind`."""
    token = world.csrf(role) if csrf else None
    api = endpoint.startswith("api.")
    form: dict[str, Any] = {"csrf_token": token} if token and not api else {}
    headers = {"X-CSRFToken": token} if token and api else {}
    view, _, name = endpoint.partition(".")
    target = None

    if endpoint in FROZEN_BEFORE:
        world.set_frozen(FROZEN_BEFORE[endpoint])
    if endpoint == "freeze.freeze_view":
        form["reason"] = "the security suite"

    if endpoint in STATIC_ENDPOINTS:
        url = STATIC_ENDPOINTS[endpoint]
    elif endpoint in PLAN_IN_PATH:
        url = re.sub(r"<[^<>]+>", world.plan_id(PLAN_IN_PATH[endpoint], kind), rule)
    elif endpoint in LINK_ENDPOINTS:
        action = "approve"
        target, link_token = world.link(action, kind)
        url = f"/purchases/{action}/{target}" + (f"?token={link_token}" if link_token else "")
        form = {"token": link_token} if link_token and method == "POST" else {}
    elif endpoint in EXECUTION_IN_PATH:
        target = world.execution_id(role, kind, EXECUTION_IN_PATH[endpoint])
        url = rule.split("<")[0] + target
    elif endpoint in EXECUTION_IN_QUERY:
        target = world.execution_id(role, kind, Status.FAILED)
        url = f"{rule}?id={target}"
    elif endpoint in EXECUTION_IN_FORM:
        target = world.execution_id(role, kind, Status.FAILED)
        form[EXECUTION_IN_FORM[endpoint]] = target
        if endpoint == "purchases.action_view":
            # The confirmation page's Confirm (without it the action only previews).
            form["action"] = "retry"
            form["confirmed"] = "yes"
        url = rule
    elif endpoint in REQUEST_IN_PATH:
        url = rule.split("<")[0] + world.retry_request_id(role, kind)
    elif endpoint in BATCH_IN_PATH:
        url = rule.split("<")[0] + world.retry_batch_id(role, kind)
    elif view in MANAGEMENT_VIEWS and name in MANAGEMENT_ID_ENDPOINTS:
        row = world.management_id(endpoint, kind)
        if name in ID_IN_FORM:
            form["id"] = row
            url = rule
        else:
            url = f"{rule}?id={row}"
    elif "<export_type>" in rule:
        url = rule.replace("<export_type>", "csv")
    else:
        url = rule

    kwargs: dict[str, Any] = {"headers": headers}
    if method in {"POST", "PUT", "PATCH", "DELETE"}:
        if api:
            kwargs["json"] = _api_body(world, endpoint, role)
        else:
            kwargs["data"] = form
    return Call(method, url, kwargs, target)


def _api_body(world: World, endpoint: str, role: str) -> dict[str, Any]:
    if endpoint == "api.login":
        return {"email": "nobody@example.com", "password": "not the password"}
    if endpoint == "api.freeze_purchases":
        return {"reason": "the security suite"}
    if endpoint == "api.bulk_retry_executions":
        return {"execution_ids": [world.execution_id(role, "own", Status.FAILED)]}
    return {}
