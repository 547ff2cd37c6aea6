"""Plain helpers the end-to-end tests share (fixtures are in conftest.py).

- `api_login` / `sign_in`: `POST /api/auth/login`. `api_login` answers whatever the server
  says; `sign_in` insists the user got in and returns the CSRF token that state-changing
  API calls must send as `X-CSRFToken`.
- `csrf_from` / `page_login`: the server-rendered login form, with its CSRF token.
- `create_user` / `submit_login` / `browser_sign_in`: for the browser tests, a user committed
  where the live server can see it, and the login page filled in through Chromium.
- `single_retries` / `queue_single_retry`: single retries as recorded (a batch of one:
  a `RetryBatch` of kind "single" and its one item), read back or written directly.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from flask.testing import FlaskClient
from playwright.sync_api import Dialog, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.db import unit_of_work
from app.models import PurchaseExecution, RetryBatch, RetryBatchItem, User
from tests.factories import PASSWORD, make_user

# --- The JSON API ----------------------------------------------------------------------


def api_login(client: FlaskClient, email: str, password: str) -> TestResponse:
    return client.post("/api/auth/login", json={"email": email, "password": password})


def sign_in(client: FlaskClient, user: User) -> str:
    """Sign `user` in with the test password; the CSRF token for the calls that follow."""
    response = api_login(client, user.email, PASSWORD)
    assert response.status_code == 200, response.json
    return response.json["csrf_token"]


# --- The login page over HTTP ------------------------------------------------------------


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no csrf_token field in the page"
    return match.group(1)


def page_login(
    client: FlaskClient, email: str, password: str, next_url: str | None = None
) -> TestResponse:
    page = client.get("/login")
    form = {"email": email, "password": password, "csrf_token": csrf_from(page.text)}
    url = f"/login?next={next_url}" if next_url else "/login"
    return client.post(url, data=form)


# --- The login page in a browser ---------------------------------------------------------

EMAIL = "dana@example.com"


def create_user(email: str = EMAIL) -> str:
    """A user with the test password, committed so the live server sees it; their email."""
    with unit_of_work() as session:
        make_user(session, email)
    return email


def submit_login(page: Page, email: str, password: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def browser_sign_in(page: Page, base_url: str, email: str = EMAIL) -> None:
    """Sign in through the login page; returns once the navbar names the user."""
    page.goto(f"{base_url}/login")
    submit_login(page, email, PASSWORD)
    expect(page.locator("[data-current-user]")).to_have_text(email)


def answer_next_dialog(page: Page, *, accept: bool) -> list[str]:
    """Accept or dismiss the page's next confirm(); the list receives its message."""
    prompts: list[str] = []

    def answer(dialog: Dialog) -> None:
        prompts.append(dialog.message)
        if accept:
            dialog.accept()
        else:
            dialog.dismiss()

    page.once("dialog", answer)
    return prompts


# Ids a path may carry that are not UUIDs, each refused with 400 and never echoed whole.
MALFORMED_IDS = {
    "word": "not-a-uuid",
    "number": "123",
    "10k-chars": "x" * 10_000,
    "nul": "%00",
    "nul-in-hex": "0" * 31 + "%00",
    "unicode": "%E2%98%83",
    "encoded-surrogate": "%ED%A0%80",
    "invalid-utf8": "%FF",
    "one-digit-too-long": "ffffffff-ffff-ffff-ffff-fffffffffffff",
    "slashes": "a/b/c",
}


# --- Single retries as recorded --------------------------------------------------------


@dataclass(frozen=True)
class SingleRetry:
    """A single retry as the database holds it: the batch's fields and its one item's."""

    id: uuid.UUID
    execution_id: uuid.UUID
    state: str
    force: bool
    requested_by_user_id: uuid.UUID | None
    requested_by_email: str
    successor_execution_id: uuid.UUID | None
    lease_owner: str | None
    lease_expires_at: datetime | None


def single_retries(session: Session) -> list[SingleRetry]:
    """Every retry recorded, oldest first; each must be a single retry: a batch of kind
    "single" of one row, its one item at position 0 of chunk 0, naming that row."""
    batches = session.scalars(
        select(RetryBatch).order_by(RetryBatch.created_at).execution_options(populate_existing=True)
    ).all()
    found = []
    for batch in batches:
        items = session.scalars(
            select(RetryBatchItem)
            .where(RetryBatchItem.batch_id == batch.id)
            .execution_options(populate_existing=True)
        ).all()
        assert (batch.kind, batch.total, len(items)) == ("single", 1, 1), batch
        [item] = items
        assert (item.position, item.chunk) == (0, 0), item
        assert batch.selection == {"execution_id": item.execution_id}, batch.selection
        found.append(
            SingleRetry(
                id=batch.id,
                execution_id=uuid.UUID(item.execution_id),
                state=item.state,
                force=batch.force,
                requested_by_user_id=batch.requested_by_user_id,
                requested_by_email=batch.requested_by_email,
                successor_execution_id=item.successor_execution_id,
                lease_owner=item.lease_owner,
                lease_expires_at=item.lease_expires_at,
            )
        )
    return found


def queue_single_retry(
    session: Session, execution: PurchaseExecution, requester: User | None
) -> RetryBatch:
    """A queued single retry of `execution` by `requester` (None: by the scheduler),
    written directly, without the retry's checks."""
    batch = RetryBatch(
        kind="single",
        requested_by_user_id=requester.id if requester else None,
        requested_by_email=requester.email if requester else "scheduler",
        total=1,
        selection={"execution_id": str(execution.execution_id)},
    )
    session.add(batch)
    session.flush()
    session.add(
        RetryBatchItem(
            batch_id=batch.id,
            position=0,
            chunk=0,
            execution_id=str(execution.execution_id),
            state="queued",
        )
    )
    session.flush()
    return batch
