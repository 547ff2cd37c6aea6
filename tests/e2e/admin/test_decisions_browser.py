"""Approve and Cancel in the Purchase History action cell, in Chromium
(docs/operations.md, "The panel").

What an operator does: press Approve or Cancel on a pending row, answer the
confirmation, read the flash. Dismissing the confirmation sends nothing. A user who may
not decide a row is not offered the buttons. No worker runs here: an approval's
`purchases.execute` task waits in the test Redis, where the test finds it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import redis
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from app import task_names
from app.db import fresh_read, unit_of_work
from app.domain.statuses import Status
from app.models import PurchaseExecution, PurchaseSuppression
from app.services.identity import find_user_by_email
from tests.e2e.helpers import answer_next_dialog, browser_sign_in, create_user
from tests.factories import make_execution, make_suppression, recommendation

pytestmark = pytest.mark.browser

APPROVE_PROMPT = "Approve this purchase? It is bought right away."
CANCEL_PROMPT = "Cancel this purchase? Nothing will be bought."


def pending_row(email: str) -> uuid.UUID:
    """A pending execution created by `email`, with one suppression, committed so the
    live server sees it."""
    with unit_of_work() as session:
        row = make_execution(
            session,
            Status.PENDING,
            created_by=find_user_by_email(session, email),
            recommendations=[recommendation()],
        )
        make_suppression(session, row)
        return row.execution_id


def decision_of(execution_id: uuid.UUID) -> dict[str, Any]:
    """The row's status, who decided it, and its suppressions, read fresh."""
    with fresh_read() as session:
        row = session.execute(
            select(
                PurchaseExecution.status,
                PurchaseExecution.approved_by,
                PurchaseExecution.cancelled_by,
            ).where(PurchaseExecution.execution_id == execution_id)
        ).one()
        suppressions = session.scalar(
            select(func.count())
            .select_from(PurchaseSuppression)
            .where(PurchaseSuppression.execution_id == execution_id)
        )
    return row._asdict() | {"suppressions": suppressions}


def queued_executions(redis_db: redis.Redis) -> list[tuple[str, str]]:
    """(task name, arguments) of the messages waiting on the `purchases` queue."""
    messages = [json.loads(raw) for raw in redis_db.lrange("purchases", 0, -1)]
    return [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in messages]


def row_of(page: Page, execution_id: uuid.UUID):
    return page.locator(f'td[data-row-actions="{execution_id}"]')


def test_approve_confirms_then_approves_an_own_pending_row(
    live_server: str, redis_db: redis.Redis, browser_page: Page
) -> None:
    page = browser_page
    email = create_user()
    row_id = pending_row(email)
    browser_sign_in(page, live_server, email)
    page.goto(f"{live_server}/admin/purchases/")
    prompts = answer_next_dialog(page, accept=True)
    row_of(page, row_id).locator('[data-action="approve"]').click()

    flash = page.locator('[data-flash="success"]')
    expect(flash).to_have_text(f"{row_id} approved — the purchase runs now")
    assert prompts == [APPROVE_PROMPT]
    assert decision_of(row_id) == {
        "status": Status.APPROVED,
        "approved_by": email,
        "cancelled_by": None,
        "suppressions": 1,  # an approved purchase is in flight: they stay
    }
    assert queued_executions(redis_db) == [(task_names.EXECUTE, repr([str(row_id)]))]
    # Back on the list, the row is no longer pending: nothing left to decide.
    expect(row_of(page, row_id)).to_be_visible()
    expect(row_of(page, row_id).locator("[data-action]")).to_have_count(0)


def test_cancel_dismissed_changes_nothing_then_accepted_cancels(
    live_server: str, redis_db: redis.Redis, browser_page: Page
) -> None:
    page = browser_page
    email = create_user()
    other_id = pending_row(email)
    row_id = pending_row(email)
    browser_sign_in(page, live_server, email)
    page.goto(f"{live_server}/admin/purchases/")
    before = decision_of(row_id)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

    dismissed = answer_next_dialog(page, accept=False)
    row_of(page, row_id).locator('[data-action="cancel"]').click()
    page.wait_for_timeout(500)  # room for a request that should not happen
    assert dismissed == [CANCEL_PROMPT]
    assert posts == []
    assert decision_of(row_id) == before
    expect(page.locator("[data-flash]")).to_have_count(0)

    accepted = answer_next_dialog(page, accept=True)
    row_of(page, row_id).locator('[data-action="cancel"]').click()
    expect(page.locator('[data-flash="success"]')).to_have_text(f"{row_id} cancelled")
    assert accepted == [CANCEL_PROMPT]
    assert posts == [f"{live_server}/admin/purchases/cancel/{row_id}"]
    assert decision_of(row_id) == {
        "status": Status.CANCELLED,
        "approved_by": None,
        "cancelled_by": email,
        "suppressions": 0,  # nothing will be bought: the recommendations are free again
    }
    assert queued_executions(redis_db) == []
    expect(row_of(page, row_id).locator("[data-action]")).to_have_count(0)
    # The other pending row is untouched and still offers both decisions.
    assert decision_of(other_id)["status"] == Status.PENDING
    expect(row_of(page, other_id).locator('[data-action="approve"]')).to_be_visible()
    expect(row_of(page, other_id).locator('[data-action="cancel"]')).to_be_visible()


def test_no_decision_buttons_on_a_row_the_user_may_not_decide(
    live_server: str, browser_page: Page
) -> None:
    """Only `approve-own` and `cancel-own` (the defaults): someone else's pending row
    shows no Approve or Cancel, while the user's own row does."""
    page = browser_page
    email = create_user()
    someone_else = create_user("erin@example.com")
    theirs = pending_row(someone_else)
    mine = pending_row(email)
    browser_sign_in(page, live_server, email)
    page.goto(f"{live_server}/admin/purchases/")

    expect(row_of(page, theirs)).to_be_visible()
    expect(row_of(page, theirs).locator("[data-action]")).to_have_count(0)
    expect(row_of(page, theirs).locator("form")).to_have_count(0)
    expect(row_of(page, mine).locator('[data-action="approve"]')).to_be_visible()
    expect(row_of(page, mine).locator('[data-action="cancel"]')).to_be_visible()
    expect(row_of(page, mine).locator(f'[data-execution-id="{mine}"]')).to_have_count(2)
