"""Users, groups and sign-in: creating them, checking passwords, counting failures."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, joinedload

from app.db import db, unit_of_work
from app.domain import lockout
from app.domain.errors import DomainError
from app.domain.rbac import GroupGrant, InvalidPermission, Principal, effective_permissions
from app.domain.rbac import validate_permission as canonical_permission
from app.models import Group, LoginAttempts, User, normalize_email

MIN_PASSWORD_LENGTH = 8
_EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+$")
# OWASP's argon2id parameters (19 MiB, 2 passes, 1 lane): the library default (64 MiB,
# 3 passes, 4 lanes) costs ~0.6 s per sign-in on a 2-core host, and lanes beyond the
# cores buy nothing. Hashes with other parameters still verify and are upgraded at the
# next sign-in (`check_needs_rehash`).
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    return _hasher.hash("not-a-real-password")


def principal_for(user: User) -> Principal:
    """The user as the rules see them, with the permissions their groups give *now*."""
    grants = (
        GroupGrant(frozenset(group.permissions), group.restricts_defaults) for group in user.groups
    )
    return Principal(user_id=user.id, email=user.email, permissions=effective_permissions(grants))


def find_user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalize_email(email)))


def load_active_user(session: Session, user_id: str | uuid.UUID) -> User | None:
    """The user with this id, or None if unknown, malformed or deactivated."""
    try:
        key = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))
    except ValueError:
        return None
    # Groups in the same round trip: every signed-in request and every task needs them.
    user = session.get(User, key, options=[joinedload(User.groups)])
    return user if user is not None and user.is_active else None


def load_session_user(session: Session, session_id: str) -> User | None:
    """The user behind a session cookie (`User.get_id()`: id and session version), or
    None if the cookie's version is not the user's current one: it was ended."""
    user_id, _, version = session_id.partition(":")
    user = load_active_user(session, user_id)
    if user is None or version != str(user.session_version):
        return None
    return user


def create_user(
    session: Session, email: str, password: str, group_names: Sequence[str] = ()
) -> User:
    """Add a user in the named groups. Refuses a bad email, short password, duplicate
    email or unknown group with a `DomainError`; nothing is written then."""
    normalized = normalize_email(email)
    if not _EMAIL_SHAPE.match(normalized):
        raise DomainError(400, f"not an email address: {email!r}")
    _check_password(password)
    if find_user_by_email(session, normalized) is not None:
        raise DomainError(409, f"a user with email {normalized} already exists")
    groups = _groups_named(session, group_names)
    user = User(email=normalized, password_hash=hash_password(password), groups=groups)
    session.add(user)
    session.flush()
    return user


def group_fields(
    session: Session, name: str, permissions: Iterable[str], *, group_id: int | None = None
) -> tuple[str, list[str]]:
    """A group's name, stripped, and its permissions, validated, deduplicated and sorted:
    400 for an empty name or a malformed permission, 409 for a name another group
    (not `group_id`) has."""
    clean_name = name.strip()
    if not clean_name:
        raise DomainError(400, "group name must not be empty")
    try:
        canonical = sorted({canonical_permission(p) for p in permissions})
    except InvalidPermission as exc:
        raise DomainError(400, str(exc)) from None
    taken = select(Group.id).where(Group.name == clean_name)
    if group_id is not None:
        taken = taken.where(Group.id != group_id)
    if session.scalar(taken) is not None:
        raise DomainError(409, f"a group named {clean_name!r} already exists")
    return clean_name, canonical


def create_group(
    session: Session, name: str, permissions: Iterable[str], *, restricts_defaults: bool = False
) -> Group:
    """Add a group. Refuses an empty or duplicate name and any malformed permission."""
    clean_name, canonical = group_fields(session, name, permissions)
    group = Group(name=clean_name, permissions=canonical, restricts_defaults=restricts_defaults)
    session.add(group)
    session.flush()
    return group


def _groups_named(session: Session, names: Sequence[str]) -> list[Group]:
    wanted = list(dict.fromkeys(name.strip() for name in names))
    found = {g.name: g for g in session.scalars(select(Group).where(Group.name.in_(wanted)))}
    missing = [name for name in wanted if name not in found]
    if missing:
        raise DomainError(404, f"unknown group: {', '.join(missing)}")
    return [found[name] for name in wanted]


@dataclass(frozen=True)
class LoginOutcome:
    """The result of a sign-in attempt. On refusal `user` is None and `message` says why,
    in words that do not tell whether the email has an account."""

    user: User | None
    message: str = ""


def login_state(session: Session, email: str, address: str) -> lockout.LoginState:
    """The failures of `email` from client `address` (the per-address lockout)."""
    return _state_at(session, lockout.address_key(normalize_email(email), address))


def _state_at(session: Session, key: str) -> lockout.LoginState:
    found = session.get(LoginAttempts, key, populate_existing=True)
    if found is None:
        return lockout.LoginState()
    return lockout.LoginState(found.failed_count, found.last_failed_at, found.locked_until)


def authenticate(
    email: str, password: str, now: datetime, *, address: str, trusted: bool = False
) -> LoginOutcome:
    """Check a password from client `address`, counting a failure toward the lockouts of
    that email (`app.domain.lockout`: from this address, and across addresses unless
    the client is `trusted`, i.e. holds the email's device cookie).

    Every email goes through the same steps, store and rules, whether or not it has an
    account (an unknown one is checked against a dummy hash at the same cost), so no
    answer and no timing tells them apart. The password is checked outside any
    transaction; the failure is then counted in a short unit of work that reads and
    writes the counts under the write lock, so parallel failures all count.
    """
    session = db.session()
    normalized = normalize_email(email)
    keys = _Keys(lockout.address_key(normalized, address), lockout.email_key(normalized))
    if _refused(session, keys, trusted, now):
        return LoginOutcome(None, lockout.LOCKED_OUT)
    user = session.scalar(select(User).where(User.email == normalized))
    if user is None:
        verify_password(_dummy_hash(), password)
        accepted = False
    else:
        accepted = verify_password(user.password_hash, password) and user.is_active
    with unit_of_work() as writer:
        if not accepted:
            return LoginOutcome(None, _count_failure(writer, keys, trusted, now))
        assert user is not None
        if _refused(writer, keys, trusted, now):  # locked by a parallel failure meanwhile
            return LoginOutcome(None, lockout.LOCKED_OUT)
        # This address's count starts again; the count across addresses is left to
        # decay, or a user signing in would wipe out a guess still going on elsewhere.
        writer.execute(delete(LoginAttempts).where(LoginAttempts.email_key == keys.address))
        user = writer.get(User, user.id, populate_existing=True, options=[joinedload(User.groups)])
        assert user is not None
        user.last_login_at = now
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        return LoginOutcome(user)


@dataclass(frozen=True)
class _Keys:
    """Where one sign-in's failures are counted: from its address, across addresses."""

    address: str
    email: str


def _refused(session: Session, keys: _Keys, trusted: bool, now: datetime) -> bool:
    return lockout.is_refused(
        _state_at(session, keys.address), _state_at(session, keys.email), trusted=trusted, now=now
    )


def _count_failure(session: Session, keys: _Keys, trusted: bool, now: datetime) -> str:
    """Apply the lockout rules to the stored counts, atomically, and say what the client
    is told. The rows are locked (on PostgreSQL) or the database is (SQLite's BEGIN
    IMMEDIATE) from read to write; the address's row always first, so two sign-ins never
    wait on each other's rows in opposite orders."""
    from_address = _locked_row(session, keys.address)
    before = _state_of(from_address)
    after = _store(from_address, lockout.after_failure(before, now))
    locked = lockout.is_locked(after, now)
    if lockout.counts_everywhere(before, trusted=trusted, now=now):
        any_address = _locked_row(session, keys.email)
        everywhere = lockout.after_failure(
            _state_of(any_address), now, limit=lockout.MAX_FAILED_LOGINS_ANY_ADDRESS
        )
        locked = lockout.is_locked(_store(any_address, everywhere), now) or locked
    return lockout.LOCKED_OUT if locked else lockout.INVALID_CREDENTIALS


def _locked_row(session: Session, key: str) -> LoginAttempts:
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(LoginAttempts).values(email_key=key).on_conflict_do_nothing())
    row = session.get(LoginAttempts, key, with_for_update=True, populate_existing=True)
    assert row is not None
    return row


