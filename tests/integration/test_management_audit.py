"""Every management write leaves its audit event, whichever door it came through.

The same services (`app.services.management`) serve the panel's management pages and
the CLI's `users` and `groups` commands; each write records its event in the write's
own transaction, naming the actor: the signed-in admin for the panel, `cli` (no user
id) for a command run on the server. A refusal writes nothing of the change and is
recorded as `<subject>.<verb>_refused`.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.models import AuditEvent, CloudAccount, Group, User
from app.services.identity import verify_password
from tests.e2e.helpers import csrf_from, page_login
from tests.factories import PASSWORD, make_user

SECRET = "correct horse battery staple"
CLI = "cli"


@pytest.fixture
def cli(app, db_session):
    return app.test_cli_runner()


def events(session, action: str) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    return list(session.scalars(query))


def one_event(session, action: str) -> AuditEvent:
    [found] = events(session, action)
    return found


def by_cli(event: AuditEvent) -> bool:
    return event.actor_email == CLI and event.actor_user_id is None


def user_named(session, email: str) -> User | None:
    return session.scalar(
        select(User).where(User.email == email).execution_options(populate_existing=True)
    )


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


# --- The CLI ---------------------------------------------------------------------------


def test_cli_users_create_is_audited_as_the_cli(cli, db_session):
    result = cli.invoke(
        args=["users", "create", "Jo@Example.com", "--group", "Purchasers", "--admin"],
        env={"NEW_USER_PASSWORD": SECRET},
    )

    assert result.exit_code == 0, result.output
    user = user_named(db_session, "jo@example.com")
    created = one_event(db_session, "user.created")
    assert by_cli(created)
    assert created.details == {
        "user_id": str(user.id),
        "email": "jo@example.com",
        "groups": ["Administrators", "Purchasers"],
    }
    assert SECRET not in str(created.details)


def test_cli_users_set_password_is_audited_without_the_password(cli, db_session):
    user = make_user(db_session, "kim@example.com")
    version = user.session_version

    result = cli.invoke(
        args=["users", "set-password", "kim@example.com", "--password-stdin"],
        input=SECRET + "\n",
    )

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "new password for kim@example.com; their sessions have ended"
    user = user_named(db_session, "kim@example.com")
    assert verify_password(user.password_hash, SECRET)
    assert user.session_version > version
    updated = one_event(db_session, "user.updated")
    assert by_cli(updated)
    assert updated.details == {
        "user_id": str(user.id),
        "email": "kim@example.com",
        "changes": {"password": "changed"},
    }


def test_cli_users_deactivate_is_audited(cli, db_session):
    user = make_user(db_session, "lee@example.com")
    version = user.session_version

    result = cli.invoke(args=["users", "deactivate", "LEE@example.com"])

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "deactivated lee@example.com; their sessions have ended"
    user = user_named(db_session, "lee@example.com")
    assert not user.is_active and user.session_version > version
    updated = one_event(db_session, "user.updated")
    assert by_cli(updated)
    assert updated.details["changes"] == {"is_active": [True, False]}


def test_cli_groups_create_is_audited(cli, db_session):
    result = cli.invoke(
        args=[
            "groups",
            "create",
            " Auditors ",
            "--permission",
            "VIEW:purchases",
            "--restrict-defaults",
        ]
    )

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "created group Auditors: view:purchases"
    group = db_session.scalar(select(Group).where(Group.name == "Auditors"))
    created = one_event(db_session, "group.created")
    assert by_cli(created)
    assert created.details == {
        "group_id": group.id,
        "name": "Auditors",
        "permissions": ["view:purchases"],
        "restricts_defaults": True,
    }


@pytest.mark.parametrize(
    ("args", "message", "refused_as"),
    [
        (["users", "create", "root@example.com"], "already exists", "user.create_refused"),
        (
            ["users", "create", "x@example.com", "--group", "Nope"],
            "unknown group: Nope",
            "user.create_refused",
        ),
        (
            ["users", "set-password", "nobody@example.com"],
            "no user with email",
            "user.update_refused",
        ),
        (
            ["users", "deactivate", "nobody@example.com"],
            "no user with email",
            "user.update_refused",
        ),
        (
            ["groups", "create", "Broken", "--permission", "fly:purchases"],
            "fly",
            "group.create_refused",
        ),
        (["groups", "create", "Purchasers"], "already exists", "group.create_refused"),
    ],
    ids=[
        "duplicate-user",
        "unknown-group",
        "password-nobody",
        "deactivate-nobody",
        "bad-permission",
        "duplicate-group",
    ],
)
def test_a_refused_command_writes_nothing_but_its_refusal(
    cli, db_session, args, message, refused_as
):
    make_user(db_session, "root@example.com")
    users, groups = count(db_session, User), count(db_session, Group)

    result = cli.invoke(args=args, env={"NEW_USER_PASSWORD": SECRET})

    assert result.exit_code == 1, result.output
    assert message in result.output
    assert (count(db_session, User), count(db_session, Group)) == (users, groups)
    [event] = list(db_session.scalars(select(AuditEvent)))
    assert event.action == refused_as and by_cli(event)
    assert message in event.details["error"]
    assert SECRET not in str(event.details)


def test_set_password_on_a_deactivated_user_works_and_is_audited(cli, db_session):
    """set-password on a deactivated user still works (and is audited): an admin may
    prepare an account before reactivating it in the panel."""
    make_user(db_session, "old@example.com")
    assert cli.invoke(args=["users", "deactivate", "old@example.com"]).exit_code == 0

    result = cli.invoke(
        args=["users", "set-password", "old@example.com"], env={"NEW_USER_PASSWORD": SECRET}
    )

    assert result.exit_code == 0, result.output
    changes = [event.details["changes"] for event in events(db_session, "user.updated")]
    assert changes == [{"is_active": [True, False]}, {"password": "changed"}]


# --- The panel -------------------------------------------------------------------------


@pytest.fixture
def admin_client(app, db_session, redis_db):
    client = app.test_client()
    admin = make_user(db_session, "root@example.com", groups=("Administrators",))
    assert page_login(client, admin.email, PASSWORD).status_code == 302
    client.admin = admin
    return client


def post(client, url: str, form: dict) -> int:
    token = csrf_from(client.get("/admin/").text)
    return client.post(url, data={**form, "csrf_token": token}).status_code


def by_admin(event: AuditEvent, client) -> bool:
    return event.actor_email == "root@example.com" and event.actor_user_id == client.admin.id


def group_id(session, name: str) -> str:
    return str(session.scalar(select(Group.id).where(Group.name == name)))


def test_panel_user_writes_are_audited_as_the_admin(admin_client, db_session):
    purchasers = group_id(db_session, "Purchasers")
    form = {"email": "New@Example.com", "password": SECRET, "groups": [purchasers]}
    assert post(admin_client, "/admin/users/new/", form) == 302
    user = user_named(db_session, "new@example.com")
    created = one_event(db_session, "user.created")
    assert by_admin(created, admin_client)
    assert created.details == {
        "user_id": str(user.id),
        "email": "new@example.com",
        "groups": ["Purchasers"],
    }

    edit = {"groups": [group_id(db_session, "Read-only")], "password": "another long one"}
    assert post(admin_client, f"/admin/users/edit/?id={user.id}", edit) == 302
    updated = one_event(db_session, "user.updated")
    assert by_admin(updated, admin_client)
    assert updated.details["changes"] == {
        "is_active": [True, False],
        "groups": [["Purchasers"], ["Read-only"]],
        "password": "changed",
    }
    assert SECRET not in str(created.details) + str(updated.details)


def test_panel_group_writes_are_audited_as_the_admin(admin_client, db_session):
    form = {"name": "Auditors", "permissions": "view:purchases\nVIEW:purchases"}
    assert post(admin_client, "/admin/groups/new/", form) == 302
    group = db_session.scalar(select(Group).where(Group.name == "Auditors"))
    created = one_event(db_session, "group.created")
    assert by_admin(created, admin_client)
    assert created.details["permissions"] == ["view:purchases"]

    form = {"name": "Auditors", "permissions": "", "restricts_defaults": "y"}
    assert post(admin_client, f"/admin/groups/edit/?id={group.id}", form) == 302
    updated = one_event(db_session, "group.updated")
    assert by_admin(updated, admin_client)
    assert updated.details == {
        "group_id": group.id,
        "name": "Auditors",
        "changes": {"permissions": [["view:purchases"], []], "restricts_defaults": [False, True]},
    }


def test_panel_account_writes_are_audited_as_the_admin(admin_client, db_session):
    form = {
        "name": " prod ",
        "provider": "gcp",
        "external_id": "p-1",
        "contact_email": "A@B.example",
    }
    assert post(admin_client, "/admin/accounts/new/", form) == 302
    account = db_session.scalar(select(CloudAccount).where(CloudAccount.name == "prod"))
    created = one_event(db_session, "account.created")
    assert by_admin(created, admin_client)
    assert created.details == {
        "account_id": str(account.id),
        "name": "prod",
        "provider": "gcp",
        "external_id": "p-1",
        "contact_email": "a@b.example",
        "aws_role_arn": None,
        "azure_billing_scope": None,
        "purchase_mode": "dry_run",
    }

    form.update(external_id="p-2")
    assert post(admin_client, f"/admin/accounts/edit/?id={account.id}", form) == 302
    updated = one_event(db_session, "account.updated")
    assert by_admin(updated, admin_client)
    assert updated.details["changes"] == {"external_id": ["p-1", "p-2"]}

    assert post(admin_client, "/admin/accounts/delete/", {"id": str(account.id)}) == 302
    deleted = one_event(db_session, "account.deleted")
    assert by_admin(deleted, admin_client)
    assert deleted.details["external_id"] == "p-2"
    assert count(db_session, CloudAccount) == 0


def test_a_refused_panel_write_records_its_refusal_and_nothing_else(admin_client, db_session):
    before = count(db_session, AuditEvent)
    form = {"name": "Purchasers", "permissions": "view:purchases"}

    assert post(admin_client, "/admin/groups/new/", form) == 200
    assert post(admin_client, f"/admin/users/edit/?id={admin_client.admin.id}", {}) == 200

    assert count(db_session, AuditEvent) == before + 2
    group, own = (
        events(db_session, "group.create_refused"),
        events(db_session, "user.update_refused"),
    )
    assert by_admin(group[0], admin_client) and "already exists" in group[0].details["error"]
    assert by_admin(own[0], admin_client) and "your own account" in own[0].details["error"]
    assert user_named(db_session, "root@example.com").is_active
