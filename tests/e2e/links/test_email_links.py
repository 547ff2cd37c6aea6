"""The approval email's links, end to end (docs/operations.md, "The email links").

A real retry through the Celery worker makes a successor and sends its approval email
to the test SMTP server. The links are read from the text part of the message the
server received and followed with Flask's test client, as the recipient's mail client
would: GET shows what the link would do and changes nothing; POST acts, once, as the
email's recipient. Every refusal (tampered, another action's or row's token, expired,
used, a row no longer pending, too many tries) is a page that says why, and leaves the
rows and the approval tokens as they were. An approval queues `purchases.execute`,
which the worker runs to the end (`running`, then `completed`).
"""

from __future__ import annotations

import contextvars
import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from sqlalchemy import func, select, update
from werkzeug.test import TestResponse

from app.db import fresh_read, unit_of_work, utcnow
from app.domain.statuses import IN_FLIGHT, Status
from app.models import (
    ApprovalToken,
    AuditEvent,
    ProviderPurchase,
    PurchaseExecution,
    PurchaseSuppression,
)
from tests.factories import make_account, make_user
from tests.integration.tasks.flows import email_settled, failed_row, queue_retry, settled
from tests.support.commands import wait_until

pytestmark = pytest.mark.worker

ACTIONS = ("approve", "cancel")
# The predecessor's items (tests.integration.tasks.flows.failed_row): count, type, region.
ITEMS = [
    ("2", "m5.large", "us-east-1"),
    ("1", "c5.xlarge", "us-east-1"),
    ("3", "r5.large", "eu-west-1"),
]
INVALID = "this link is not valid"


# --- The email -------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalEmail:
    """One approval email as the SMTP server received it."""

    execution_id: uuid.UUID
    recipient: str
    links: dict[str, str]  # action -> the link's path and query, as the email has it

    def token(self, action: str) -> str:
        (token,) = parse_qs(urlsplit(self.links[action]).query)["token"]
        return token

    def path(self, action: str) -> str:
        return urlsplit(self.links[action]).path


def read_approval_email(envelope: Any) -> ApprovalEmail:
    """The recipient and the two links, from the text part of the received message."""
    message = message_from_bytes(envelope.original_content, policy=default_policy)
    text = message.get_body(("plain",)).get_content()
    links: dict[str, str] = {}
    for action in ACTIONS:
        line = next(line for line in text.splitlines() if line.startswith(f"{action.title()}:"))
        url = urlsplit(line.split(":", 1)[1].strip())
        assert (url.scheme, url.netloc) == ("http", "127.0.0.1:5000")  # APP_BASE_URL
        links[action] = f"{url.path}?{url.query}"
    match = re.fullmatch(r"/purchases/approve/([0-9a-f-]{36})", urlsplit(links["approve"]).path)
    assert match, links
    (recipient,) = envelope.rcpt_tos
    assert message["To"] == recipient
    return ApprovalEmail(uuid.UUID(match.group(1)), recipient, links)


@pytest.fixture
def send_approval_emails(
    committed_db: Any, celery_worker: None, mailbox: Any
) -> Callable[[int], list[ApprovalEmail]]:
    """`send_approval_emails(n)`: n failed rows (each on an account of its own, whose
    contact `finops-<i>@example.com` is the email's recipient), each retried through the
    worker; the approval email of each pending successor, in that order. The Redis
    database (broker and rate limit counts) was flushed for the test by `celery_worker`."""

    def send(count: int) -> list[ApprovalEmail]:
        with unit_of_work() as session:
            creator = make_user(session)
            failed = []
            for index in range(count):
                account = make_account(session, contact_email=f"finops-{index}@example.com")
                account.name = f"Payments {index}"
                row = failed_row(session, creator, cloud_account_id=account.id)
                failed.append(row.execution_id)
        requests = [queue_retry(creator, row_id) for row_id in failed]
        successors = []
        for request_id in requests:
            outcome = settled(request_id)
            assert outcome.state == "succeeded", outcome.error
            successors.append(outcome.successor_execution_id)
        for successor in successors:
            assert email_settled(successor).status == Status.PENDING
        wait_until(lambda: len(mailbox.messages) >= count, what=f"{count} approval emails")
        assert len(mailbox.messages) == count
        received = {
            email.execution_id: email for email in map(read_approval_email, mailbox.messages)
        }
        assert set(received) == set(successors)
        return [received[successor] for successor in successors]

    return send


