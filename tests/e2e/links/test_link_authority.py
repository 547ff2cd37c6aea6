"""A link never carries more authority than its recipient.

The findings these tests close, each of which bought a purchase nobody allowed:

- the approval email of an account with no contact went to the row's creator, who held
  no approve permission at all; the link approved, and it still did once the creator
  was deactivated (the link path checked four-eyes only);
- a retrier with `retry-any` but only `approve-own` retried a row nobody created; the
  successor named them its creator, so `approve-own` let them approve it.

The approval email now goes only to people who may approve the row now; a link sent to
a user acts as that user, checked at the click; a successor stays the lineage's
creator's, with its retrier recorded beside it; four-eyes refuses both, and asks a
link's recipient to sign in before approving.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.domain.approvals import NO_APPROVER, ApprovalPolicy
from app.domain.retry import RetryPolicy, persistent_hint
from app.domain.statuses import Status
from app.models import ApprovalToken, Notification, PurchaseExecution, PurchaseSuppression, User
from app.services import link_tokens, notifications, retry_settle
from app.services.identity import create_group, deactivate, principal_for
from tests.e2e.helpers import sign_in
from tests.factories import make_account, make_execution, make_user, recommendation
from tests.support.retries import request_retry, request_state

POLICY = RetryPolicy(threshold=5)
ANYONE = ApprovalPolicy()


@pytest.fixture
def outbox(app: Flask, db_session: Session, mailbox, settings):
    """An app context on the test's rolled-back transaction (the services' session)."""
    with app.app_context():
        yield settings


@pytest.fixture
def four_eyes(app: Flask, settings, monkeypatch):
    """This app, for one test, with REQUIRE_DIFFERENT_APPROVER=true."""
    changed = settings.with_overrides(require_different_approver=True)
    monkeypatch.setitem(app.extensions, "settings", changed)
    return changed


def four_eyes_policy(settings) -> ApprovalPolicy:
    return ApprovalPolicy(require_different_approver=settings.require_different_approver)


def retry_only_user(session: Session) -> User:
    """Someone who may view and retry their own rows, and approve nothing."""
    create_group(
        session,
        "Retry desk",
        ["view:purchases", "retry-own:purchases", "cancel-own:purchases"],
        restricts_defaults=True,
    )
    return make_user(session, "retrier@example.com", groups=("Retry desk",))


def failed_row(session: Session, creator: User | None, *, contact: str | None = None):
    account = make_account(session, contact_email=contact)
    return make_execution(
        session,
        Status.FAILED,
        created_by=creator,
        cloud_account_id=account.id,
        error="InsufficientInstanceCapacity",
        recommendations=[recommendation()],
    )


def retried(
    session: Session, row: PurchaseExecution, retrier: User, approvals=ANYONE
) -> PurchaseExecution:
    """The successor of `row`, retried by `retrier` through the retry service: the
    request recorded, then its one chunk claimed and settled as the worker does."""
    request = request_retry(session, principal_for(retrier), row.execution_id, policy=POLICY)
    now = utcnow()
    assert retry_settle.claim_chunk(session, request.id, 0, owner="test-worker", now=now) == 1
    retry_settle.settle_chunk(
        session,
        request.id,
        0,
        owner="test-worker",
        policy=POLICY,
        approvals=approvals,
        grace=timedelta(days=7),
        now=now,
    )
    settled = request_state(session, request.id)
    assert settled.state == "succeeded", settled.error
    successor = session.get(PurchaseExecution, settled.successor_execution_id)
    assert successor is not None
    return successor


def email_to(session: Session, execution: PurchaseExecution, settings) -> list[str]:
    emails = notifications.claim_approval_email(
        session, execution.execution_id, owner="test-worker", settings=settings, now=utcnow()
    )
    return [email.recipient for email in emails]


def link(session: Session, execution: PurchaseExecution, recipient: str, settings) -> dict:
    """Fresh approve and cancel links for `recipient`, as an approval email carries."""
    issued = link_tokens.issue_links(session, execution, recipient, settings=settings, now=utcnow())
    session.flush()
    return {"approve": issued.links.approve, "cancel": issued.links.cancel}


def path_of(url: str) -> str:
    return url.removeprefix("http://127.0.0.1:5000")


def status_of(session: Session, execution: PurchaseExecution) -> str:
    return session.get(PurchaseExecution, execution.execution_id, populate_existing=True).status


# --- Who the approval email goes to --------------------------------------------------


def test_a_creator_who_may_not_approve_gets_no_email_the_approvers_do(db_session, outbox):
    """(Before: with no contact on the account, the email went to the creator, whose
    link then approved although they held no approve permission.)"""
    creator = retry_only_user(db_session)
    purchaser = make_user(db_session, "purchaser@example.com", groups=("Purchasers",))
    admin = make_user(db_session, "admin@example.com", groups=("Administrators",))
    gone = make_user(db_session, "gone@example.com", groups=("Purchasers",))
    deactivate(db_session, gone.email)
    make_user(db_session, "viewer@example.com", groups=("Read-only",))
    successor = retried(db_session, failed_row(db_session, creator), creator)
    assert successor.created_by_user_id == creator.id
    assert successor.retried_by_user_id == creator.id

    assert email_to(db_session, successor, outbox) == [admin.email, purchaser.email]
    tokens = db_session.scalars(
        select(ApprovalToken.recipient).where(ApprovalToken.execution_id == successor.execution_id)
    ).all()
    assert sorted(tokens) == sorted([admin.email, purchaser.email] * 2)  # their own links


def test_when_nobody_may_approve_the_successor_fails_at_once_with_the_hint(db_session, outbox):
    """In the retry's own transaction: no email is owed that nobody could act on."""
    creator = retry_only_user(db_session)
    successor = retried(db_session, failed_row(db_session, creator), creator)

    failed = db_session.get(PurchaseExecution, successor.execution_id, populate_existing=True)
    assert (failed.status, failed.error) == (Status.FAILED, NO_APPROVER)
    assert "contact email" in persistent_hint(failed, POLICY)
    assert (
        db_session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.execution_id == successor.execution_id)
        )
        == 0
    )
    assert (
        db_session.scalar(
            select(func.count())
            .select_from(PurchaseSuppression)
            .where(PurchaseSuppression.execution_id == successor.execution_id)
        )
        == 0
    )


