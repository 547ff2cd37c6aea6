"""The New purchase page in Chromium at 1280 px: an admin picks an account, pastes the
items, previews the totals, creates the purchase and lands on its details page, pending
approval."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from app.db import unit_of_work
from tests.e2e.helpers import browser_sign_in
from tests.factories import ec2_item, make_account, make_user

pytestmark = pytest.mark.browser


def test_an_admin_previews_and_creates_a_purchase(live_server: str, browser_page: Page):
    with unit_of_work() as session:
        make_user(session, "boss@example.com", ("Administrators",))
        account_id = str(make_account(session).id)
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    browser_sign_in(page, live_server, "boss@example.com")

    page.goto(f"{live_server}/admin/")
    page.get_by_role("link", name="New purchase").click()
    page.get_by_label("Account").select_option(account_id)
    items = [ec2_item(), ec2_item(resource_type="m5.xlarge", upfront_cost=1200)]
    page.locator("[data-field=items]").fill(json.dumps(items, indent=2))
    page.locator('[data-action="preview-purchase"]').click()

    expect(page.locator("[data-purchase-preview] [data-preview-item]")).to_have_count(2)
    expect(page.locator('[data-preview-totals] [data-money="upfront"]')).to_have_text("1800.00")
    page.locator('[data-action="create-purchase"]').click()

    expect(page.locator('[data-flash="success"]')).to_contain_text("pending approval")
    assert "/admin/purchases/details/?id=" in page.url
    expect(page.locator('[data-status="pending"]').first).to_be_visible()