# --- The recipient's mail client -------------------------------------------------------


class MailClient:
    """Follows links as a recipient's browser does: no session, one client address.

    Each request runs in a fresh `contextvars.Context`, so it pushes an application
    context (and gets a database session) of its own, as in production; otherwise it
    would share the one `committed_db` holds open for the test, and with it the test's
    session and identity map.
    """

    def __init__(self, app: Flask, address: str) -> None:
        self.client = app.test_client()
        self.client.environ_base["REMOTE_ADDR"] = address

    def _isolated(
        self, call: Callable[..., TestResponse], *args: Any, **kwargs: Any
    ) -> TestResponse:
        return contextvars.Context().run(call, *args, **kwargs)

    def get(self, url: str) -> TestResponse:
        return self._isolated(self.client.get, url)

    def post(self, path: str, token: str | None) -> TestResponse:
        """The page's form: `token` in a hidden field, posted to the link's path."""
        return self._isolated(
            self.client.post, path, data={} if token is None else {"token": token}
        )

    def confirm(self, page: TestResponse) -> TestResponse:
        """Press the confirmation page's button: submit its form as it is."""
        assert page.status_code == 200, page.text
        form = re.search(r'<form method="post" action="([^"]+)">', page.text)
        token = re.search(r'<input type="hidden" name="token" value="([^"]*)">', page.text)
        assert form and token, "no form with a token on the confirmation page"
        return self.post(unescape(form.group(1)), unescape(token.group(1)))

    def api(self, action: str, execution_id: uuid.UUID, token: str) -> TestResponse:
        """The JSON API's token path: no session, no CSRF token, the token in the body."""
        url = f"/api/purchases/{action}/{execution_id}"
        return self._isolated(self.client.post, url, json={"token": token})


@pytest.fixture
def mail_client(app: Flask) -> MailClient:
    return MailClient(app, "203.0.113.10")


# --- What a link may change -------------------------------------------------------------


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def state_of(*emails: ApprovalEmail) -> dict[str, Any]:
    """Everything a link may change, read fresh: each row's decision (status, who
    decided) and suppressions, and every approval token (expiry, use)."""
    ids = [email.execution_id for email in emails]
    columns = (
        PurchaseExecution.status,
        PurchaseExecution.approved_by,
        PurchaseExecution.approved_by_user_id,
        PurchaseExecution.cancelled_by,
    )
    with fresh_read() as session:
        rows = {}
        for row in session.execute(
            select(PurchaseExecution.execution_id, *columns).where(
                PurchaseExecution.execution_id.in_(ids)
            )
        ):
            decision = row._asdict()
            rows[decision.pop("execution_id")] = decision
        suppressions = dict(
            session.execute(
                select(PurchaseSuppression.execution_id, func.count())
                .where(PurchaseSuppression.execution_id.in_(ids))
                .group_by(PurchaseSuppression.execution_id)
            ).all()
        )
        tokens = [
            tuple(token)
            for token in session.execute(
                select(
                    ApprovalToken.token_hash,
                    ApprovalToken.execution_id,
                    ApprovalToken.action,
                    ApprovalToken.recipient,
                    ApprovalToken.expires_at,
                    ApprovalToken.used_at,
                ).order_by(ApprovalToken.token_hash)
            )
        ]
    assert set(rows) == set(ids)
    return {"rows": rows, "suppressions": suppressions, "tokens": tokens}


def token_row(token: str) -> ApprovalToken:
    with fresh_read() as session:
        found = session.scalars(
            select(ApprovalToken)
            .where(ApprovalToken.token_hash == sha256(token))
            .execution_options(populate_existing=True)
        ).one()
        session.expunge(found)
        return found


