"""The panel's lists under hostile query strings: a page, page size, sort or filter the
list cannot honour is refused (400, a flash naming it, no rows), never dropped, so
"Retry all N matching this filter" can never widen; the Creator filter shows other
users' emails only to those who act on other users' rows; a refused bulk retry never
redirects off the site."""

from __future__ import annotations

import html
import json
import re

import pytest
from sqlalchemy import func, select

from app.domain.statuses import Status
from app.models import RetryBatch
from tests.e2e.helpers import csrf_from, page_login
from tests.factories import PASSWORD, make_account, make_execution, make_user, recommendation

LIST = "/admin/purchases/"


def signed_in(client, session, groups=(), email=None):
    user = make_user(session, email, groups=groups)
    page_login(client, user.email, PASSWORD)
    return user


def failed(session, user, **fields):
    values = {"error": "capacity", "recommendations": [recommendation()]}
    return make_execution(session, Status.FAILED, created_by=user, **(values | fields))


def shown(page: str) -> list[str]:
    return re.findall(r'data-row-actions="([^"]+)"', page)


def flashes(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'data-flash="error">(.*?)</div>', page, re.S)]


def batches(session) -> int:
    return session.scalar(select(func.count()).select_from(RetryBatch))


def creator_options(page: str) -> list[str]:
    data = re.search(r'id="filter-groups-data"[^>]*>(.*?)</div>', page, re.S)
    assert data
    (item,) = json.loads(html.unescape(data.group(1)))["Creator"]
    return [label for _value, label in item["options"] or []]


def assert_refused(response, *words: str) -> None:
    assert response.status_code == 400, response.text[:500]
    [message] = flashes(response.text)
    assert message.startswith("List not shown: ")
    for word in words:
        assert word in message, message
    assert shown(response.text) == []


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("page=abc", "page must be"),
        ("page=-1", "page must be"),
        ("page=1000001", "page must be"),
        ("page=99999999999999999999", "page must be"),
        ("page=0&page=1", "page is given more than once"),
        ("page_size=7", "page_size must be one of 20, 50, 100, 200"),
        ("page_size=abc", "page_size"),
        ("sort=99", "sort '99'"),
        ("sort=2", "sort '2'"),  # a column, but not a sortable one
        ("sort=x", "sort 'x'"),
        ("desc=2", "desc must be 0 or 1"),
        ("flt0_status_equals=sleeping", "the filter Status equals: 'sleeping' is not valid"),
        ("flt0_account_equals=nope", "the filter Account equals"),
        ("flt0_plan_equals=12", "malformed plan_id"),
        ("flt0_creator_equals=x", "malformed created_by_user_id"),
        ("flt0_created_on_or_after=2024-13-45", "the filter Created on or after"),
        ("flt0_no_such_filter=1", "'flt0_no_such_filter' is not a filter of this list"),
        ("flt_status_equals=failed", "is not a filter of this list"),
        ("flt0_status_equals=failed&flt0_status_equals=pending", "given more than once"),
    ],
)
def test_a_list_argument_it_cannot_honour_is_refused_with_no_rows(client, db_session, query, named):
    user = signed_in(client, db_session)
    failed(db_session, user)
    assert_refused(client.get(f"{LIST}?{query}"), named)


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=1",
        "page_size=20",
        "sort=1&desc=1",
        "sort=0&desc=0",
        "flt0_status_equals=failed",
    ],
)
def test_the_arguments_the_list_writes_itself_still_work(client, db_session, query):
    user = signed_in(client, db_session)
    row = failed(db_session, user)
    page = client.get(f"{LIST}?{query}")
    assert page.status_code == 200 and flashes(page.text) == []
    assert shown(page.text) == ([] if query == "page=1" else [str(row.execution_id)])


