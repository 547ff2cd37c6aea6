"""The database: column types, engine, the app-scoped session, the unit of work.

Plain SQLAlchemy 2 rather than Flask-SQLAlchemy: the web app, the Celery worker and the
tests all need to own the session's lifecycle (the tests bind it to an outer
transaction that is rolled back), and Flask-SQLAlchemy 3.1 resolves its engine before
it looks at a session bound to a connection.

Every guarantee holds on the embedded SQLite default exactly as on PostgreSQL, which
takes three things here:

- SQLite has no row locks, so a unit of work, the only transaction that writes, takes
  the database's write lock when it begins (`BEGIN IMMEDIATE`); reads begin deferred.
  pysqlite's own transaction handling is switched off so that BEGIN is ours to emit
  (SQLAlchemy's documented pysqlite recipe), which also makes SAVEPOINT work.
- A UUID is stored as its canonical 36-character text (`CanonicalUUID`), as people and
  tools write it, so a row inserted by hand is found by every page and command.
- A timestamp is stored in one text format, server defaults included (`utc_now`), so
  comparing two of them as text orders them as time.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from flask import Flask
from flask.globals import app_ctx
from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    MetaData,
    Result,
    String,
    Table,
    Uuid,
    create_engine,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine

from app.instance import FILE_MODE, FOLDER_MODE, make_private

if TYPE_CHECKING:
    from flask.ctx import AppContext
    from sqlalchemy.engine import CursorResult
    from werkzeug.local import LocalProxy

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONDocument = JSON().with_variant(JSONB(), "postgresql")

# How SQLite stores a timestamp: SQLAlchemy's format, microseconds always present.
SQLITE_TIMESTAMP_GLOB = "????-??-?? ??:??:??.??????"
# The canonical text of a UUID, for SQLite check constraints.
UUID_GLOB = "-".join("[0-9a-f]" * width for width in (8, 4, 4, 4, 12))


class CanonicalUUID(TypeDecorator[uuid.UUID]):
    """A UUID: native on PostgreSQL, canonical 36-character text on SQLite.

    Binds accept a `uuid.UUID` or any text `uuid.UUID()` parses; anything else raises
    `ValueError` (callers parse untrusted ids first: `app.domain.inputs.parse_uuid`).
    """

    impl = Uuid
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(36))
        return dialect.type_descriptor(Uuid())

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, uuid.UUID):
            value = uuid.UUID(str(value))
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Any) -> uuid.UUID | None:
        if value is None or isinstance(value, uuid.UUID):
            return value
        return uuid.UUID(value)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on PostgreSQL and SQLite alike.

    SQLite keeps no zone, so values are stored as naive UTC text and given their zone
    back on load; comparing a loaded value with `utcnow()` then never mixes the two.
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


class utc_now(FunctionElement[datetime]):
    """The database's current time, in the format the column stores: the server default
    and on-update value of timestamp columns.

    On SQLite `CURRENT_TIMESTAMP` yields `YYYY-MM-DD HH:MM:SS`, while SQLAlchemy stores
    `YYYY-MM-DD HH:MM:SS.ffffff`; as text the shorter one sorts before its own instant,
    and a cursor built from a row would match that row again.
    """

    type = UTCDateTime()
    inherit_cache = True


@compiles(utc_now)
def _utc_now_default(_element: utc_now, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(utc_now, "sqlite")
def _utc_now_sqlite(_element: utc_now, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "strftime('%Y-%m-%d %H:%M:%f000', 'now')"


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def new_uuid() -> uuid.UUID:
    return uuid.uuid4()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)

    if TYPE_CHECKING:
        # Every model is declared with columns, so mapped to a Table (DeclarativeBase
        # says only FromClause, which Core's update() and insert() do not take).
        __table__: ClassVar[Table]


def rowcount(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE matched. `Session.execute` answers DML with a
    CursorResult, which has the count, but is typed to return a plain Result."""
    return cast("CursorResult[Any]", result).rowcount


def _app_context_id() -> int:
    # `app_ctx` is a LocalProxy typed as the AppContext it stands for.
    return id(cast("LocalProxy[AppContext]", app_ctx)._get_current_object())


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
        if self.engine is not None:
            self.engine.dispose()
        self.engine = build_engine(database_url)
        self.session.session_factory.configure(bind=self.engine)
        app.extensions["database"] = self
        app.teardown_appcontext(self._remove_session)

    def _remove_session(self, exc: BaseException | None) -> None:
        self.session.remove()


# The execution option a connection's BEGIN reads on SQLite: "DEFERRED" or "IMMEDIATE".
SQLITE_BEGIN = "sqlite_begin"


def build_engine(database_url: str, **options: Any) -> Engine:
    """An engine with the product's options: pre-ping on PostgreSQL; on SQLite WAL, a
    busy timeout, foreign keys, and BEGIN emitted by us (see the module docstring)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        options.setdefault("pool_pre_ping", True)
        options.setdefault("pool_size", 10)
        options.setdefault("max_overflow", 10)
        return create_engine(url, **options)
    if url.database and url.database != ":memory:" and not url.query.get("uri"):
        _private_sqlite_file(Path(url.database))
    engine = create_engine(url, **options)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _private_sqlite_file(path: Path) -> None:
    """The database file holds password and token hashes: its owner's only (0600), a
    file an older version made world-readable included. SQLite gives the `-wal` and
    `-shm` files it creates the database file's mode, so the file is created here, empty
    (SQLite takes an empty file as an empty database), before SQLite ever opens it."""
    path.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)  # new folders: 0700
    # Never open a file SQLite may already hold: closing any descriptor of it drops this
    # process's SQLite locks on it (POSIX), and another process may then delete the WAL.
    if not path.exists():
        with suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
    for suffix in ("", "-wal", "-shm"):
        make_private(path.with_name(path.name + suffix), FILE_MODE)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # No implicit BEGIN from pysqlite: `_sqlite_begin` emits it, in the mode asked for.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


db = Database()


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One write transaction: commits when the block ends normally, rolls back otherwise.

    The only place the product commits, and it commits on success only: a refusal (a
    `DomainError`) rolls back like any other error. A refusal's audit record is written
    on purpose, in a unit of work of its own (`app.services.audit.record_refusal`).

    Side effects that must follow the commit (an enqueue, an email) go after the `with`
    block, never inside it. A read transaction the session had open (a request that
    loaded its user, say) is ended first, so this one begins with the write lock on
    SQLite. Units of work do not nest.
    """
    session = db.session()
    if session.info.get("unit_of_work"):
        raise RuntimeError("unit_of_work() does not nest: finish the outer one first")
    _end_read_transaction(session)
    session.info["unit_of_work"] = True
    try:
        session.connection(execution_options={SQLITE_BEGIN: "IMMEDIATE"})
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.info.pop("unit_of_work", None)


@contextmanager
def fresh_read() -> Iterator[Session]:
    """A read that sees every commit made before it began.

    For code that polls (a command waiting for the worker): SQLite keeps one snapshot
    for a whole transaction, so the session's open read transaction is ended first.
    """
    session = db.session()
    _end_read_transaction(session)
    try:
        yield session
    finally:
        _end_read_transaction(session)


def _end_read_transaction(session: Session) -> None:
    if not session.in_transaction():
        return
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("changes were made outside a unit of work")
    session.commit()  # nothing to write: ends the read transaction, keeps loaded rows
