"""The panel in a real browser: sign-in, the Purchase History list, sign-out, cookies.

Each test drives Chromium against the app served over HTTP (`live_server`) and asserts
on what the user sees: the URL they land on, the flash, the table, the navbar.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from app.db import unit_of_work
from app.domain.statuses import Status
from tests.e2e.helpers import EMAIL, browser_sign_in, create_user, submit_login
from tests.factories import PASSWORD, make_execution

pytestmark = pytest.mark.browser


def path_of(url: str) -> str:
    return urlsplit(url).path


def next_param(url: str) -> list[str]:
    return parse_qs(urlsplit(url).query).get("next", [])


def test_purchase_history_sends_a_signed_out_user_to_login_and_back(
    live_server: str, browser_page: Page
) -> None:
    page = browser_page
    create_user()
    with unit_of_work() as session:
        pending = make_execution(session, Status.PENDING)
        failed = make_execution(session, Status.FAILED, error="quota exceeded")
        executions = {str(pending.execution_id): "pending", str(failed.execution_id): "failed"}

    page.goto(f"{live_server}/admin/purchases/")

    assert path_of(page.url) == "/login"
    assert next_param(page.url) == ["/admin/purchases/"]
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    submit_login(page, EMAIL, PASSWORD)

    expect(page).to_have_url(f"{live_server}/admin/purchases/")
    expect(page.locator("[data-current-user]")).to_have_text(EMAIL)
    rows = page.locator("table.model-list tbody tr")
    expect(rows).to_have_count(len(executions))
    shown = {
        rows.nth(i).locator("td.col-execution_id [data-copy-id]").get_attribute("data-copy-id"): (
            rows.nth(i).locator("td.col-status").inner_text().strip()
        )
        for i in range(rows.count())
    }
    assert shown == executions


def test_a_wrong_password_shows_an_error_and_stays_on_login(
    live_server: str, browser_page: Page
) -> None:
    page = browser_page
    create_user()

    page.goto(f"{live_server}/login")
    submit_login(page, EMAIL, "not the password")

    expect(page.locator('[data-flash="error"]')).to_have_text("Invalid email or password.")
    assert path_of(page.url) == "/login"
    expect(page.locator("[data-current-user]")).to_have_count(0)
    # Not signed in behind the scenes either: the panel still sends us to the login page.
    page.goto(f"{live_server}/admin/")
    assert path_of(page.url) == "/login"


def test_signing_out_returns_to_login_and_the_panel_is_closed_again(
    live_server: str, browser_page: Page
) -> None:
    page = browser_page
    create_user()
    browser_sign_in(page, live_server)
    expect(page).to_have_url(re.compile(re.escape(live_server) + r"/admin/?$"))

    page.locator('[data-action="logout"]').click()

    expect(page.locator('[data-flash="info"]')).to_have_text("You have been signed out.")
    assert path_of(page.url) == "/login"
    expect(page.locator("[data-current-user]")).to_have_count(0)

    page.goto(f"{live_server}/admin/")

    assert path_of(page.url) == "/login"
    assert next_param(page.url) == ["/admin/"]
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_login_form_has_a_csrf_token_and_the_session_cookie_is_httponly_lax(
    live_server: str, browser_page: Page, browser_context: BrowserContext
) -> None:
    page = browser_page
    create_user()

    page.goto(f"{live_server}/login")
    token = page.locator('form input[type="hidden"][name="csrf_token"]')
    expect(token).to_have_count(1)
    assert len(token.get_attribute("value") or "") > 20

    submit_login(page, EMAIL, PASSWORD)
    expect(page.locator("[data-current-user]")).to_have_text(EMAIL)

    cookies = {cookie["name"]: cookie for cookie in browser_context.cookies(live_server)}
    assert "session" in cookies, f"no session cookie among {sorted(cookies)}"
    session_cookie = cookies["session"]
    assert session_cookie["httpOnly"] is True
    assert session_cookie["sameSite"] == "Lax"
    # Served over plain HTTP here, so the cookie cannot be Secure (it is over https).
    assert session_cookie["secure"] is False


def test_a_login_post_without_the_csrf_token_is_refused(
    live_server: str, browser_page: Page
) -> None:
    page = browser_page
    create_user()

    page.goto(f"{live_server}/login")
    page.locator('input[name="csrf_token"]').evaluate("input => input.remove()")
    submit_login(page, EMAIL, PASSWORD)

    expect(page.get_by_text(re.compile("CSRF token is missing", re.I))).to_be_visible()
    page.goto(f"{live_server}/admin/")
    assert path_of(page.url) == "/login"