def _state_of(row: LoginAttempts) -> lockout.LoginState:
    return lockout.LoginState(row.failed_count, row.last_failed_at, row.locked_until)


def _store(row: LoginAttempts, state: lockout.LoginState) -> lockout.LoginState:
    row.failed_count, row.last_failed_at, row.locked_until = (
        state.failed_count,
        state.last_failed_at,
        state.locked_until,
    )
    return state


def end_sessions(user: User) -> None:
    """Make every session cookie issued to `user` so far useless (sign-out, a new
    password, deactivation): they carry the old session version."""
    user.session_version += 1


def set_password(session: Session, email: str, password: str) -> User:
    """A new password for the user with `email`; their sessions end. 400/404 refusals."""
    user = _existing_user(session, email)
    _check_password(password)
    user.password_hash = hash_password(password)
    end_sessions(user)
    return user


def deactivate(session: Session, email: str) -> User:
    """The user can no longer sign in, and their sessions end."""
    user = _existing_user(session, email)
    user.is_active = False
    end_sessions(user)
    return user


def _existing_user(session: Session, email: str) -> User:
    user = find_user_by_email(session, email)
    if user is None:
        raise DomainError(404, f"no user with email {normalize_email(email)}")
    return user


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise DomainError(400, f"password must be at least {MIN_PASSWORD_LENGTH} characters")