def link_refusals_audited() -> list[tuple[str, uuid.UUID | None, int]]:
    """(action, execution, HTTP status) of each refusal of a link's decision in the trail."""
    with fresh_read() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("%_refused")).order_by(AuditEvent.id)
        ).all()
        return [
            (event.action, event.execution_id, event.details["status"])
            for event in events
            if event.details.get("via") == "link"
        ]


def status_of(execution_id: uuid.UUID) -> str:
    with fresh_read() as session:
        return session.scalar(
            select(PurchaseExecution.status).where(PurchaseExecution.execution_id == execution_id)
        )


def ran_to_the_end(execution_id: uuid.UUID) -> str:
    """Wait for the worker's `purchases.execute` to settle the approved row."""

    def settled_status() -> str | None:
        status = status_of(execution_id)
        return status if status not in IN_FLIGHT else None

    return wait_until(settled_status, timeout=30, what=f"{execution_id} to run to the end")


def error_of(response: TestResponse) -> str:
    """The message of an error page."""
    match = re.search(r"<p role=\"alert\" data-error>(.*?)</p>", response.text, re.S)
    assert match, response.text
    return unescape(match.group(1))


def assert_refused(response: TestResponse, status: int, says: str, case: str = "") -> None:
    """An error page with `status` whose message contains `says`."""
    assert response.status_code == status, (case, response.text)
    assert f'data-error-status="{status}"' in response.text, case
    assert says in error_of(response), (case, error_of(response))
    assert "data-outcome" not in response.text, case


# --- GET: what the link would do ------------------------------------------------------


def test_the_approve_page_shows_the_purchase_and_changes_nothing(send_approval_emails, mail_client):
    [email] = send_approval_emails(1)
    before = state_of(email)

    page = mail_client.get(email.links["approve"])
    assert page.status_code == 200, page.text
    html = page.text
    assert "Account Payments 0 (aws 123456789012)" in html
    assert "Total upfront cost: $4,200.00" in html and "Estimated savings: $310.25" in html
    lines = [unescape(line) for line in re.findall(r"<li data-recommendation>(.*?)</li>", html)]
    assert len(lines) == len(ITEMS)
    for line, (count, resource_type, region) in zip(lines, ITEMS, strict=True):
        assert line.startswith(f"{count} × aws ec2 {resource_type} in {region}"), line  # noqa: RUF001
    assert f'data-action="approve" data-execution-id="{email.execution_id}"' in html
    assert f"Approve as {email.recipient}" in html
    # The token stays out of shared caches and of the Referer of anything the page loads.
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"

    assert mail_client.get(email.links["approve"]).status_code == 200  # a mail scanner, again
    cancel_page = mail_client.get(email.links["cancel"])
    assert cancel_page.status_code == 200
    assert f'data-action="cancel" data-execution-id="{email.execution_id}"' in cancel_page.text
    assert state_of(email) == before
    assert before["rows"][email.execution_id]["status"] == Status.PENDING
    assert token_row(email.token("approve")).used_at is None
    assert token_row(email.token("cancel")).used_at is None


# --- POST: acting, once ----------------------------------------------------------------


def test_the_approve_link_approves_once_as_the_recipient(send_approval_emails, mail_client):
    [email] = send_approval_emails(1)

    done = mail_client.confirm(mail_client.get(email.links["approve"]))
    assert done.status_code == 200, done.text
    assert '<h1 data-outcome="approved">' in done.text
    assert email.recipient in done.text
    approved = state_of(email)["rows"][email.execution_id]
    assert approved["status"] in {Status.APPROVED, Status.RUNNING, Status.COMPLETED}
    assert approved["approved_by"] == email.recipient  # not the creator: the email's reader
    assert approved["approved_by_user_id"] is None
    assert approved["cancelled_by"] is None
    assert token_row(email.token("approve")).used_at is not None
    assert token_row(email.token("cancel")).used_at is None

    # The worker runs the queued purchase: one purchase per item, bought once.
    assert ran_to_the_end(email.execution_id) == Status.COMPLETED
    with fresh_read() as session:
        bought = session.scalar(
            select(func.count())
            .select_from(ProviderPurchase)
            .where(ProviderPurchase.execution_id == email.execution_id)
        )
    assert bought == len(ITEMS)

    after = state_of(email)
    again = mail_client.post(email.path("approve"), email.token("approve"))
    assert_refused(again, 403, "already been used")
    assert_refused(mail_client.get(email.links["approve"]), 403, "already been used")
    assert state_of(email) == after

    # The cancel link is still unused, but the row is no longer pending.
    for refused in (
        mail_client.get(email.links["cancel"]),
        mail_client.post(email.path("cancel"), email.token("cancel")),
    ):
        assert_refused(refused, 409, "only pending executions can be cancelled")
        assert "this one is completed" in error_of(refused)
    assert state_of(email) == after
    assert token_row(email.token("cancel")).used_at is None


