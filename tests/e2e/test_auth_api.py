"""Sign-in over HTTP: the JSON endpoint, the login page, sessions, cookies and CSRF."""

from __future__ import annotations

import pytest

from app.domain import lockout
from tests.e2e.helpers import api_login
from tests.factories import PASSWORD, make_user


def session_cookie(client):
    return client.get_cookie("session")


def test_json_login_answers_a_csrf_token_and_sets_a_safe_cookie(client, alice):
    response = api_login(client, "Alice@Example.com", PASSWORD)
    assert response.status_code == 200
    assert response.json["csrf_token"]
    assert response.json["user"]["email"] == "alice@example.com"
    set_cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie
    assert "SameSite=Lax" in set_cookie


def test_the_session_changes_at_login(client, alice):
    client.get("/login")  # an anonymous session with a CSRF token
    before = session_cookie(client).value
    api_login(client, alice.email, PASSWORD)
    assert session_cookie(client).value != before


def test_wrong_password_and_unknown_email_get_the_same_refusal(client, alice):
    wrong = api_login(client, alice.email, "not the password")
    unknown = api_login(client, "nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json == unknown.json == {"error": lockout.INVALID_CREDENTIALS}


def test_lockout_after_five_failures(client, alice):
    for _ in range(lockout.MAX_FAILED_LOGINS):
        api_login(client, alice.email, "not the password")
    response = api_login(client, alice.email, PASSWORD)
    assert response.status_code == 401
    assert response.json == {"error": lockout.LOCKED_OUT}
    assert client.get("/api/auth/me").status_code == 401


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": "email=a&password=b", "content_type": "application/x-www-form-urlencoded"},
        {"data": "{not json", "content_type": "application/json"},
        {"json": ["a", "list"]},
        {"json": {"email": "a@example.com"}},
        {"json": {"email": 1, "password": 2}},
        {"json": {"email": "a" * 400 + "@example.com", "password": "x"}},
    ],
    ids=["form", "broken-json", "list", "no-password", "numbers", "too-long"],
)
def test_bad_login_bodies_get_a_clean_4xx(client, kwargs):
    response = client.post("/api/auth/login", **kwargs)
    assert 400 <= response.status_code < 500
    assert "error" in response.json


def test_state_changing_api_calls_need_the_csrf_header(client, alice):
    token = api_login(client, alice.email, PASSWORD).json["csrf_token"]
    refused = client.post("/api/auth/logout")
    assert refused.status_code == 400
    assert "CSRF" in refused.json["error"]
    assert client.get("/api/auth/me").status_code == 200  # still signed in
    accepted = client.post("/api/auth/logout", headers={"X-CSRFToken": token})
    assert accepted.status_code == 200
    assert client.get("/api/auth/me").status_code == 401


def test_me_reports_effective_permissions(client, db_session):
    viewer = make_user(db_session, "viewer@example.com", groups=("Read-only",))
    api_login(client, viewer.email, PASSWORD)
    me = client.get("/api/auth/me").json
    assert me["email"] == "viewer@example.com"
    assert me["permissions"] == ["view:purchases"]


def test_unknown_api_paths_answer_json(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert "error" in response.json


def test_api_requires_a_session(client):
    response = client.get("/api/auth/me")
    assert response.status_code == 401
    assert response.json == {"error": "authentication required"}


def test_page_and_api_share_one_session(client, alice):
    api_login(client, alice.email, PASSWORD)
    assert client.get("/admin/").status_code == 200
