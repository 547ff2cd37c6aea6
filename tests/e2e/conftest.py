"""End-to-end fixtures: a test client and a user; for the real-browser tests, the test app
served over HTTP and Debian's Chromium driving it.

- `client`: Flask's test client for one test, on the rolled-back `db_session` and a
  flushed `redis_db`.
- `alice`: alice@example.com in no group (default permissions: `retry-own`, not
  `retry-any`), with the password `tests.factories.PASSWORD`.
- `live_server`: the session `app` on 127.0.0.1 at a free port, in a background thread,
  for one test. It depends on `committed_db`, so what the test commits with
  `unit_of_work()` is visible to the server's request threads (and emptied afterwards).
- `browser`: one headless Chromium for the run (Playwright's sync API).
- `browser_context` / `browser_page`: a fresh context (cookies, storage) and page per test.

Plain helpers (signing in over the API, the login form or the browser) are in helpers.py.

Playwright's own browser download does not work here; the tests drive
/usr/bin/chromium, which scripts/test installs. Without it the browser tests are skipped
locally and fail in CI (CI=true), where a missing browser is a broken setup.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from app.models import User
from tests.factories import make_user

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps dialing Google services, refused on a closed network.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Modest on purpose: a broken page should fail the test in seconds, not hang it.
TIMEOUT_MS = 10_000

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture
def client(app: Flask, db_session: Session, redis_db: redis.Redis) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def alice(db_session: Session) -> User:
    """In no group: the default permissions, so of the retry ones `retry-own` only."""
    return make_user(db_session, "alice@example.com")


@pytest.fixture
def bob(db_session: Session) -> User:
    """In no group, like alice: the default permissions."""
    return make_user(db_session, "bob@example.com")


@pytest.fixture
def purchaser(db_session: Session) -> User:
    return make_user(db_session, "purchaser@example.com", groups=("Purchasers",))


@pytest.fixture
def admin(db_session: Session) -> User:
    return make_user(db_session, "admin@example.com", groups=("Administrators",))


@pytest.fixture
def viewer(db_session: Session) -> User:
    return make_user(db_session, "viewer@example.com", groups=("Read-only",))


@pytest.fixture
def live_server(app: Flask, committed_db: Session) -> Iterator[str]:
    """The app over real HTTP for one test; yields its base URL (no trailing slash)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name="live-server",
        daemon=True,
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def _require_chromium() -> None:
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return
    message = (
        f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium. "
        "Install it with `apt-get install chromium` (as root), or run the tests with "
        "scripts/test, which installs it."
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message + " In CI the test script is responsible for installing it.")
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    _require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def browser_page(
    request: pytest.FixtureRequest, browser_context: BrowserContext, tmp_path: Path
) -> Iterator[Page]:
    """A fresh page; on a failed test, says where it was and keeps a screenshot."""
    page = browser_context.new_page()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and not page.is_closed():
        shot = tmp_path / "failure.png"
        try:
            page.screenshot(path=str(shot), full_page=True)
            print(f"page at failure: {page.url}\nscreenshot: {shot}")
        except Exception as exc:  # diagnostics only: never mask the failure
            print(f"page at failure: {page.url} (no screenshot: {exc})")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Keep each phase's report on the item, so fixtures can tell the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