def test_the_management_lists_read_their_arguments_strictly(client, db_session):
    signed_in(client, db_session, groups=("Administrators",))
    assert_refused(client.get("/admin/users/?page=abc"), "page must be")
    assert_refused(client.get("/admin/users/?page_size=100"), "page_size must be one of 50")
    assert_refused(client.get("/admin/groups/?sort=77"), "sort")
    assert_refused(client.get("/admin/accounts/?flt0_x=1"), "not a filter of this list")
    assert client.get("/admin/users/?page_size=50&page=0").status_code == 200


@pytest.mark.parametrize(
    ("day", "named"),
    [
        ("9999-12-31", "the last day it searches is 9999-12-30"),
        ("2024-13-45", "'2024-13-45' is not valid"),
        ("0000-01-01", "is not valid"),
    ],
)
def test_the_audit_logs_day_filter_refuses_a_day_it_cannot_search(client, db_session, day, named):
    """9999-12-31 was a 500: the day after it overflows `datetime`."""
    signed_in(client, db_session, groups=("Administrators",))
    assert_refused(client.get(f"/admin/audit/?flt0_at_on_day_utc={day}"), named)
    assert client.get("/admin/audit/?flt0_at_on_day_utc=9999-12-30").status_code == 200


# --- The Creator filter's options -------------------------------------------------------


@pytest.fixture
def creators(db_session):
    """Two users who created rows and one who never did."""
    ana = make_user(db_session, "ana@example.com")
    ben = make_user(db_session, "ben@example.com")
    make_user(db_session, "idle@example.com")
    make_execution(db_session, created_by=ana)
    make_execution(db_session, created_by=ben)


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        (("Read-only",), ["me@example.com"]),
        ((), ["me@example.com"]),  # the defaults: -own permissions only
        (("Purchasers",), ["ana@example.com", "ben@example.com"]),
        (("Administrators",), ["ana@example.com", "ben@example.com"]),
    ],
    ids=["read-only", "own-only", "purchaser", "admin"],
)
def test_the_creator_filter_shows_others_only_to_who_acts_on_their_rows(
    client, db_session, creators, groups, expected
):
    signed_in(client, db_session, groups=groups, email="me@example.com")
    assert creator_options(client.get(LIST).text) == expected


# --- Bulk retry: never wider, never off-site --------------------------------------------


def test_retry_all_matching_with_one_invalid_filter_creates_no_batch(client, db_session):
    user = signed_in(client, db_session, groups=("Purchasers",))
    account = make_account(db_session)
    for _ in range(4):
        failed(db_session, user, cloud_account_id=account.id)
    for _ in range(10):
        failed(db_session, user)  # what a dropped account filter would add
    valid = f"flt0_account_equals={account.id}"
    page = client.get(f"{LIST}?{valid}")
    assert "Retry all 4 matching this filter" in page.text
    token = csrf_from(page.text)

    widened = f"{LIST}retry-matching?{valid}&flt1_creator_equals=not-a-uuid"
    response = client.post(widened, data={"csrf_token": token})
    assert_refused(response, "malformed created_by_user_id")
    assert batches(db_session) == 0
    listed = client.get(f"{LIST}?{valid}&flt1_creator_equals=not-a-uuid")
    assert_refused(listed, "malformed created_by_user_id")
    assert "Retry all" not in listed.text


@pytest.mark.parametrize(
    ("referer", "back_to"),
    [
        ("https://evil.example.com/admin/purchases/", LIST),
        ("http://evil.example.com/admin/purchases/", LIST),
        ("http://localhost.evil.example.com/", LIST),
        ("javascript:alert(1)", LIST),
        ("http://localhost/admin/purchases/?page=0&flt0_status_equals=failed", None),
    ],
)
def test_a_refused_bulk_retry_goes_back_on_this_site_only(client, db_session, referer, back_to):
    signed_in(client, db_session)
    token = csrf_from(client.get(LIST).text)
    response = client.post(
        f"{LIST}action/",
        data={"action": "retry", "csrf_token": token},  # no rows ticked: refused
        headers={"Referer": referer},
    )
    assert response.status_code == 302
    expected = back_to or referer.removeprefix("http://localhost")
    assert response.headers["Location"] == expected
    assert batches(db_session) == 0
