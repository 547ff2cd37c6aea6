"""The Spend Limits page over HTTP: every group's limit (accounts by name), a form per
group to set or edit it, "Clear"; admins only.

Each write is a POST form with the CSRF token, through the service `flask groups limit`
calls: the tests check what was stored, what the page shows, what the trail records,
and that refusals (a bad field, not an admin, no CSRF token, a malformed or unknown
group) change nothing.
"""

from __future__ import annotations

import html
import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.models import AuditEvent, Group, SpendLimit, User
from app.services.identity import create_group
from tests.e2e.helpers import csrf_from, page_login
from tests.factories import PASSWORD, make_account, make_user


@pytest.fixture
def root(client, db_session) -> User:
    """An admin, signed in on `client`."""
    user = make_user(db_session, "root@example.com", groups=("Administrators",))
    assert page_login(client, user.email, PASSWORD).status_code == 302
    return user


@pytest.fixture
def finance(db_session) -> Group:
    return create_group(db_session, "Finance", ["approve-any:purchases"])


def token(client) -> str:
    return csrf_from(client.get("/admin/").text)


def events(session, action: str) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def limit_of(session, group: Group) -> SpendLimit | None:
    query = select(SpendLimit).where(SpendLimit.group_id == group.id)
    return session.scalars(query.execution_options(populate_existing=True)).one_or_none()


def flashes(page: str, category: str) -> list[str]:
    found = re.findall(rf'data-flash="{category}">([^<]*)<', page)
    return [html.unescape(text) for text in found]


def named_account(session, name: str, provider: str = "aws"):
    account = make_account(session, provider=provider)
    account.name = name
    session.flush()
    return account


def save(client, group: Group, *, with_token: bool = True, **form: object):
    data: dict[str, object] = {
        "services": "",
        "max_per_purchase": "",
        "max_per_day": "",
        **form,
    }
    if with_token:
        data["csrf_token"] = token(client)
    return client.post(f"/admin/limits/edit/?group={group.id}", data=data)


def clear(client, group_id: object, *, with_token: bool = True):
    data: dict[str, object] = {"group": str(group_id)}
    if with_token:
        data["csrf_token"] = token(client)
    return client.post("/admin/limits/clear/", data=data)


def row_of(page: str, group: str) -> str:
    match = re.search(rf'<tr data-limit-group="{re.escape(group)}".*?</tr>', page, re.S)
    assert match, f"no row for {group}"
    return match.group(0)


def test_an_admin_sets_a_limit_that_is_stored_shown_by_name_and_audited(
    client, db_session, root, finance
):
    prod = named_account(db_session, "prod")
    named_account(db_session, "sandbox")
    form = client.get(f"/admin/limits/edit/?group={finance.id}").text
    assert "Spend limit of Finance" in form
    assert f'value="{prod.id}"' in form and "prod (aws)" in form

    response = save(
        client,
        finance,
        accounts=[str(prod.id)],
        providers=["aws"],
        services="EC2, savings-plans\nrds",
        max_per_purchase="25000",
        max_per_day="100000.5",
    )

    assert response.status_code == 302, response.text
    page = client.get(response.headers["Location"]).text
    assert flashes(page, "success") == ['saved the spend limit of group "Finance"']
    stored = limit_of(db_session, finance)
    assert stored is not None
    assert stored.allowed_account_ids == [str(prod.id)]
    assert (stored.allowed_providers, stored.allowed_services) == (
        ["aws"],
        ["ec2", "rds", "savingsplans"],
    )
    assert (stored.max_per_purchase, stored.max_per_day) == (
        Decimal("25000.00"),
        Decimal("100000.50"),
    )
    row = row_of(page, "Finance")
    assert '<td data-limit-field="accounts">prod</td>' in row
    assert str(prod.id) not in row.replace(f'data-group-id="{finance.id}"', "")
    assert '<td data-limit-field="max_per_purchase">25000.00</td>' in row
    assert 'data-limited="false"' in row_of(page, "Purchasers")
    [changed] = events(db_session, "spend_limit.changed")
    assert (changed.actor_user_id, changed.actor_email) == (root.id, root.email)
    assert changed.details["before"] is None
    assert changed.details["after"]["allowed_services"] == ["ec2", "rds", "savingsplans"]


def test_the_form_shows_the_limit_and_saving_it_states_the_whole_limit(
    client, db_session, root, finance
):
    prod = named_account(db_session, "prod")
    db_session.add(
        SpendLimit(
            group_id=finance.id,
            allowed_account_ids=[str(prod.id)],
            allowed_services=["rds"],
            max_per_day=Decimal("10.00"),
        )
    )
    db_session.flush()

    form = client.get(f"/admin/limits/edit/?group={finance.id}").text
    assert re.search(rf'value="{prod.id}"[^>]*checked|checked[^>]*value="{prod.id}"', form)
    assert re.search(r">\s*rds</textarea>", form)
    assert 'value="10.00"' in form

    # Everything emptied: the limit now allows everything, and says so.
    assert save(client, finance).status_code == 302
    stored = limit_of(db_session, finance)
    assert stored is not None
    assert stored.as_dict() == {
        "allowed_account_ids": None,
        "allowed_providers": None,
        "allowed_services": None,
        "max_per_purchase": None,
        "max_per_day": None,
    }
    [changed] = events(db_session, "spend_limit.changed")
    assert changed.details["before"]["max_per_day"] == "10.00"


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"services": "mainframe"}, "allowed services: 'mainframe' is not a service"),
        ({"max_per_purchase": "-1"}, "max per purchase: expected an amount from 0 to"),
        ({"max_per_day": "12.345"}, "max per day: expected an amount"),
        ({"max_per_day": "9" * 30}, "max per day: expected an amount"),
    ],
    ids=["service", "negative", "three-places", "huge"],
)
def test_a_bad_field_is_flashed_and_nothing_is_stored(
    client, db_session, root, finance, form, message
):
    response = save(client, finance, **form)

    assert response.status_code == 200
    [flashed] = flashes(response.text, "error")
    assert flashed.startswith(message)
    assert limit_of(db_session, finance) is None
    assert events(db_session, "spend_limit.changed") == []
    [refused] = events(db_session, "spend_limit.change_refused")
    assert refused.details["status"] == 400
    assert refused.actor_user_id == root.id


