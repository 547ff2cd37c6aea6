"""Bulk retry in Chromium: "Retry selected" on Purchase History, then the batch page
following a real worker without a reload.

What an operator does: tick some failed rows, pick "With selected" → "Retry selected",
read the confirmation page (what would happen to each row, with the money) and confirm,
read the one flash that says what happened to each row, and
watch the batch page settle. The worker is started only once the batch page shows the
batch still running, so the page can only learn the outcome by polling (poll.js).

(That a non-admin sees no "Administration" menu is covered by
test_admin_views_browser.py.)
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import redis
from playwright.sync_api import Page, expect

from admin.bulk import RETRY_SELECTED_CONFIRM
from app.db import unit_of_work
from app.domain.statuses import Status
from app.services.identity import find_user_by_email
from tests.e2e.helpers import browser_sign_in, create_user
from tests.factories import make_execution, recommendation

pytestmark = [pytest.mark.browser, pytest.mark.worker]

IAM_HINT = "Grant the purchasing role the missing IAM permission, then retry"
# The worker's chunk, a successor, its approval email: seconds, plus poll.js's 1.5 s beat.
SETTLE_MS = 30_000


def failed_row(email: str, **fields: Any) -> uuid.UUID:
    """A failed execution created by `email`, committed so the server and worker see it."""
    values = {"error": "InsufficientInstanceCapacity", "recommendations": [recommendation()]}
    with unit_of_work() as session:
        user = find_user_by_email(session, email)
        row = make_execution(session, Status.FAILED, created_by=user, **(values | fields))
        return row.execution_id


def flash_lines(page: Page) -> list[str]:
    """The single flash, one entry per line (the summary, then one per row)."""
    flashes = page.locator("[data-flash]")
    expect(flashes).to_have_count(1)
    return [line.strip() for line in flashes.inner_text().splitlines() if line.strip()]


def test_retry_selected_reports_each_row_and_the_batch_page_follows_the_worker(
    live_server: str, redis_db: redis.Redis, browser_page: Page, request: pytest.FixtureRequest
) -> None:
    page = browser_page
    email = create_user()
    other = create_user("someone-else@example.com")
    retryable = failed_row(email)
    persistent = failed_row(
        email, error="AccessDenied: IAM denied for ec2:PurchaseReservedInstances"
    )
    not_mine = failed_row(other)
    unselected = failed_row(email)  # on the page, not ticked: not part of the batch
    browser_sign_in(page, live_server, email)
    page.goto(f"{live_server}/admin/purchases/")
    page.wait_for_load_state("load")  # Bootstrap's dropdown and Flask-Admin's actions.js

    for row_id in (retryable, persistent, not_mine):
        page.locator(f'input.action-checkbox[value="{row_id}"]').check()
    expect(page.locator("input.action-checkbox:checked")).to_have_count(3)
    expect(page.locator(f'input.action-checkbox[value="{unselected}"]')).not_to_be_checked()
    page.get_by_role("button", name="With selected").click()  # an <a role="button">
    with page.expect_navigation():
        page.get_by_role("link", name="Retry selected").click()

    # The confirmation page: what would happen to each row, before anything is done.
    expect(page.get_by_text(RETRY_SELECTED_CONFIRM)).to_be_visible()
    queued = page.locator('[data-preview-group="queued"]')
    expect(queued).to_have_attribute("data-group-count", "1")
    expect(queued.locator("[data-group-execution-id]")).to_have_text([str(retryable)])
    expect(page.locator('[data-preview-group="refused"]')).to_have_count(2)
    with page.expect_navigation():
        page.locator('[data-action="confirm-retry"]').click()

    # One flash, naming each of the three rows with its outcome.
    assert re.search(r"/admin/retry_batches/[0-9a-f-]{36}$", page.url), page.url
    lines = flash_lines(page)
    assert lines[0] == "Retry of 3 executions: 1 queued, 2 refused — follow the batch", lines
    rows = dict(line.split(": ", 1) for line in lines[1:])
    assert set(rows) == {str(retryable), str(persistent), str(not_mine)}, lines
    assert rows[str(retryable)] == "queued"
    assert rows[str(persistent)].endswith(f" — {IAM_HINT}"), rows[str(persistent)]
    assert rows[str(not_mine)].startswith("not allowed"), rows[str(not_mine)]
    expect(page.locator('[data-flash="warning"]')).to_have_count(1)

    # The batch page before any worker runs: the refusals are settled, the retry waits.
    batch = page.locator("#retry-batch")
    expect(batch).to_have_attribute("data-state", "running")
    expect(page.locator("[data-batch-state]")).to_have_text("running")
    expect(page.locator(f'[data-batch-item="{unselected}"]')).to_have_count(0)
    item = page.locator(f'[data-batch-item="{retryable}"]')
    expect(item).to_have_attribute("data-item-state", "queued")
    for refused in (persistent, not_mine):
        expect(page.locator(f'[data-batch-item="{refused}"]')).to_have_attribute(
            "data-item-state", "rejected"
        )
    outcome = '[data-item-field="outcome"]'
    expect(page.locator(f'[data-batch-item="{persistent}"] {outcome}')).to_contain_text(IAM_HINT)
    expect(page.locator(f'[data-batch-item="{not_mine}"] {outcome}')).to_contain_text("not allowed")
    expect(page.locator('[data-batch-count="total"]')).to_have_text("3")
    expect(page.locator('[data-batch-count="queued"]')).to_have_text("1")
    expect(page.locator('[data-batch-count="rejected"]')).to_have_text("2")

    # Mark the document, then start the worker: whatever changes now came by polling.
    page.evaluate("window.__marker = 1")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/retry-batches/" in r.url else None)
    request.getfixturevalue("celery_worker")

    expect(page.locator("[data-batch-state]")).to_have_text("done", timeout=SETTLE_MS)
    expect(batch).to_have_attribute("data-state", "done")
    expect(item).to_have_attribute("data-item-state", "succeeded")
    expect(item.locator('[data-item-field="state"]')).to_have_text("succeeded")
    expect(item.locator('[data-item-field="outcome"]')).to_have_text(
        re.compile(r"^new execution [0-9a-f-]{36}$")
    )
    successor = item.locator("a[data-successor]")  # a link, as the server renders it
    expect(successor).to_have_attribute("href", re.compile(r"/admin/purchases/details/\?id="))
    expect(page.locator('[data-batch-count="succeeded"]')).to_have_text("1")
    expect(page.locator('[data-batch-count="queued"]')).to_have_text("0")
    expect(page.locator('[data-batch-count="rejected"]')).to_have_text("2")
    for refused in (persistent, not_mine):
        expect(page.locator(f'[data-batch-item="{refused}"]')).to_have_attribute(
            "data-item-state", "rejected"
        )
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    assert navigations == [], navigations
    assert polls, "poll.js never asked for the batch's state"
    expect(page.locator("[data-flash]")).to_have_count(1)  # still the same document
