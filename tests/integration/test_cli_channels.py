"""`flask channels`, invoked as an operator would, on the test database: the target shown
masked, the secret read from standard input, refusals on stderr with exit status 1."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import AuditEvent, ChannelMessage, NotificationChannel

HOOK = "https://hooks.example.com/in?token=very-secret-token"


@pytest.fixture
def cli(app, db_session, redis_db):
    return app.test_cli_runner()


def test_add_list_test_remove(cli, db_session):
    added = cli.invoke(
        args=["channels", "add", "ops", "--kind", "webhook", "--target", HOOK,
              "--event", "purchase_failed", "--secret", "-"],
        input="a-very-long-signing-secret\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "https://hooks.example.com/***" in added.output
    channel = db_session.scalars(select(NotificationChannel)).one()
    assert channel.secret == "a-very-long-signing-secret"

    listed = cli.invoke(args=["channels", "list"])
    assert "ops  webhook  https://hooks.example.com/***  global  purchase_failed" in listed.output
    assert "very-secret-token" not in listed.output

    tested = cli.invoke(args=["channels", "test", "ops"])
    assert tested.exit_code == 0 and "test message queued" in tested.output
    assert db_session.scalars(select(ChannelMessage.event)).all() == ["test"]

    removed = cli.invoke(args=["channels", "remove", "ops"])
    assert removed.exit_code == 0
    assert db_session.scalars(select(NotificationChannel)).all() == []
    assert db_session.scalars(select(ChannelMessage)).all() == []


def test_refusals_exit_1_and_are_audited(cli, db_session):
    refused = cli.invoke(args=["channels", "add", "x", "--kind", "slack", "--target", "http://x/"])
    assert refused.exit_code == 1 and "slack://" in refused.output
    missing = cli.invoke(args=["channels", "remove", "nope"])
    assert missing.exit_code == 1 and "no notification channel" in missing.output
    actions = set(db_session.scalars(select(AuditEvent.action)))
    assert {"channel.create_refused", "channel.delete_refused"} <= actions
