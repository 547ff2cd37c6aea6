"""The panel's bulk retry over HTTP: "Retry selected" (Flask-Admin's action), "Retry all N
matching this filter", the confirmation page each opens first (what would happen, with
the money, nothing written), and the batch page. No worker runs: rows wait queued."""

from __future__ import annotations

import html
import json
import re

from sqlalchemy import func, select

from app.domain.statuses import Status
from app.models import RetryBatch, RetryBatchItem
from tests.e2e.helpers import csrf_from, page_login
from tests.factories import PASSWORD, make_execution, make_user, recommendation

LIST = "/admin/purchases/"


def signed_in(client, session, groups=()):
    user = make_user(session, groups=groups)
    page_login(client, user.email, PASSWORD)
    return user


def failed(session, user, **fields):
    values = {"error": "capacity", "recommendations": [recommendation()]}
    return make_execution(session, Status.FAILED, created_by=user, **(values | fields))


def retry_selected(client, ids, *, token=True, confirmed=True):
    """Press "Retry selected" on `ids`, then Confirm on the page that opens (unless
    `confirmed` is False: the confirmation page itself)."""
    form = {"action": "retry", "rowid": [str(i) for i in ids]}
    if token:
        form["csrf_token"] = csrf_from(client.get(LIST).text)
    page = client.post(f"{LIST}action/", data=form, follow_redirects=True)
    if not confirmed or "data-retry-preview" not in page.text:
        return page
    return confirm(client, page.text)


def confirm(client, page: str):
    """Press Confirm on a bulk retry's confirmation page: its form, as the page has it."""
    form = re.search(
        r'<form method="post" action="([^"]+)" class="d-inline">(.*?)</form>', page, re.S
    )
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form[2]):
        fields.setdefault(name, []).append(html.unescape(value))
    return client.post(html.unescape(form[1]), data=fields, follow_redirects=True)


def batches(session) -> int:
    return session.scalar(select(func.count()).select_from(RetryBatch))


def test_retry_selected_reports_every_row_in_one_flash(client, db_session):
    user = signed_in(client, db_session)
    other = make_user(db_session)
    mine = failed(db_session, user)
    persistent = failed(db_session, user, error="IAM denied: iam:PassRole")
    not_mine = failed(db_session, other)

    page = retry_selected(
        client, [mine.execution_id, persistent.execution_id, not_mine.execution_id]
    )
    assert page.status_code == 200
    flashes = re.findall(r'data-flash="[^"]+">(.*?)</div>', page.text, re.S)
    assert len(flashes) == 1
    [flash] = flashes
    assert "Retry of 3 executions: 1 queued, 2 refused" in flash
    assert f"<code>{persistent.execution_id}</code>: this failure will recur" in flash
    assert "Grant the purchasing role" in flash
    assert f"<code>{not_mine.execution_id}</code>: not allowed to retry" in flash
    assert f"<code>{mine.execution_id}</code>: queued" in flash
    # The batch page shows every row, and the queued one waits for the worker.
    assert 'data-batch-item="' + str(mine.execution_id) + '" data-item-state="queued"' in page.text
    found = db_session.execute(select(RetryBatchItem.execution_id, RetryBatchItem.state))
    states = {execution_id: state for execution_id, state in found}
    assert states == {
        str(mine.execution_id): "queued",
        str(persistent.execution_id): "rejected",
        str(not_mine.execution_id): "rejected",
    }


def test_retry_selected_without_a_csrf_token_changes_nothing(client, db_session):
    user = signed_in(client, db_session)
    row = failed(db_session, user)
    page = retry_selected(client, [row.execution_id], token=False)
    assert page.status_code == 400 and "CSRF token is missing" in page.text
    assert batches(db_session) == 0


def test_a_user_who_may_retry_nothing_is_not_offered_it_and_is_refused(client, db_session):
    reader = signed_in(client, db_session, groups=("Read-only",))
    row = failed(db_session, reader)
    assert "Retry selected" not in client.get(LIST).text
    retry_selected(client, [row.execution_id])
    assert batches(db_session) == 0