def test_the_cancel_link_cancels_another_pending_row(send_approval_emails, mail_client):
    approved, cancelled = send_approval_emails(2)
    assert mail_client.confirm(mail_client.get(approved.links["approve"])).status_code == 200
    assert state_of(cancelled)["suppressions"] == {cancelled.execution_id: 3}

    done = mail_client.confirm(mail_client.get(cancelled.links["cancel"]))
    assert done.status_code == 200, done.text
    assert '<h1 data-outcome="cancelled">' in done.text
    state = state_of(cancelled)
    assert state["rows"][cancelled.execution_id] == {
        "status": Status.CANCELLED,
        "approved_by": None,
        "approved_by_user_id": None,
        "cancelled_by": cancelled.recipient,
    }
    assert state["suppressions"] == {}  # nothing in flight any more: they went with it
    assert token_row(cancelled.token("cancel")).used_at is not None
    assert token_row(cancelled.token("approve")).used_at is None

    refused = mail_client.post(cancelled.path("approve"), cancelled.token("approve"))
    assert_refused(refused, 409, "this one is cancelled")
    assert state_of(cancelled) == state
    # The other row's decision stands on its own.
    assert status_of(approved.execution_id) != Status.CANCELLED
    assert ran_to_the_end(approved.execution_id) == Status.COMPLETED


# --- Refusals change nothing ------------------------------------------------------------


