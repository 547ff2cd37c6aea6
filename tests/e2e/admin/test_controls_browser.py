"""The freeze switch in Chromium: an admin freezes purchases with a reason (after the
confirmation), the banner is on every page, and lifting it takes it away."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from app.db import unit_of_work
from tests.e2e.helpers import answer_next_dialog, browser_sign_in
from tests.factories import make_user

pytestmark = pytest.mark.browser


def test_an_admin_freezes_and_lifts_from_the_panel(live_server: str, browser_page: Page):
    with unit_of_work() as session:
        make_user(session, "boss@example.com", ("Administrators",))
    page = browser_page
    browser_sign_in(page, live_server, "boss@example.com")
    page.goto(f"{live_server}/admin/freeze/")
    expect(page.locator("[data-freeze-banner]")).to_have_count(0)

    page.get_by_label("Reason").fill("bad recommendation run")
    dismissed = answer_next_dialog(page, accept=False)
    page.locator('[data-action="freeze"]').click()
    assert dismissed and "Freeze every purchase?" in dismissed[0]
    expect(page.locator("[data-freeze-state]")).to_have_attribute("data-freeze-state", "off")

    answer_next_dialog(page, accept=True)
    page.locator('[data-action="freeze"]').click()
    expect(page.locator('[data-flash="success"]')).to_contain_text("Purchases frozen")
    expect(page.locator("[data-freeze-banner] [data-freeze-reason]")).to_have_text(
        "bad recommendation run"
    )
    page.goto(f"{live_server}/admin/purchases/")
    expect(page.locator("[data-freeze-banner]")).to_contain_text("boss@example.com")

    page.goto(f"{live_server}/admin/freeze/")
    answer_next_dialog(page, accept=True)
    page.locator('[data-action="lift-freeze"]').click()
    expect(page.locator('[data-flash="success"]')).to_contain_text("Freeze lifted")
    expect(page.locator("[data-freeze-banner]")).to_have_count(0)
