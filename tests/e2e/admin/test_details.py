"""Purchase History's details page over HTTP (issue 9): the retry chain, each item's
outcome, the row's audit events, the whole error, the action cell, and its refusals."""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from sqlalchemy import event

from app.db import db, utcnow
from app.domain.statuses import Status
from app.models import AuditEvent, PurchaseExecution
from tests.e2e.helpers import page_login
from tests.factories import (
    PASSWORD,
    insert_plainly,
    make_account,
    make_execution,
    make_plan,
    recommendation,
)


class _Tags(HTMLParser):
    """The start tags of a page that carry `attribute`, in document order."""

    def __init__(self, attribute: str) -> None:
        super().__init__()
        self.attribute = attribute
        self.found: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if self.attribute in attributes:
            self.found.append({"tag": tag, **attributes})


def tags_with(page: str, attribute: str) -> list[dict[str, Any]]:
    parser = _Tags(attribute)
    parser.feed(page)
    return parser.found


class _Fields(HTMLParser):
    """The value cell's text of each `<tr data-field="...">` of the page's field table."""

    def __init__(self) -> None:
        super().__init__()
        self.row: str | None = None
        self.in_value = False
        self.texts: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        field = dict(attrs).get("data-field")
        if tag == "tr" and field:
            self.row = field
            self.texts[field] = ""
        elif tag == "td" and self.row is not None:
            self.in_value = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self.in_value = False
        elif tag == "tr":
            self.row = None

    def handle_data(self, data: str) -> None:
        if self.row is not None and self.in_value:
            self.texts[self.row] += data


def fields_of(page: str) -> dict[str, str]:
    """Each shown column of the row, by name: its value as text."""
    parser = _Fields()
    parser.feed(page)
    return {name: " ".join(text.split()) for name, text in parser.texts.items()}


def row_buttons(page: str) -> list[dict[str, Any]]:
    """The action buttons of the page (the navbar's Sign out is not one)."""
    return [tag for tag in tags_with(page, "data-action") if tag["data-action"] != "logout"]


def details_url(execution_id: Any) -> str:
    return f"/admin/purchases/details/?id={execution_id}"


def chain_of(session, user, statuses: list[Status]) -> list[PurchaseExecution]:
    """A lineage: attempt 0, 1, … each the successor of the one before."""
    rows: list[PurchaseExecution] = []
    start = utcnow() - timedelta(hours=len(statuses))
    for attempt, status in enumerate(statuses):
        row = make_execution(
            session,
            status,
            created_by=user,
            retry_attempt_n=attempt,
            created_at=start + timedelta(hours=attempt),
            error="capacity" if status == Status.FAILED else None,
            recommendations=[recommendation()],
        )
        if rows:
            rows[-1].retry_execution_id = row.execution_id
        rows.append(row)
    session.flush()
    return rows


def test_a_three_attempt_chain_shows_in_order_on_every_attempts_page(client, db_session, alice):
    chain = chain_of(db_session, alice, [Status.FAILED, Status.FAILED, Status.PENDING])
    ids = [str(row.execution_id) for row in chain]
    page_login(client, alice.email, PASSWORD)
    for current in ids:
        response = client.get(details_url(current))
        assert response.status_code == 200
        entries = tags_with(response.text, "data-chain-execution-id")
        assert [entry["data-chain-execution-id"] for entry in entries] == ids
        for entry in entries:
            assert entry["tag"] == "a"
            assert html.unescape(entry["href"]) == details_url(entry["data-chain-execution-id"])
        marked = [e["data-chain-execution-id"] for e in entries if e.get("aria-current")]
        assert marked == [current]
        assert all(e["aria-current"] == "page" for e in entries if "aria-current" in e)
    page = client.get(details_url(ids[1])).text
    assert "attempt 0" in page and "attempt 1" in page and "attempt 2" in page
    statuses = [tag["data-chain-status"] for tag in tags_with(page, "data-chain-status")]
    assert statuses == ["failed", "failed", "pending"]


