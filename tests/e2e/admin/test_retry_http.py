"""The Purchase History Retry row action over HTTP: what each row offers, and the POST.

The cell's decision is unit-tested with the rules; these tests check that the panel
renders it for the right rows and that the POST form records exactly one request, or
nothing but the refusal's audit record.
"""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import event, func, select

from app.db import db
from app.domain.statuses import Status
from app.models import PurchaseExecution
from tests.e2e.helpers import csrf_from, page_login, single_retries
from tests.factories import PASSWORD, make_execution, make_user

LIST = "/admin/purchases/"


def signed_in(client, session, groups=()):
    user = make_user(session, groups=groups)
    page_login(client, user.email, PASSWORD)
    return user


def action_cell(html: str, execution_id: uuid.UUID) -> str:
    """The HTML of one row's Actions cell."""
    match = re.search(
        rf'<td class="col-actions" data-row-actions="{execution_id}">(.*?)</td>', html, re.S
    )
    assert match, f"no action cell for {execution_id}"
    return match.group(1)


def buttons_in(cell: str) -> list[str]:
    return re.findall(r'data-action="([^"]+)"', cell)


def post_retry(client, execution_id, *, force=False, next_url=LIST, token=True):
    form = {"next": next_url}
    if token:
        form["csrf_token"] = csrf_from(client.get(LIST).text)
    if force:
        form["force"] = "true"
    return client.post(f"/admin/purchases/retry/{execution_id}", data=form)


def test_retry_is_offered_on_own_failed_rows_only(client, db_session):
    user = signed_in(client, db_session)
    other = make_user(db_session)
    own_failed = make_execution(db_session, Status.FAILED, created_by=user, error="quota")
    own_pending = make_execution(db_session, Status.PENDING, created_by=user)
    others_failed = make_execution(db_session, Status.FAILED, created_by=other, error="quota")
    legacy_failed = make_execution(db_session, Status.FAILED, error="quota")  # no creator

    html = client.get(LIST).text

    cell = action_cell(html, own_failed.execution_id)
    assert buttons_in(cell) == ["retry"]
    assert f'data-execution-id="{own_failed.execution_id}"' in cell
    assert 'method="post"' in cell and 'name="csrf_token"' in cell
    assert "data-confirm=" in cell and "onsubmit" not in cell  # asked by panel/bindings.js
    assert buttons_in(action_cell(html, own_pending.execution_id)) == ["approve", "cancel"]
    for row in (others_failed, legacy_failed):
        assert buttons_in(action_cell(html, row.execution_id)) == []


def test_retry_any_sees_retry_on_everyones_failed_rows(client, db_session):
    signed_in(client, db_session, groups=("Purchasers",))
    others_failed = make_execution(db_session, Status.FAILED, created_by=make_user(db_session))
    legacy_failed = make_execution(db_session, Status.FAILED)

    html = client.get(LIST).text

    assert buttons_in(action_cell(html, others_failed.execution_id)) == ["retry"]
    assert buttons_in(action_cell(html, legacy_failed.execution_id)) == ["retry"]


def test_read_only_users_see_no_retry_button(client, db_session):
    viewer = signed_in(client, db_session, groups=("Read-only",))
    own_failed = make_execution(db_session, Status.FAILED, created_by=viewer, error="quota")

    html = client.get(LIST).text

    assert buttons_in(action_cell(html, own_failed.execution_id)) == []
    assert 'data-action="retry"' not in html


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        ("FROM_EMAIL not configured for this deployment", "Set FROM_EMAIL, then retry"),
        ("smtp: from_email NOT CONFIGURED", "Set FROM_EMAIL, then retry"),
        (
            "AccessDenied: iam Denied for ec2:PurchaseReservedInstancesOffering",
            "Grant the purchasing role the missing IAM permission, then retry",
        ),
    ],
)
def test_a_persistent_failure_shows_its_hint_instead_of_retry(client, db_session, error, hint):
    user = signed_in(client, db_session)
    row = make_execution(db_session, Status.FAILED, created_by=user, error=error)

    cell = action_cell(client.get(LIST).text, row.execution_id)

    assert f'data-ops-hint="{hint}"' in cell
    assert buttons_in(cell) == []


def test_at_the_threshold_only_the_override_is_offered(client, db_session):
    user = signed_in(client, db_session)
    row = make_execution(db_session, Status.FAILED, created_by=user, retry_attempt_n=5)

    cell = action_cell(client.get(LIST).text, row.execution_id)

    assert buttons_in(cell) == ["force-retry"]
    assert "Retried 5× — override" in cell  # noqa: RUF001  (the documented label)
    assert '<input type="hidden" name="force" value="true">' in cell
    assert 'data-attempt="5"' in cell


def test_lineage_links_point_both_ways_to_the_details_view(client, db_session):
    user = signed_in(client, db_session)
    successor = make_execution(db_session, Status.PENDING, created_by=user, retry_attempt_n=1)
    predecessor = make_execution(
        db_session, Status.FAILED, created_by=user, retry_execution_id=successor.execution_id
    )

    html = client.get(LIST).text

    old_cell = action_cell(html, predecessor.execution_id)
    assert f'data-retried-by="{successor.execution_id}"' in old_cell
    assert f"/admin/purchases/details/?id={successor.execution_id}" in old_cell
    assert buttons_in(old_cell) == []  # already retried
    new_cell = action_cell(html, successor.execution_id)
    assert f'data-retry-of="{predecessor.execution_id}"' in new_cell
    assert f"/admin/purchases/details/?id={predecessor.execution_id}" in new_cell
    assert 'data-attempt="1"' in new_cell


