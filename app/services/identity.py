"""Users, groups and sign-in: creating them, checking passwords, counting failures."""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from app.domain import lockout
from app.domain.errors import DomainError
from app.domain.rbac import GroupGrant, InvalidPermission, Principal, effective_permissions
from app.domain.rbac import validate_permission as canonical_permission
from app.models import Group, User, normalize_email

log = logging.getLogger(__name__)

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
    """The user behind a session cookie, or None if unknown, malformed or deactivated."""
    try:
        key = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))
    except ValueError:
        return None
    # Groups in the same round trip: every signed-in request and every task needs them.
    user = session.get(User, key, options=[joinedload(User.groups)])
    return user if user is not None and user.is_active else None


def create_user(
    session: Session, email: str, password: str, group_names: Sequence[str] = ()
) -> User:
    """Add a user in the named groups. Refuses a bad email, short password, duplicate
    email or unknown group with a `DomainError`; nothing is written then."""
    normalized = normalize_email(email)
    if not _EMAIL_SHAPE.match(normalized):
        raise DomainError(400, f"not an email address: {email!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise DomainError(400, f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if find_user_by_email(session, normalized) is not None:
        raise DomainError(409, f"a user with email {normalized} already exists")
    groups = _groups_named(session, group_names)
    user = User(email=normalized, password_hash=hash_password(password), groups=groups)
    session.add(user)
    session.flush()
    return user


def create_group(
    session: Session, name: str, permissions: Iterable[str], *, restricts_defaults: bool = False
) -> Group:
    """Add a group. Refuses an empty or duplicate name and any malformed permission."""
    clean_name = name.strip()
    if not clean_name:
        raise DomainError(400, "group name must not be empty")
    try:
        canonical = sorted({canonical_permission(p) for p in permissions})
    except InvalidPermission as exc:
        raise DomainError(400, str(exc)) from None
    if session.scalar(select(Group).where(Group.name == clean_name)) is not None:
        raise DomainError(409, f"a group named {clean_name!r} already exists")
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


class UnknownEmailThrottle:
    """Failure counts for emails with no account, so they lock out like real ones."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    @staticmethod
    def _key(email: str) -> str:
        return "login-throttle:" + hashlib.sha256(email.encode()).hexdigest()

    def load(self, email: str) -> lockout.LoginState:
        try:
            raw = self._client.hgetall(self._key(email))
        except redis.RedisError:
            log.warning("login throttle unavailable; unknown-email attempts are not counted")
            return lockout.LoginState()
        if not raw:
            return lockout.LoginState()
        locked = raw.get("locked_until")
        return lockout.LoginState(
            failed_count=int(raw.get("failed_count", 0)),
            locked_until=datetime.fromisoformat(locked) if locked else None,
        )

    def save(self, email: str, state: lockout.LoginState) -> None:
        mapping = {
            "failed_count": state.failed_count,
            "locked_until": state.locked_until.isoformat() if state.locked_until else "",
        }
        key = self._key(email)
        try:
            with self._client.pipeline() as pipe:
                pipe.hset(key, mapping=mapping)
                pipe.expire(key, int(lockout.LOCKOUT_PERIOD.total_seconds()))
                pipe.execute()
        except redis.RedisError:
            log.warning("login throttle unavailable; unknown-email attempt not counted")


def authenticate(
    session: Session,
    throttle: UnknownEmailThrottle,
    email: str,
    password: str,
    now: datetime,
) -> LoginOutcome:
    """Check a password, counting failures toward the lockout.

    Returns an outcome rather than raising, so the caller's unit of work commits the
    failure count along with the refusal.
    """
    normalized = normalize_email(email)
    user = session.scalar(select(User).where(User.email == normalized).with_for_update())
    if user is None:
        state = throttle.load(normalized)
        if lockout.is_locked(state, now):
            return LoginOutcome(None, lockout.LOCKED_OUT)
        verify_password(_dummy_hash(), password)  # same cost as a real check
        state = lockout.after_failure(state, now)
        throttle.save(normalized, state)
        return LoginOutcome(None, _refusal(state, now))

    state = lockout.LoginState(user.failed_login_count, user.locked_until)
    if lockout.is_locked(state, now):
        return LoginOutcome(None, lockout.LOCKED_OUT)
    if not verify_password(user.password_hash, password) or not user.is_active:
        state = lockout.after_failure(state, now)
        user.failed_login_count, user.locked_until = state.failed_count, state.locked_until
        return LoginOutcome(None, _refusal(state, now))

    user.failed_login_count, user.locked_until = 0, None
    user.last_login_at = now
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return LoginOutcome(user)


def _refusal(state: lockout.LoginState, now: datetime) -> str:
    return lockout.LOCKED_OUT if lockout.is_locked(state, now) else lockout.INVALID_CREDENTIALS
