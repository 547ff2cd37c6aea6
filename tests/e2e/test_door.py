"""The request door (app/door.py): hostile input is refused with 400 (413 for a body
too large) and a message naming the part, before sign-in, CSRF, the endpoint, the
domain or the database see it. JSON on the API, the error page elsewhere."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from sqlalchemy import func, select

from app.domain.statuses import Status
from app.door import MAX_JSON_DEPTH
from app.models import AuditEvent, PurchaseExecution, RetryBatch
from tests.e2e.helpers import csrf_from, page_login, sign_in
from tests.factories import PASSWORD, make_execution

NUL = "\x00"
SURROGATE = "\\ud800"  # as JSON writes half a surrogate pair
APPROVE = f"/api/purchases/approve/{uuid.uuid4()}"


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def assert_api_refusal(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.is_json and set(response.json) == {"error"}, response.text
    for word in words:
        assert word in response.json["error"]


def assert_page_refusal(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.mimetype == "text/html"
    assert f'data-error-status="{status}"' in response.text
    for word in words:
        assert word in response.text


# --- Text: the path, the query string, forms and JSON -----------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/api/history?status=%00",
        "/api/history?st%00atus=failed",
        "/api/history?error_contains=a%01b",
        "/api/purchases/%00",
        f"/api/purchases/{uuid.uuid4()}%7F",
    ],
)
def test_a_control_character_in_the_url_is_400_before_sign_in(client, url):
    """Anonymous: the door answers before the API's authentication (which would say 401)."""
    assert_api_refusal(client.get(url), 400, "control character")


def test_the_refusal_names_the_part(client):
    response = client.get("/api/history?status=%00")
    assert (
        response.json["error"] == "the query parameter 'status' holds a control character (U+0000)"
    )
    response = client.get("/api/purchases/%00")
    assert response.json["error"] == "the path holds a control character (U+0000)"


@pytest.mark.parametrize("action", ["approve", "cancel", "retry"])
def test_a_nul_in_an_execution_id_changes_and_audits_nothing(client, db_session, alice, action):
    row = make_execution(db_session, Status.PENDING, created_by=alice)
    token = sign_in(client, alice)
    response = client.post(
        f"/api/purchases/{action}/{row.execution_id}%00", headers={"X-CSRFToken": token}
    )
    assert_api_refusal(response, 400, "the path")
    assert count(db_session, AuditEvent) == 0
    assert db_session.get(PurchaseExecution, row.execution_id).status == Status.PENDING


@pytest.mark.parametrize(
    "body",
    [
        '{"email": "alice@example.com\\u0000", "password": "x"}',
        '{"email": "alice@example.com", "password": "' + SURROGATE + '"}',
        '{"email\\u0000": "alice@example.com", "password": "x"}',
        '{"email": "a@example.com", "password": "x", "extra": [["' + SURROGATE + '"]]}',
    ],
    ids=["nul-value", "surrogate-value", "nul-key", "surrogate-deep-in-a-list"],
)
def test_bad_text_anywhere_in_a_json_login_is_400(client, alice, body):
    response = client.post("/api/auth/login", data=body, content_type="application/json")
    assert_api_refusal(response, 400, "the JSON body")


def test_a_nul_in_the_login_form_is_400_with_the_page(client, alice):
    token = csrf_from(client.get("/login").text)
    response = client.post(
        "/login", data={"email": f"alice@example.com{NUL}", "password": "x", "csrf_token": token}
    )
    assert_page_refusal(response, 400, "the form field &#39;email&#39; holds a control character")


def test_a_file_in_the_login_forms_email_field_is_400(client, alice):
    token = csrf_from(client.get("/login").text)
    response = client.post(
        "/login",
        data={
            "email": (io.BytesIO(b"alice@example.com"), "email.txt"),
            "password": PASSWORD,
            "csrf_token": token,
        },
        content_type="multipart/form-data",
    )
    assert_page_refusal(response, 400, "is a file")


@pytest.mark.parametrize("body", ["false", "[[]]", '{"email": ["a"]}', "3"])
@pytest.mark.parametrize("url", ["/login", "/admin/purchases/retry/x", "/purchases/approve/x"])
def test_a_page_takes_a_form_never_a_json_body(client, alice, url, body):
    """(Before: Flask-WTF built the login form from the JSON body, and `false` or
    `[[]]` raised TypeError or ValueError: a 500 before sign-in.)"""
    response = client.post(url, data=body, content_type="application/json")
    assert_page_refusal(response, 415, "this page takes a form, not a JSON body")


