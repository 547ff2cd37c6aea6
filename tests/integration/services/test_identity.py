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
from app.services import identity
from app.services.identity import create_group, create_user, principal_for
from tests.factories import PASSWORD, make_user
from tests.support.commands import product_python

HERE = "192.0.2.10"
THERE = "198.51.100.20"


def authenticate(email, password, now, address=HERE, *, trusted=False):
    """A sign-in from `address` (the test's one, unless named), without a device cookie
    unless `trusted`."""
    return identity.authenticate(email, password, now, address=address, trusted=trusted)


def login_state(session, email, address=HERE):
    """The count of failures of `email` from `address`."""
    return identity.login_state(session, email, address)


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


def test_five_failures_lock_the_email_from_that_address_even_for_the_right_password(
    db_session, signing_in
):
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


@pytest.mark.processes
def test_unknown_emails_lock_without_redis(settings, app, committed_db):
    """Sign-in counts failures in the database alone: with Redis unreachable an unknown
    email still locks. (Before, its count lived in Redis and was silently dropped.)"""
    script = (
        "from app import create_app\n"
        "from app.db import utcnow\n"
        "from app.services.identity import authenticate\n"
        "with create_app().app_context():\n"
        "    for _ in range(6):\n"
        "        outcome = authenticate('ghost@example.com', 'x', utcnow(), address='192.0.2.1')\n"
        "        print(outcome.message)\n"
    )
    result = product_python(settings, script, REDIS_URL="redis://127.0.0.1:9/0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [lockout.INVALID_CREDENTIALS] * 4 + [lockout.LOCKED_OUT] * 2


# --- Nobody can lock a user out from afar -----------------------------------------------


def fail(email: str, times: int, address: str, now, *, trusted: bool = False) -> list[str]:
    return [
        authenticate(email, "wrong password", now, address, trusted=trusted).message
        for _ in range(times)
    ]


def test_five_failures_from_one_address_do_not_stop_the_user_at_another(db_session, signing_in):
    """(Before: 5 wrong passwords from anywhere locked the email everywhere for 15
    minutes: anyone could lock anyone out.)"""
    user = make_user(db_session, "kim@example.com")
    now = utcnow()
    assert fail(user.email, 5, HERE, now)[-1] == lockout.LOCKED_OUT
    assert authenticate(user.email, PASSWORD, now, HERE).message == lockout.LOCKED_OUT
    elsewhere = authenticate(user.email, PASSWORD, now, THERE)
    assert elsewhere.user is not None and elsewhere.user.id == user.id
    # The success there clears the count there only: here stays locked.
    assert lockout.is_locked(login_state(db_session, user.email, HERE), now)
    assert login_state(db_session, user.email, THERE) == lockout.LoginState()


def test_a_guess_spread_over_addresses_locks_untrusted_clients_out(db_session, signing_in):
    """20 failures from 4 addresses: a fifth address, never signed in from, is refused
    even with the right password, for 15 minutes; the user's own device is not."""
    user = make_user(db_session, "lee@example.com")
    now = utcnow()
    per_address = lockout.MAX_FAILED_LOGINS
    addresses = [f"203.0.113.{n}" for n in range(1, 5)]
    for address in addresses:
        fail(user.email, per_address, address, now)
    stranger = authenticate(user.email, PASSWORD, now, "192.0.2.99")
    assert (stranger.user, stranger.message) == (None, lockout.LOCKED_OUT)
    own_device = authenticate(user.email, PASSWORD, now, "192.0.2.99", trusted=True)
    assert own_device.user is not None
    later = now + lockout.LOCKOUT_PERIOD
    assert authenticate(user.email, PASSWORD, later, "192.0.2.98").user is not None


def test_an_unknown_email_locks_across_addresses_exactly_like_a_real_one(db_session, signing_in):
    make_user(db_session, "mo@example.com")
    now = utcnow()
    answers_for = {}
    for email in ("mo@example.com", "nobody-here@example.com"):
        for n in range(1, 5):
            fail(email, lockout.MAX_FAILED_LOGINS, f"203.0.113.{n}", now)
        answers_for[email] = fail(email, 2, "192.0.2.99", now)
    assert answers_for["mo@example.com"] == answers_for["nobody-here@example.com"]
    assert answers_for["mo@example.com"] == [lockout.LOCKED_OUT] * 2


def test_one_address_alone_cannot_lock_the_email_elsewhere(db_session, signing_in):
    """Failures its own lock already refuses do not count across addresses."""
    user = make_user(db_session, "noor@example.com")
    now = utcnow()
    fail(user.email, lockout.MAX_FAILED_LOGINS_ANY_ADDRESS + 5, HERE, now)
    assert authenticate(user.email, PASSWORD, now, THERE).user is not None


def test_a_trusted_device_keeps_its_own_address_lock(db_session, signing_in):
    user = make_user(db_session, "omar@example.com")
    now = utcnow()
    answers = fail(user.email, lockout.MAX_FAILED_LOGINS, HERE, now, trusted=True)
    assert answers[-1] == lockout.LOCKED_OUT
    assert authenticate(user.email, PASSWORD, now, HERE, trusted=True).user is None
    # Its failures did not count across addresses: a stranger's address is not locked.
    assert authenticate(user.email, PASSWORD, now, THERE).user is not None


def test_parallel_failures_from_many_addresses_lock_across_addresses_atomically(app, committed_db):
    """40 wrong passwords at once from 8 addresses: each address counts its 5, the email
    counts 20 across them, and a ninth untrusted address is then locked out."""
    with unit_of_work() as session:
        make_user(session, "pat@example.com")
    addresses = [f"203.0.113.{n}" for n in range(1, 9)]

    def attempt(n: int) -> str:
        with app.app_context():
            address = addresses[n % len(addresses)]
            return authenticate("pat@example.com", "wrong password", utcnow(), address).message

    with ThreadPoolExecutor(max_workers=16) as pool:
        messages = list(pool.map(attempt, range(40)))
    assert messages.count(lockout.LOCKED_OUT) >= 40 - lockout.MAX_FAILED_LOGINS_ANY_ADDRESS
    with app.app_context():
        refused = authenticate("pat@example.com", PASSWORD, utcnow(), "192.0.2.77")
        assert refused.message == lockout.LOCKED_OUT
        assert authenticate("pat@example.com", PASSWORD, utcnow(), "192.0.2.77", trusted=True).user