def test_when_the_last_approver_goes_before_the_email_the_row_fails_then(db_session, outbox):
    """Recipients are chosen when the email is due: permissions change in between."""
    creator = retry_only_user(db_session)
    purchaser = make_user(db_session, "purchaser@example.com", groups=("Purchasers",))
    successor = retried(db_session, failed_row(db_session, creator), creator)
    deactivate(db_session, purchaser.email)
    db_session.flush()

    assert email_to(db_session, successor, outbox) == []
    failed = db_session.get(PurchaseExecution, successor.execution_id, populate_existing=True)
    assert (failed.status, failed.error) == (Status.FAILED, NO_APPROVER)


def test_a_contact_address_of_no_user_still_decides_by_its_token(db_session, outbox):
    creator = retry_only_user(db_session)
    successor = retried(
        db_session, failed_row(db_session, creator, contact="finops@example.com"), creator
    )
    assert email_to(db_session, successor, outbox) == ["finops@example.com"]


def test_the_panel_says_so_when_nobody_will_be_able_to_approve_the_retry(client, db_session, app):
    creator = retry_only_user(db_session)
    row = failed_row(db_session, creator)
    csrf = sign_in(client, creator)
    response = client.post(
        f"/admin/purchases/retry/{row.execution_id}",
        data={"csrf_token": csrf},
        follow_redirects=True,
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Retry of" in page and "queued" in page
    assert f"Nobody may approve the retry of {row.execution_id}" in page
    assert NO_APPROVER in page


# --- A link acts as its recipient ----------------------------------------------------


def test_a_link_sent_to_a_user_who_may_not_approve_is_refused_at_the_click(
    client, db_session, outbox
):
    """(Before: the approve link of a creator without approve permission approved.)"""
    creator = retry_only_user(db_session)
    row = make_execution(db_session, Status.PENDING, created_by=creator)
    links = link(db_session, row, creator.email, outbox)

    shown = client.get(path_of(links["approve"]))
    assert shown.status_code == 403
    assert "approve-own:purchases" in shown.get_data(as_text=True)
    acted = client.post(path_of(links["approve"]))
    assert acted.status_code == 403
    assert status_of(db_session, row) == Status.PENDING
    assert db_session.scalars(
        select(ApprovalToken.used_at).where(ApprovalToken.execution_id == row.execution_id)
    ).all() == [None, None]
    # The same recipient may cancel their own purchase: cancel-own is theirs.
    assert client.post(path_of(links["cancel"])).status_code == 200
    assert status_of(db_session, row) == Status.CANCELLED


def test_a_link_sent_to_a_user_stops_working_when_they_are_deactivated(client, db_session, outbox):
    """(Before: the link still approved after its recipient was deactivated.)"""
    purchaser = make_user(db_session, "purchaser@example.com", groups=("Purchasers",))
    row = make_execution(db_session, Status.PENDING, created_by=None)
    links = link(db_session, row, purchaser.email, outbox)
    deactivate(db_session, purchaser.email)
    db_session.flush()

    refused = client.post(path_of(links["approve"]))
    assert refused.status_code == 403
    assert "no longer active" in refused.get_data(as_text=True)
    assert status_of(db_session, row) == Status.PENDING


def test_a_users_link_approves_as_that_user_whom_the_executor_checks_again(
    client, db_session, outbox
):
    purchaser = make_user(db_session, "purchaser@example.com", groups=("Purchasers",))
    row = make_execution(db_session, Status.PENDING, created_by=None)
    links = link(db_session, row, purchaser.email, outbox)

    assert client.post(path_of(links["approve"])).status_code == 200
    approved = db_session.get(PurchaseExecution, row.execution_id, populate_existing=True)
    assert approved.status == Status.APPROVED
    assert (approved.approved_by, approved.approved_by_user_id) == (purchaser.email, purchaser.id)


# --- Retry never borrows approval ----------------------------------------------------


def test_retrying_a_row_nobody_created_does_not_make_the_retrier_its_approver(
    client, db_session, outbox
):
    """(Before: the successor named the retrier its creator, so `approve-own` let them
    approve it, and the executor bought it.)"""
    create_group(db_session, "Retry any", ["retry-any:purchases"])
    retrier = make_user(db_session, "retrier@example.com", groups=("Retry any",))
    make_user(db_session, "admin@example.com", groups=("Administrators",))
    successor = retried(db_session, failed_row(db_session, None), retrier)
    assert (successor.created_by_user_id, successor.retried_by_user_id) == (None, retrier.id)

    csrf = sign_in(client, retrier)
    response = client.post(
        f"/api/purchases/approve/{successor.execution_id}", headers={"X-CSRFToken": csrf}
    )
    assert response.status_code == 403
    assert "approve-any:purchases" in response.json["error"]
    assert status_of(db_session, successor) == Status.PENDING
    assert retrier.email not in email_to(db_session, successor, outbox)


# --- Four-eyes -----------------------------------------------------------------------


def test_four_eyes_refuses_the_retrier_in_their_session(client, db_session, four_eyes):
    creator = make_user(db_session, "creator@example.com")
    purchaser = make_user(db_session, "purchaser@example.com", groups=("Purchasers",))
    make_user(db_session, "other@example.com", groups=("Purchasers",))
    successor = retried(
        db_session, failed_row(db_session, creator), purchaser, four_eyes_policy(four_eyes)
    )

    csrf = sign_in(client, purchaser)
    response = client.post(
        f"/api/purchases/approve/{successor.execution_id}", headers={"X-CSRFToken": csrf}
    )
    assert response.status_code == 403
    assert "you retried it" in response.json["error"]
    assert status_of(db_session, successor) == Status.PENDING


def test_with_four_eyes_a_users_link_asks_them_to_sign_in_then_acts_as_them(
    client, db_session, four_eyes
):
    creator = make_user(db_session, "creator@example.com")
    purchaser = make_user(db_session, "purchaser@example.com", groups=("Purchasers",))
    other = make_user(db_session, "other@example.com", groups=("Purchasers",))
    row = make_execution(db_session, Status.PENDING, created_by=creator)
    approve = path_of(link(db_session, row, purchaser.email, four_eyes)["approve"])

    page = client.get(approve)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'data-sign-in-as="{purchaser.email}"' in html
    assert "data-action=" not in html  # no button until they have signed in
    assert client.post(approve).status_code == 403
    assert status_of(db_session, row) == Status.PENDING

    sign_in(client, other)  # someone else's session does not do either
    assert client.post(approve).status_code == 403
    assert status_of(db_session, row) == Status.PENDING

    sign_in(client, purchaser)
    assert 'data-action="approve"' in client.get(approve).get_data(as_text=True)
    assert client.post(approve).status_code == 200
    approved = db_session.get(PurchaseExecution, row.execution_id, populate_existing=True)
    assert (approved.status, approved.approved_by_user_id) == (Status.APPROVED, purchaser.id)


def test_with_four_eyes_the_creators_own_link_never_approves(client, db_session, four_eyes):
    creator = make_user(db_session, "creator@example.com")
    row = make_execution(db_session, Status.PENDING, created_by=creator)
    approve = path_of(link(db_session, row, creator.email, four_eyes)["approve"])
    sign_in(client, creator)
    refused = client.post(approve)
    assert refused.status_code == 403
    assert "you created it" in refused.get_data(as_text=True)
    assert status_of(db_session, row) == Status.PENDING
