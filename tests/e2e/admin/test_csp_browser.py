"""The Content-Security-Policy in Chromium: the pages an operator uses, and the things
they click, run without a single violation (a violation is a script or handler the
browser refused to run: a button that silently does nothing).

Recorded two ways: each document's `securitypolicyviolation` events (an init script),
and the console's "Refused to ..." errors across navigations. The last check shows
both recorders catch a violation when there is one.
"""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from admin.bulk import RETRY_SELECTED_CONFIRM
from app.db import unit_of_work
from app.domain.statuses import Status
from tests.e2e.helpers import answer_next_dialog, browser_sign_in
from tests.factories import make_account, make_execution, make_user, recommendation

pytestmark = pytest.mark.browser

RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"}: ${event.sample}`
  );
});
"""


class Violations:
    """What the browser refused, on the current document and in the console so far."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console: list[str] = []
        page.add_init_script(RECORDER)
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.console.append(message.text)

    def on_this_page(self) -> list[str]:
        return self.page.evaluate("window.__cspViolations || []")

    def assert_none(self, where: str) -> None:
        assert self.on_this_page() == [], where
        assert self.console == [], where


@pytest.fixture
def admin_with_rows() -> tuple[str, uuid.UUID]:
    """An admin, a failed row of theirs and a cloud account (a view that can delete)."""
    with unit_of_work() as session:
        admin = make_user(session, "csp-admin@example.com", groups=("Administrators",))
        account = make_account(session)
        row = make_execution(
            session,
            Status.FAILED,
            created_by=admin,
            cloud_account_id=account.id,
            error="InsufficientInstanceCapacity",
            recommendations=[recommendation()],
        )
        return admin.email, row.execution_id


def test_the_panel_runs_under_the_policy_without_a_violation(
    live_server: str, browser_page: Page, admin_with_rows: tuple[str, uuid.UUID]
) -> None:
    page = browser_page
    email, row_id = admin_with_rows
    violations = Violations(page)

    page.goto(f"{live_server}/login")
    violations.assert_none("the login page")
    browser_sign_in(page, live_server, email)
    page.wait_for_load_state("load")
    violations.assert_none("the home page")

    # The list: the filter menu adds a filter row without leaving the page.
    list_url = f"{live_server}/admin/purchases/"
    page.goto(list_url)
    page.wait_for_load_state("load")
    page.get_by_text("Add Filter").click()
    page.locator(".field-filters a.filter", has_text="Status").click()
    expect(page.locator("table.filters tr")).to_have_count(1)
    assert page.url == list_url
    # "With selected" → "Retry selected" opens its confirmation page (Flask-Admin's
    # actions.js, bound by panel/bindings.js); back to the list, nothing was posted.
    page.locator(f'input.action-checkbox[value="{row_id}"]').check()
    page.get_by_role("button", name="With selected").click()
    with page.expect_navigation():
        page.get_by_role("link", name="Retry selected").click()
    expect(page.locator("[data-retry-preview]")).to_be_visible()
    assert RETRY_SELECTED_CONFIRM in page.locator("body").inner_text()
    violations.assert_none("the bulk retry's confirmation page")
    page.locator('[data-action="back-to-list"]').click()
    page.wait_for_load_state("load")
    assert page.url == list_url
    # The row's own Retry asks too (a form's data-confirm).
    prompts = answer_next_dialog(page, accept=False)
    page.locator(f'[data-row-actions="{row_id}"] [data-action="retry"]').first.click()
    page.wait_for_timeout(300)
    assert prompts and prompts[0].startswith("Retry this failed purchase?"), prompts
    assert page.url == list_url
    page.get_by_role("link", name="List").first.click()  # a javascript:void(0) tab
    violations.assert_none("the list, its filter menu and its actions")

    page.goto(f"{live_server}/admin/purchases/details/?id={row_id}")
    expect(page.locator(f'[data-execution-id="{row_id}"]').first).to_be_visible()
    page.wait_for_load_state("load")
    violations.assert_none("the detail page")

    # A management view's delete button asks before it posts.
    page.goto(f"{live_server}/admin/accounts/")
    page.wait_for_load_state("load")
    prompts = answer_next_dialog(page, accept=False)
    page.locator('button[title="Delete Record"]').first.click()
    page.wait_for_timeout(300)
    assert prompts == ["Are you sure you want to delete this record?"], prompts
    violations.assert_none("the accounts view")

    # The recorders do catch a violation: an injected inline handler is refused.
    page.evaluate(
        """() => {
          const button = document.createElement("button");
          button.id = "injected";
          button.setAttribute("onclick", "document.title = 'ran'");
          document.body.appendChild(button);
        }"""
    )
    page.locator("#injected").click()
    expect(page).not_to_have_title("ran")
    page.wait_for_function("window.__cspViolations.length > 0")
    assert "script-src" in page.evaluate("window.__cspViolations")[0]
