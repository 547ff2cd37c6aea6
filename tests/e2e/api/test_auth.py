"""Sign-in over HTTP: the JSON endpoint, the login page, sessions, cookies and CSRF."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient

from app.auth import device, sign_in_throttle
from app.domain import lockout
from app.services import identity
from tests.e2e.helpers import api_login, page_login
from tests.factories import PASSWORD, make_user
from tests.support.commands import product_python


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
    assert response.json == {
        "error": f"the JSON body's {field!r} is not valid Unicode (a lone surrogate)"
    }


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


# --- Nobody can lock a user out from afar; one address is throttled ----------------------


def client_at(app, address: str) -> FlaskClient:
    """A browser at client address `address`, with its own cookies."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_five_failures_from_one_address_do_not_stop_the_user_at_another(app, client, alice):
    """(Before: the fifth wrong password from anyone locked alice out everywhere.)"""
    attacker = client_at(app, "203.0.113.5")
    for _ in range(lockout.MAX_FAILED_LOGINS):
        api_login(attacker, alice.email, "not the password")
    assert api_login(attacker, alice.email, PASSWORD).json == {"error": lockout.LOCKED_OUT}
    at_home = api_login(client_at(app, "198.51.100.7"), alice.email, PASSWORD)
    assert at_home.status_code == 200, at_home.json


def test_the_device_cookie_keeps_the_user_in_while_a_spread_guess_locks_strangers_out(
    app, client, alice
):
    laptop = client_at(app, "198.51.100.7")
    assert api_login(laptop, alice.email, PASSWORD).status_code == 200
    cookie = laptop.get_cookie(device.COOKIE)
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    assert not cookie.secure  # http; under https it is Secure like the session
    assert alice.email not in cookie.value
    for n in range(1, 5):  # 20 failures, 5 from each of 4 addresses
        for _ in range(lockout.MAX_FAILED_LOGINS):
            api_login(client_at(app, f"203.0.113.{n}"), alice.email, "not the password")

    stranger = api_login(client_at(app, "192.0.2.50"), alice.email, PASSWORD)
    assert (stranger.status_code, stranger.json) == (401, {"error": lockout.LOCKED_OUT})
    # The laptop, now on another network, still gets in.
    laptop.environ_base["REMOTE_ADDR"] = "192.0.2.51"
    assert api_login(laptop, alice.email, PASSWORD).status_code == 200

    # A forged cookie, or one for another email, is no device cookie.
    forged = client_at(app, "192.0.2.52")
    forged.set_cookie(device.COOKIE, cookie.value[:-2] + "xx")
    assert api_login(forged, alice.email, PASSWORD).json == {"error": lockout.LOCKED_OUT}


def test_a_device_cookie_names_one_email_only(app, client, alice, bob):
    laptop = client_at(app, "198.51.100.7")
    assert api_login(laptop, bob.email, PASSWORD).status_code == 200
    for n in range(1, 5):
        for _ in range(lockout.MAX_FAILED_LOGINS):
            api_login(client_at(app, f"203.0.113.{n}"), alice.email, "not the password")
    laptop.post(
        "/api/auth/logout", headers={"X-CSRFToken": laptop.get("/api/auth/me").json["csrf_token"]}
    )
    assert api_login(laptop, alice.email, PASSWORD).json == {"error": lockout.LOCKED_OUT}


@pytest.fixture
def sign_in_limit(app, settings, monkeypatch):
    """SIGN_IN_RATE_LIMIT lowered to 3 refused sign-ins a minute, read per request."""
    monkeypatch.setitem(
        app.extensions, "settings", settings.with_overrides(sign_in_rate_limit="3 per minute")
    )


def test_one_address_is_throttled_on_both_sign_in_doors_together(
    app, client, alice, bob, sign_in_limit
):
    """Three refused sign-ins from one address, whatever the emails, then 429 on the API
    and on the login page alike; another address is not affected. (Before: nothing
    throttled an address; only the fifth failure per email did anything.)"""
    here = client_at(app, "203.0.113.9")
    for email in (alice.email, bob.email, "nobody@example.com"):
        assert api_login(here, email, "not the password").status_code == 401
    over = api_login(here, alice.email, PASSWORD)
    assert over.status_code == 429
    assert over.json == {"error": sign_in_throttle.TOO_MANY}
    assert int(over.headers["Retry-After"]) > 0
    page = page_login(here, bob.email, PASSWORD)
    assert page.status_code == 429
    assert sign_in_throttle.TOO_MANY in page.text and 'data-flash="error"' in page.text
    assert here.get("/api/auth/me").status_code == 401  # nobody got in
    assert here.get("/login").status_code == 200  # looking at the page is not signing in
    assert api_login(client_at(app, "198.51.100.7"), alice.email, PASSWORD).status_code == 200


def test_successful_sign_ins_do_not_use_up_the_budget(app, client, alice, sign_in_limit):
    """An office behind one address signs in all morning: only refusals count."""
    office = client_at(app, "203.0.113.10")
    for _ in range(5):
        assert api_login(office, alice.email, PASSWORD).status_code == 200


PROXY_PROBE = """
import json
from app import create_app
app = create_app()
answers = []
for proxy, client_address in (("10.0.0.2", "203.0.113.9"),) * 3 + (("10.0.0.2", "198.51.100.4"),):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = proxy
    response = client.post(
        "/api/auth/login",
        json={"email": "nobody@example.com", "password": "wrong password"},
        headers={"X-Forwarded-For": client_address},
    )
    answers.append(response.status_code)
print(json.dumps(answers))
"""


@pytest.mark.processes
@pytest.mark.parametrize(
    ("trusted", "expected"), [("1", [401, 401, 429, 401]), ("0", [401, 401, 429, 429])]
)
def test_behind_a_trusted_proxy_each_client_has_its_own_address(
    settings, redis_db, trusted, expected
):
    """With TRUSTED_PROXIES=1 the proxy's X-Forwarded-For names the client, so the
    per-address throttle stops one client and not the next; with none trusted, a
    forwarded address is ignored (a client cannot choose its own)."""
    result = product_python(
        settings, PROXY_PROBE, TRUSTED_PROXIES=trusted, SIGN_IN_RATE_LIMIT="2 per minute"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == expected
