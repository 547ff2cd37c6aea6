"""Plain helpers the end-to-end tests share (fixtures are in conftest.py).

- `api_login` / `sign_in`: `POST /api/auth/login`. `api_login` answers whatever the server
  says; `sign_in` insists the user got in and returns the CSRF token that state-changing
  API calls must send as `X-CSRFToken`.
- `csrf_from` / `page_login`: the server-rendered login form, with its CSRF token.
- `create_user` / `submit_login` / `browser_sign_in`: for the browser tests, a user committed
  where the live server can see it, and the login page filled in through Chromium.
"""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from playwright.sync_api import Dialog, Page, expect
from werkzeug.test import TestResponse

from app.db import unit_of_work
from app.models import User
from tests.factories import PASSWORD, make_user

# --- The JSON API ----------------------------------------------------------------------


def api_login(client: FlaskClient, email: str, password: str) -> TestResponse:
    return client.post("/api/auth/login", json={"email": email, "password": password})


def sign_in(client: FlaskClient, user: User) -> str:
    """Sign `user` in with the test password; the CSRF token for the calls that follow."""
    response = api_login(client, user.email, PASSWORD)
    assert response.status_code == 200, response.json
    return response.json["csrf_token"]


# --- The login page over HTTP ------------------------------------------------------------


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no csrf_token field in the page"
    return match.group(1)


def page_login(
    client: FlaskClient, email: str, password: str, next_url: str | None = None
) -> TestResponse:
    page = client.get("/login")
    form = {"email": email, "password": password, "csrf_token": csrf_from(page.text)}
    url = f"/login?next={next_url}" if next_url else "/login"
    return client.post(url, data=form)


# --- The login page in a browser ---------------------------------------------------------

EMAIL = "dana@example.com"


def create_user(email: str = EMAIL) -> str:
    """A user with the test password, committed so the live server sees it; their email."""
    with unit_of_work() as session:
        make_user(session, email)
    return email


def submit_login(page: Page, email: str, password: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def browser_sign_in(page: Page, base_url: str, email: str = EMAIL) -> None:
    """Sign in through the login page; returns once the navbar names the user."""
    page.goto(f"{base_url}/login")
    submit_login(page, email, PASSWORD)
    expect(page.locator("[data-current-user]")).to_have_text(email)


def answer_next_dialog(page: Page, *, accept: bool) -> list[str]:
    """Accept or dismiss the page's next confirm(); the list receives its message."""
    prompts: list[str] = []

    def answer(dialog: Dialog) -> None:
        prompts.append(dialog.message)
        if accept:
            dialog.accept()
        else:
            dialog.dismiss()

    page.once("dialog", answer)
    return prompts


# Ids a path may carry that are not UUIDs, each refused with 400 and never echoed whole.
MALFORMED_IDS = {
    "word": "not-a-uuid",
    "number": "123",
    "10k-chars": "x" * 10_000,
    "nul": "%00",
    "nul-in-hex": "0" * 31 + "%00",
    "unicode": "%E2%98%83",
    "encoded-surrogate": "%ED%A0%80",
    "invalid-utf8": "%FF",
    "one-digit-too-long": "ffffffff-ffff-ffff-ffff-fffffffffffff",
    "slashes": "a/b/c",
}
