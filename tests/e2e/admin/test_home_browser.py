"""The home page in Chromium: its numbers are the hand count of the seeded rows, every
number's link lands on a Purchase History list of exactly the rows it counts, and the
chart draws without a console error or a policy violation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from app.db import unit_of_work, utcnow
from app.domain.statuses import Status
from tests.e2e.helpers import browser_sign_in, create_user
from tests.factories import make_account, make_execution

pytestmark = pytest.mark.browser

WAITING = ("pending", "approved", "failed", "partially_completed")


@dataclass(frozen=True)
class Seeded:
    execution_id: str
    status: str
    account: str
    provider: str
    upfront: Decimal
    savings: Decimal
    day: str


def seed() -> list[Seeded]:
    """Rows over three accounts, some in the chart's days, committed for the live server."""
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    plan = [
        # status, account, upfront, monthly savings, days ago
        (Status.PENDING, "aws", "1200.00", "36.50", 0),
        (Status.PENDING, "aws", "800.00", "12.25", 1),
        (Status.PENDING, "gcp", "5000.00", "300.00", 2),
        (Status.APPROVED, "gcp", "15000.00", "500.00", 0),
        (Status.FAILED, "azure", "0.00", "45.00", 3),
        (Status.FAILED, "aws", "2400.00", "60.00", 0),
        (Status.PARTIALLY_COMPLETED, "gcp", "700.00", "20.00", 5),
        (Status.COMPLETED, "aws", "9000.00", "400.00", 0),
        (Status.COMPLETED, "aws", "1000.00", "40.00", 2),
        (Status.COMPLETED, "gcp", "1000.00", "40.00", 12),
        (Status.CANCELLED, "azure", "99999.00", "9999.00", 1),
    ]
    with unit_of_work() as session:
        accounts = {}
        for provider in ("aws", "gcp", "azure"):
            accounts[provider] = make_account(session, provider=provider)
            accounts[provider].name = f"{provider} team"
        seeded = []
        for status, provider, upfront, savings, days_ago in plan:
            created = today - timedelta(days=days_ago) + timedelta(hours=1)
            row = make_execution(
                session,
                status,
                cloud_account_id=accounts[provider].id,
                total_upfront_cost=Decimal(upfront),
                estimated_savings=Decimal(savings),
                created_at=created,
            )
            seeded.append(
                Seeded(
                    str(row.execution_id),
                    status.value,
                    str(accounts[provider].id),
                    provider,
                    Decimal(upfront),
                    Decimal(savings),
                    created.astimezone(UTC).date().isoformat(),
                )
            )
        return seeded


def console_error(message: ConsoleMessage) -> str:
    """The error's text, or "" for Chromium's own request for /favicon.ico (the panel
    has none; the page asked for nothing that failed)."""
    if message.location.get("url", "").endswith("/favicon.ico"):
        return ""
    return message.text


def dollars(amount: Decimal) -> str:
    return f"${amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,.2f}"


def listed(page: Page) -> set[str]:
    return set(
        page.locator("[data-row-actions]").evaluate_all(
            "cells => cells.map(cell => cell.dataset.rowActions)"
        )
    )


def test_the_home_page_counts_what_its_links_list(live_server: str, browser_page: Page) -> None:
    page = browser_page
    errors: list[str] = []
    page.on("console", lambda m: errors.append(console_error(m)) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    rows = seed()
    email = create_user()
    browser_sign_in(page, live_server, email)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server}/admin/")

    # The totals: the hand count of the seeded rows, status by status.
    for status in WAITING:
        mine = [row for row in rows if row.status == status]
        savings = sum((row.savings for row in mine), Decimal(0))
        line = page.locator(f'[data-waiting="{status}"]')
        expect(line.locator('[data-field="rows"]')).to_have_text(str(len(mine)))
        expect(line.locator('[data-field="upfront"]')).to_have_text(
            dollars(sum((row.upfront for row in mine), Decimal(0)))
        )
        # `estimated_savings` holds a year's savings: a month's is / 12, a day's / 365.
        expect(line.locator('[data-field="savings"]')).to_have_text(dollars(savings / 12))
        expect(line.locator('[data-field="lost"]')).to_have_text(dollars(savings / 365))
    expect(page.locator('[data-waiting="approved"] [data-field="lost"]')).to_have_text("$1.37")

    # Every number's link, with the rows it must list (the hand count again).
    expected: dict[str, set[str]] = {}
    for status in WAITING:
        for href in hrefs(page, f'[data-waiting="{status}"] a'):
            expected[href] = {row.execution_id for row in rows if row.status == status}
    for kind in ("account", "provider"):
        for key in page.locator(f"tr[data-{kind}]").evaluate_all(
            f"rows => rows.map(row => row.dataset.{kind})"
        ):
            for status in WAITING:
                cell = page.locator(f'tr[data-{kind}="{key}"] a[data-bucket="{status}"]')
                counted = {
                    row.execution_id
                    for row in rows
                    if row.status == status and getattr(row, kind) == key
                }
                if not counted:
                    expect(cell).to_have_count(0)
                    continue
                (href,) = hrefs(page, f'tr[data-{kind}="{key}"] a[data-bucket="{status}"]')
                expected[href] = counted
    page.locator("details summary").click()
    for link in page.locator("[data-outcome]").all():
        day = link.locator("xpath=ancestor::tr").get_attribute("data-day")
        status = link.get_attribute("data-outcome")
        counted = {row.execution_id for row in rows if row.status == status and row.day == day}
        assert link.inner_text() == str(len(counted))
        expected[link.get_attribute("href") or ""] = counted
    assert len(expected) >= 4 + 6 + 5 + 5  # totals, accounts, providers, days

    # The chart drew: a canvas, before any navigation away.
    expect(page.locator("[data-outcomes-chart] canvas")).to_have_count(1)
    expect(page.locator("[data-outcomes-chart]")).to_have_attribute("data-drawn", "true")
    assert page.locator(".u-legend").inner_text().count("completed") == 2

    for href, counted in expected.items():
        page.goto(f"{live_server}{href}")
        expect(page.locator("[data-row-actions]")).to_have_count(len(counted))
        assert listed(page) == counted, href
    assert [error for error in errors if error] == []


def hrefs(page: Page, selector: str) -> list[str]:
    return sorted(
        set(page.locator(selector).evaluate_all("links => links.map(a => a.getAttribute('href'))"))
    )
