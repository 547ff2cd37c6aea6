"""The Purchase History list over HTTP: its filters, search, sort and columns, what a
page costs in statements whatever its size."""

from __future__ import annotations

import html
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import event

from app.db import db
from app.domain.bulk_retry import MAX_BATCH_ROWS
from app.domain.statuses import Status
from app.models import PurchasePlan
from tests.e2e.helpers import page_login
from tests.factories import PASSWORD, make_account, make_execution, make_user
from tests.support.statements import recorded_statements

LIST = "/admin/purchases/"
NOON_10_MARCH = datetime(2026, 3, 10, 12, tzinfo=UTC)


@contextmanager
def statements() -> Iterator[list[str]]:
    assert db.engine is not None
    with recorded_statements(db.engine) as seen:
        yield seen


def shown(page: str) -> list[str]:
    """The execution ids of the listed rows, in order."""
    return re.findall(r'data-row-actions="([^"]+)"', page)


def filter_args(page: str) -> dict[tuple[str, str], str]:
    """(filter name, operation) -> its URL argument, as the page lists the filters."""
    data = re.search(r'id="filter-groups-data"[^>]*>(.*?)</div>', page, re.S)
    assert data, "no filters on the page"
    groups = json.loads(html.unescape(data.group(1)))
    return {(name, f["operation"]): f["arg"] for name, items in groups.items() for f in items}


def filter_options(page: str, name: str) -> dict[str, str]:
    data = re.search(r'id="filter-groups-data"[^>]*>(.*?)</div>', page, re.S)
    assert data
    (item,) = json.loads(html.unescape(data.group(1)))[name]
    return {label: value for value, label in item["options"] or []}


@pytest.fixture
def history(client, db_session):
    """Two creators, two accounts, a plan, and rows a day apart, newest first: the
    signed-in viewer's `rows` by name."""
    viewer = make_user(db_session, "viewer@example.com", groups=("Read-only",))
    ana = make_user(db_session, "ana@example.com")
    ben = make_user(db_session, "ben@example.com")
    aws = make_account(db_session)
    gcp = make_account(db_session, provider="gcp")
    gcp.name = "gcp analytics"
    plan = PurchasePlan(name="ramp to 80%", total_steps=4, current_step=2)
    db_session.add(plan)
    db_session.flush()
    now = NOON_10_MARCH
    rows = {
        "pending": make_execution(
            db_session, Status.PENDING, created_by=ana, created_at=now, cloud_account_id=aws.id
        ),
        "quota": make_execution(
            db_session,
            Status.FAILED,
            created_by=ben,
            created_at=now - timedelta(days=1),
            cloud_account_id=gcp.id,
            plan_id=plan.id,
            step_number=3,
            error="Quota EXCEEDED for 50%_of_region",
        ),
        "capacity": make_execution(
            db_session,
            Status.FAILED,
            created_by=ana,
            created_at=now - timedelta(days=2),
            cloud_account_id=aws.id,
            error="InsufficientInstanceCapacity",
        ),
        "done": make_execution(
            db_session, Status.COMPLETED, created_by=ben, created_at=now - timedelta(days=3)
        ),
    }
    page_login(client, viewer.email, PASSWORD)
    return {"rows": rows, "aws": aws, "gcp": gcp, "plan": plan, "ana": ana, "ben": ben}


def ids(history, *names: str) -> list[str]:
    return [str(history["rows"][name].execution_id) for name in names]


