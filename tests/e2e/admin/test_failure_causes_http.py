"""Failures by cause over HTTP: the panel page and its "Mark fixed" form, the JSON API,
the history list narrowed and sorted, and the hostile requests each refuses."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

from sqlalchemy import select

from app.db import utcnow
from app.domain.causes import signature
from app.domain.statuses import Status
from app.models import AuditEvent, FailureCauseFix
from tests.e2e.helpers import csrf_from, page_login, sign_in
from tests.factories import PASSWORD, make_execution, make_user, recommendation

PAGE = "/admin/causes/"
API = "/api/failures/causes"
CAPACITY = "InsufficientInstanceCapacity: no capacity for {} after {} tries"
CAUSE = signature(CAPACITY.format("r-1a", 1))


def failed(session, error, savings="10", **fields):
    return make_execution(
        session,
        Status.FAILED,
        error=error,
        recommendations=[recommendation()],
        estimated_savings=Decimal(savings),
        **fields,
    )


def seed(session):
    return [
        failed(session, CAPACITY.format("r-1", 1), "30"),
        failed(session, CAPACITY.format("r-22", 2), "20"),
        failed(session, "Throttling: slow down", "50"),
    ]


def test_the_page_groups_by_cause_and_links_to_the_rows(client, db_session):
    capacity_1, capacity_2, _throttled = seed(db_session)
    user = make_user(db_session)
    page_login(client, user.email, PASSWORD)
    page = client.get(PAGE)
    assert page.status_code == 200
    assert 'data-cause-count="2"' in page.text and 'data-cause-count="1"' in page.text
    assert f"details/?id={capacity_2.execution_id}" in page.text  # the newest example
    assert "$50.00" in page.text  # the capacity group's savings
    # "View in Purchase History" opens the list narrowed to the cause.
    link = re.search(r'href="([^"]+)" data-action="view-cause"', page.text)[1].replace("&amp;", "&")
    listed = client.get(link)
    assert listed.status_code == 200
    assert str(capacity_1.execution_id) in listed.text
    assert str(capacity_2.execution_id) in listed.text
    assert "Throttling" not in listed.text


def test_mark_fixed_from_the_page_is_audited(client, db_session):
    seed(db_session)
    user = make_user(db_session, groups=("Purchasers",))
    page_login(client, user.email, PASSWORD)
    token = csrf_from(client.get(PAGE).text)
    answer = client.post(
        f"{PAGE}fixed",
        data={"csrf_token": token, "signature": CAUSE, "note": "quota raised"},
        follow_redirects=True,
    )
    assert answer.status_code == 200
    assert "Marked fixed" in answer.text
    assert 'data-cause-fixed="yes"' in answer.text and "quota raised" in answer.text
    (fix,) = db_session.scalars(select(FailureCauseFix)).all()
    assert (fix.signature, fix.fixed_by_email) == (CAUSE, user.email)
    assert db_session.scalars(
        select(AuditEvent.action).where(AuditEvent.action == "failure_cause.fixed")
    ).all() == ["failure_cause.fixed"]


def test_hostile_mark_fixed_requests_are_refused(client, db_session):
    seed(db_session)
    reader = make_user(db_session, groups=("Read-only",))
    page_login(client, reader.email, PASSWORD)
    page = client.get(PAGE)
    assert page.status_code == 200
    assert 'data-action="mark-fixed"' not in page.text  # nothing to press
    assert 'data-action="retry-cause"' not in page.text
    token = csrf_from(page.text)
    refused = client.post(
        f"{PAGE}fixed", data={"csrf_token": token, "signature": CAUSE}, follow_redirects=True
    )
    assert "not allowed to retry" in refused.text
    no_token = client.post(f"{PAGE}fixed", data={"signature": CAUSE})
    assert no_token.status_code == 400
    assert db_session.scalars(select(FailureCauseFix)).all() == []


def test_the_page_needs_view(client, db_session):
    assert client.get(PAGE).status_code in (302, 401)  # signed out: to the login page
    nobody = make_user(db_session)
    from app.models import Group

    group = db_session.scalar(select(Group).where(Group.name == "Read-only"))
    group.permissions = []
    nobody.groups.append(group)
    db_session.flush()
    page_login(client, nobody.email, PASSWORD)
    assert client.get(PAGE).status_code == 403


def test_the_api_lists_causes_and_marks_them_fixed(client, db_session):
    seed(db_session)
    user = make_user(db_session, groups=("Purchasers",))
    token = sign_in(client, user)
    listed = client.get(API)
    assert listed.status_code == 200
    items = listed.json["items"]
    assert [(item["signature"], item["count"]) for item in items] == [
        (CAUSE, 2),
        ("Throttling: slow down", 1),
    ]
    assert items[0]["estimated_savings"] == "50.00" and items[0]["fixed"] is None
    url = f"{API}/{quote(CAUSE, safe='')}/fixed"
    marked = client.post(url, json={"note": "raised"}, headers={"X-CSRFToken": token})
    assert marked.status_code == 201, marked.json
    assert (marked.json["signature"], marked.json["note"]) == (CAUSE, "raised")
    assert client.get(API).json["items"][0]["fixed"]["fixed_by_email"] == user.email
    # Refused before any rule runs: no token, a note too long, an unknown cause.
    assert client.post(url, json={}).status_code == 400
    long_note = client.post(url, json={"note": "x" * 501}, headers={"X-CSRFToken": token})
    assert long_note.status_code == 400 and "note" in long_note.json["error"]
    unknown = client.post(f"{API}/nothing/fixed", json={}, headers={"X-CSRFToken": token})
    assert unknown.status_code == 404


def test_the_history_api_and_the_bulk_retry_narrow_by_cause(client, db_session):
    capacity_1, capacity_2, _throttled = seed(db_session)
    user = make_user(db_session, groups=("Purchasers",))
    token = sign_in(client, user)
    history = client.get("/api/history", query_string={"cause": CAUSE})
    assert history.status_code == 200
    assert {item["execution_id"] for item in history.json["items"]} == {
        str(capacity_1.execution_id),
        str(capacity_2.execution_id),
    }
    exported = client.get("/api/history/export.csv", query_string={"cause": CAUSE})
    assert exported.status_code == 200
    assert str(capacity_1.execution_id) in exported.text
    assert "Throttling" not in exported.text
    too_long = client.get("/api/history", query_string={"cause": "x" * 201})
    assert too_long.status_code == 400 and "cause" in too_long.json["error"]
    preview = client.post(
        "/api/purchases/retry?preview=true",
        json={"filter": {"cause": CAUSE}},
        headers={"X-CSRFToken": token},
    )
    assert preview.status_code == 200, preview.json
    assert preview.json["total"] == 2


def test_the_history_list_sorts_by_savings_with_the_lists_tie_breaker(client, db_session):
    now = utcnow()
    older_20 = failed(db_session, "a", "20", created_at=now - timedelta(hours=2))
    newer_20 = failed(db_session, "b", "20", created_at=now - timedelta(hours=1))
    top = failed(db_session, "c", "50", created_at=now - timedelta(hours=3))
    low = failed(db_session, "d", "5", created_at=now)
    user = make_user(db_session)
    page_login(client, user.email, PASSWORD)
    page = client.get("/admin/purchases/").text
    headers = re.findall(r'<a href="([^"]+)" title="Sort by ([^"]+)"', page)
    by_savings = html.unescape({name: url for url, name in headers}["Savings"])

    def order(url: str) -> list[str]:
        text = client.get(url).text
        rows = (low, older_20, newer_20, top)
        return [
            str(r.execution_id) for r in sorted(rows, key=lambda r: text.index(str(r.execution_id)))
        ]

    ascending = order(by_savings)
    # Ties keep the list's order reversed with the sort: oldest first going up.
    assert ascending == [str(r.execution_id) for r in (low, older_20, newer_20, top)]
    descending = order(by_savings.replace("sort=", "desc=1&sort="))
    assert descending == list(reversed(ascending))


def test_a_cause_named_by_an_ops_hint_offers_no_retry(client, db_session):
    hinted = "AccessDenied: IAM denied for ec2:PurchaseReservedInstancesOffering"
    failed(db_session, hinted)
    failed(db_session, CAPACITY.format("r-1", 1))
    user = make_user(db_session, groups=("Purchasers",))
    page_login(client, user.email, PASSWORD)
    page = client.get(PAGE).text
    row = re.search(rf'<tr data-cause="{re.escape(signature(hinted))}".*?</tr>', page, re.S)[0]
    assert "Grant the purchasing role the missing IAM permission" in row
    assert "data-cause-persistent" in row and 'data-action="retry-cause"' not in row
    assert 'data-action="mark-fixed"' in row
    assert page.count('data-action="retry-cause"') == 1  # the capacity cause's
