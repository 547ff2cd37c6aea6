"""`flask users set-timezone EMAIL ZONE`, invoked as an operator would, on the test
database: the zone is checked like the panel's, and the change or refusal audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import AuditEvent, User
from tests.factories import make_user


@pytest.fixture
def cli(app, db_session):
    return app.test_cli_runner()


def zone_of(db_session, email: str) -> str | None:
    db_session.expire_all()
    return db_session.scalar(select(User.time_zone).where(User.email == email))


def test_set_timezone_sets_and_clears_a_users_zone(cli, db_session, redis_db):
    make_user(db_session, "kim@example.com")
    result = cli.invoke(args=["users", "set-timezone", "Kim@Example.com", "Europe/Paris"])
    assert result.exit_code == 0, result.output
    assert "kim@example.com now sees times in Europe/Paris" in result.output
    assert zone_of(db_session, "kim@example.com") == "Europe/Paris"
    event = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "user.updated")).one()
    assert event.actor_email == "cli"
    assert event.details["changes"] == {"time_zone": [None, "Europe/Paris"]}

    cleared = cli.invoke(args=["users", "set-timezone", "kim@example.com", ""])
    assert cleared.exit_code == 0, cleared.output
    assert "now sees times in UTC" in cleared.output
    assert zone_of(db_session, "kim@example.com") is None


@pytest.mark.parametrize(
    ("email", "zone", "message"),
    [
        ("kim@example.com", "Mars/Olympus_Mons", "unknown time zone 'Mars/Olympus_Mons'"),
        ("kim@example.com", "europe/paris", "unknown time zone"),
        ("nobody@example.com", "Europe/Paris", "no user with email nobody@example.com"),
    ],
)
def test_set_timezone_refusals_exit_non_zero_and_save_nothing(
    cli, db_session, redis_db, email, zone, message
):
    make_user(db_session, "kim@example.com")
    result = cli.invoke(args=["users", "set-timezone", email, zone])
    assert result.exit_code != 0
    assert message in result.output
    assert zone_of(db_session, "kim@example.com") is None
    refusals = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "user.update_refused")
    ).all()
    assert len(refusals) == 1