def test_every_filter_narrows_the_list(client, history):
    page = client.get(LIST).text
    assert shown(page) == ids(history, "pending", "quota", "capacity", "done")
    args = filter_args(page)
    assert filter_options(page, "Account") == {
        "aws account": str(history["aws"].id),
        "gcp analytics": str(history["gcp"].id),
    }
    # A read-only viewer is offered only themselves (tests/e2e/admin/test_hostile_panel.py).
    assert list(filter_options(page, "Creator")) == ["viewer@example.com"]

    def listed(**query: str) -> list[str]:
        response = client.get(LIST, query_string=query)
        assert response.status_code == 200
        return shown(response.text)

    status = args[("Status", "equals")]
    account = args[("Account", "equals")]
    assert listed(**{f"flt0_{status}": "failed"}) == ids(history, "quota", "capacity")
    assert listed(**{f"flt0_{account}": str(history["aws"].id)}) == ids(
        history, "pending", "capacity"
    )
    assert listed(**{f"flt0_{args[('Plan', 'equals')]}": str(history["plan"].id)}) == ids(
        history, "quota"
    )
    assert listed(**{f"flt0_{args[('Creator', 'equals')]}": str(history["ben"].id)}) == ids(
        history, "quota", "done"
    )
    after, before = args[("Created", "on or after")], args[("Created", "before")]
    # As the date-time picker writes them; naive means UTC.
    window = {f"flt0_{after}": "2026-03-08 12:00:00", f"flt1_{before}": "2026-03-10"}
    assert listed(**window) == ids(history, "quota", "capacity")
    assert listed(**{f"flt0_{after}": "2026-03-10T12:00:00+00:00"}) == ids(history, "pending")
    both = {f"flt0_{status}": "failed", f"flt1_{account}": str(history["aws"].id)}
    assert listed(**both) == ids(history, "capacity")


def test_a_bad_filter_value_is_refused_not_dropped(client, history):
    """Dropping it would list all 4 rows (and widen "Retry all N matching")."""
    args = filter_args(client.get(LIST).text)
    response = client.get(LIST, query_string={f"flt0_{args[('Account', 'equals')]}": "nope"})
    assert response.status_code == 400
    assert "malformed cloud_account_id" in response.text
    assert shown(response.text) == []


def test_search_finds_an_exact_id_or_error_text(client, history):
    def searched(term: str) -> list[str]:
        response = client.get(LIST, query_string={"search": term})
        assert response.status_code == 200
        return shown(response.text)

    quota = history["rows"]["quota"].execution_id
    assert searched(str(quota)) == ids(history, "quota")
    assert searched(str(quota).upper()) == ids(history, "quota")
    assert searched(str(uuid.uuid4())) == []
    assert searched("quota exceeded") == ids(history, "quota")
    assert searched("insufficientinstance") == ids(history, "capacity")
    assert searched("50%_of") == ids(history, "quota")
    assert searched("5%") == []  # % is itself, not "anything"
    assert searched("a_o") == []  # and so is _
    too_long = client.get(LIST, query_string={"search": "x" * 500})
    assert too_long.status_code == 200 and "longer than" in too_long.text
    assert shown(too_long.text) == []  # a search that cannot run matches nothing


def test_sort_by_status_then_newest(client, history):
    page = client.get(LIST).text
    headers = re.findall(r'<a href="([^"]+)" title="Sort by ([^"]+)"', page)
    sorts = {name: html.unescape(url) for url, name in headers}
    assert set(sorts) == {"When", "Status", "Savings"}
    ascending = shown(client.get(sorts["Status"]).text)
    assert ascending == ids(history, "done", "capacity", "quota", "pending")
    oldest_first = shown(client.get(sorts["When"]).text)
    assert oldest_first == ids(history, "done", "capacity", "quota", "pending")


def test_columns_show_names_and_a_short_escaped_error(client, history, db_session):
    long_error = "<b>bold</b> " + "x" * 300 + " the end"
    make_execution(db_session, Status.FAILED, created_by=history["ana"], error=long_error)
    page = client.get(LIST).text
    assert ">gcp analytics</span>" in page
    assert ">ramp to 80%</span> · step 3" in page
    assert ">ben@example.com</span>" in page
    shortened = re.search(r"<span data-error title=\"([^\"]*)\">([^<]*)</span>", page)
    assert shortened, "no error cell"
    title, text = html.unescape(shortened.group(1)), html.unescape(shortened.group(2))
    assert title == long_error and text == long_error[:119] + "…"
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page


