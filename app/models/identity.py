"""Users and groups: who may sign in, and what their groups grant."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from app.db import Base, CanonicalUUID, JSONDocument, UTCDateTime, new_uuid, utc_now

user_groups = Table(
    "user_groups",
    Base.metadata,
    Column("user_id", CanonicalUUID, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", Integer, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
)


class Group(Base):
    """A named set of `verb:resource` permissions.

    `restricts_defaults` marks a group that takes away the defaults every signed-in user
    has: a user whose groups all add nothing but `view:purchases`, and
    one of which restricts, can only view.
    """

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    permissions: Mapped[list[str]] = mapped_column(JSONDocument, server_default=text("'[]'"))
    restricts_defaults: Mapped[bool] = mapped_column(Boolean, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())

    def __repr__(self) -> str:
        return f"<Group {self.name}>"


class User(Base):
    """A person who signs in. `email` is stored lower-case (a check constraint holds it)."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("email = lower(email)", name="email_lower_case"),)

    id: Mapped[uuid.UUID] = mapped_column(CanonicalUUID, primary_key=True, default=new_uuid)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"), default=True)
    # Part of every session cookie: raising it (sign-out, a new password) ends them all.
    session_version: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())
    # The panel shows times in this IANA zone ("Europe/Paris"); None is UTC.
    time_zone: Mapped[str | None] = mapped_column(String(64))

    groups: Mapped[list[Group]] = relationship(secondary=user_groups, lazy="selectin")

    @validates("email")
    def _lower_case_email(self, _key: str, value: str) -> str:
        return normalize_email(value)

    # Flask-Login's user protocol.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        """What Flask-Login keeps in the session: the id and the session version, so a
        cookie stops working once the version moves on (Flask-Login's "alternative
        tokens")."""
        return f"{self.id}:{self.session_version}"

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class LoginAttempts(Base):
    """Failed sign-ins, for an email known or not, so both lock out alike (one store).

    Two counts per email, each under a SHA-256 key (an address nobody has an account for
    is not kept in clear, nor a client's address): one per (email, client address),
    which locks the email from that address only, and one per email across addresses,
    which locks out only browsers without that email's device cookie. The column keeps
    its historic name `email_key`. The rule that reads and moves these fields is
    `app.domain.lockout`; the keys are made in `app.services.identity`.
    """

    __tablename__ = "login_attempts"

    email_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failed_count: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    last_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


def normalize_email(value: str) -> str:
    """The one form an email is stored and compared in."""
    return value.strip().lower()
