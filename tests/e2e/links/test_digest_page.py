"""A bulk retry's digest and its "approve the ticked ones" page, end to end: a real
bulk retry through the Celery worker sends the digest to the SMTP server; its page link
is followed as the recipient's mail client would (no session). The page changes
nothing; its POST approves exactly the ticked rows, each through its own approve link's
checks (a row no longer pending, or another digest's, is refused on its own)."""

from __future__ import annotations

import re
from collections import Counter
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from sqlalchemy import select

from app.db import fresh_read, unit_of_work
from app.domain.rbac import Action
from app.domain.statuses import Status
from app.models import AuditEvent, PurchaseExecution
from app.services import approvals
from app.services.identity import principal_for
from tests.e2e.links.test_email_links import MailClient
from tests.factories import make_account, make_user
from tests.integration.tasks.flows import failed_row
from tests.integration.tasks.test_bulk_retry import ask, done
from tests.support.commands import wait_until

pytestmark = pytest.mark.worker

CONTACT = "finops@example.com"


def statuses(ids) -> dict[str, str]:
    with fresh_read() as session:
        rows = session.execute(
            select(PurchaseExecution.execution_id, PurchaseExecution.status).where(
                PurchaseExecution.execution_id.in_(list(ids))
            )
        ).all()
    return {str(execution_id): status for execution_id, status in rows}


def page_token(mailbox: Any) -> str:
    (envelope,) = mailbox.messages
    message = message_from_bytes(envelope.original_content, policy=default_policy)
    text = message.get_body(("plain",)).get_content()
    (url,) = re.findall(r"http://\S+/purchases/digest\?token=\S+", text)
    (token,) = parse_qs(urlsplit(url).query)["token"]
    return token


def test_the_page_approves_the_ticked_rows_only_each_checked(
    app: Flask, committed_db, celery_worker, mailbox
):
    with unit_of_work() as session:
        alice = make_user(session, groups=("Purchasers",))
        account = make_account(session, contact_email=CONTACT)
        rows = [failed_row(session, alice, cloud_account_id=account.id) for _ in range(4)]
        other = failed_row(session, alice)  # another account: not in this digest
        admin = make_user(session, groups=("Administrators",))
    batch = ask(alice, {"execution_ids": [str(row.execution_id) for row in rows]})
    successors = [item["successor_execution_id"] for item in done(batch.id)["items"]]
    wait_until(lambda: mailbox.messages, what="the digest")
    token = page_token(mailbox)
    # One of them is cancelled in the panel before the page is used.
    with unit_of_work() as session:
        principal = principal_for(session.merge(admin))
    approvals.decide(principal, successors[3], Action.CANCEL)

    reader = MailClient(app, "203.0.113.20")
    page = reader.get(f"/purchases/digest?token={token}")
    assert page.status_code == 200, page.text
    assert sorted(re.findall(r'data-digest-row="([0-9a-f-]{36})"', page.text)) == sorted(successors)
    ticks = re.findall(r'name="execution_id" value="([0-9a-f-]{36})"', page.text)
    assert sorted(ticks) == sorted(successors[:3])  # the cancelled one has no box
    assert "$12,600.00 upfront" in page.text  # three pending rows of $4,200.00
    assert set(statuses(successors).values()) == {"pending", "cancelled"}  # GET changed nothing

    answer = reader._isolated(
        reader.client.post,
        "/purchases/digest",
        data={
            "token": token,
            "execution_id": [
                successors[0],
                successors[2],
                successors[3],  # cancelled meanwhile
                str(other.execution_id),  # not this digest's
            ],
        },
    )
    assert answer.status_code == 200, answer.text
    outcomes = dict(re.findall(r'data-decided-row="([^"]+)" data-outcome="([^"]+)"', answer.text))
    assert outcomes == {
        successors[0]: "approved",
        successors[2]: "approved",
        successors[3]: "refused",
        str(other.execution_id): "refused",
    }
    assert "only pending executions can be approved; this one is cancelled" in answer.text
    assert "not a purchase of this digest" in answer.text
    now = statuses(successors)
    assert now[successors[1]] == Status.PENDING  # not ticked: untouched
    assert now[successors[3]] == Status.CANCELLED
    assert now[successors[0]] in {"approved", "running", "completed"}
    assert now[successors[2]] in {"approved", "running", "completed"}
    with fresh_read() as session:
        approved = session.execute(
            select(AuditEvent.execution_id, AuditEvent.actor_email, AuditEvent.details).where(
                AuditEvent.action == "execution.approved"
            )
        ).all()
    assert sorted(str(row.execution_id) for row in approved) == sorted(
        [successors[0], successors[2]]
    )
    assert {row.actor_email for row in approved} == {CONTACT}
    assert all(row.details["via"] == "digest" for row in approved)

    # The link a row's approval consumed is used: the page cannot approve it twice.
    again = reader._isolated(
        reader.client.post,
        "/purchases/digest",
        data={"token": token, "execution_id": [successors[0]]},
    )
    assert 'data-outcome="refused"' in again.text


@pytest.mark.parametrize(
    "token",
    ["", "x" * 201, "not-a-token"],
)
def test_a_bad_page_link_is_refused_and_changes_nothing(app: Flask, committed_db, token):
    reader = MailClient(app, "203.0.113.21")
    page = reader.get(f"/purchases/digest?token={token}")
    assert page.status_code == 403
    assert "this link is not valid" in page.text
    posted = reader._isolated(
        reader.client.post, "/purchases/digest", data={"token": token, "execution_id": ["x"]}
    )
    assert posted.status_code == 403
    with fresh_read() as session:
        assert Counter(session.scalars(select(AuditEvent.action))) == Counter()
