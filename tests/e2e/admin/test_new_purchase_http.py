"""The panel's New purchase page over HTTP: Preview shows the quote and the totals and
writes nothing; "Create purchase" makes a pending row and lands on its details page; a
malformed item, a suppressed one, a user who may not create and a post without its CSRF
token are refused, with the input kept on the page."""

from __future__ import annotations

import html
import io
import json

import pytest
from sqlalchemy import func, select

from app.domain.statuses import Status
from app.models import AuditEvent, PurchaseExecution
from tests.e2e.helpers import csrf_from, page_login
from tests.factories import PASSWORD, ec2_item, make_account, make_execution, make_suppression

PAGE = "/admin/purchases/new/"


def signed_in(client, user) -> str:
    assert page_login(client, user.email, PASSWORD).status_code == 302
    return csrf_from(client.get(PAGE).text)


def counts(session) -> tuple[int, int]:
    session.expire_all()
    return (
        session.scalar(select(func.count()).select_from(PurchaseExecution)),
        session.scalar(select(func.count()).select_from(AuditEvent)),
    )


def form(token: str, account, items: list, **fields: str) -> dict[str, str]:
    return {
        "csrf_token": token,
        "cloud_account_id": str(account.id),
        "items_text": json.dumps(items),
        **fields,
    }


def test_preview_shows_the_money_and_writes_nothing_then_create_makes_a_pending_row(
    client, db_session, admin
):
    account = make_account(db_session)
    token = signed_in(client, admin)
    before = counts(db_session)
    items = [ec2_item(), ec2_item(resource_type="m5.xlarge", upfront_cost=1200)]

    preview = client.post(PAGE, data={**form(token, account, items), "preview": "1"})

    assert preview.status_code == 200
    page = html.unescape(preview.text)
    assert "data-purchase-preview" in page and 'data-items="2"' in page
    assert 'data-money="upfront">1800' in page
    assert 'data-action="create-purchase"' in page
    assert counts(db_session) == before

    created = client.post(PAGE, data={**form(token, account, items), "confirmed": "yes"})

    assert created.status_code == 302
    row = db_session.scalars(select(PurchaseExecution)).one()
    assert row.status == Status.PENDING.value
    assert str(row.cloud_account_id) == str(account.id)
    assert created.headers["Location"].endswith(f"/admin/purchases/details/?id={row.execution_id}")
    landed = html.unescape(client.get(created.headers["Location"]).text)
    assert f"Created {row.execution_id}: pending approval" in landed


def test_a_malformed_item_is_refused_naming_the_field_and_the_input_is_kept(
    client, db_session, admin
):
    account = make_account(db_session)
    token = signed_in(client, admin)
    items = [ec2_item(count="lots")]

    for extra in ({"preview": "1"}, {"confirmed": "yes"}):
        response = client.post(PAGE, data={**form(token, account, items), **extra})
        assert response.status_code == 400
        page = html.unescape(response.text)
        assert "item 0" in page and "count" in page
        assert '"count": "lots"' in page  # the textarea keeps what was typed
    assert db_session.scalars(select(PurchaseExecution)).all() == []
    refused = db_session.scalars(
        select(AuditEvent.action).where(AuditEvent.action == "execution.create_refused")
    ).all()
    assert refused == ["execution.create_refused"]


def test_a_suppressed_item_is_refused_with_its_reason(client, db_session, admin):
    account = make_account(db_session)
    buying = make_execution(db_session, Status.APPROVED)
    make_suppression(db_session, buying)
    token = signed_in(client, admin)
    items = [ec2_item(account_id="123456789012")]

    response = client.post(PAGE, data={**form(token, account, items), "confirmed": "yes"})

    assert response.status_code == 409
    page = html.unescape(response.text)
    assert "item 0 is suppressed" in page and str(buying.execution_id) in page
    assert db_session.scalars(select(PurchaseExecution)).all() == [buying]


def test_an_uploaded_csv_file_is_read_as_the_items(client, db_session, admin):
    account = make_account(db_session)
    token = signed_in(client, admin)
    item = ec2_item()
    header = ",".join(item)
    line = ",".join(str(value) for value in item.values())
    upload = (io.BytesIO(f"{header}\n{line}\n".encode()), "items.csv")

    response = client.post(
        PAGE,
        data={**form(token, account, []), "items_text": "", "items_file": upload, "preview": "1"},
        content_type="multipart/form-data",
    )

    assert response.status_code == 200, html.unescape(response.text)[-3000:]
    assert 'data-items="1"' in response.text and "m5.large" in response.text


@pytest.mark.parametrize(
    "fields",
    [
        {"items_text": "[{"},
        {"items_text": "[]"},
        {"cloud_account_id": "not-an-id"},
        {"cloud_account_id": "00000000-0000-0000-0000-000000000000"},
        {"step_number": "9" * 5000},
        {"step_number": "-1"},
        {"scheduled_for": "yesterday"},
        {"plan_id": "x" * 300},
    ],
)
def test_hostile_input_is_a_4xx_with_a_message(client, db_session, admin, fields):
    account = make_account(db_session)
    token = signed_in(client, admin)
    data = {**form(token, account, [ec2_item()]), "preview": "1", **fields}

    response = client.post(PAGE, data=data)

    assert 400 <= response.status_code < 500, response.text[:500]
    assert "alert" in response.text
    assert db_session.scalars(select(PurchaseExecution)).all() == []


def test_a_lone_surrogate_is_a_400(client, db_session, admin):
    account = make_account(db_session)
    token = signed_in(client, admin)
    body = f"csrf_token={token}&cloud_account_id={account.id}&preview=1&items_text=%ED%A0%80"

    response = client.post(PAGE, data=body, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    assert db_session.scalars(select(PurchaseExecution)).all() == []


def test_a_user_who_may_not_create_is_refused(client, db_session, purchaser):
    account = make_account(db_session)
    assert page_login(client, purchaser.email, PASSWORD).status_code == 302
    token = csrf_from(client.get("/admin/").text)

    assert client.get(PAGE).status_code == 403
    posted = client.post(PAGE, data={**form(token, account, [ec2_item()]), "confirmed": "yes"})
    assert posted.status_code == 403
    assert 'href="/admin/purchases/new/"' not in client.get("/admin/").text
    assert db_session.scalars(select(PurchaseExecution)).all() == []


def test_a_post_without_its_csrf_token_is_refused(client, db_session, admin):
    account = make_account(db_session)
    signed_in(client, admin)
    data = form("", account, [ec2_item()])
    del data["csrf_token"]

    response = client.post(PAGE, data={**data, "confirmed": "yes"})

    assert response.status_code == 400
    assert db_session.scalars(select(PurchaseExecution)).all() == []


def test_import_fills_the_items_with_the_accounts_recommendations(client, db_session, admin):
    account = make_account(db_session)
    signed_in(client, admin)

    page = html.unescape(client.get(f"{PAGE}?account={account.id}&import=1").text)

    assert "recommendations for aws account" in page
    assert '"service": ' in page and f'value="{account.id}" selected' in page
    unknown = client.get(f"{PAGE}?account=00000000-0000-0000-0000-000000000000&import=1")
    assert unknown.status_code == 200 and "no account with id" in html.unescape(unknown.text)
