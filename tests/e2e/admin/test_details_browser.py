"""The details page in Chromium (issue 9): from Purchase History to the latest attempt
of a retry chain, then back along the chain to the attempt before it."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from app.db import unit_of_work, utcnow
from app.domain.statuses import Status
from app.services.identity import find_user_by_email
from tests.e2e.helpers import browser_sign_in, create_user
from tests.factories import make_execution, recommendation

pytestmark = pytest.mark.browser


def committed_chain(email: str) -> list[uuid.UUID]:
    """Attempts 0 and 1 failed, attempt 2 pending: committed for the live server."""
    ids: list[uuid.UUID] = []
    start = utcnow() - timedelta(hours=3)
    with unit_of_work() as session:
        user = find_user_by_email(session, email)
        previous = None
        for attempt, status in enumerate([Status.FAILED, Status.FAILED, Status.PENDING]):
            row = make_execution(
                session,
                status,
                created_by=user,
                retry_attempt_n=attempt,
                created_at=start + timedelta(hours=attempt),
                error="capacity <b>not</b> available" if status == Status.FAILED else None,
                recommendations=[
                    recommendation(purchased=True, purchase_id=f"ri-{attempt}"),
                    recommendation(service="rds", error="capacity"),
                ],
            )
            if previous is not None:
                previous.retry_execution_id = row.execution_id
            previous = row
            ids.append(row.execution_id)
    return ids


def test_from_the_list_to_a_successor_and_back_along_the_chain(
    live_server: str, browser_page: Page
) -> None:
    page = browser_page
    email = create_user()
    first, second, latest = committed_chain(email)
    browser_sign_in(page, live_server, email)
    page.goto(f"{live_server}/admin/purchases/")

    row = page.locator("tr", has=page.locator(f'td[data-row-actions="{latest}"]'))
    row.locator('a[title="View Record"]').click()
    expect(page).to_have_url(re.compile(rf"/admin/purchases/details/\?id={latest}(&|$)"))

    chain = page.locator("[data-chain-execution-id]")
    expect(chain).to_have_count(3)
    expect(chain).to_have_text(["attempt 0", "attempt 1", "attempt 2"])
    ids = [chain.nth(n).get_attribute("data-chain-execution-id") for n in range(3)]
    assert ids == [str(first), str(second), str(latest)]
    expect(page.locator('[aria-current="page"]')).to_have_attribute(
        "data-chain-execution-id", str(latest)
    )
    expect(page.locator(f'[data-row-actions="{latest}"] [data-action="approve"]')).to_be_visible()

    page.locator(f'[data-chain-execution-id="{second}"]').click()
    expect(page).to_have_url(f"{live_server}/admin/purchases/details/?id={second}")
    expect(page.locator('[aria-current="page"]')).to_have_attribute(
        "data-chain-execution-id", str(second)
    )
    expect(page.locator("[data-chain-execution-id]")).to_have_count(3)
    expect(page.locator("[data-execution-error]")).to_have_text("capacity <b>not</b> available")
    expect(page.locator("[data-item-outcome]")).to_have_count(2)
    expect(page.locator('[data-item-outcome="purchased"]')).to_contain_text("ri-1")
    expect(page.locator('[data-item-outcome="failed"]')).to_contain_text("capacity")
    expect(page.locator(f'[data-row-actions="{second}"] [data-retried-by]')).to_have_attribute(
        "data-retried-by", str(latest)
    )
