"""Sign-in over HTTP: the JSON endpoint, the login page, sessions, cookies and CSRF."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from app.domain import lockout
from app.services import identity
from tests.e2e.helpers import api_login, page_login
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


@pytest.mark.parametrize("field", ["email", "password"])
def test_a_lone_surrogate_gets_a_400_not_a_500(client, alice, field):
    """JSON may escape half a surrogate pair ("\\ud800"), which Python decodes to text no
    hash, database or email can take. (Before: 500.)"""
    body = {"email": '"alice@example.com"', "password": f'"{PASSWORD}"'}
    body[field] = '"\\ud800@x"'
    raw = "{" + ", ".join(f'"{key}": {value}' for key, value in body.items()) + "}"
    response = client.post("/api/auth/login", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json == {"error": "the body holds text that is not valid Unicode"}


def test_next_with_a_line_break_after_sign_in_goes_to_the_panel(client, alice):
    """(Before: the redirect to `/a\\r\\nb` failed with a 500.)"""
    response = page_login(client, alice.email, PASSWORD, next_url="/a%0D%0Ab")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"


def copy_of_session(app, client) -> FlaskClient:
    """Another client holding the same session cookie, as a stolen copy would."""
    other = app.test_client()
    other.set_cookie("session", session_cookie(client).value)
    return other


def test_sign_out_makes_every_earlier_copy_of_the_cookie_useless(app, client, alice):
    """The cookie lives in the browser: sign-out must end it on the server too.
    (Before: a copy taken before sign-out stayed valid for 31 days.)"""
    token = api_login(client, alice.email, PASSWORD).json["csrf_token"]
    stolen = copy_of_session(app, client)
    elsewhere = app.test_client()  # the same user signed in on another device
    api_login(elsewhere, alice.email, PASSWORD)
    assert stolen.get("/api/auth/me").status_code == 200
    assert client.post("/api/auth/logout", headers={"X-CSRFToken": token}).status_code == 200
    assert stolen.get("/api/auth/me").status_code == 401
    assert elsewhere.get("/api/auth/me").status_code == 401
    assert stolen.get("/admin/purchases/").status_code == 302  # to the login page
    api_login(client, alice.email, PASSWORD)
    assert client.get("/api/auth/me").status_code == 200  # signing in again works


@pytest.mark.parametrize("change", ["set_password", "deactivate"])
def test_a_new_password_or_deactivation_ends_every_session(app, client, db_session, alice, change):
    api_login(client, alice.email, PASSWORD)
    assert client.get("/api/auth/me").status_code == 200
    if change == "set_password":
        identity.set_password(db_session, alice.email, "a brand new password")
    else:
        identity.deactivate(db_session, alice.email)
    db_session.flush()
    assert client.get("/api/auth/me").status_code == 401


def test_api_posts_over_https_need_no_referer(client, alice):
    """The header token is the proof: a cross-site page cannot set it. (Before: Flask-WTF's
    strict https check refused every `curl` POST for want of a Referer.)"""
    https = {"base_url": "https://127.0.0.1"}
    token = client.post(
        "/api/auth/login", json={"email": alice.email, "password": PASSWORD}, **https
    ).json["csrf_token"]
    accepted = client.post("/api/auth/logout", headers={"X-CSRFToken": token}, **https)
    assert accepted.status_code == 200, accepted.json


def test_a_cross_site_form_cannot_post_to_the_api_even_with_the_token(client, alice):
    https = {"base_url": "https://127.0.0.1"}
    token = client.post(
        "/api/auth/login", json={"email": alice.email, "password": PASSWORD}, **https
    ).json["csrf_token"]
    refused = client.post(
        "/api/auth/logout",
        data={"csrf_token": token},
        headers={"Origin": "https://evil.example.com"},
        **https,
    )
    assert refused.status_code == 400 and "CSRF" in refused.json["error"]
    assert client.get("/api/auth/me", **https).status_code == 200
