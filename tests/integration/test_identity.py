"""Users, groups and sign-in against the real database (and Redis for unknown emails)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.db import utcnow
from app.domain import lockout
from app.domain.errors import DomainError
from app.models import Group, User
from app.services.identity import (
    UnknownEmailThrottle,
    authenticate,
    create_group,
    create_user,
    principal_for,
)
from tests.factories import PASSWORD, make_user


@pytest.fixture
def throttle(redis_db):
    return UnknownEmailThrottle(redis_db)


def user_count(session) -> int:
    return session.scalar(select(func.count()).select_from(User))


def test_emails_are_stored_and_matched_lower_case(db_session, throttle):
    user = create_user(db_session, "  Carol@Example.COM ", PASSWORD)
    assert user.email == "carol@example.com"
    outcome = authenticate(db_session, throttle, "CAROL@example.com", PASSWORD, utcnow())
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


def test_five_failures_lock_the_account_even_for_the_right_password(db_session, throttle):
    user = make_user(db_session, "henry@example.com")
    now = utcnow()
    messages = [
        authenticate(db_session, throttle, user.email, "wrong password", now).message
        for _ in range(lockout.MAX_FAILED_LOGINS)
    ]
    assert messages[:4] == [lockout.INVALID_CREDENTIALS] * 4
    assert messages[4] == lockout.LOCKED_OUT
    assert user.locked_until is not None
    assert authenticate(db_session, throttle, user.email, PASSWORD, now).user is None
    later = now + lockout.LOCKOUT_PERIOD + timedelta(seconds=1)
    assert authenticate(db_session, throttle, user.email, PASSWORD, later).user is not None
    assert user.failed_login_count == 0 and user.locked_until is None


def test_unknown_emails_answer_exactly_like_real_ones(db_session, throttle):
    known = make_user(db_session, "ivy@example.com")
    now = utcnow()

    def attempts(email: str) -> list[str]:
        return [
            authenticate(db_session, throttle, email, "wrong password", now).message
            for _ in range(lockout.MAX_FAILED_LOGINS + 1)
        ]

    assert attempts("nobody@example.com") == attempts(known.email)


def test_a_deactivated_user_cannot_sign_in(db_session, throttle):
    user = make_user(db_session)
    user.is_active = False
    outcome = authenticate(db_session, throttle, user.email, PASSWORD, utcnow())
    assert outcome.user is None
    assert outcome.message == lockout.INVALID_CREDENTIALS
