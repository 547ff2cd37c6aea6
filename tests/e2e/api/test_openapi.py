"""The API's OpenAPI document (`GET /api/openapi.json`) and the request schemas it is
written from: a valid OpenAPI 3.1 document, served without a session, describing every
API route; and a request that does not fit its schema is a 400 naming the field,
before any rule runs (a misspelt field is refused, never silently dropped)."""

from __future__ import annotations

import uuid

import pytest
from openapi_spec_validator import validate
from sqlalchemy import func, select

from app.api.bulk_schemas import BulkRetryBody
from app.domain.statuses import Status
from app.models import PurchaseExecution, RetryBatch
from app.services.execution_reads import HistoryFilter
from tests.e2e.helpers import sign_in
from tests.factories import make_execution, recommendation

SKIPPED_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture
def document(client):
    response = client.get("/api/openapi.json")  # no session
    assert response.status_code == 200
    return response.json


def test_the_document_is_valid_openapi_3_1(document):
    validate(document)  # raises on an invalid document
    assert document["openapi"] == "3.1.0"
    schemes = document["components"]["securitySchemes"]
    assert schemes["session"] == {"type": "apiKey", "in": "cookie", "name": "session"}
    assert schemes["csrf"] == {"type": "apiKey", "in": "header", "name": "X-CSRFToken"}


def test_every_api_route_is_described(app, document):
    routes = {
        (rule.rule, method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        for method in (rule.methods or set()) - SKIPPED_METHODS
    }
    described = {
        (path.replace("{", "<path:").replace("}", ">") if "{" in path else path, method)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert routes == described


def test_every_operation_answers_its_refusals_as_the_error_body(document):
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            refusals = {k: v for k, v in operation["responses"].items() if k.startswith("4")}
            assert "400" in refusals, (method, path)
            for status, answer in refusals.items():
                assert answer["content"]["application/json"]["schema"] == error_body, (
                    method,
                    path,
                    status,
                )


def test_a_state_changing_operation_asks_for_the_session_and_the_csrf_header(document):
    retry = document["paths"]["/api/purchases/retry/{execution_id}"]["post"]
    assert retry["security"] == [{"session": [], "csrf": []}]
    approve = document["paths"]["/api/purchases/approve/{execution_id}"]["post"]
    assert approve["security"] == [{"session": [], "csrf": []}, {}]  # or the email's token
    assert document["paths"]["/api/auth/login"]["post"]["security"] == []


def test_the_bulk_body_is_the_schema_the_api_checks(document):
    """One description: the document's body schema is the model's own JSON Schema."""
    body = document["components"]["schemas"]["BulkRetryBody"]
    own = BulkRetryBody.model_json_schema(ref_template="#/components/schemas/{model}")
    own.pop("$defs", None)
    assert body == own
    assert body["properties"]["execution_ids"]["maxItems"] == 10_000
    assert body["additionalProperties"] is False


def test_a_bulk_filter_has_every_field_of_the_history_filter(document):
    """A bulk retry by filter selects its rows with the history filter, so the API takes
    exactly its fields: one the history filter gains is one the bulk body takes."""
    bulk_filter = document["components"]["schemas"]["BulkFilter"]
    assert set(bulk_filter["properties"]) == HistoryFilter.field_names()


# --- Refused by the schema, before any rule ----------------------------------------------


def test_a_misspelt_bulk_field_is_refused_not_dropped(client, db_session, alice):
    """`forse` was dropped, and the batch went ahead without `force`. (Before: 202.)"""
    row = make_execution(
        db_session, Status.FAILED, created_by=alice, recommendations=[recommendation()]
    )
    token = sign_in(client, alice)
    response = client.post(
        "/api/purchases/retry",
        json={"execution_ids": [str(row.execution_id)], "forse": True},
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 400, response.json
    assert response.json == {"error": "forse is not a field of this request"}
    assert db_session.scalar(select(func.count()).select_from(RetryBatch)) == 0


def test_a_misspelt_token_field_does_not_fall_back_to_the_session(client, db_session, purchaser):
    """A client that meant the email's token but misspelt its name used to act with the
    session's authority instead. (Before: 200, the row approved by the session user.)"""
    row = make_execution(db_session, Status.PENDING, created_by=purchaser)
    token = sign_in(client, purchaser)
    response = client.post(
        f"/api/purchases/approve/{row.execution_id}",
        json={"tokn": "from-the-email"},
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 400, response.json
    assert response.json == {"error": "tokn is not a field of this request"}
    status = db_session.scalar(
        select(PurchaseExecution.status).where(PurchaseExecution.execution_id == row.execution_id)
    )
    assert status == Status.PENDING.value


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"execution_ids": [5]}, "execution_ids[0]: input should be a valid string"),
        (
            {"filter": {"status": "failed", "plan": "x"}},
            "filter.plan is not a field of this request",
        ),
        (
            {"execution_ids": [str(uuid.uuid4())], "force": "yes"},
            "force: input should be a valid boolean",
        ),
        ({}, 'send exactly one of "execution_ids" and "filter"'),
    ],
    ids=["id-not-text", "unknown-filter-field", "force-not-boolean", "neither"],
)
def test_a_refusal_names_the_field_in_one_sentence(client, db_session, alice, body, error):
    token = sign_in(client, alice)
    response = client.post("/api/purchases/retry", json=body, headers={"X-CSRFToken": token})
    assert response.status_code == 400
    assert response.json == {"error": error}


def test_a_query_flag_keeps_its_words(client, db_session, alice):
    row = make_execution(db_session, Status.FAILED, created_by=alice)
    token = sign_in(client, alice)
    response = client.post(
        f"/api/purchases/retry/{row.execution_id}?force=maybe", headers={"X-CSRFToken": token}
    )
    assert response.status_code == 400
    assert response.json == {"error": "force must be true or false"}
