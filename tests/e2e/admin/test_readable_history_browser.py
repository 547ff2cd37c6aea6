"""Purchase History read at a glance, in Chromium at 1,280 px: one line per row whatever
the text in it, a colour per status, short ids that copy the whole id, money with its
currency, times in the reader's own time zone, and the list's keyboard shortcuts."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import Browser, Page, expect

from app.db import unit_of_work
from app.domain.statuses import Status
from app.models import PurchasePlan
from app.services.identity import find_user_by_email
from tests.e2e.conftest import TIMEOUT_MS
from tests.e2e.helpers import browser_sign_in, create_user
from tests.factories import make_account, make_execution, recommendation

pytestmark = pytest.mark.browser

WIDTH = 1280
LONG_ERROR = "InsufficientInstanceCapacity: " + "there is not enough capacity, " * 12
# 1 July 2026, 09:15 UTC: 18:15 in Tokyo (JST, no daylight saving time).
MOMENT = datetime(2026, 7, 1, 9, 15, tzinfo=UTC)


@pytest.fixture
def wide_page(browser: Browser, live_server: str) -> Iterator[Page]:
    """A 1,280 px wide page whose context may read and write the clipboard."""
    context = browser.new_context(
        viewport={"width": WIDTH, "height": 900},
        permissions=["clipboard-read", "clipboard-write"],
    )
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def seed(email: str, *, time_zone: str | None = None) -> dict[Status, uuid.UUID]:
    """A row in every status, with long names and a long error, committed for the live
    server; the creator's email is long too."""
    with unit_of_work() as session:
        user = find_user_by_email(session, email)
        assert user is not None
        user.time_zone = time_zone
        account = make_account(session)
        account.name = "Production AWS (payer account for every business unit)"
        plan = PurchasePlan(
            name="EC2 savings ramp for the whole of 2027, quarter by quarter",
            total_steps=4,
            current_step=2,
        )
        session.add(plan)
        session.flush()
        rows = {}
        for n, status in enumerate(Status):
            failed = status in (Status.FAILED, Status.PARTIALLY_COMPLETED)
            rows[status] = make_execution(
                session,
                status,
                created_by=user,
                created_at=MOMENT - timedelta(minutes=n),
                cloud_account_id=account.id,
                plan_id=plan.id,
                step_number=2,
                total_upfront_cost=Decimal("1234567.5"),
                estimated_savings=Decimal("8646"),
                error=LONG_ERROR if failed else None,
                recommendations=[recommendation()],
            ).execution_id
        return rows


def open_history(page: Page, base: str, email: str) -> None:
    browser_sign_in(page, base, email)
    page.goto(f"{base}/admin/purchases/")
    expect(page.locator("[data-row-actions]")).to_have_count(len(Status))
    page.wait_for_load_state("load")


# Per row: its height, one line's height, and how tall each cell's content stands (from
# the first line's top to the last line's bottom: a wrap makes it two lines tall).
ROW_HEIGHTS = """
rows => rows.map(row => {
  const style = getComputedStyle(row.querySelector("td.col-created_at"));
  const line = parseFloat(style.lineHeight);
  return {
    height: row.getBoundingClientRect().height,
    line: line,
    oneLine: line + parseFloat(style.paddingTop) + parseFloat(style.paddingBottom) + 1,
    cells: Array.from(row.children).map(td => {
      const range = document.createRange();
      range.selectNodeContents(td);
      const rects = Array.from(range.getClientRects()).filter(r => r.width > 0 && r.height > 0);
      const span = rects.length
        ? Math.max(...rects.map(r => r.bottom)) - Math.min(...rects.map(r => r.top))
        : 0;
      return {cell: td.className, span: span};
    }),
  };
})
"""


def test_every_row_is_one_line_at_1280_px(live_server: str, wide_page: Page) -> None:
    page = wide_page
    email = create_user("a.very.long.name.for.a.purchaser@finance.example.com")
    seed(email)
    open_history(page, live_server, email)

    rows = page.locator("table.model-list > tbody > tr").evaluate_all(ROW_HEIGHTS)
    assert len(rows) == len(Status)
    for row in rows:
        # A wrapped cell adds a whole line to its row.
        assert row["height"] < row["oneLine"] + row["line"] / 2, row
        for cell in row["cells"]:
            assert cell["span"] < row["line"] * 1.5, (cell, row["line"])
    # Long text is cut short on screen and whole on hover.
    error = page.locator("[data-error]").first
    assert error.evaluate("e => e.scrollWidth > e.clientWidth"), "the error is not cut short"
    expect(error).to_have_attribute("title", re.compile("not enough capacity"))
    creator = page.locator("[data-creator]").first
    expect(creator).to_have_attribute("title", email)


