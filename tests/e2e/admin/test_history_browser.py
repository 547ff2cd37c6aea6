"""The Purchase History list in Chromium: an operator adds filters through Flask-Admin's
filter bar, searches, and exports what they see."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from app.db import unit_of_work
from app.domain.statuses import Status
from app.services.identity import find_user_by_email
from tests.e2e.helpers import browser_sign_in, create_user
from tests.factories import make_account, make_execution

pytestmark = pytest.mark.browser


def seed(email: str) -> dict[str, uuid.UUID]:
    """Four rows of `email`'s over two accounts, committed for the live server."""
    with unit_of_work() as session:
        user = find_user_by_email(session, email)
        aws = make_account(session)
        gcp = make_account(session, provider="gcp")
        gcp.name = "gcp analytics"

        def row(status: Status, account, error=None) -> uuid.UUID:
            made = make_execution(
                session, status, created_by=user, cloud_account_id=account.id, error=error
            )
            return made.execution_id

        return {
            "done": row(Status.COMPLETED, aws),
            "capacity": row(Status.FAILED, aws, "InsufficientInstanceCapacity in us-east-1a"),
            "quota": row(Status.FAILED, gcp, "Quota exceeded for project"),
            "pending": row(Status.PENDING, gcp),
        }


def listed(page: Page) -> list[str]:
    return page.locator("[data-row-actions]").evaluate_all(
        "cells => cells.map(cell => cell.dataset.rowActions)"
    )


def add_filter(page: Page, name: str, **choice: str) -> None:
    """Add Filter → `name`, then pick its value (the select2-styled <select> underneath).

    Waits for the page's `load` first: the rows can be there before Bootstrap's dropdown
    script has run, and a click on the menu then opens nothing (seen on a busy machine).
    """
    page.wait_for_load_state("load")
    page.get_by_text("Add Filter").click()
    page.locator(".field-filters a.filter", has_text=name).click()
    page.locator("table.filters tr").last.locator("select.filter-val").select_option(
        **choice, force=True
    )


def test_an_operator_filters_searches_and_exports(live_server: str, browser_page: Page) -> None:
    page = browser_page
    email = create_user()
    rows = seed(email)
    browser_sign_in(page, live_server, email)
    page.goto(f"{live_server}/admin/purchases/")
    expect(page.locator("[data-row-actions]")).to_have_count(4)

    add_filter(page, "Status", value="failed")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("[data-row-actions]")).to_have_count(2)
    assert set(listed(page)) == {str(rows["capacity"]), str(rows["quota"])}

    add_filter(page, "Account", label="gcp analytics")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("[data-row-actions]")).to_have_count(1)
    assert listed(page) == [str(rows["quota"])]
    export = page.locator('[data-action="export-csv"]').get_attribute("href") or ""
    assert "status=failed" in export and "cloud_account_id=" in export

    page.get_by_role("link", name="Reset Filters").click()
    expect(page.locator("[data-row-actions]")).to_have_count(4)
    search = page.get_by_placeholder("Execution id or error text")
    search.fill("instancecapacity")
    search.press("Enter")
    expect(page.locator("[data-row-actions]")).to_have_count(1)
    assert listed(page) == [str(rows["capacity"])]
    expect(page.locator("[data-error]")).to_have_attribute("title", re.compile("us-east-1a"))

    search = page.get_by_placeholder("Execution id or error text")
    search.fill(str(rows["pending"]))
    search.press("Enter")
    expect(page.locator("[data-row-actions]")).to_have_count(1)
    assert listed(page) == [str(rows["pending"])]
