"""Security headers on every kind of response: the panel, the API, the CSV export, the
login page, an approval link's page, and the static files that may stay cacheable.

Under http (the embedded default) there is no HSTS and nothing is redirected to https;
under an https APP_BASE_URL (a separate process, so its settings are its own) there is.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from werkzeug.test import TestResponse

from app.domain.statuses import Status
from tests.e2e.helpers import sign_in
from tests.factories import make_execution, make_user, recommendation
from tests.support.commands import product_python

FRAME_AND_SNIFF = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"}


def csp_of(response: TestResponse) -> dict[str, str]:
    """The Content-Security-Policy as {directive: sources}."""
    policy = response.headers.get("Content-Security-Policy")
    assert policy, f"no CSP on {response.request.path}"
    parts = (part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    return {name: (rest[0] if rest else "") for name, *rest in parts}


def assert_hardened(response: TestResponse, *, referrer: str = "same-origin") -> dict[str, str]:
    """Every header every response gets; returns the CSP for further checks."""
    path = response.request.path
    for name, value in FRAME_AND_SNIFF.items():
        assert response.headers.get(name) == value, (path, name, response.headers.get(name))
    assert response.headers.get("Referrer-Policy") == referrer, path
    assert "Strict-Transport-Security" not in response.headers, path  # http: no HSTS
    csp = csp_of(response)
    assert csp["default-src"] == "'self'", csp
    assert csp["frame-ancestors"] == "'none'", csp
    assert csp["object-src"] == "'none'", csp
    assert csp["base-uri"] == "'none'", csp
    assert csp["form-action"] == "'self'", csp
    scripts = csp["script-src"].split()
    assert scripts[0] == "'self'" and re.fullmatch(r"'nonce-[\w-]{16,}'", scripts[1]), scripts
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, scripts
    return csp


def assert_no_store(response: TestResponse) -> None:
    assert response.headers.get("Cache-Control") == "no-store", (
        response.request.path,
        response.headers.get("Cache-Control"),
    )


def nonce_of(csp: dict[str, str]) -> str:
    return csp["script-src"].split()[1].removeprefix("'nonce-").removesuffix("'")


# Inline event handlers (onclick=, onsubmit= ...): a CSP without 'unsafe-inline' blocks
# them, so a page that renders one has a button that does nothing.
INLINE_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)


def assert_no_inline_script(response: TestResponse, nonce: str) -> None:
    html = response.text
    assert not INLINE_HANDLER.search(html), INLINE_HANDLER.search(html).group(0)
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert f'nonce="{nonce}"' in tag, tag


def test_the_login_page_is_hardened_and_not_stored(client):
    page = client.get("/login")
    assert page.status_code == 200
    csp = assert_hardened(page)
    assert_no_store(page)  # it holds a CSRF token
    assert_no_inline_script(page, nonce_of(csp))


def test_every_signed_in_panel_page_is_hardened_and_not_stored(client, db_session, redis_db):
    admin = make_user(db_session, "admin@example.com", groups=("Administrators",))
    row = make_execution(
        db_session,
        Status.FAILED,
        created_by=admin,
        error="InsufficientInstanceCapacity",
        recommendations=[recommendation()],
    )
    sign_in(client, admin)
    nonces = set()
    for path in (
        "/admin/",
        "/admin/purchases/",  # "Retry selected", the filter menu, the row's buttons
        f"/admin/purchases/details/?id={row.execution_id}",
        "/admin/accounts/",  # a view that can delete
        "/admin/audit/",
    ):
        page = client.get(path)
        assert page.status_code == 200, (path, page.status_code)
        csp = assert_hardened(page)
        assert_no_store(page)
        assert_no_inline_script(page, nonce_of(csp))
        nonces.add(nonce_of(csp))
    assert len(nonces) == 5  # a fresh nonce per response


def test_the_api_and_the_csv_export_are_hardened_and_not_stored(client, alice):
    anonymous = client.get("/api/auth/me")
    assert anonymous.status_code == 401
    assert_hardened(anonymous)
    assert_no_store(anonymous)
    sign_in(client, alice)
    for path in ("/api/auth/me", "/api/history/export.csv"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        assert_hardened(response)
        assert_no_store(response)


def test_a_link_page_keeps_its_own_stricter_referrer_policy(client):
    page = client.get(f"/purchases/approve/{uuid.uuid4()}?token=nothing")
    assert page.status_code in (403, 404)
    assert_hardened(page, referrer="no-referrer")
    assert_no_store(page)


@pytest.mark.parametrize(
    "path", ["/panel-static/panel/poll.js", "/admin/static/vendor/jquery.min.js"]
)
def test_public_static_files_may_be_cached(client, alice, path):
    sign_in(client, alice)
    response = client.get(path)
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_http_is_not_redirected_and_gets_no_hsts_even_when_asked_over_https(client):
    """The embedded default is http on 127.0.0.1: nothing may force https on it."""
    page = client.get("/login", base_url="https://127.0.0.1")
    assert page.status_code == 200
    assert "Strict-Transport-Security" not in page.headers
    set_cookie = client.get("/login").headers.get("Set-Cookie", "")
    assert "Secure" not in set_cookie


HTTPS_PROBE = """
import json
from app import create_app
app = create_app()
client = app.test_client()
over_https = client.get("/login", base_url="https://cp.example.com")
over_http = client.get("/login")
print(json.dumps({
    "https": [over_https.status_code, dict(over_https.headers)],
    "http": [over_http.status_code, dict(over_http.headers)],
}))
"""


@pytest.mark.processes
def test_under_an_https_base_url_https_responses_carry_hsts(settings):
    result = product_python(
        settings,
        HTTPS_PROBE,
        APP_BASE_URL="https://cp.example.com",
        SECRET_KEY="an-https-deployment-key",
    )
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.splitlines()[-1])
    status, headers = answers["https"]
    assert status == 200
    assert headers["Strict-Transport-Security"] == "max-age=31556926; includeSubDomains"
    assert "Secure" in headers["Set-Cookie"]
    assert headers["X-Frame-Options"] == "DENY"
    # A request that reached the app over http (a health check on the private side of
    # the proxy) is answered, not redirected; HSTS only ever goes out over https.
    status, headers = answers["http"]
    assert status == 200
    assert "Strict-Transport-Security" not in headers