def test_a_row_outside_any_retry_is_a_chain_of_one(client, db_session, alice):
    row = make_execution(db_session, Status.PENDING, created_by=alice)
    page_login(client, alice.email, PASSWORD)
    entries = tags_with(client.get(details_url(row.execution_id)).text, "data-chain-execution-id")
    assert [(e["data-chain-execution-id"], e["aria-current"]) for e in entries] == [
        (str(row.execution_id), "page")
    ]


def test_a_successor_shows_its_creator_and_who_retried_it(client, db_session, alice, bob):
    row = make_execution(
        db_session, Status.PENDING, created_by=alice, retried_by_user_id=bob.id, retry_attempt_n=1
    )
    page_login(client, alice.email, PASSWORD)
    page = client.get(details_url(row.execution_id)).text
    assert "Retried by" in page
    assert "<span data-retried-by-user>bob@example.com</span>" in page
    assert "alice@example.com" in page


def test_each_item_shows_its_outcome(client, db_session, alice):
    account = make_account(db_session, provider="azure")
    plan = make_plan(db_session)
    row = make_execution(
        db_session,
        Status.PARTIALLY_COMPLETED,
        created_by=alice,
        cloud_account_id=account.id,
        plan_id=plan.id,
        error="1 of 3 purchases failed: quota <exceeded>",
        recommendations=[
            recommendation(purchased=True, purchase_id="ri-0a1b2c"),
            recommendation(service="rds", error="quota <exceeded> & more"),
            recommendation(selected=False, service="lambda"),
            recommendation(provider=None, service="vm"),
        ],
    )
    page_login(client, alice.email, PASSWORD)
    page = client.get(details_url(row.execution_id)).text
    items = tags_with(page, "data-item-index")
    assert [(i["data-item-index"], i["data-item-outcome"]) for i in items] == [
        ("0", "purchased"),
        ("1", "failed"),
        ("2", "skipped"),
        ("3", "pending"),
    ]
    assert "ri-0a1b2c" in page
    assert "quota &lt;exceeded&gt; &amp; more" in page
    assert "quota <exceeded>" not in page
    # Names behind the ids; an item without a provider is bought by the account's.
    fields = fields_of(page)
    assert fields["cloud_account_id"] == "azure account (azure)"
    assert fields["plan_id"] == "ramp"
    assert fields["created_by_user_id"] == alice.email
    assert re.search(
        r'data-item-index="3".*?<td data-item-provider>azure</td>\s*<td data-item-service>vm</td>',
        page,
        re.S,
    )


def test_only_this_rows_audit_events_show_oldest_first(client, db_session, alice):
    row = make_execution(db_session, Status.FAILED, created_by=alice, error="capacity")
    other = make_execution(db_session, Status.FAILED, created_by=alice, error="capacity")
    now = utcnow()
    db_session.add_all(
        [
            AuditEvent(
                action="execution.failed",
                execution_id=row.execution_id,
                at=now - timedelta(minutes=5),
                details={"error": "<img src=x onerror=alert(1)>"},
            ),
            AuditEvent(
                action="retry.refused",
                execution_id=row.execution_id,
                actor_email="bob@example.com",
                at=now,
            ),
            AuditEvent(
                action="retry.requested",
                execution_id=row.execution_id,
                at=now - timedelta(minutes=1),
            ),
            AuditEvent(action="other.row", execution_id=other.execution_id, at=now),
            AuditEvent(action="no.row", execution_id=None, at=now),
        ]
    )
    db_session.flush()
    page_login(client, alice.email, PASSWORD)
    page = client.get(details_url(row.execution_id)).text
    actions = [tag["data-audit-action"] for tag in tags_with(page, "data-audit-action")]
    assert actions == ["execution.failed", "retry.requested", "retry.refused"]
    assert "bob@example.com" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_the_error_shows_whole_and_escaped(client, db_session, alice):
    error = "<script>alert(1)</script> " + "provider said no; " * 60 + "THE END"
    row = make_execution(db_session, Status.FAILED, created_by=alice, error=error)
    page_login(client, alice.email, PASSWORD)
    page = client.get(details_url(row.execution_id)).text
    assert "<script>alert(1)</script>" not in page
    assert html.escape(error, quote=False) in page


