"""Schemathesis fuzzes the JSON API from its own OpenAPI document (`/api/openapi.json`,
loaded from the app over WSGI), on both databases, as each role: anonymous, read-only,
own-only (default permissions), purchaser and admin.

Every operation gets generated requests that fit the document (positive) and requests
that do not (negative); path ids are also drawn from real rows seeded in every status,
so the requests reach the rules and not only the id parser. Three checks:

- no response is a 5xx;
- every response matches the document (its status is documented, and its body and
  content type are what the document says for that status);
- a refused request (4xx) changes nothing: the row counts of the tables that hold
  purchases, retries, tokens and notifications, and every execution's status, are the
  same after it as before (only the refusal's own audit event may be written).

Deterministic (Hypothesis derandomized, no example database) and bounded: a few
examples per operation and mode, so both databases run in well under three minutes on
two cores. Run just these with `-m schemathesis`.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.domain.statuses import Status
from app.models import User
from app.services import retry
from app.services.identity import principal_for
from tests.e2e.helpers import sign_in
from tests.factories import make_account, make_execution, make_user, recommendation

pytestmark = pytest.mark.schemathesis

# A fixed budget keeps CI bounded; SCHEMATHESIS_EXAMPLES searches further.
EXAMPLES_PER_OPERATION = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "10"))
ROLES = {
    "anonymous": None,
    "read-only": ("Read-only",),
    "own-only": (),
    "purchaser": ("Purchasers",),
    "admin": ("Administrators",),
}
# What a refused request must leave as it was (audit_events is left out on purpose: a
# refusal writes its own event).
WATCHED_TABLES = (
    "purchase_executions",
    "retry_batches",
    "retry_batch_items",
    "provider_purchases",
    "approval_tokens",
    "notifications",
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Signing out ends every session of the user: it runs last, so the rest keep theirs.
LAST = "/api/auth/logout"


def seed(app: Flask, session: Session, user: User | None) -> dict[str, list[str]]:
    """Executions in every status (the role's own and someone else's), one retry request
    and one bulk retry batch; the real ids, by path parameter name."""
    other = make_user(session, "other@example.com")
    seeder = make_user(session, "seeder@example.com", groups=("Administrators",))
    account = make_account(session)
    rows = []
    for creator in filter(None, (user, other)):
        for status in Status:
            fields: dict[str, Any] = {"cloud_account_id": account.id}
            if status is Status.FAILED:
                fields |= {"error": "capacity", "recommendations": [recommendation()]}
            rows.append(make_execution(session, status, created_by=creator, **fields))
    failed = [row.execution_id for row in rows if row.status == Status.FAILED.value]
    with app.app_context():
        asker = principal_for(seeder)
        request = retry.ask_for_retry(asker, failed[0], force=False)
        batch = retry.ask_for_bulk_retry(asker, {"execution_ids": [str(failed[-1])]})
    return {
        "execution_id": [str(row.execution_id) for row in rows],
        "request_id": [str(request.id)],
        "batch_id": [str(batch.id)],
    }


def snapshot(session: Session) -> tuple[dict[str, int], dict[str, str]]:
    counts = {
        table: session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608
        for table in WATCHED_TABLES
    }
    statuses = session.execute(text("SELECT execution_id, status FROM purchase_executions"))
    return counts, {str(execution_id): status for execution_id, status in statuses}


def cases(operation: Any, mode: GenerationMode, ids: dict[str, list[str]]) -> Any:
    """Generated cases, and the same with each path id replaced by a real row's."""
    generated = operation.as_strategy(generation_mode=mode)
    names = [parameter.name for parameter in operation.path_parameters]
    real = [
        operation.as_strategy(generation_mode=mode, path_parameters={name: value})
        for name in names
        for value in ids.get(name, ())
    ]
    if not real or mode is GenerationMode.NEGATIVE:
        return generated
    on_real_rows = st.sampled_from(real).flatmap(lambda strategy: strategy)
    return st.one_of(generated, on_real_rows, on_real_rows)  # mostly real rows


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_as_every_role(app, client, db_session, redis_db, monkeypatch, role):
    # The token path counts against the link rate limit per client address: far more
    # tries than a person makes are the point here (the limit has its own tests).
    settings_now = app.extensions["settings"]
    monkeypatch.setitem(
        app.extensions, "settings", settings_now.with_overrides(link_rate_limit="100000 per minute")
    )
    groups = ROLES[role]
    user = None if groups is None else make_user(db_session, f"{role}@example.com", groups=groups)
    ids = seed(app, db_session, user)
    headers: dict[str, str] = {}
    cookies: dict[str, str] = {}
    if user is not None:
        headers["X-CSRFToken"] = sign_in(client, user)
        cookies["session"] = client.get_cookie("session").value

    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda operation: (operation.path == LAST, operation.path, operation.method),
    )
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                exercise(operation, mode, ids, headers, cookies, db_session)
            except Exception as failure:  # every operation runs; all failures are reported
                failures.append(f"{mode.value} {operation.label}:\n{failure}"[:3000])
    assert not failures, "\n\n".join(failures)


def exercise(
    operation: Any,
    mode: GenerationMode,
    ids: dict[str, list[str]],
    headers: dict[str, str],
    cookies: dict[str, str],
    session: Session,
) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases(operation, mode, ids))
    def run(case: Any) -> None:
        before = snapshot(session)
        response = case.call(headers=headers, cookies=cookies)
        case.validate_response(response, checks=CHECKS, headers=headers)
        if 400 <= response.status_code < 500:
            assert snapshot(session) == before, (
                f"a refused request ({response.status_code}) changed something: "
                f"{case.as_curl_command(headers)}"
            )

    run()