def tampered(token: str) -> str:
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def test_links_that_do_not_open_this_action_on_this_row_change_nothing(
    app, settings, monkeypatch, send_approval_emails, mail_client
):
    # Twenty-odd tries here; the rate limit has its own test.
    monkeypatch.setitem(
        app.extensions, "settings", settings.with_overrides(link_rate_limit="200 per minute")
    )
    mine, other = send_approval_emails(2)
    approve_path = mine.path("approve")
    cases = [
        ("tampered", approve_path, tampered(mine.token("approve")), 403, INVALID),
        ("the cancel token", approve_path, mine.token("cancel"), 403, INVALID),
        ("another row's", approve_path, other.token("approve"), 403, INVALID),
        ("another row's cancel", mine.path("cancel"), other.token("cancel"), 403, INVALID),
        ("no token", approve_path, None, 403, INVALID),
        (
            "an unknown row",
            f"/purchases/approve/{uuid.uuid4()}",
            mine.token("approve"),
            404,
            "no execution",
        ),
        ("a malformed id", "/purchases/approve/not-an-id", mine.token("approve"), 400, "malformed"),
    ]
    before = state_of(mine, other)
    assert link_refusals_audited() == []
    for name, path, token, status, says in cases:
        query = f"?token={token}" if token is not None else ""
        assert_refused(mail_client.get(path + query), status, says, f"GET, {name}")
        assert_refused(mail_client.post(path, token), status, says, f"POST, {name}")
        assert state_of(mine, other) == before, name
    # Each refused POST is in the trail (a GET only looks); the trail does not tell whose
    # token was tried, only which row it was tried on, if the row exists.
    refused_here = ("execution.approve_refused", mine.execution_id, 403)
    assert link_refusals_audited() == [
        refused_here,
        refused_here,
        refused_here,
        ("execution.cancel_refused", mine.execution_id, 403),
        refused_here,
        ("execution.approve_refused", None, 404),
        ("execution.approve_refused", None, 400),
    ]

    # An expired link, otherwise good.
    with unit_of_work() as session:
        session.execute(
            update(ApprovalToken)
            .where(ApprovalToken.token_hash == sha256(mine.token("approve")))
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    before = state_of(mine, other)
    assert_refused(mail_client.get(mine.links["approve"]), 403, "has expired")
    assert_refused(mail_client.post(approve_path, mine.token("approve")), 403, "has expired")
    expired = mail_client.api("approve", mine.execution_id, mine.token("approve"))
    assert expired.status_code == 403 and "has expired" in expired.json["error"]
    assert state_of(mine, other) == before
    assert link_refusals_audited()[-2:] == [refused_here, refused_here]
    assert before["rows"][mine.execution_id]["status"] == Status.PENDING

    # None of those tries used up a link: this row's cancel link still works.
    done = mail_client.confirm(mail_client.get(mine.links["cancel"]))
    assert '<h1 data-outcome="cancelled">' in done.text
    assert state_of(mine)["rows"][mine.execution_id]["cancelled_by"] == mine.recipient
    assert state_of(other)["rows"][other.execution_id]["status"] == Status.PENDING


# --- The JSON API's token path ----------------------------------------------------------


def test_the_api_takes_the_email_token_once(send_approval_emails, mail_client):
    [email] = send_approval_emails(1)

    response = mail_client.api("approve", email.execution_id, email.token("approve"))
    assert response.status_code == 200, response.json
    assert response.json == {
        "execution_id": str(email.execution_id),
        "status": "approved",
        "approved_by": email.recipient,
        "cancelled_by": None,
    }
    assert ran_to_the_end(email.execution_id) == Status.COMPLETED
    after = state_of(email)
    assert token_row(email.token("approve")).used_at is not None

    again = mail_client.api("approve", email.execution_id, email.token("approve"))
    assert again.status_code == 403, again.json
    assert set(again.json) == {"error"} and "already been used" in again.json["error"]
    wrong_state = mail_client.api("cancel", email.execution_id, email.token("cancel"))
    assert wrong_state.status_code == 409, wrong_state.json
    assert wrong_state.json["status"] == Status.COMPLETED
    assert state_of(email) == after


# --- The rate limit ---------------------------------------------------------------------


def test_over_the_rate_limit_links_answer_429_and_change_nothing(
    app, settings, monkeypatch, send_approval_emails, mail_client
):
    [email] = send_approval_emails(1)
    first = mail_client.get(email.links["approve"])
    assert first.headers["X-RateLimit-Limit"] == "20"  # LINK_RATE_LIMIT's default
    # The limit is read per request: lowering it takes effect at once. (A limit's count
    # is kept under its value, so the request above does not count against this one.)
    monkeypatch.setitem(
        app.extensions, "settings", settings.with_overrides(link_rate_limit="3 per minute")
    )
    before = state_of(email)

    for _ in range(3):
        page = mail_client.get(email.links["approve"])
        assert page.status_code == 200, page.text
        assert page.headers["X-RateLimit-Limit"] == "3"
    over = mail_client.post(email.path("approve"), email.token("approve"))
    assert_refused(over, 429, "too many attempts")
    over_api = mail_client.api("approve", email.execution_id, email.token("approve"))
    assert over_api.status_code == 429, over_api.json
    assert set(over_api.json) == {"error"}
    for refused in (over, over_api):
        assert int(refused.headers["Retry-After"]) > 0
    assert_refused(mail_client.get(email.links["cancel"]), 429, "too many attempts")
    assert state_of(email) == before  # still pending, both tokens unused

    # Per client address: another address has its own budget, and the link still works.
    elsewhere = MailClient(app, "198.51.100.20")
    done = elsewhere.post(email.path("approve"), email.token("approve"))
    assert '<h1 data-outcome="approved">' in done.text, done.text
    assert state_of(email)["rows"][email.execution_id]["approved_by"] == email.recipient
    assert ran_to_the_end(email.execution_id) == Status.COMPLETED
