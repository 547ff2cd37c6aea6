"""The database: declarative base, engine, the app-scoped session, the unit of work.

Plain SQLAlchemy 2 rather than Flask-SQLAlchemy: the web app, the Celery worker and the
tests all need to own the session's lifecycle (the tests bind it to an outer
transaction that is rolled back), and Flask-SQLAlchemy 3.1 resolves its engine before
it looks at a session bound to a connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask.globals import app_ctx
from sqlalchemy import JSON, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator

from app.domain.errors import DomainError

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on PostgreSQL and SQLite alike.

    SQLite keeps no zone, so values are stored as naive UTC and given their zone back
    on load; comparing a loaded value with `utcnow()` then never mixes the two kinds.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use app.db.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def new_uuid() -> uuid.UUID:
    return uuid.uuid4()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _app_context_id() -> int:
    return id(app_ctx._get_current_object())


class Database:
    """The engine and the session, created unbound and bound to one app by `init_app`.

    `session` is scoped to the Flask application context: a request, a CLI command and a
    Celery task each get their own, removed when the context ends.
    """

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.session: scoped_session[Session] = scoped_session(
            sessionmaker(expire_on_commit=False), scopefunc=_app_context_id
        )

    @property
    def metadata(self) -> MetaData:
        return Base.metadata

    def init_app(self, app: Flask, database_url: str) -> None:
        self.engine = build_engine(database_url)
        self.session.session_factory.configure(bind=self.engine)
        app.extensions["database"] = self
        app.teardown_appcontext(self._remove_session)

    def _remove_session(self, exc: BaseException | None) -> None:
        self.session.remove()


def build_engine(database_url: str, **options: Any) -> Engine:
    """An engine with the product's options: pre-ping, and WAL + busy timeout on SQLite."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            from pathlib import Path

            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    options.setdefault("pool_pre_ping", True)
    options.setdefault("pool_size", 10)
    options.setdefault("max_overflow", 10)
    return create_engine(url, **options)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


db = Database()


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction: commits when the block ends normally, rolls back on any error.

    The only place the product commits. Side effects that must follow the commit (an
    enqueue, an email) go after the `with` block, never inside it.

    A `DomainError` is a decision, not a failure: services refuse before they write
    anything but the audit event of the refusal, and that record is committed before
    the refusal goes on to its entry point.
    """
    session = db.session()
    try:
        yield session
        session.commit()
    except DomainError:
        session.commit()
        raise
    except BaseException:
        session.rollback()
        raise
