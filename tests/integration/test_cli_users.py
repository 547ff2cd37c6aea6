"""The Flask CLI, invoked as an operator would, on the test database."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import func, select

from app.domain.statuses import Status
from app.models import (
    CloudAccount,
    Group,
    ProviderPurchase,
    PurchaseExecution,
    PurchasePlan,
    User,
)


@pytest.fixture
def cli(app, db_session):
    """Runs `flask --app app ...` commands; `output` holds stdout and stderr."""
    return app.test_cli_runner()


def test_users_create_reads_the_password_from_stdin(cli, db_session, redis_db):
    result = cli.invoke(
        args=["users", "create", "Jo@Example.com", "--password-stdin", "--group", "Purchasers"],
        input="a long password\n",
    )
    assert result.exit_code == 0, result.output
    user = db_session.scalar(select(User).where(User.email == "jo@example.com"))
    assert [group.name for group in user.groups] == ["Purchasers"]


def test_users_create_without_password_stdin_is_a_usage_error(cli, db_session):
    result = cli.invoke(args=["users", "create", "kim@example.com"])
    assert result.exit_code == 2
    assert "--password-stdin" in result.output
    assert db_session.scalar(select(User).where(User.email == "kim@example.com")) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "create", "dup@example.com", "--password-stdin"], "already exists"),
        (
            ["users", "create", "x@example.com", "--password-stdin", "--group", "Nope"],
            "unknown group: Nope",
        ),
        (["users", "create", "not-an-email", "--password-stdin"], "not an email address"),
    ],
)
def test_users_create_refusals_exit_non_zero(cli, db_session, args, message):
    first = cli.invoke(
        args=["users", "create", "dup@example.com", "--password-stdin"], input="a long password\n"
    )
    assert first.exit_code == 0
    before = db_session.scalar(select(func.count()).select_from(User))
    result = cli.invoke(args=args, input="a long password\n")
    assert result.exit_code == 1
    assert message in result.output
    assert db_session.scalar(select(func.count()).select_from(User)) == before


def test_groups_create(cli, db_session):
    result = cli.invoke(
        args=[
            "groups",
            "create",
            "Auditors",
            "--permission",
            "view:purchases",
            "--restrict-defaults",
        ]
    )
    assert result.exit_code == 0, result.output
    group = db_session.scalar(select(Group).where(Group.name == "Auditors"))
    assert group.permissions == ["view:purchases"]
    assert group.restricts_defaults is True


@pytest.mark.parametrize("permission", ["retry", "fly-any:purchases", "retry-any:invoices"])
def test_groups_create_refuses_a_malformed_permission(cli, db_session, permission):
    result = cli.invoke(args=["groups", "create", "Broken", "--permission", permission])
    assert result.exit_code == 1
    assert db_session.scalar(select(Group).where(Group.name == "Broken")) is None


def test_demo_seed_covers_every_state_once(cli, db_session):
    result = cli.invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output
    assert "admin@example.com / demo-password" in result.output
    statuses = set(db_session.scalars(select(PurchaseExecution.status)))
    assert statuses == {status.value for status in Status}

    failed = list(
        db_session.scalars(select(PurchaseExecution).where(PurchaseExecution.status == "failed"))
    )
    errors = " ".join(row.error or "" for row in failed)
    assert "FROM_EMAIL not configured" in errors and "IAM denied" in errors
    assert {row.retry_attempt_n for row in failed} >= {0, 4, 5}
    assert any(row.retry_execution_id is not None for row in failed)
    assert any(row.created_by_user_id is None for row in failed)
    assert db_session.scalar(select(func.count()).select_from(CloudAccount)) == 3
    assert db_session.scalar(select(func.count()).select_from(PurchasePlan)) == 1
    imported = [
        row
        for row in db_session.scalars(select(PurchaseExecution))
        if any(item.get("source") == "simulator" for item in row.recommendations)
    ]
    assert [row.status for row in imported] == ["pending"]
    scheduled = db_session.scalars(
        select(PurchaseExecution).where(PurchaseExecution.scheduled_for.is_not(None))
    ).all()
    assert sorted(row.step_number for row in scheduled) == [2, 3]
    assert {row.status for row in scheduled} == {"approved"}

    before = db_session.scalar(select(func.count()).select_from(PurchaseExecution))
    again = cli.invoke(args=["demo", "seed"])
    assert again.exit_code == 0
    assert "already present" in again.output
    assert db_session.scalar(select(func.count()).select_from(PurchaseExecution)) == before


def test_demo_seed_prints_working_approval_links_and_records_what_was_bought(
    app, cli, db_session, redis_db
):
    result = cli.invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output
    links = re.findall(r"http://\S+/purchases/(approve|cancel)/(\S+)\?token=(\S+)", result.output)
    pending = set(
        db_session.scalars(
            select(PurchaseExecution.execution_id).where(PurchaseExecution.status == "pending")
        )
    )
    assert {uuid.UUID(execution_id) for _, execution_id, _ in links} == pending
    assert sorted(action for action, _, _ in links) == sorted(["approve", "cancel"] * len(pending))

    _, execution_id, token = next(link for link in links if link[0] == "approve")
    client = app.test_client()
    page = client.get(f"/purchases/approve/{execution_id}?token={token}")
    assert page.status_code == 200 and "Approve this purchase?" in page.text
    done = client.post(f"/purchases/approve/{execution_id}", data={"token": token})
    assert done.status_code == 200, done.text
    approved = db_session.get(PurchaseExecution, uuid.UUID(execution_id), populate_existing=True)
    assert approved.status == "approved"

    finished = db_session.scalars(
        select(PurchaseExecution).where(
            PurchaseExecution.status.in_(["completed", "partially_completed"])
        )
    ).all()
    bought = {
        item["purchase_id"] for row in finished for item in row.recommendations if item["purchased"]
    }
    ledger = set(db_session.scalars(select(ProviderPurchase.purchase_id)))
    assert bought and bought <= ledger


SECRET = "correct horse battery staple"


def groups_of(db_session, email):
    user = db_session.scalar(select(User).where(User.email == email))
    return None if user is None else sorted(group.name for group in user.groups)


def test_users_create_admin_makes_the_first_admin(cli, db_session):
    """The first admin of a deployment without the demo (scripts/run says so)."""
    result = cli.invoke(
        args=["users", "create", "root@example.com", "--admin", "--password-stdin"],
        input=SECRET + "\n",
    )
    assert result.exit_code == 0, result.output
    assert groups_of(db_session, "root@example.com") == ["Administrators"]
    assert SECRET not in result.output

    both = cli.invoke(
        args=["users", "create", "ops@example.com", "--admin", "--group", "Administrators"],
        env={"NEW_USER_PASSWORD": SECRET},
    )
    assert both.exit_code == 0, both.output
    assert groups_of(db_session, "ops@example.com") == ["Administrators"]


def test_users_create_reads_new_user_password_and_never_prints_it(app, cli, db_session):
    result = cli.invoke(
        args=["users", "create", "env@example.com", "--group", "Purchasers"],
        env={"NEW_USER_PASSWORD": SECRET},
    )
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert groups_of(db_session, "env@example.com") == ["Purchasers"]
    signed_in = app.test_client().post(
        "/api/auth/login", json={"email": "env@example.com", "password": SECRET}
    )
    assert signed_in.status_code == 200, signed_in.text

    short = cli.invoke(
        args=["users", "create", "short@example.com"], env={"NEW_USER_PASSWORD": "x7"}
    )
    assert short.exit_code == 1
    assert "x7" not in short.output.replace("short@example.com", "")
    assert groups_of(db_session, "short@example.com") is None


@pytest.mark.parametrize(
    ("stdin", "problem"),
    [
        (b"pass\x00word-long-enough\n", "password holds a control character (U+0000)"),
        (b"pass\xffword-long-enough\n", "password is not valid Unicode"),
    ],
)
def test_users_create_refuses_a_password_that_is_not_text_without_echoing_it(
    cli, db_session, stdin, problem
):
    """A NUL reaches PostgreSQL as a 500-style crash, bytes that are not UTF-8 as a
    decoder traceback; both are the one text rule's refusal, and say nothing of the
    password itself."""
    result = cli.invoke(
        args=["users", "create", "nul@example.com", "--password-stdin"], input=stdin
    )
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert problem in result.output
    assert "word-long-enough" not in result.output
    assert groups_of(db_session, "nul@example.com") is None


@pytest.mark.parametrize("email", ["\udcff@example.com", "tab\x01@example.com"])
def test_users_commands_refuse_an_email_that_is_not_text(cli, db_session, email):
    """A lone surrogate (what a non-UTF-8 byte in argv becomes) reached the database."""
    result = cli.invoke(args=["users", "create", email], env={"NEW_USER_PASSWORD": SECRET})
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "email " in result.output
    deactivate = cli.invoke(args=["users", "deactivate", email])
    assert deactivate.exit_code == 1
    assert isinstance(deactivate.exception, SystemExit), deactivate.exception


@pytest.mark.processes
def test_users_create_prompts_twice_with_hidden_input_at_a_terminal(settings, committed_db):
    """At a terminal, with neither --password-stdin nor NEW_USER_PASSWORD, the password
    is typed twice and never echoed."""
    transcript = run_at_terminal(
        settings,
        ["users", "create", "tty@example.com", "--admin"],
        answers=[SECRET, SECRET],
    )
    assert "created user tty@example.com" in transcript, transcript
    assert "Password:" in transcript and "Repeat for confirmation:" in transcript
    assert SECRET not in transcript
    assert groups_of(committed_db, "tty@example.com") == ["Administrators"]


def run_at_terminal(settings, args, *, answers):
    """`flask --app app ARGS` in a session of its own whose controlling terminal is a
    pseudo-terminal (what getpass reads from), answering each prompt in turn; returns
    everything the terminal showed."""
    import fcntl
    import os
    import pty
    import select
    import subprocess
    import termios
    import time

    from tests.support.commands import BIN, REPO, product_env

    env = product_env(settings)
    env.pop("NEW_USER_PASSWORD", None)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [str(BIN / "flask"), "--app", "app", *args],
        cwd=REPO,
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )
    os.close(terminal)
    shown = b""
    pending = list(answers)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the process ended and the terminal closed
                break
            if not chunk:
                break
            shown += chunk
            if pending and shown.endswith(b": "):  # a prompt, waiting
                os.write(controller, pending.pop(0).encode() + b"\n")
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
    return shown.decode(errors="replace")