def test_a_retryable_failed_own_row_has_retry_back_to_this_page(client, db_session, alice):
    row = make_execution(
        db_session,
        Status.FAILED,
        created_by=alice,
        error="capacity",
        recommendations=[recommendation()],
    )
    page_login(client, alice.email, PASSWORD)
    page = client.get(details_url(row.execution_id)).text
    buttons = [(b["data-action"], b["data-execution-id"]) for b in row_buttons(page)]
    assert buttons == [("retry", str(row.execution_id))]
    forms = [f["action"] for f in tags_with(page, "action") if f["tag"] == "form"]
    assert f"/admin/purchases/retry/{row.execution_id}" in forms
    nexts = [tag["value"] for tag in tags_with(page, "name") if tag["name"] == "next"]
    assert [html.unescape(value) for value in nexts] == [details_url(row.execution_id)]


def test_a_pending_own_row_has_approve_and_cancel(client, db_session, alice):
    row = make_execution(db_session, Status.PENDING, created_by=alice)
    page_login(client, alice.email, PASSWORD)
    page = client.get(details_url(row.execution_id)).text
    actions = [b["data-action"] for b in row_buttons(page)]
    assert actions == ["approve", "cancel"]
    targets = {f["action"] for f in tags_with(page, "action") if f["tag"] == "form"}
    assert f"/admin/purchases/approve/{row.execution_id}" in targets
    assert f"/admin/purchases/cancel/{row.execution_id}" in targets


def test_cancel_from_the_details_page_comes_back_to_it(client, db_session, alice):
    row = make_execution(db_session, Status.PENDING, created_by=alice)
    page_login(client, alice.email, PASSWORD)
    page = client.get(details_url(row.execution_id)).text
    token = next(t["value"] for t in tags_with(page, "name") if t["name"] == "csrf_token")
    (back,) = {t["value"] for t in tags_with(page, "name") if t["name"] == "next"}
    response = client.post(
        f"/admin/purchases/cancel/{row.execution_id}",
        data={"csrf_token": token, "next": html.unescape(back)},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == details_url(row.execution_id)
    after = client.get(response.headers["Location"]).text
    assert 'data-status="cancelled"' in after
    assert row_buttons(after) == []


def test_someone_elses_row_shows_no_buttons_to_a_default_user(client, db_session, alice, bob):
    row = make_execution(db_session, Status.FAILED, created_by=bob, error="capacity")
    page_login(client, alice.email, PASSWORD)
    page = client.get(details_url(row.execution_id)).text
    assert row_buttons(page) == []


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("id=not-a-uuid", 400),
        (f"id={uuid.uuid4()}&id={uuid.uuid4()}", 400),
        (f"id={uuid.uuid4()}", 404),
    ],
)
def test_a_malformed_id_is_400_and_an_unknown_one_404(client, db_session, alice, query, status):
    page_login(client, alice.email, PASSWORD)
    response = client.get(f"/admin/purchases/details/?{query}")
    assert response.status_code == status
    assert f'data-error-status="{status}"' in response.text


def test_signed_out_users_go_to_login_and_back(client, db_session, alice):
    row = make_execution(db_session, Status.PENDING, created_by=alice)
    response = client.get(details_url(row.execution_id))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert str(row.execution_id) in response.headers["Location"]


