"""Users, groups and sign-in against the real database."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.db import unit_of_work, utcnow
from app.domain import lockout
from app.domain.errors import DomainError
from app.models import Group, User
from app.services.identity import (
    authenticate,
    create_group,
    create_user,
    login_state,
    principal_for,
)
from tests.factories import PASSWORD, make_user
from tests.support.commands import product_python


@pytest.fixture
def signing_in(app, db_session):
    """An app context for `authenticate`, on the test's rolled-back transaction."""
    with app.app_context():
        yield


def user_count(session) -> int:
    return session.scalar(select(func.count()).select_from(User))


def test_emails_are_stored_and_matched_lower_case(db_session, signing_in):
    user = create_user(db_session, "  Carol@Example.COM ", PASSWORD)
    assert user.email == "carol@example.com"
    outcome = authenticate("CAROL@example.com", PASSWORD, utcnow())
    assert outcome.user is not None and outcome.user.id == user.id


def test_passwords_are_argon2_hashes(db_session):
    user = create_user(db_session, "dave@example.com", PASSWORD)
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def test_a_duplicate_email_in_any_case_is_refused(db_session):
    create_user(db_session, "erin@example.com", PASSWORD)
    with pytest.raises(DomainError) as refused:
        create_user(db_session, "ERIN@example.com", PASSWORD)
    assert refused.value.status == 409


def test_an_unknown_group_is_refused_and_nothing_is_written(db_session):
    before = user_count(db_session)
    with pytest.raises(DomainError, match="unknown group: Nope") as refused:
        create_user(db_session, "frank@example.com", PASSWORD, ["Purchasers", "Nope"])
    assert refused.value.status == 404
    assert user_count(db_session) == before


@pytest.mark.parametrize(
    ("email", "password"), [("not-an-email", PASSWORD), ("gina@example.com", "short")]
)
def test_bad_email_or_short_password_is_refused(db_session, email, password):
    with pytest.raises(DomainError) as refused:
        create_user(db_session, email, password)
    assert refused.value.status == 400


def test_groups_and_their_permissions(db_session):
    create_group(db_session, "Auditors", ["View:Purchases", "view:purchases"])
    group = db_session.scalar(select(Group).where(Group.name == "Auditors"))
    assert group.permissions == ["view:purchases"]
    with pytest.raises(DomainError) as duplicate:
        create_group(db_session, "Auditors", [])
    assert duplicate.value.status == 409
    with pytest.raises(DomainError, match="malformed permission"):
        create_group(db_session, "Broken", ["retry"])


def test_principal_permissions_come_from_groups(db_session):
    admin = make_user(db_session, groups=("Administrators",))
    purchaser = make_user(db_session, groups=("Purchasers",))
    viewer = make_user(db_session, groups=("Read-only",))
    plain = make_user(db_session)
    assert principal_for(admin).is_admin
    assert "retry-any:purchases" in principal_for(purchaser).permissions
    assert "retry-own:purchases" in principal_for(purchaser).permissions
    assert principal_for(viewer).permissions == {"view:purchases"}
    assert principal_for(plain).permissions == {
        "view:purchases",
        "approve-own:purchases",
        "cancel-own:purchases",
        "retry-own:purchases",
    }


def test_five_failures_lock_the_account_even_for_the_right_password(db_session, signing_in):
    user = make_user(db_session, "henry@example.com")
    now = utcnow()
    messages = [
        authenticate(user.email, "wrong password", now).message
        for _ in range(lockout.MAX_FAILED_LOGINS)
    ]
    assert messages[:4] == [lockout.INVALID_CREDENTIALS] * 4
    assert messages[4] == lockout.LOCKED_OUT
    assert authenticate(user.email, PASSWORD, now).user is None
    later = now + lockout.LOCKOUT_PERIOD + timedelta(seconds=1)
    assert authenticate(user.email, PASSWORD, later).user is not None
    assert login_state(db_session, user.email) == lockout.LoginState()


def answers(email: str, moments) -> list[str]:
    return [authenticate(email, "wrong password", moment).message for moment in moments]


def test_unknown_emails_answer_exactly_like_real_ones_at_every_moment(db_session, signing_in):
    """4 failures, a 15-minute pause, then more: a known and an unknown email get the
    same answers throughout. (Before: the known email's count never decayed, so its
    fifth answer was "locked" while the unknown one's was "invalid".)"""
    known = make_user(db_session, "ivy@example.com")
    now = utcnow()
    pause = now + lockout.FAILURE_WINDOW
    moments = [now] * 4 + [pause] * 6
    for_unknown = answers("nobody@example.com", moments)
    assert for_unknown == answers(known.email, moments)
    assert for_unknown == [lockout.INVALID_CREDENTIALS] * 8 + [lockout.LOCKED_OUT] * 2


def test_a_deactivated_user_cannot_sign_in(db_session, signing_in):
    user = make_user(db_session)
    user.is_active = False
    db_session.flush()
    outcome = authenticate(user.email, PASSWORD, utcnow())
    assert outcome.user is None
    assert outcome.message == lockout.INVALID_CREDENTIALS


@pytest.mark.parametrize("email", ["jack@example.com", "nobody-at-all@example.com"])
def test_parallel_failures_all_count(app, committed_db, email):
    """20 wrong passwords at once: exactly 4 are told "invalid" and 16 "locked". (Before,
    on SQLite, parallel failures read and wrote back the count without a lock.)"""
    with unit_of_work() as session:
        make_user(session, "jack@example.com")

    def attempt(_: int) -> str:
        with app.app_context():
            return authenticate(email, "wrong password", utcnow()).message

    with ThreadPoolExecutor(max_workers=20) as pool:
        messages = list(pool.map(attempt, range(20)))
    assert messages.count(lockout.INVALID_CREDENTIALS) == lockout.MAX_FAILED_LOGINS - 1
    assert messages.count(lockout.LOCKED_OUT) == 20 - (lockout.MAX_FAILED_LOGINS - 1)
    assert lockout.is_locked(login_state(committed_db, email), utcnow())


def test_unknown_emails_lock_without_redis(settings, app, committed_db):
    """Sign-in counts failures in the database alone: with Redis unreachable an unknown
    email still locks. (Before, its count lived in Redis and was silently dropped.)"""
    script = (
        "from app import create_app\n"
        "from app.db import utcnow\n"
        "from app.services.identity import authenticate\n"
        "with create_app().app_context():\n"
        "    for _ in range(6):\n"
        "        print(authenticate('ghost@example.com', 'wrong password', utcnow()).message)\n"
    )
    result = product_python(settings, script, REDIS_URL="redis://127.0.0.1:9/0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [lockout.INVALID_CREDENTIALS] * 4 + [lockout.LOCKED_OUT] * 2
