"""The Retry row action in Chromium, with a real worker settling the requests.

What an operator does: click Retry or the override, answer the confirmation, read the
flash, and watch the row link to its successor once the worker has run.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.db import unit_of_work
from app.domain.statuses import Status
from app.models import PurchaseExecution
from app.services.identity import find_user_by_email
from tests.e2e.helpers import answer_next_dialog, browser_sign_in, create_user, single_retries
from tests.factories import make_execution, recommendation

pytestmark = pytest.mark.browser

RECOMMENDATION = recommendation(
    payment_option="no-upfront", upfront_cost=0, monthly_savings=40, error="capacity"
)


def failed_row(email: str, **fields: Any) -> uuid.UUID:
    """A failed execution created by `email`, committed so the server and worker see it."""
    with unit_of_work() as session:
        user = find_user_by_email(session, email)
        row = make_execution(
            session, Status.FAILED, created_by=user, recommendations=[RECOMMENDATION], **fields
        )
        return row.execution_id


def successor_of(execution_id: uuid.UUID) -> tuple[uuid.UUID | None, int | None]:
    """The successor's id and attempt number, read fresh from the database."""
    with unit_of_work() as session:
        found = session.execute(
            select(PurchaseExecution.execution_id, PurchaseExecution.retry_attempt_n).where(
                PurchaseExecution.execution_id
                == select(PurchaseExecution.retry_execution_id)
                .where(PurchaseExecution.execution_id == execution_id)
                .scalar_subquery()
            )
        ).first()
    return (found[0], found[1]) if found else (None, None)


def count_requests() -> int:
    with unit_of_work() as session:
        return len(single_retries(session))


def row_of(page: Page, execution_id: uuid.UUID):
    return page.locator(f'td[data-row-actions="{execution_id}"]')


def reload_until_retried(page: Page, execution_id: uuid.UUID, timeout: float = 20.0) -> None:
    """Reload the list until the worker has linked the row to its successor."""
    deadline = time.monotonic() + timeout
    while not row_of(page, execution_id).locator("[data-retried-by]").count():
        assert time.monotonic() < deadline, f"{execution_id} was not retried in {timeout}s"
        time.sleep(0.3)
        page.reload()


def test_retry_queues_and_the_worker_links_the_successor(
    live_server: str, celery_worker: None, browser_page: Page
) -> None:
    page = browser_page
    email = create_user()
    row_id = failed_row(email, error="InsufficientInstanceCapacity")
    browser_sign_in(page, live_server, email)
    page.goto(f"{live_server}/admin/purchases/")
    prompts = answer_next_dialog(page, accept=True)
    row_of(page, row_id).locator('[data-action="retry"]').click()

    expect(page.locator('[data-flash="success"]')).to_contain_text(f"Retry of {row_id} queued")
    assert prompts and prompts[0].startswith("Retry this failed purchase?")
    reload_until_retried(page, row_id)
    successor_id, attempt = successor_of(row_id)
    assert attempt == 1
    link = row_of(page, row_id).locator("[data-retried-by]")
    expect(link).to_have_attribute("data-retried-by", str(successor_id))
    expect(row_of(page, row_id).locator("[data-action]")).to_have_count(0)
    back_link = row_of(page, successor_id).locator("[data-retry-of]")
    expect(back_link).to_have_attribute("data-retry-of", str(row_id))
    back_link.click()
    expect(page.locator("[data-execution-fields]")).to_contain_text(str(row_id))
    assert "/admin/purchases/details/" in page.url


def test_the_override_confirms_then_forces_a_sixth_attempt(
    live_server: str, celery_worker: None, browser_page: Page
) -> None:
    page = browser_page
    email = create_user()
    row_id = failed_row(email, error="capacity", retry_attempt_n=5)
    browser_sign_in(page, live_server, email)
    page.goto(f"{live_server}/admin/purchases/")
    prompts = answer_next_dialog(page, accept=True)
    button = row_of(page, row_id).locator('[data-action="force-retry"]')
    expect(button).to_have_text("Retried 5× — override")  # noqa: RUF001  (the documented label)
    expect(row_of(page, row_id).locator('[data-action="retry"]')).to_have_count(0)
    button.click()

    expect(page.locator('[data-flash="success"]')).to_contain_text(f"Retry of {row_id} queued")
    assert prompts and "threshold 5" in prompts[0]
    reload_until_retried(page, row_id)
    assert successor_of(row_id)[1] == 6


def test_a_hint_badge_replaces_retry(live_server: str, browser_page: Page) -> None:
    page = browser_page
    email = create_user()
    hinted = failed_row(email, error="SES Sandbox: recipient not verified")
    plain = failed_row(email, error="capacity")
    browser_sign_in(page, live_server, email)
    page.goto(f"{live_server}/admin/purchases/")

    badge = row_of(page, hinted).locator("[data-ops-hint]")
    expect(badge).to_be_visible()
    expect(badge).to_contain_text("Move SES out of the sandbox")
    expect(row_of(page, hinted).locator("[data-action]")).to_have_count(0)
    expect(row_of(page, plain).locator('[data-action="retry"]')).to_be_visible()


def test_dismissing_the_confirmation_sends_nothing(live_server: str, browser_page: Page) -> None:
    page = browser_page
    email = create_user()
    row_id = failed_row(email, error="capacity")
    browser_sign_in(page, live_server, email)
    page.goto(f"{live_server}/admin/purchases/")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    dismissed = answer_next_dialog(page, accept=False)
    row_of(page, row_id).locator('[data-action="retry"]').click()

    page.wait_for_timeout(500)  # room for a request that should not happen
    assert dismissed, "no confirmation was asked"
    assert posts == []
    assert count_requests() == 0
    expect(page.locator("[data-flash]")).to_have_count(0)
    expect(row_of(page, row_id).locator('[data-action="retry"]')).to_be_visible()
