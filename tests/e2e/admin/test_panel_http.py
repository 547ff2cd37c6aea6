"""The server-rendered login page and the panel's access control, over HTTP."""

from __future__ import annotations

import html
import re

import pytest

from app.domain.statuses import Status
from app.services.identity import create_group
from tests.e2e.helpers import csrf_from, page_login
from tests.factories import PASSWORD, insert_plainly, make_execution, make_user


def test_the_panel_sends_anonymous_users_to_login_and_back(client, db_session):
    make_user(db_session, "bea@example.com")
    response = client.get("/admin/purchases/?page=0")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    signed_in = page_login(client, "bea@example.com", PASSWORD, next_url="/admin/purchases/")
    assert signed_in.status_code == 302
    assert signed_in.headers["Location"] == "/admin/purchases/"


@pytest.mark.parametrize(
    "next_url",
    ["https://evil.example.com/", "//evil.example.com/", "/\\evil.example.com", "/a%0D%0Ab"],
)
def test_next_never_leaves_the_site(client, db_session, next_url):
    make_user(db_session, "cy@example.com")
    response = page_login(client, "cy@example.com", PASSWORD, next_url=next_url)
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"


def test_a_form_post_without_csrf_token_is_refused(client, db_session):
    make_user(db_session, "di@example.com")
    response = client.post("/login", data={"email": "di@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/admin/").status_code == 302  # not signed in


def test_wrong_password_shows_the_generic_message(client, db_session):
    make_user(db_session, "ed@example.com")
    response = page_login(client, "ed@example.com", "nope nope nope")
    assert response.status_code == 401
    assert "Invalid email or password." in response.text


def test_logout_is_a_post_with_csrf(client, db_session):
    make_user(db_session, "flo@example.com")
    page_login(client, "flo@example.com", PASSWORD)
    assert client.get("/logout").status_code == 405
    home = client.get("/admin/")
    assert home.status_code == 200
    response = client.post("/logout", data={"csrf_token": csrf_from(home.text)})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 302


def test_purchase_history_lists_executions_newest_first(client, db_session):
    user = make_user(db_session, "gus@example.com")
    older = make_execution(db_session, Status.FAILED, created_by=user, error="older one")
    newer = make_execution(db_session, Status.PENDING, created_by=user)
    page_login(client, user.email, PASSWORD)
    html = client.get("/admin/purchases/").text
    assert str(older.execution_id) in html and str(newer.execution_id) in html
    assert html.index(str(newer.execution_id)) < html.index(str(older.execution_id))


def test_error_text_is_escaped(client, db_session):
    user = make_user(db_session)
    make_execution(db_session, Status.FAILED, created_by=user, error="<script>alert(1)</script>")
    page_login(client, user.email, PASSWORD)
    html = client.get("/admin/purchases/").text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_purchase_history_cannot_be_changed_through_the_panel(client, db_session):
    user = make_user(db_session, groups=("Administrators",))
    page_login(client, user.email, PASSWORD)
    # Its create address is the New purchase page's, which creates only pending rows
    # through the create rules; the history's own model form is never served.
    new = client.get("/admin/purchases/new/")
    assert "data-new-purchase-form" in new.text and 'name="status"' not in new.text
    assert client.get("/admin/purchases/edit/?id=x").status_code in {302, 403, 404}


def test_the_panel_needs_view_purchases(client, db_session):
    create_group(db_session, "Approvers only", ["approve-own:purchases"], restricts_defaults=True)
    user = make_user(db_session, groups=("Approvers only",))
    make_execution(db_session, Status.FAILED, created_by=user, error="secret-ish error")
    page_login(client, user.email, PASSWORD)
    for path in ("/admin/", "/admin/purchases/"):
        response = client.get(path)
        assert response.status_code == 403
        assert "view:purchases" in response.text
        assert "secret-ish error" not in response.text


def test_read_only_users_may_view(client, db_session):
    viewer = make_user(db_session, groups=("Read-only",))
    page_login(client, viewer.email, PASSWORD)
    assert client.get("/admin/purchases/").status_code == 200


def test_details_never_show_the_approval_token_hash(client, db_session):
    user = make_user(db_session)
    row = make_execution(db_session, Status.PENDING, created_by=user, approval_token_hash="f" * 64)
    page_login(client, user.email, PASSWORD)
    response = client.get(f"/admin/purchases/details/?id={row.execution_id}")
    assert response.status_code == 200
    assert str(row.execution_id) in response.text
    assert "f" * 64 not in response.text
    assert "Approval Token" not in response.text


def test_details_and_lineage_links_open_for_every_row(client, db_session):
    """A new user's first click. (Before, on SQLite: 500 for every id, and the lineage
    links led to the same 500.)"""
    user = make_user(db_session)
    first = make_execution(db_session, Status.FAILED, created_by=user, error="capacity")
    second = make_execution(db_session, Status.PENDING, created_by=user, retry_attempt_n=1)
    first.retry_execution_id = second.execution_id
    db_session.flush()
    page_login(client, user.email, PASSWORD)
    listing = client.get("/admin/purchases/").text
    links = re.findall(r'href="([^"]+)"\s+data-retr(?:y-of|ied-by)="', listing)
    assert len(links) == 2
    for link in links:
        response = client.get(html.unescape(link))
        assert response.status_code == 200, link
    details = client.get(f"/admin/purchases/details/?id={first.execution_id}")
    assert details.status_code == 200 and "capacity" in details.text


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("id=zzz", 400),
        ("id=" + "9" * 500, 400),
        ("id=%00", 400),
        ("id=6f1c0a5e-1111-4222-8333-944445555666", 404),
    ],
)
def test_a_bad_or_unknown_id_answers_a_page_not_a_500(client, db_session, query, status):
    user = make_user(db_session)
    page_login(client, user.email, PASSWORD)
    response = client.get(f"/admin/purchases/details/?{query}")
    assert response.status_code == status
    assert f'data-error-status="{status}"' in response.text