def test_a_ticked_account_that_is_no_choice_is_refused(client, db_session, root, finance):
    response = save(client, finance, accounts=["6f1c0c7e-0000-4000-8000-000000000001"])
    assert response.status_code == 200
    assert "Not a valid choice" in response.text or "not a valid choice" in response.text
    assert limit_of(db_session, finance) is None


def test_clear_removes_the_limit_and_is_audited(client, db_session, root, finance):
    db_session.add(SpendLimit(group_id=finance.id, allowed_providers=["gcp"]))
    db_session.flush()
    page = client.get("/admin/limits/").text
    assert f'data-action="clear-limit"\n                  data-group-id="{finance.id}"' in page

    response = clear(client, finance.id)

    assert response.status_code == 302
    assert limit_of(db_session, finance) is None
    [cleared] = events(db_session, "spend_limit.cleared")
    assert cleared.details["before"]["allowed_providers"] == ["gcp"]
    assert cleared.actor_user_id == root.id
    after = client.get("/admin/limits/").text
    assert 'data-limited="false"' in row_of(after, "Finance")


def test_clearing_a_group_without_a_limit_is_flashed_and_audited(client, db_session, root, finance):
    response = clear(client, finance.id)
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).text
    assert flashes(page, "error") == ['group "Finance" has no spend limit to clear']
    assert len(events(db_session, "spend_limit.clear_refused")) == 1


@pytest.mark.parametrize(
    ("group", "status"),
    [("x", 400), ("-1", 400), ("9" * 11, 400), ("2147483000", 404), ("", 400)],
)
def test_a_malformed_or_unknown_group_is_refused(client, db_session, root, group, status):
    assert client.get(f"/admin/limits/edit/?group={group}").status_code == status
    assert clear(client, group).status_code == status
    assert db_session.scalar(select(func.count()).select_from(SpendLimit)) == 0


@pytest.mark.parametrize("role", ["viewer", "purchaser", "alice"])
def test_non_admins_get_403_everywhere_and_no_menu_entry(
    client, db_session, request, role, finance
):
    user = request.getfixturevalue(role)
    db_session.add(SpendLimit(group_id=finance.id, max_per_day=Decimal("5.00")))
    db_session.flush()
    page_login(client, user.email, PASSWORD)
    csrf = token(client)

    for method, url, data in [
        ("get", "/admin/limits/", None),
        ("get", f"/admin/limits/edit/?group={finance.id}", None),
        ("post", f"/admin/limits/edit/?group={finance.id}", {"max_per_day": "1000000"}),
        ("post", "/admin/limits/clear/", {"group": str(finance.id)}),
    ]:
        form = {**data, "csrf_token": csrf} if data is not None else None
        response = getattr(client, method)(url, data=form)
        assert response.status_code == 403, (method, url)
        assert "admin:* is required" in response.text

    stored = limit_of(db_session, finance)
    assert stored is not None and stored.max_per_day == Decimal("5.00")
    assert db_session.scalar(select(func.count()).select_from(AuditEvent)) == 0
    assert 'href="/admin/limits/"' not in client.get("/admin/").text


def test_the_menu_offers_it_to_admins(client, db_session, root):
    assert 'href="/admin/limits/"' in client.get("/admin/").text


def test_signed_out_users_go_to_the_login_page(client, db_session, finance):
    for url in ("/admin/limits/", f"/admin/limits/edit/?group={finance.id}"):
        response = client.get(url)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


def test_posts_without_a_csrf_token_are_refused_and_change_nothing(
    client, db_session, root, finance
):
    db_session.add(SpendLimit(group_id=finance.id, max_per_day=Decimal("5.00")))
    db_session.flush()

    assert save(client, finance, with_token=False, max_per_day="1").status_code == 400
    assert clear(client, finance.id, with_token=False).status_code == 400

    stored = limit_of(db_session, finance)
    assert stored is not None and stored.max_per_day == Decimal("5.00")
    assert db_session.scalar(select(func.count()).select_from(AuditEvent)) == 0


@pytest.mark.parametrize(
    "body",
    [
        "services=%ED%A0%80",  # an encoded lone surrogate
        "services=ec2%00",  # a NUL
        "services=" + "x" * 20_000,
        "max_per_day=1e999999",
        "max_per_day=Infinity",
        "max_per_purchase=" + "9" * 5_000,
        "providers=oracle",
        "accounts=not-an-id",
    ],
    ids=["surrogate", "nul", "long", "huge-exponent", "infinity", "many-digits", "provider", "id"],
)
def test_hostile_fields_get_a_4xx_or_the_form_again_never_a_5xx(
    client, db_session, root, finance, body
):
    response = client.post(
        f"/admin/limits/edit/?group={finance.id}",
        data=f"csrf_token={token(client)}&{body}",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code in (200, 400), response.status_code
    assert limit_of(db_session, finance) is None
    assert events(db_session, "spend_limit.changed") == []


def test_minus_zero_is_stored_as_zero(client, db_session, root, finance):
    assert save(client, finance, max_per_purchase="-0").status_code == 302
    stored = limit_of(db_session, finance)
    assert stored is not None
    assert stored.as_dict()["max_per_purchase"] == "0.00"
