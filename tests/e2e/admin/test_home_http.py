"""The home page over HTTP: its numbers, the list behind each link, who may open it, and
what a visit costs in statements whatever the size of the history. Also the history
list's Provider filter, which the home page's provider links use."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from decimal import Decimal

from app.db import db, utcnow
from app.domain.statuses import Status
from app.services.identity import create_group
from tests.e2e.helpers import page_login
from tests.factories import PASSWORD, make_account, make_execution, make_user
from tests.support.statements import recorded_statements

HOME = "/admin/"


def shown(page: str) -> list[str]:
    """The execution ids a Purchase History page lists."""
    return re.findall(r'data-row-actions="([^"]+)"', page)


def links(page: str, selector: str) -> list[str]:
    """The hrefs of the `<a ... selector ...>` tags of the page, unescaped."""
    return [
        html.unescape(href)
        for href in re.findall(rf'<a[^>]*href="([^"]+)"[^>]*{selector}', page, re.S)
    ]


def seed(db_session):
    aws = make_account(db_session, provider="aws")
    gcp = make_account(db_session, provider="gcp")
    rows = {}
    for name, status, account, upfront, savings in (
        ("aws pending", Status.PENDING, aws, "1000.00", "36.50"),
        ("gcp pending", Status.PENDING, gcp, "250.00", "0.00"),
        ("aws failed", Status.FAILED, aws, "4000.00", "73.00"),
        ("gcp completed", Status.COMPLETED, gcp, "9000.00", "900.00"),
    ):
        rows[name] = make_execution(
            db_session,
            status,
            cloud_account_id=account.id,
            total_upfront_cost=Decimal(upfront),
            estimated_savings=Decimal(savings),
        ).execution_id
    return aws, gcp, {name: str(execution_id) for name, execution_id in rows.items()}


def test_the_totals_and_the_rows_behind_each(client, db_session):
    _aws, _gcp, rows = seed(db_session)
    viewer = make_user(db_session, groups=("Read-only",))
    page_login(client, viewer.email, PASSWORD)

    home = client.get(HOME)

    assert home.status_code == 200
    page = home.text
    pending = re.search(r'<tr data-waiting="pending">(.*?)</tr>', page, re.S)
    assert pending
    assert 'data-field="rows">2<' in pending.group(1)
    assert ">$1,250.00<" in pending.group(1)  # upfront
    assert ">$3.04<" in pending.group(1)  # monthly savings: a year's 36.50 / 12
    assert ">$0.10<" in pending.group(1)  # 36.50 / 365
    failed = re.search(r'<tr data-waiting="failed">(.*?)</tr>', page, re.S)
    assert failed and ">$4,000.00<" in failed.group(1) and ">$0.20<" in failed.group(1)
    (pending_list,) = set(links(pending.group(1), 'data-field="rows"'))
    assert sorted(shown(client.get(pending_list).text)) == sorted(
        [rows["aws pending"], rows["gcp pending"]]
    )
    (failed_list,) = set(links(failed.group(1), 'data-field="rows"'))
    assert shown(client.get(failed_list).text) == [rows["aws failed"]]


def test_each_breakdown_cell_opens_exactly_its_rows(client, db_session):
    aws, gcp, rows = seed(db_session)
    make_user(db_session, "dee@example.com")
    page_login(client, "dee@example.com", PASSWORD)

    page = client.get(HOME).text

    expected = {
        (str(aws.id), "pending"): [rows["aws pending"]],
        (str(aws.id), "failed"): [rows["aws failed"]],
        (str(gcp.id), "pending"): [rows["gcp pending"]],
        ("aws", "pending"): [rows["aws pending"]],
        ("aws", "failed"): [rows["aws failed"]],
        ("gcp", "pending"): [rows["gcp pending"]],
    }
    found = {}
    for kind in ("account", "provider"):
        for key, cells in re.findall(rf'<tr data-{kind}="([^"]+)">(.*?)</tr>', page, re.S):
            for href, status in re.findall(
                r'<a class="money-cell" href="([^"]+)"\s+data-bucket="([^"]+)"', cells
            ):
                found[(key, status)] = shown(client.get(html.unescape(href)).text)
    assert found == expected


def test_a_visit_costs_the_same_statements_whatever_the_rows(client, db_session):
    make_user(db_session, "eve@example.com")
    page_login(client, "eve@example.com", PASSWORD)
    assert db.engine is not None

    def visit() -> int:
        with recorded_statements(db.engine) as seen:
            assert client.get(HOME).status_code == 200
        return len(seen)

    seed(db_session)
    few = visit()
    for n in range(12):
        account = make_account(db_session, provider=("aws", "gcp", "azure")[n % 3])
        for status in Status:
            make_execution(
                db_session, status, cloud_account_id=account.id, created_at=utcnow() - timedelta(n)
            )
    assert visit() == few


def test_a_user_who_may_not_view_purchases_is_refused(client, db_session):
    create_group(db_session, "Approvers only", ["approve-own:purchases"], restricts_defaults=True)
    seed(db_session)
    user = make_user(db_session, groups=("Approvers only",))
    page_login(client, user.email, PASSWORD)

    response = client.get(HOME)

    assert response.status_code == 403
    assert "$" not in response.text


def test_the_history_list_filters_by_provider(client, db_session):
    _aws, _gcp, rows = seed(db_session)
    make_execution(db_session, Status.PENDING)  # no account, no provider
    make_user(db_session, "fay@example.com")
    page_login(client, "fay@example.com", PASSWORD)

    gcp_rows = client.get("/admin/purchases/?flt0_provider_equals=gcp").text
    assert sorted(shown(gcp_rows)) == sorted([rows["gcp pending"], rows["gcp completed"]])
    assert shown(client.get("/admin/purchases/?flt0_provider_equals=azure").text) == []

    refused = client.get("/admin/purchases/?flt0_provider_equals=oracle")
    assert refused.status_code == 400
    assert "unknown provider" in refused.text
    assert shown(refused.text) == []


def test_the_api_history_filters_by_provider(client, db_session):
    _aws, _gcp, rows = seed(db_session)
    make_user(db_session, "gil@example.com")
    page_login(client, "gil@example.com", PASSWORD)

    answer = client.get("/api/history?provider=aws")
    assert answer.status_code == 200
    assert sorted(item["execution_id"] for item in answer.json["items"]) == sorted(
        [rows["aws pending"], rows["aws failed"]]
    )
    assert client.get("/api/history?provider=oracle").status_code == 400
