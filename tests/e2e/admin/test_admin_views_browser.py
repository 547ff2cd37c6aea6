"""The management views in a real browser: who sees them in the menu, that each opens,
and a user created through the form (CSRF token, password field, hash)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from app.db import fresh_read, unit_of_work
from app.domain.statuses import Status
from app.services.identity import find_user_by_email, verify_password
from tests.e2e.helpers import answer_next_dialog, browser_sign_in, create_user
from tests.factories import make_account, make_execution, make_suppression, make_user

pytestmark = pytest.mark.browser

ADMIN = "boss@example.com"
ADMIN_VIEWS = {
    "Users": "/admin/users/",
    "Groups": "/admin/groups/",
    "Cloud Accounts": "/admin/accounts/",
    "Audit Log": "/admin/audit/",
}


def open_from_menu(page: Page, name: str) -> None:
    """Open the Administration dropdown (once Bootstrap's script is there) and pick one."""
    page.wait_for_load_state("load")
    page.locator("nav").get_by_role("link", name="Administration").click()
    page.locator("nav").get_by_role("link", name=name, exact=True).click()


def test_a_non_admin_sees_no_admin_views_in_the_menu(live_server: str, browser_page: Page) -> None:
    page = browser_page
    with unit_of_work() as session:
        make_suppression(session, make_execution(session, Status.PENDING))
    create_user()  # default permissions: view:purchases, no admin:*
    browser_sign_in(page, live_server)

    nav = page.locator("nav")
    expect(nav.get_by_role("link", name="Purchase History")).to_be_visible()
    expect(nav.get_by_text("Administration")).to_have_count(0)
    for name in ADMIN_VIEWS:
        expect(nav.get_by_role("link", name=name, exact=True)).to_have_count(0)

    nav.get_by_role("link", name="Active Suppressions").click()
    expect(page.locator("td.col-provider")).to_have_text(["aws"])

    response = page.goto(f"{live_server}/admin/users/")
    assert response is not None and response.status == 403
    expect(page.locator("[data-error-status]")).to_have_text("403")


def test_an_admin_sees_the_admin_views_and_can_open_each(
    live_server: str, browser_page: Page
) -> None:
    page = browser_page
    with unit_of_work() as session:
        make_user(session, ADMIN, groups=("Administrators",))
    browser_sign_in(page, live_server, ADMIN)

    for name, path in ADMIN_VIEWS.items():
        open_from_menu(page, name)
        expect(page).to_have_url(re.compile(re.escape(live_server + path)))
        expect(page.locator("table.model-list")).to_be_visible()
    page.locator("nav").get_by_role("link", name="Active Suppressions").click()
    expect(page).to_have_url(re.compile(re.escape(f"{live_server}/admin/suppressions/")))
    expect(page.locator("table.model-list")).to_be_visible()


def test_an_admin_creates_a_user_through_the_form(live_server: str, browser_page: Page) -> None:
    page = browser_page
    with unit_of_work() as session:
        make_user(session, ADMIN, groups=("Administrators",))
    browser_sign_in(page, live_server, ADMIN)
    open_from_menu(page, "Users")

    page.get_by_role("link", name="Create", exact=True).click()
    password = page.get_by_label("Password")
    expect(password).to_have_attribute("type", "password")
    page.get_by_label("Email").fill("Carol@Example.com")
    password.fill("carols long password")
    page.get_by_label("Purchasers").check()
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.locator('[data-flash="success"]')).to_be_visible()
    expect(page.locator("td.col-email", has_text="carol@example.com")).to_be_visible()
    assert "carols long password" not in page.content()
    with fresh_read() as session:
        carol = find_user_by_email(session, "carol@example.com")
        assert carol is not None
        assert verify_password(carol.password_hash, "carols long password")
        assert [group.name for group in carol.groups] == ["Purchasers"]


def test_a_referenced_account_is_not_deleted(live_server: str, browser_page: Page) -> None:
    page = browser_page
    with unit_of_work() as session:
        make_user(session, ADMIN, groups=("Administrators",))
        account = make_account(session)
        make_execution(session, Status.FAILED, cloud_account_id=account.id)
    browser_sign_in(page, live_server, ADMIN)
    open_from_menu(page, "Cloud Accounts")

    page.wait_for_load_state("load")  # the button's confirm() comes with helpers.js
    prompts = answer_next_dialog(page, accept=True)
    page.get_by_title("Delete Record").click()

    expect(page.locator('[data-flash="error"]')).to_contain_text(
        "account aws account is referenced by 1 execution;"
    )
    assert prompts, "the delete button asks for confirmation first"
    expect(page.locator("td.col-name", has_text="aws account")).to_be_visible()