def test_retry_all_matching_the_filter_says_n_and_retries_those(client, db_session):
    user = signed_in(client, db_session, groups=("Purchasers",))
    rows = [failed(db_session, user) for _ in range(3)]
    make_execution(db_session, Status.COMPLETED, created_by=user)

    listing = client.get(LIST).text
    assert 'data-action="retry-matching"' not in listing  # unfiltered: no such button
    page = client.get(LIST, query_string={filter_arg(listing, "Status", "equals"): "failed"})
    assert "Retry all 3 matching this filter" in page.text
    action = re.search(r'<form method="post" class="mb-2" action="([^"]+)"', page.text).group(1)
    action = html.unescape(action)

    refused = client.post(action, data={})
    assert refused.status_code == 400 and batches(db_session) == 0
    preview = client.post(action, data={"csrf_token": csrf_from(page.text)})
    assert preview.status_code == 200 and batches(db_session) == 0
    assert re.search(r'data-preview-group="queued"[^>]*data-group-count="3"', preview.text)
    # The money before the click: three items of 1,200.00 upfront and 45.50 a month saved.
    queued_row = preview.text.split('data-preview-group="queued"')[1].split("</tr>")[0]
    assert '<td class="text-right" data-money="upfront">3600.00</td>' in queued_row
    assert '<td class="text-right" data-money="yearly_savings">1638.00</td>' in queued_row
    done = confirm(client, preview.text)
    assert "Retry of 3 executions: 3 queued, 0 refused" in done.text
    queued = set(db_session.scalars(select(RetryBatchItem.execution_id)))
    assert queued == {str(row.execution_id) for row in rows}


def filter_arg(page: str, group: str, operation: str) -> str:
    """The URL argument of one of the list's Flask-Admin filters, as the page lists them."""
    groups = json.loads(
        html.unescape(re.search(r'id="filter-groups-data"[^>]*>(.*?)</div>', page, re.S).group(1))
    )
    found = next(
        f
        for name, filters in groups.items()
        if group in name
        for f in filters
        if f["operation"] == operation
    )
    return f"flt0_{found['arg']}"


def test_the_batch_page_is_its_requester_s_or_an_admin_s(client, db_session, app):
    user = signed_in(client, db_session)
    row = failed(db_session, user)
    page = retry_selected(client, [row.execution_id])
    batch_url = re.search(r'href="(/admin/retry_batches/[^"]+)" data-batch-link', page.text).group(
        1
    )
    assert client.get(batch_url).status_code == 200
    other = app.test_client()
    signed_in(other, db_session)
    assert other.get(batch_url).status_code == 403
    admin = app.test_client()
    signed_in(admin, db_session, groups=("Administrators",))
    assert admin.get(batch_url).status_code == 200


def retry_matching(client, page: str):
    """Press "Retry all N matching this filter" on a list page, then Confirm; the batch
    page."""
    action = re.search(r'<form method="post" class="mb-2" action="([^"]+)"', page).group(1)
    preview = client.post(
        html.unescape(action), data={"csrf_token": csrf_from(page)}, follow_redirects=True
    )
    return confirm(client, preview.text)


def test_a_list_filtered_to_another_status_offers_no_retry_all_matching(client, db_session):
    user = signed_in(client, db_session, groups=("Purchasers",))
    failed(db_session, user)
    make_execution(db_session, Status.COMPLETED, created_by=user)
    listing = client.get(LIST).text
    page = client.get(LIST, query_string={filter_arg(listing, "Status", "equals"): "completed"})
    assert page.status_code == 200
    assert 'data-action="retry-matching"' not in page.text
    assert "matching this filter" not in page.text


def test_retry_all_matching_a_search_retries_what_the_search_finds_as_a_history_filter(
    client, db_session
):
    """The list's search and filters reach the service as the history filter they add
    up to: an execution id searched for is that row, text is a substring of the error;
    no status named means failed."""
    user = signed_in(client, db_session, groups=("Purchasers",))
    wanted = failed(db_session, user, error="Capacity gone in us-east-1a")
    failed(db_session, user, error="Capacity gone in eu-west-1b")
    make_execution(db_session, Status.COMPLETED, created_by=user, error="gone in us-east-1a")

    by_id = client.get(LIST, query_string={"search": str(wanted.execution_id)}).text
    assert "Retry all 1 matching this filter" in by_id
    done = retry_matching(client, by_id)
    assert "Retry of 1 executions: 1 queued, 0 refused" in done.text
    # The completed row matches the text too, but only a failed row can be retried.
    by_text = client.get(LIST, query_string={"search": "US-EAST-1A"}).text
    assert by_text.count("data-row-actions=") == 2
    assert "Retry all 1 matching this filter" in by_text
    retry_matching(client, by_text)

    recorded = db_session.scalars(select(RetryBatch).order_by(RetryBatch.created_at)).all()
    assert sorted((batch.selection for batch in recorded), key=json.dumps) == sorted(
        [
            {"filter": {"status": "failed", "execution_id": str(wanted.execution_id)}},
            {"filter": {"status": "failed", "error_contains": "US-EAST-1A"}},
        ],
        key=json.dumps,
    )
    items = db_session.execute(select(RetryBatchItem.batch_id, RetryBatchItem.execution_id))
    assert {execution_id for _, execution_id in items} == {str(wanted.execution_id)}
    assert {batch.kind for batch in recorded} == {"bulk"}