def test_the_export_link_carries_the_filters_and_search(client, history):
    args = filter_args(client.get(LIST).text)
    page = client.get(
        LIST,
        query_string={
            f"flt0_{args[('Status', 'equals')]}": "failed",
            f"flt1_{args[('Account', 'equals')]}": str(history["aws"].id),
            "search": "Capacity",
        },
    ).text
    link = re.search(r'href="([^"]+)">Export CSV', page)
    assert link
    url = urlsplit(html.unescape(link.group(1)))
    assert url.path == "/api/history/export.csv"
    assert parse_qs(url.query) == {
        "status": ["failed"],
        "cloud_account_id": [str(history["aws"].id)],
        "error_contains": ["Capacity"],
    }
    exported = client.get(html.unescape(link.group(1)))
    assert exported.status_code == 200
    assert str(history["rows"]["capacity"].execution_id) in exported.text
    assert exported.text.count("\n") == 2  # the header and that one row


def rows_of_every_kind(session, n: int, owner, accounts, plan) -> None:
    """`n` rows of each kind the cells look things up for: an account, a plan, a
    creator, a predecessor and a successor (lineage), and a queued retry's owner."""
    for index in range(n):
        creator = make_user(session)
        successor = make_execution(
            session, Status.PENDING, created_by=creator, cloud_account_id=accounts[index % 2].id
        )
        make_execution(
            session,
            Status.FAILED,
            created_by=owner,
            retry_execution_id=successor.execution_id,
            plan_id=plan.id,
            cloud_account_id=accounts[(index + 1) % 2].id,
            error=f"failure {index}",
        )


def test_a_page_of_20_costs_the_statements_of_a_page_of_200(client, db_session):
    owner = make_user(db_session, groups=("Purchasers",))
    accounts = [make_account(db_session), make_account(db_session, provider="azure")]
    plan = PurchasePlan(name="ramp", total_steps=2, current_step=1)
    db_session.add(plan)
    db_session.flush()
    rows_of_every_kind(db_session, 110, owner, accounts, plan)
    page_login(client, owner.email, PASSWORD)

    def cost(query: str) -> list[str]:
        with statements() as seen:
            response = client.get(f"{LIST}?{query}")
        assert response.status_code == 200
        return seen, shown(response.text)

    small, rows_small = cost("page_size=20")
    large, rows_large = cost("page_size=200")
    assert (len(rows_small), len(rows_large)) == (20, 200)
    assert len(small) == len(large), "\n".join(large)
    deep, rows_deep = cost("page_size=20&page=5")
    assert len(rows_deep) == 20 and len(deep) == len(small)
    filtered, _ = cost("page_size=200&flt0_status_equals=failed")
    assert len(filtered) == len(cost("page_size=20&flt0_status_equals=failed")[0])
    # The list itself never counts its rows.
    assert counts_of_executions(small + large + deep) == []
    # A filtered list offers "Retry all N matching": N is counted, but capped (a count
    # over at most one more row than a batch holds), never over the whole table.
    [matching] = counts_of_executions(filtered)
    assert re.search(r"from \(select .* limit \S+( offset \S+)?\) as \w+$", matching), matching
    with statements_and_parameters() as seen:
        client.get(f"{LIST}?page_size=20&flt0_status_equals=failed")
    [parameters] = [params for statement, params in seen if counts_of_executions([statement])]
    values = parameters.values() if isinstance(parameters, dict) else parameters
    assert MAX_BATCH_ROWS + 1 in values


def counts_of_executions(seen: list[str]) -> list[str]:
    """The statements (flattened, lower case) that count rows of purchase_executions."""
    flat = (" ".join(statement.split()).lower() for statement in seen)
    return [s for s in flat if "count(" in s and "purchase_executions" in s]


@contextmanager
def statements_and_parameters() -> Iterator[list[tuple[str, Any]]]:
    """Each statement the engine executes in the block, with its parameters."""
    assert db.engine is not None
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