def test_a_file_part_on_the_api_is_400_in_json(client):
    response = client.post(
        "/api/auth/login",
        data={"email": (io.BytesIO(b"x"), "x.txt")},
        content_type="multipart/form-data",
    )
    assert_api_refusal(response, 400, "is a file")


def test_the_approval_link_pages_refuse_a_nul(client, db_session, alice):
    row = make_execution(db_session, Status.PENDING, created_by=alice)
    page = client.get(f"/purchases/approve/{row.execution_id}?token=abc%00")
    assert_page_refusal(page, 400, "the query parameter &#39;token&#39;")
    posted = client.post(f"/purchases/cancel/{row.execution_id}", data={"token": f"a{NUL}"})
    assert_page_refusal(posted, 400, "the form field &#39;token&#39;")
    assert db_session.get(PurchaseExecution, row.execution_id).status == Status.PENDING


def test_the_panel_refuses_a_nul_in_its_query_and_forms(client, db_session, alice):
    page_login(client, alice.email, PASSWORD)
    assert_page_refusal(client.get("/admin/purchases/?search=%00"), 400, "search")
    assert_page_refusal(client.get("/admin/audit/?flt0_action_equals=%00"), 400, "flt0_action")
    row = make_execution(db_session, Status.FAILED, created_by=alice)
    token = csrf_from(client.get("/admin/purchases/").text)
    retried = client.post(
        "/admin/purchases/action/",
        data={"action": "retry", "rowid": [str(row.execution_id), NUL], "csrf_token": token},
    )
    assert_page_refusal(retried, 400, "rowid")
    assert count(db_session, RetryBatch) == 0


# --- JSON: depth and syntax -------------------------------------------------------------


@pytest.mark.parametrize("url", ["/api/auth/login", APPROVE, "/api/purchases/retry"])
def test_deep_json_is_400_before_sign_in(client, url):
    """Python's parser raises RecursionError on 100,000 brackets: a 500 before the door."""
    response = client.post(url, data=deep(100_000), content_type="application/json")
    assert_api_refusal(response, 400, f"deeper than {MAX_JSON_DEPTH}")


def test_json_just_deep_enough_reaches_the_endpoint(client):
    body = {
        "email": "a@example.com",
        "password": "x",
        "extra": json.loads(deep(MAX_JSON_DEPTH - 1)),
    }
    response = client.post("/api/auth/login", json=body)
    assert response.status_code == 401  # the endpoint's answer: wrong credentials
    too_deep = {"extra": json.loads(deep(MAX_JSON_DEPTH))}
    assert_api_refusal(client.post("/api/auth/login", json=too_deep), 400, "deeper")


def test_broken_json_is_400_and_a_body_that_is_not_json_still_415(client):
    broken = client.post("/api/auth/login", data="{not json", content_type="application/json")
    assert_api_refusal(broken, 400, "not valid JSON")
    not_json = client.post("/api/auth/login", data="email=a", content_type="text/plain")
    assert_api_refusal(not_json, 415, "send a JSON object")
    empty = client.post("/api/auth/login", data="", content_type="application/json")
    assert_api_refusal(empty, 415, "send a JSON object")


# --- Size ----------------------------------------------------------------------------------


def test_an_oversize_body_is_413_with_a_message_everywhere(client, alice):
    big = "x" * (1024 * 1024 + 1)
    api = client.post("/api/auth/login", data=big, content_type="application/json")
    assert_api_refusal(api, 413, "too large")
    form = client.post("/login", data={"email": big}, content_type="multipart/form-data")
    assert_page_refusal(form, 413, "too large")
    panel = client.post("/admin/purchases/action/", data={"rowid": big})
    assert_page_refusal(panel, 413, "too large")


def test_a_bulk_retry_of_10000_ids_still_fits(client, db_session, alice):
    """The largest bulk request the API takes, in the longest spelling of an id a UUID
    parser accepts, is well inside the body limit."""
    ids = [f"urn:uuid:{uuid.uuid4()}" for _ in range(10_000)]
    body = json.dumps({"execution_ids": ids, "force": False})
    assert len(body) > 450_000
    token = sign_in(client, alice)
    response = client.post(
        "/api/purchases/retry",
        data=body,
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 202, response.text[:300]
    assert response.json["total"] == 10_000