@pytest.mark.parametrize("page", ["-1", "-99999999999999999999", "99999999999999999999"])
def test_a_page_out_of_range_answers_400(client, db_session, page):
    user = make_user(db_session)
    page_login(client, user.email, PASSWORD)
    response = client.get(f"/admin/purchases/?page={page}")
    assert response.status_code == 400
    assert "page must be" in response.text


def test_rows_written_by_the_plain_insert_open_everywhere(client, db_session):
    """The plain INSERT an operator writes, with a dashed id. (Before, on SQLite, such a row showed
    in the list but answered 404 everywhere else.)"""
    user = make_user(db_session)
    execution_id = insert_plainly(db_session, created_by=user)
    page_login(client, user.email, PASSWORD)
    assert execution_id in client.get("/admin/purchases/").text
    assert client.get(f"/admin/purchases/details/?id={execution_id}").status_code == 200
    assert client.get(f"/api/purchases/{execution_id}").json["execution_id"] == execution_id


@pytest.mark.parametrize("recommendations", ["[1]", "{}", '"text"', "null"])
def test_malformed_recommendations_show_as_such(client, db_session, recommendations):
    """(Before: every history page, panel page and email task that met such a row
    failed with a 500.)"""
    user = make_user(db_session)
    execution_id = insert_plainly(db_session, created_by=user, recommendations=recommendations)
    page_login(client, user.email, PASSWORD)
    listing = client.get("/admin/purchases/")
    assert listing.status_code == 200 and execution_id in listing.text
    assert 'data-ops-hint="Fix the row&#39;s recommendations' in listing.text
    assert client.get(f"/admin/purchases/details/?id={execution_id}").status_code == 200
    item = client.get(f"/api/purchases/{execution_id}").json
    assert item["recommendations_error"].startswith("malformed recommendations:")
    (history_item,) = client.get("/api/history").json["items"]
    assert history_item["recommendations_error"] == item["recommendations_error"]


def test_the_retry_forms_next_with_a_line_break_goes_back_to_the_list(client, db_session):
    """(Before: the retry was queued, then the redirect to `next` failed with a 500.)"""
    user = make_user(db_session)
    row = make_execution(db_session, Status.FAILED, created_by=user, error="capacity")
    page_login(client, user.email, PASSWORD)
    token = csrf_from(client.get("/admin/purchases/").text)
    response = client.post(
        f"/admin/purchases/retry/{row.execution_id}",
        data={"csrf_token": token, "next": "/a\r\nSet-Cookie: x=y"},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/purchases/"
