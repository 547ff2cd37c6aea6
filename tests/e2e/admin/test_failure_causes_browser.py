"""Failures by cause in Chromium: three causes seeded, grouped; "Mark fixed" on one, then
"Retry all N with this cause", its money preview, and, confirmed, a batch of exactly that
group's rows (read back from the database) and none of the others."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import redis
from playwright.sync_api import Page, expect
from sqlalchemy import select

from admin.causes import MARK_FIXED_CONFIRM
from app.db import unit_of_work
from app.domain.causes import signature
from app.domain.statuses import Status
from app.models import RetryBatch, RetryBatchItem
from tests.e2e.helpers import answer_next_dialog, browser_sign_in
from tests.factories import make_execution, make_user, recommendation

pytestmark = pytest.mark.browser

EMAIL = "operator@example.com"
CAPACITY = "InsufficientInstanceCapacity: no capacity for {} in us-east-1a after {} tries"
THROTTLED = "Throttling: rate exceeded for request {}"
TIMEOUT = "InternalError: provider timed out after {} s"


def seed() -> dict[str, list[uuid.UUID]]:
    """Committed where the live server sees them: 3 + 2 + 1 failures of 3 causes."""
    errors = {
        "capacity": [CAPACITY.format(f"r-{n}abc", n) for n in (1, 22, 333)],
        "throttled": [THROTTLED.format(uuid.uuid4()) for _ in range(2)],
        "timeout": [TIMEOUT.format(30)],
    }
    made: dict[str, list[uuid.UUID]] = {}
    with unit_of_work() as session:
        user = make_user(session, EMAIL, groups=("Purchasers",))
        for cause, texts in errors.items():
            made[cause] = []
            for text in texts:
                values: dict[str, Any] = {"error": text, "recommendations": [recommendation()]}
                row = make_execution(session, Status.FAILED, created_by=user, **values)
                made[cause].append(row.execution_id)
    return made


def test_mark_fixed_then_retry_all_with_this_cause(
    live_server: str, redis_db: redis.Redis, browser_page: Page
) -> None:
    page = browser_page
    rows = seed()
    capacity = signature(CAPACITY.format("r-1abc", 1))
    browser_sign_in(page, live_server, EMAIL)
    page.goto(f"{live_server}/admin/purchases/")
    page.get_by_role("link", name="Failures by cause").click()

    # Grouped: one row per cause, largest first, with the counts.
    groups = page.locator("tr[data-cause]")
    expect(groups).to_have_count(3)
    expect(page.locator("[data-cause-count]")).to_have_count(3)
    assert [groups.nth(i).get_attribute("data-cause-count") for i in range(3)] == ["3", "2", "1"]
    group = page.locator(f'tr[data-cause="{capacity}"]')
    expect(group.locator("[data-cause-label]")).to_have_text(capacity)
    expect(group.locator("[data-cause-fixed]")).to_have_attribute("data-cause-fixed", "no")

    # Mark fixed: asks first, then says who fixed it.
    group.locator('input[name="note"]').fill("raised the quota")
    prompts = answer_next_dialog(page, accept=True)
    with page.expect_navigation():
        group.locator('[data-action="mark-fixed"]').click()
    assert prompts == [MARK_FIXED_CONFIRM]
    expect(page.locator('[data-flash="success"]')).to_contain_text("Marked fixed")
    group = page.locator(f'tr[data-cause="{capacity}"]')
    expect(group.locator("[data-cause-fixed]")).to_have_attribute("data-cause-fixed", "yes")
    expect(group.locator("[data-cause-fixed]")).to_contain_text(EMAIL)
    expect(group.locator("[data-cause-fixed]")).to_contain_text("raised the quota")

    # Retry all 3 with this cause: the money preview first, nothing written yet.
    retry_button = group.locator('[data-action="retry-cause"]')
    expect(retry_button).to_have_text(re.compile(r"Retry all 3 with this cause"))
    with page.expect_navigation():
        retry_button.click()
    queued = page.locator('[data-preview-group="queued"]')
    expect(queued).to_have_attribute("data-group-count", "3")
    expect(queued.locator("[data-group-execution-id]")).to_have_count(3)
    shown = set(queued.locator("[data-group-execution-id]").all_inner_texts())
    assert shown == {str(row) for row in rows["capacity"]}
    expect(page.locator('[data-preview-group="refused"]')).to_have_count(0)
    with unit_of_work() as session:
        assert session.scalars(select(RetryBatch)).all() == []

    # Confirmed: one batch holding exactly that group's rows.
    with page.expect_navigation():
        page.locator('[data-action="confirm-retry"]').click()
    assert re.search(r"/admin/retry_batches/[0-9a-f-]{36}$", page.url), page.url
    with unit_of_work() as session:
        (batch,) = session.scalars(select(RetryBatch)).all()
        items = session.scalars(
            select(RetryBatchItem.execution_id).where(RetryBatchItem.batch_id == batch.id)
        ).all()
    assert sorted(map(str, items)) == sorted(str(row) for row in rows["capacity"])
    others = {str(row) for row in rows["throttled"] + rows["timeout"]}
    assert not others & set(map(str, items))