def test_retrying_a_failed_row_queues_exactly_one_request(client, db_session, redis_db):
    user = signed_in(client, db_session)
    row = make_execution(db_session, Status.FAILED, created_by=user, error="quota")

    response = post_retry(client, row.execution_id)

    assert response.status_code == 302
    assert response.headers["Location"] == LIST
    [queued] = single_retries(db_session)
    assert (queued.execution_id, queued.state, queued.force) == (row.execution_id, "queued", False)
    assert queued.requested_by_user_id == user.id
    assert redis_db.llen("purchases") == 1  # handed to the worker after the commit
    html = client.get(LIST).text
    assert f"Retry of {row.execution_id} queued (request {queued.id})" in html
    cell = action_cell(html, row.execution_id)
    assert 'data-retry-request-state="queued"' in cell
    assert buttons_in(cell) == []  # until the worker settles it


def test_the_override_posts_with_force(client, db_session):
    user = signed_in(client, db_session)
    row = make_execution(db_session, Status.FAILED, created_by=user, retry_attempt_n=5)

    post_retry(client, row.execution_id, force=True)

    [queued] = single_retries(db_session)
    assert queued.force is True


@pytest.mark.parametrize(
    ("fields", "flash"),
    [
        (
            {"retry_attempt_n": 5},
            "confirm the override to retry again (attempt 5, threshold 5)",
        ),
        (
            {"error": "FROM_EMAIL not configured for this deployment"},
            "will recur until an operator fixes its cause — Set FROM_EMAIL, then retry",
        ),
    ],
)
def test_a_refusal_is_flashed_with_its_hint_and_records_no_request(
    client, db_session, fields, flash
):
    user = signed_in(client, db_session)
    row = make_execution(db_session, Status.FAILED, created_by=user, **fields)

    response = post_retry(client, row.execution_id)

    assert response.status_code == 302
    assert flash in client.get(LIST).text
    assert single_retries(db_session) == []


def test_a_forged_post_without_the_permission_changes_nothing(client, db_session, redis_db):
    signed_in(client, db_session, groups=("Read-only",))
    row = make_execution(db_session, Status.FAILED, created_by=make_user(db_session))

    response = post_retry(client, row.execution_id)

    assert response.status_code == 302
    html = client.get(LIST).text
    assert re.search(r'data-flash="error">not allowed to retry this execution: [^<]+<', html)
    assert single_retries(db_session) == []
    assert redis_db.llen("purchases") == 0
    db_session.refresh(row)
    assert row.retry_execution_id is None


def test_a_post_without_csrf_token_changes_nothing(client, db_session, redis_db):
    user = signed_in(client, db_session)
    row = make_execution(db_session, Status.FAILED, created_by=user)

    response = post_retry(client, row.execution_id, token=False)

    assert response.status_code == 400
    assert single_retries(db_session) == []
    assert redis_db.llen("purchases") == 0
    assert db_session.scalar(select(func.count()).select_from(PurchaseExecution)) == 1


def test_the_row_action_is_never_a_get(client, db_session):
    user = signed_in(client, db_session)
    row = make_execution(db_session, Status.FAILED, created_by=user)

    assert client.get(f"/admin/purchases/retry/{row.execution_id}").status_code == 405
    assert single_retries(db_session) == []


def test_the_return_url_must_stay_on_this_site(client, db_session):
    user = signed_in(client, db_session)
    row = make_execution(db_session, Status.FAILED, created_by=user)

    response = post_retry(client, row.execution_id, next_url="https://evil.example.com/")
    assert response.headers["Location"] == LIST

    response = post_retry(client, row.execution_id, next_url="/admin/purchases/?page=1")
    assert response.headers["Location"] == "/admin/purchases/?page=1"


def test_flashed_and_listed_error_text_is_escaped(client, db_session):
    user = signed_in(client, db_session)
    make_execution(db_session, Status.FAILED, created_by=user, error="<script>alert(1)</script>")

    post_retry(client, "<script>alert(2)</script>")  # a malformed id, echoed in the refusal

    html = client.get(LIST).text
    assert "<script>alert(" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert re.search(r"malformed execution id: .*&lt;script&gt;alert\(2\)", html)


def test_rows_are_newest_first_with_the_id_breaking_ties(client, db_session):
    user = signed_in(client, db_session)
    older = make_execution(db_session, Status.FAILED, created_by=user)
    same_instant = [
        make_execution(db_session, Status.FAILED, created_by=user, created_at=older.created_at)
        for _ in range(3)
    ]
    newest = make_execution(db_session, Status.PENDING, created_by=user)

    html = client.get(LIST).text

    shown = re.findall(r'data-row-actions="([^"]+)"', html)
    tied = sorted((str(row.execution_id) for row in [older, *same_instant]), reverse=True)
    assert shown == [str(newest.execution_id), *tied]


def test_a_page_costs_the_same_number_of_queries_whatever_its_size(client, db_session):
    user = signed_in(client, db_session, groups=("Purchasers",))

    def queries_for_list() -> int:
        statements: list[str] = []

        def count(_conn, _cursor, statement, *_args):
            statements.append(statement)

        assert db.engine is not None
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            assert client.get(LIST).status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return len(statements)

    def add_lineage_rows(n: int) -> None:
        for _ in range(n):
            successor = make_execution(db_session, Status.PENDING, created_by=user)
            make_execution(
                db_session,
                Status.FAILED,
                created_by=user,
                retry_execution_id=successor.execution_id,
            )
            make_execution(db_session, Status.FAILED, created_by=user)

    add_lineage_rows(1)
    small_page = queries_for_list()
    add_lineage_rows(10)
    assert queries_for_list() == small_page