def test_each_status_has_its_colour_and_money_its_currency(
    live_server: str, wide_page: Page
) -> None:
    page = wide_page
    email = create_user()
    seed(email)
    open_history(page, live_server, email)

    colours = {}
    for status in Status:
        badge = page.locator(f'td.col-status .badge[data-status="{status.value}"]')
        expect(badge).to_have_text(status.value.replace("_", " "))
        colours[status] = badge.evaluate("b => getComputedStyle(b).backgroundColor")
    assert "rgba(0, 0, 0, 0)" not in colours.values()
    assert len(set(colours.values())) == len(Status), colours
    assert colours[Status.FAILED] == "rgb(220, 53, 69)"  # Bootstrap's danger red
    assert colours[Status.COMPLETED] == "rgb(40, 167, 69)"  # its success green

    expect(page.locator("td.col-total_upfront_cost").first).to_have_text("$1,234,567.50")
    expect(page.locator("td.col-estimated_savings").first).to_have_text("$8,646.00")


def test_a_click_on_a_short_id_copies_the_whole_id(live_server: str, wide_page: Page) -> None:
    page = wide_page
    email = create_user()
    rows = seed(email)
    open_history(page, live_server, email)

    full = str(rows[Status.FAILED])
    chip = page.locator(f'td.col-execution_id [data-copy-id="{full}"]')
    expect(chip).to_have_text(full[:8])
    expect(chip).to_have_attribute("title", re.compile(re.escape(full)))
    chip.click()
    expect(chip).to_have_attribute("data-copied", "true")
    assert page.evaluate("navigator.clipboard.readText()") == full

    # From the keyboard too; and on the details page, the retry chain's ids.
    other = str(rows[Status.PENDING])
    page.locator(f'td.col-execution_id [data-copy-id="{other}"]').focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/admin/purchases/"))
    assert page.evaluate("navigator.clipboard.readText()") == other


def test_a_reader_with_a_time_zone_sees_times_in_it(live_server: str, wide_page: Page) -> None:
    page = wide_page
    email = create_user()
    rows = seed(email, time_zone="Asia/Tokyo")
    open_history(page, live_server, email)

    newest = page.locator("td.col-created_at time").first
    expect(newest).to_have_text("2026-07-01 18:15 JST")
    expect(newest).to_have_attribute("title", "2026-07-01 09:15:00 UTC")

    page.goto(f"{live_server}/admin/purchases/details/?id={rows[Status.PENDING]}")
    field = page.locator('[data-field="created_at"] time')
    expect(field).to_have_text("2026-07-01 18:15 JST")
    status = page.locator('[data-field="status"] .badge')
    expect(status).to_have_class(re.compile("badge-warning"))
    items = page.locator("[data-recommendations] tbody tr")
    expect(items).to_have_count(1)
    expect(items.first.locator("td.amount").nth(1)).to_have_text(re.compile(r"^\$[\d,]+\.\d\d$"))


def test_the_keyboard_moves_through_the_list(live_server: str, wide_page: Page) -> None:
    page = wide_page
    email = create_user()
    rows = seed(email)
    open_history(page, live_server, email)
    highlighted = page.locator("tr.row-highlight [data-row-actions]")

    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    second = page.locator("[data-row-actions]").nth(1).get_attribute("data-row-actions")
    expect(highlighted).to_have_attribute("data-row-actions", second or "")

    help_box = page.locator("[data-keyboard-help]")
    expect(help_box).to_be_hidden()
    page.keyboard.press("?")
    expect(help_box).to_be_visible()
    page.keyboard.press("Escape")
    expect(help_box).to_be_hidden()

    # Typing in the search box is typing: no shortcut fires.
    page.keyboard.press("/")
    search = page.locator('form[role="search"] input[name="search"]')
    expect(search).to_be_focused()
    page.keyboard.type("jk?")
    expect(search).to_have_value("jk?")
    expect(help_box).to_be_hidden()
    expect(highlighted).to_have_attribute("data-row-actions", second or "")

    search.blur()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/admin/purchases/details/\?id=" + (second or "")))
    assert second in {str(row) for row in rows.values()}


def test_a_reader_picks_their_browsers_zone_in_their_settings(
    browser: Browser, live_server: str
) -> None:
    context = browser.new_context(
        viewport={"width": WIDTH, "height": 900}, timezone_id="Asia/Tokyo"
    )
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        email = create_user()
        seed(email)
        browser_sign_in(page, live_server, email)
        page.locator("[data-current-user]").click()
        expect(page).to_have_url(re.compile(r"/admin/settings/$"))
        expect(page.locator("[data-time-zone]")).to_have_value("")
        page.get_by_role("button", name="Use this browser's zone (Asia/Tokyo)").click()
        expect(page.locator("[data-time-zone]")).to_have_value("Asia/Tokyo")
        page.get_by_role("button", name="Save").click()
        expect(page.locator('[data-flash="success"]')).to_have_text("Times now show in Asia/Tokyo.")

        page.goto(f"{live_server}/admin/purchases/")
        expect(page.locator("td.col-created_at time").first).to_have_text("2026-07-01 18:15 JST")
    finally:
        context.close()
