"""The management views over HTTP: users, groups, cloud accounts, the audit log (admins
only) and the active suppressions (every viewer).

Each write is a POST form with the CSRF token; the tests check what was stored, what
the page shows (never a password), what the trail records, and that refusals (a bad
permission, a referenced account, your own account, no CSRF token, not an admin)
change nothing.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.db import utcnow
from app.domain.statuses import Status
from app.models import AuditEvent, CloudAccount, Group, PurchaseSuppression, User
from app.services import audit
from app.services.identity import create_group, principal_for, verify_password
from tests.e2e.helpers import csrf_from, page_login
from tests.factories import PASSWORD, make_account, make_execution, make_suppression, make_user

NEW_PASSWORD = "a brand new passphrase"
ADMIN_LISTS = ("/admin/users/", "/admin/groups/", "/admin/accounts/", "/admin/audit/")


def as_admin(client, session) -> User:
    user = make_user(session, "root@example.com", groups=("Administrators",))
    page_login(client, user.email, PASSWORD)
    return user


def token(client) -> str:
    return csrf_from(client.get("/admin/").text)


def group_id(session, name: str) -> str:
    return str(session.scalar(select(Group.id).where(Group.name == name)))


def fresh(session, model, key):
    return session.get(model, key, populate_existing=True)


def events(session, action: str) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def flashes(page: str, category: str = "error") -> list[str]:
    found = re.findall(rf'data-flash="{category}">([^<]*)<', page)
    return [html.unescape(text) for text in found]


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


# --- Users ---------------------------------------------------------------------------


def test_admin_creates_a_user_whose_password_is_hashed_and_never_shown(client, db_session):
    as_admin(client, db_session)
    form = {
        "csrf_token": token(client),
        "email": "  New.Person@Example.COM ",
        "password": NEW_PASSWORD,
        "groups": [group_id(db_session, "Purchasers")],
    }

    response = client.post("/admin/users/new/", data=form)

    assert response.status_code == 302, response.text
    user = db_session.scalar(select(User).where(User.email == "new.person@example.com"))
    assert user is not None and user.is_active
    assert [group.name for group in user.groups] == ["Purchasers"]
    assert user.password_hash.startswith("$argon2id$")
    assert verify_password(user.password_hash, NEW_PASSWORD)
    listing = client.get("/admin/users/").text
    edit = client.get(f"/admin/users/edit/?id={user.id}").text
    for page in (listing, edit):
        assert "new.person@example.com" in page
        assert NEW_PASSWORD not in page and user.password_hash not in page
    assert "Purchasers" in listing
    [created] = events(db_session, "user.created")
    assert created.details["email"] == "new.person@example.com"
    assert created.details["groups"] == ["Purchasers"]
    assert NEW_PASSWORD not in str(created.details)
    fresh_client = client.application.test_client()
    assert page_login(fresh_client, "new.person@example.com", NEW_PASSWORD).status_code == 302


@pytest.mark.parametrize(
    ("email", "password", "expected"),
    [
        ("bad-email", NEW_PASSWORD, "not an email address"),
        ("short@example.com", "tiny-pw", "at least 8"),
        ("ROOT@example.com", NEW_PASSWORD, "already exists"),
    ],
    ids=["bad-email", "short-password", "duplicate"],
)
def test_a_refused_user_is_not_written_and_the_password_not_echoed(
    client, db_session, email, password, expected
):
    as_admin(client, db_session)
    before = count(db_session, User)

    response = client.post(
        "/admin/users/new/",
        data={"csrf_token": token(client), "email": email, "password": password},
    )

    assert response.status_code == 200
    assert expected in response.text
    assert password not in response.text
    assert count(db_session, User) == before


def test_admin_deactivates_a_user_and_sets_groups_keeping_the_password(client, db_session):
    as_admin(client, db_session)
    bob = make_user(db_session, "bob@example.com", groups=("Purchasers",))
    old_hash, old_version = bob.password_hash, bob.session_version
    form = {
        "csrf_token": token(client),
        "email": "ignored@example.com",  # the email is not edited here
        "groups": [group_id(db_session, "Read-only")],
        "password": "",
        # no "is_active": the box is unchecked
    }

    response = client.post(f"/admin/users/edit/?id={bob.id}", data=form)

    assert response.status_code == 302, response.text
    bob = fresh(db_session, User, bob.id)
    assert bob.email == "bob@example.com"
    assert bob.is_active is False
    assert bob.session_version == old_version + 1  # their sessions ended
    assert [group.name for group in bob.groups] == ["Read-only"]
    assert bob.password_hash == old_hash
    [updated] = events(db_session, "user.updated")
    assert updated.details["changes"] == {
        "is_active": [True, False],
        "groups": [["Purchasers"], ["Read-only"]],
    }

    form.update(is_active="y", groups=[], csrf_token=token(client))
    assert client.post(f"/admin/users/edit/?id={bob.id}", data=form).status_code == 302
    bob = fresh(db_session, User, bob.id)
    assert bob.is_active is True and bob.groups == []


def test_a_new_password_through_the_edit_form_is_hashed(client, db_session):
    as_admin(client, db_session)
    bob = make_user(db_session, "bob@example.com")
    form = {"csrf_token": token(client), "is_active": "y", "password": NEW_PASSWORD}

    response = client.post(f"/admin/users/edit/?id={bob.id}", data=form)

    assert response.status_code == 302
    bob = fresh(db_session, User, bob.id)
    assert verify_password(bob.password_hash, NEW_PASSWORD)
    assert not verify_password(bob.password_hash, PASSWORD)
    [updated] = events(db_session, "user.updated")
    assert updated.details["changes"] == {"password": "changed"}
    assert NEW_PASSWORD not in client.get(f"/admin/users/edit/?id={bob.id}").text


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"is_active": None}, "you cannot deactivate your own account"),
        ({"groups": "Purchasers"}, "would take admin:* away from you"),
    ],
    ids=["deactivate-self", "drop-own-admin-group"],
)
def test_an_admin_cannot_lock_themselves_out(client, db_session, change, expected):
    me = as_admin(client, db_session)
    form = {"csrf_token": token(client), "is_active": "y"}
    form["groups"] = [group_id(db_session, change.get("groups", "Administrators"))]
    if "is_active" in change:
        del form["is_active"]

    response = client.post(f"/admin/users/edit/?id={me.id}", data=form)

    assert response.status_code == 200
    assert any(expected in text for text in flashes(response.text))
    me = fresh(db_session, User, me.id)
    assert me.is_active and principal_for(me).is_admin
    assert events(db_session, "user.updated") == []
    [refused] = events(db_session, "user.update_refused")
    assert refused.details["status"] == 409


def test_users_and_groups_are_never_deleted_and_there_are_no_bulk_actions(client, db_session):
    as_admin(client, db_session)
    bob = make_user(db_session, "bob@example.com")
    purchasers = group_id(db_session, "Purchasers")
    account = make_account(db_session)
    csrf = token(client)
    for url, key in (
        ("/admin/users/delete/", str(bob.id)),
        ("/admin/groups/delete/", purchasers),
        ("/admin/users/action/", str(bob.id)),
        ("/admin/accounts/action/", str(account.id)),
    ):
        form = {"id": key, "rowid": key, "action": "delete", "csrf_token": csrf}
        assert client.post(url, data=form).status_code == 404, url
    assert fresh(db_session, User, bob.id) is not None
    assert fresh(db_session, Group, int(purchasers)) is not None
    assert fresh(db_session, CloudAccount, account.id) is not None
    assert 'action="/admin/users/delete/"' not in client.get("/admin/users/").text


def test_user_ids_are_parsed(client, db_session):
    as_admin(client, db_session)
    assert client.get("/admin/users/edit/?id=not-a-uuid").status_code == 400
    unknown = "6f1c0e5a-0000-4000-8000-000000000000"
    assert client.get(f"/admin/users/edit/?id={unknown}").status_code == 404
    assert client.get("/admin/groups/edit/?id=2x").status_code == 400
    assert client.get("/admin/groups/edit/?id=" + "9" * 20).status_code == 400
    for too_big in ("9" * 19, str(2**31)):  # past the column's type: unknown, not a 500
        assert client.get(f"/admin/groups/edit/?id={too_big}").status_code == 404
    assert client.get(f"/admin/audit/details/?id={2**63 - 1}").status_code == 404
    assert client.get(f"/admin/audit/details/?id={2**63}").status_code == 404
    assert client.get("/admin/users/?page=99999999").status_code == 400


# --- Groups --------------------------------------------------------------------------


def test_a_group_is_created_with_canonical_permissions(client, db_session):
    as_admin(client, db_session)
    form = {
        "csrf_token": token(client),
        "name": "Buyers",
        "permissions": "RETRY-ANY:purchases\napprove-any:purchases, retry-any:purchases",
    }

    assert client.post("/admin/groups/new/", data=form).status_code == 302

    group = db_session.scalar(select(Group).where(Group.name == "Buyers"))
    assert group.permissions == ["approve-any:purchases", "retry-any:purchases"]
    assert group.restricts_defaults is False
    [created] = events(db_session, "group.created")
    assert created.details["permissions"] == group.permissions
    assert "retry-any:purchases" in client.get("/admin/groups/").text


@pytest.mark.parametrize("bad", ["fly:purchases", "view", "view:everything", "admin:purchases"])
def test_a_group_with_a_bad_permission_is_refused_and_nothing_saved(client, db_session, bad):
    as_admin(client, db_session)
    readonly = db_session.scalar(select(Group).where(Group.name == "Read-only"))
    before = list(readonly.permissions)
    groups_before = count(db_session, Group)

    created = client.post(
        "/admin/groups/new/",
        data={"csrf_token": token(client), "name": "Odd", "permissions": f"view:purchases\n{bad}"},
    )
    edited = client.post(
        f"/admin/groups/edit/?id={readonly.id}",
        data={"csrf_token": token(client), "name": "Read-only", "permissions": bad},
    )

    for response in (created, edited):
        assert response.status_code == 200
        assert "permission" in response.text.lower() and html.escape(bad) in response.text
    assert count(db_session, Group) == groups_before
    assert fresh(db_session, Group, readonly.id).permissions == before
    assert count(db_session, AuditEvent) == 0


def test_a_group_edit_is_audited_and_duplicate_names_refused(client, db_session):
    as_admin(client, db_session)
    purchasers = db_session.scalar(select(Group).where(Group.name == "Purchasers"))
    form = {"csrf_token": token(client), "name": "Purchasers", "permissions": "view:purchases"}

    assert client.post(f"/admin/groups/edit/?id={purchasers.id}", data=form).status_code == 302
    assert fresh(db_session, Group, purchasers.id).permissions == ["view:purchases"]
    [updated] = events(db_session, "group.updated")
    assert updated.details["changes"]["permissions"][1] == ["view:purchases"]

    form.update(name="Read-only", csrf_token=token(client))
    response = client.post(f"/admin/groups/edit/?id={purchasers.id}", data=form)
    assert response.status_code == 200
    assert any("already exists" in text for text in flashes(response.text))
    assert fresh(db_session, Group, purchasers.id).name == "Purchasers"


def test_the_administrators_group_cannot_lose_admin_through_its_own_member(client, db_session):
    as_admin(client, db_session)
    admins = db_session.scalar(select(Group).where(Group.name == "Administrators"))
    form = {"csrf_token": token(client), "name": "Administrators", "permissions": "view:purchases"}

    response = client.post(f"/admin/groups/edit/?id={admins.id}", data=form)

    assert response.status_code == 200
    assert any("would take admin:* away" in text for text in flashes(response.text))
    assert fresh(db_session, Group, admins.id).permissions == ["admin:*"]


# --- Cloud accounts ------------------------------------------------------------------


def test_accounts_are_created_and_edited_with_a_valid_contact_email(client, db_session):
    as_admin(client, db_session)
    form = {
        "csrf_token": token(client),
        "name": "prod",
        "provider": "gcp",
        "external_id": "my-project",
        "contact_email": "FinOps@Example.com",
    }
    assert client.post("/admin/accounts/new/", data=form).status_code == 302
    account = db_session.scalar(select(CloudAccount).where(CloudAccount.name == "prod"))
    assert (account.provider, account.contact_email) == ("gcp", "finops@example.com")
    assert len(events(db_session, "account.created")) == 1

    for field, value in (("contact_email", "nope"), ("provider", "ibm"), ("name", "")):
        bad = {**form, field: value, "csrf_token": token(client)}
        response = client.post(f"/admin/accounts/edit/?id={account.id}", data=bad)
        assert response.status_code == 200, field
    assert fresh(db_session, CloudAccount, account.id).contact_email == "finops@example.com"

    form.update(contact_email="", csrf_token=token(client))
    assert client.post(f"/admin/accounts/edit/?id={account.id}", data=form).status_code == 302
    assert fresh(db_session, CloudAccount, account.id).contact_email is None
    [updated] = events(db_session, "account.updated")
    assert updated.details["changes"] == {"contact_email": ["finops@example.com", None]}


def delete_account(client, account, *, with_token=True):
    form = {"id": str(account.id), "url": "/admin/accounts/"}
    if with_token:
        form["csrf_token"] = token(client)
    return client.post("/admin/accounts/delete/", data=form)


def test_deleting_a_referenced_account_is_refused_and_changes_nothing(client, db_session):
    as_admin(client, db_session)
    account = make_account(db_session)
    rows = [make_execution(db_session, Status.FAILED, cloud_account_id=account.id) for _ in "ab"]

    response = delete_account(client, account)

    assert response.status_code == 302
    page = client.get(response.headers["Location"]).text
    [message] = flashes(page)
    assert message.startswith("account aws account is referenced by 2 executions;")
    assert fresh(db_session, CloudAccount, account.id) is not None
    for row in rows:
        db_session.refresh(row)
        assert row.cloud_account_id == account.id
    assert events(db_session, "account.deleted") == []
    [refused] = events(db_session, "account.delete_refused")
    assert refused.details["executions"] == 2


def test_deleting_an_unreferenced_account_works(client, db_session):
    as_admin(client, db_session)
    account = make_account(db_session, provider="azure")

    response = delete_account(client, account)

    assert response.status_code == 302
    assert flashes(client.get("/admin/accounts/").text, "success")
    assert fresh(db_session, CloudAccount, account.id) is None
    [deleted] = events(db_session, "account.deleted")
    assert deleted.details["provider"] == "azure"


# --- The audit log -------------------------------------------------------------------


def test_the_audit_log_lists_newest_first_and_filters(client, db_session):
    as_admin(client, db_session)
    row = make_execution(db_session, Status.FAILED)
    now = utcnow()
    for action, email, days_ago, execution in (
        ("retry.requested", "alice@example.com", 3, row.execution_id),
        ("execution.approved", "bob@example.com", 1, None),
        ("user.created", "root@example.com", 0, None),
    ):
        db_session.add(
            AuditEvent(
                action=action,
                actor_email=email,
                execution_id=execution,
                at=now - timedelta(days=days_ago),
                details={"note": f"<script>{action}</script>"},
            )
        )
    db_session.flush()

    def listed(query: str = "") -> list[str]:
        page = client.get(f"/admin/audit/{query}")
        assert page.status_code == 200
        return re.findall(r'<td class="col-action">\s*([^<]+?)\s*</td>', page.text)

    assert listed() == ["user.created", "execution.approved", "retry.requested"]
    assert listed("?flt0_action_equals=execution.approved") == ["execution.approved"]
    assert listed("?flt0_action_contains=retry") == ["retry.requested"]
    assert listed("?flt0_actor_equals=ALICE@example.com") == ["retry.requested"]
    assert listed("?flt0_actor_contains=bob") == ["execution.approved"]
    assert listed(f"?flt0_execution_equals={row.execution_id}") == ["retry.requested"]
    day = (now - timedelta(days=1)).strftime("%Y-%m-%d")
    assert listed(f"?flt0_at_on_day_utc={day}") == ["execution.approved"]
    since = (now - timedelta(days=2)).strftime("%Y-%m-%d %H:%M:%S")
    assert listed(f"?flt0_at_after_utc={since}") == ["user.created", "execution.approved"]
    assert listed(f"?flt0_at_before_utc={since}") == ["retry.requested"]
    # A malformed filter value is dropped with a message, not a 500.
    assert client.get("/admin/audit/?flt0_execution_equals=nope").status_code == 400

    page = client.get("/admin/audit/").text
    assert "<script>retry" not in page
    assert "&lt;script&gt;retry.requested&lt;/script&gt;" in page
    newest = db_session.scalar(select(AuditEvent.id).where(AuditEvent.action == "user.created"))
    details = client.get(f"/admin/audit/details/?id={newest}").text
    assert "<script>user" not in details
    assert "&lt;script&gt;user.created&lt;/script&gt;" in details
    assert "data-audit-details>{&#34;note&#34;: " in details  # JSON text, not a repr
    assert client.get("/admin/audit/?page=99999999").status_code == 400
    assert client.get("/admin/audit/details/?id=1;drop").status_code == 400


def test_the_audit_log_is_read_only(client, db_session):
    admin = as_admin(client, db_session)
    with_event = audit.record(db_session, "user.created", actor=principal_for(admin))
    db_session.flush()
    csrf = token(client)
    before = count(db_session, AuditEvent)
    attempts = [
        ("get", "/admin/audit/new/", None),
        ("post", "/admin/audit/new/", {"action": "forged", "csrf_token": csrf}),
        ("get", f"/admin/audit/edit/?id={with_event.id}", None),
        ("post", f"/admin/audit/edit/?id={with_event.id}", {"action": "x", "csrf_token": csrf}),
        ("post", "/admin/audit/delete/", {"id": str(with_event.id), "csrf_token": csrf}),
        (
            "post",
            "/admin/audit/action/",
            {"action": "delete", "rowid": str(with_event.id), "csrf_token": csrf},
        ),
        (
            "post",
            "/admin/audit/ajax/update/",
            {"list_form_pk": str(with_event.id), "action": "x", "csrf_token": csrf},
        ),
    ]
    for method, url, data in attempts:
        response = getattr(client, method)(url, data=data)
        assert response.status_code == 404, (method, url, response.status_code)
    assert count(db_session, AuditEvent) == before
    assert fresh(db_session, AuditEvent, with_event.id).action == "user.created"
    listing = client.get("/admin/audit/").text
    assert "/admin/audit/new/" not in listing and "/admin/audit/edit/" not in listing
    assert client.get(f"/admin/audit/details/?id={with_event.id}").status_code == 200


# --- Active suppressions -------------------------------------------------------------


def test_a_viewer_sees_active_suppressions_only(client, db_session, viewer):
    active_row = make_execution(db_session, Status.PENDING)
    expired_row = make_execution(db_session, Status.PENDING)
    make_suppression(db_session, active_row)
    expired = make_suppression(db_session, expired_row)
    expired.expires_at = utcnow() - timedelta(minutes=1)
    db_session.flush()
    page_login(client, viewer.email, PASSWORD)

    response = client.get("/admin/suppressions/")

    assert response.status_code == 200
    assert str(active_row.execution_id) in response.text
    assert str(expired_row.execution_id) not in response.text
    assert "m5.large" in response.text and "us-east-1" in response.text
    assert count(db_session, PurchaseSuppression) == 2
    home = client.get("/admin/").text
    assert 'href="/admin/suppressions/"' in home
    assert client.get("/admin/suppressions/new/").status_code == 404


def test_suppressions_need_view_purchases(client, db_session):
    create_group(db_session, "Approvers only", ["approve-own:purchases"], restricts_defaults=True)
    user = make_user(db_session, groups=("Approvers only",))
    page_login(client, user.email, PASSWORD)

    response = client.get("/admin/suppressions/")

    assert response.status_code == 403
    assert "view:purchases" in response.text


# --- Who may open what ---------------------------------------------------------------


def admin_only_requests(session) -> list[tuple[str, str, dict | None]]:
    """Every admin-only URL, reads and writes, aimed at real rows."""
    someone = make_user(session, "someone@example.com")
    account = make_account(session)
    group = group_id(session, "Purchasers")
    event = audit.record(session, "user.created")
    session.flush()
    return [
        *(("get", url, None) for url in ADMIN_LISTS),
        ("get", "/admin/users/new/", None),
        ("get", f"/admin/users/edit/?id={someone.id}", None),
        ("post", "/admin/users/new/", {"email": "x@example.com", "password": NEW_PASSWORD}),
        ("post", f"/admin/users/edit/?id={someone.id}", {"groups": ["1"]}),
        ("get", "/admin/groups/new/", None),
        ("post", "/admin/groups/new/", {"name": "Mine", "permissions": "admin:*"}),
        ("post", f"/admin/groups/edit/?id={group}", {"name": "P", "permissions": "admin:*"}),
        ("get", "/admin/accounts/new/", None),
        ("post", "/admin/accounts/new/", {"name": "n", "provider": "aws", "external_id": "1"}),
        ("post", f"/admin/accounts/edit/?id={account.id}", {"name": "renamed"}),
        ("post", "/admin/accounts/delete/", {"id": str(account.id)}),
        ("get", f"/admin/audit/details/?id={event.id}", None),
        ("post", "/admin/audit/delete/", {"id": str(event.id)}),
        ("post", "/admin/users/delete/", {"id": str(someone.id)}),
    ]


@pytest.mark.parametrize("role", ["viewer", "purchaser", "alice"])
def test_non_admins_get_403_everywhere_and_no_menu_entries(client, db_session, request, role):
    user = request.getfixturevalue(role)
    attempts = admin_only_requests(db_session)
    page_login(client, user.email, PASSWORD)
    csrf = token(client)
    state = (count(db_session, User), count(db_session, Group), count(db_session, CloudAccount))

    for method, url, data in attempts:
        form = {**data, "csrf_token": csrf} if data is not None else None
        response = getattr(client, method)(url, data=form)
        assert response.status_code == 403, (method, url, response.status_code)
        assert "admin:* is required" in response.text

    after = (count(db_session, User), count(db_session, Group), count(db_session, CloudAccount))
    assert after == state
    assert fresh(db_session, Group, int(group_id(db_session, "Purchasers"))).name == "Purchasers"
    assert count(db_session, AuditEvent) == 1  # the one the test made
    home = client.get("/admin/").text
    for url in ADMIN_LISTS:
        assert f'href="{url}"' not in home
    assert "Administration" not in home
    assert 'href="/admin/suppressions/"' in home


def test_signed_out_users_go_to_the_login_page(client, db_session):
    for url in (*ADMIN_LISTS, "/admin/suppressions/", "/admin/users/new/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


def test_every_post_without_a_csrf_token_is_refused_and_changes_nothing(client, db_session):
    as_admin(client, db_session)
    attempts = admin_only_requests(db_session)
    account = db_session.scalar(select(CloudAccount))
    state = (count(db_session, User), count(db_session, Group), count(db_session, CloudAccount))

    for method, url, data in attempts:
        if method == "post":
            response = client.post(url, data=data)
            assert response.status_code == 400, url
            assert "CSRF" in response.text

    after = (count(db_session, User), count(db_session, Group), count(db_session, CloudAccount))
    assert after == state
    assert fresh(db_session, CloudAccount, account.id).name == "aws account"
    assert count(db_session, AuditEvent) == 1  # the one the test made