@pytest.mark.parametrize("recommendations", ["[1]", "{}", "null"])
def test_malformed_recommendations_show_their_reason(client, db_session, alice, recommendations):
    execution_id = insert_plainly(db_session, created_by=alice, recommendations=recommendations)
    page_login(client, alice.email, PASSWORD)
    response = client.get(details_url(execution_id))
    assert response.status_code == 200
    (reason,) = tags_with(response.text, "data-recommendations-error")
    assert "malformed recommendations" in response.text
    assert tags_with(response.text, "data-item-index") == []
    assert reason["tag"] == "div"


def test_the_page_costs_the_same_queries_whatever_the_chain_or_the_trail(client, db_session, alice):
    short = chain_of(db_session, alice, [Status.FAILED, Status.PENDING])
    long = chain_of(db_session, alice, [Status.FAILED] * 7 + [Status.PENDING])
    db_session.add_all(
        AuditEvent(action=f"event.{n}", execution_id=long[3].execution_id) for n in range(30)
    )
    db_session.flush()
    page_login(client, alice.email, PASSWORD)

    def queries_for(execution_id: uuid.UUID) -> int:
        statements: list[str] = []

        def count(*_args: Any) -> None:
            statements.append("q")

        assert db.engine is not None
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            assert client.get(details_url(execution_id)).status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return len(statements)

    assert queries_for(long[3].execution_id) == queries_for(short[1].execution_id)


def test_a_long_trail_keeps_its_latest_events(client, db_session, alice):
    from app.services.execution_details import MAX_AUDIT_EVENTS

    row = make_execution(db_session, Status.FAILED, created_by=alice, error="capacity")
    start = utcnow() - timedelta(days=1)
    db_session.add_all(
        AuditEvent(
            action=f"event.{n}", execution_id=row.execution_id, at=start + timedelta(seconds=n)
        )
        for n in range(MAX_AUDIT_EVENTS + 5)
    )
    db_session.flush()
    page_login(client, alice.email, PASSWORD)
    page = client.get(details_url(row.execution_id)).text
    actions = [tag["data-audit-action"] for tag in tags_with(page, "data-audit-action")]
    assert actions == [f"event.{n}" for n in range(5, MAX_AUDIT_EVENTS + 5)]
    assert tags_with(page, "data-audit-omitted")


@pytest.mark.parametrize(
    ("url", "list_link"),
    [
        (None, "/admin/purchases/"),
        ("/admin/purchases/?page=1", "/admin/purchases/?page=1"),
        ("/admin/purchases/details/?id=x", "/admin/purchases/"),
    ],
)
def test_the_list_tab_goes_back_to_a_list(client, db_session, alice, url, list_link):
    row = make_execution(db_session, Status.PENDING, created_by=alice)
    page_login(client, alice.email, PASSWORD)
    query = {"id": str(row.execution_id)} | ({"url": url} if url else {})
    page = client.get("/admin/purchases/details/", query_string=query).text
    (link,) = tags_with(page, "data-list-link")
    assert html.unescape(link["href"]) == list_link


def test_the_fields_are_the_views_detail_columns_with_names_for_ids(client, db_session, alice):
    from admin.views import PurchaseHistoryView

    successor = make_execution(db_session, Status.PENDING, created_by=alice, retry_attempt_n=1)
    row = make_execution(
        db_session,
        Status.FAILED,
        error="capacity",
        total_upfront_cost=Decimal("1200.50"),
        retry_execution_id=successor.execution_id,
    )
    page_login(client, alice.email, PASSWORD)
    page = client.get(details_url(row.execution_id)).text
    fields = fields_of(page)
    shown = [c for c in PurchaseHistoryView.column_details_list if c != "recommendations"]
    assert list(fields) == shown
    assert fields["created_by_user_id"] == "— (no user: a scheduler or legacy row)"
    assert fields["cloud_account_id"] == "—"
    assert fields["total_upfront_cost"] == "$1,200.50"
    assert fields["error"] == "capacity"
    links = [html.unescape(tag["href"]) for tag in tags_with(page, "href")]
    assert details_url(successor.execution_id) in links
