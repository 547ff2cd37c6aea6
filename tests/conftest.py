"""Everything the tests talk to is real: PostgreSQL, Redis, a Celery worker, an SMTP server.

- `app`: one app per run, on a throwaway PostgreSQL database migrated with Alembic.
- `db_session`: a transaction per test, rolled back at the end (the fast default).
- `committed_db`: real commits, for tests where another thread or process must see the
  data (the worker, a live server); every table is emptied afterwards.
- `redis_db`: the test Redis database, flushed before and after.
- `smtp_server` / `mailbox`: an aiosmtpd server on loopback that records messages.
- `celery_worker`: a real worker consuming from Redis, running the product's tasks.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from aiosmtpd.controller import Controller
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import create_engine, delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app import create_app
from app.config import Settings
from app.db import Base, db
from app.models import Group

TEST_DATABASE_ADMIN_URL = os.environ.get(
    "TEST_DATABASE_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SEEDED_GROUPS = ("Administrators", "Purchasers", "Read-only")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ScriptedSmtp:
    """An aiosmtpd handler that keeps what it accepts and counts sessions (EHLO).

    With `reply` set (a 4xx or 5xx line), every recipient is refused with it.
    """

    def __init__(self, reply: str | None = None) -> None:
        self.reply = reply
        self.sessions = 0
        self.messages: list = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reply:
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 Message accepted"


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: ScriptedSmtp

    @property
    def messages(self) -> list:
        return self.handler.messages


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    handler = ScriptedSmtp()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield SmtpServer(controller.hostname, controller.port, handler)
    controller.stop()


@pytest.fixture
def mailbox(smtp_server: SmtpServer) -> Iterator[SmtpServer]:
    smtp_server.messages.clear()
    yield smtp_server
    smtp_server.messages.clear()


def create_database(admin_url: str, prefix: str) -> str:
    """Create an empty PostgreSQL database; return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    engine = create_engine(TEST_DATABASE_ADMIN_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # pragma: no cover - environment problem, say what is missing
        pytest.exit(
            f"PostgreSQL is not reachable at {TEST_DATABASE_ADMIN_URL} ({exc}). "
            "Run the tests with scripts/test, which starts or installs it.",
            returncode=3,
        )
    finally:
        engine.dispose()
    return TEST_DATABASE_ADMIN_URL


@pytest.fixture(scope="session")
def database_url(postgres_admin_url: str) -> Iterator[str]:
    url = create_database(postgres_admin_url, "ccp_test")
    yield url
    drop_database(postgres_admin_url, url)


@pytest.fixture(scope="session")
def settings(database_url: str, smtp_server: SmtpServer) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=TEST_REDIS_URL,
        secret_key="test-secret-key",
        app_base_url="http://127.0.0.1:5000",
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        from_email="purchases@example.com",
    )


@pytest.fixture(scope="session")
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    app.config.update(TESTING=True)
    with app.app_context():
        upgrade()
    yield app
    assert db.engine is not None
    db.engine.dispose()


@pytest.fixture
def db_session(app: Flask) -> Iterator[Session]:
    """A session whose every commit lands in one outer transaction, rolled back after.

    The SQLAlchemy recipe "joining a Session into an external transaction": the product's
    scoped session is bound to the same connection, so requests, CLI commands and the
    test's own session all see one transaction; commits inside them release savepoints
    and nothing reaches the database. No app context is held open: each request pushes
    its own, as in production (Flask-WTF keeps per-request state in `g`).
    """
    assert db.engine is not None
    factory = db.session.session_factory
    connection = db.engine.connect()
    outer = connection.begin()
    factory.configure(bind=connection, join_transaction_mode="create_savepoint")
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    try:
        yield session
    finally:
        session.close()
        factory.configure(bind=db.engine, join_transaction_mode="conditional_savepoint")
        outer.rollback()
        connection.close()


@pytest.fixture
def committed_db(app: Flask) -> Iterator[Session]:
    """Real commits, visible to other threads and processes; tables emptied afterwards."""
    with app.app_context():
        try:
            yield db.session()
        finally:
            db.session.remove()
            empty_tables()


def empty_tables() -> None:
    assert db.engine is not None
    tables = ", ".join(
        table.name for table in Base.metadata.sorted_tables if table.name != "groups"
    )
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(delete(Group.__table__).where(Group.__table__.c.name.not_in(SEEDED_GROUPS)))


@pytest.fixture
def redis_db(app: Flask) -> Iterator[redis.Redis]:
    client = app.extensions["redis"]
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def celery_worker(app: Flask, committed_db: Session, redis_db: redis.Redis) -> Iterator[None]:
    """A real worker thread consuming the product's queues from the test Redis."""
    from celery.contrib.testing.worker import start_worker

    celery_app = app.extensions["celery"]
    with start_worker(
        celery_app,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=30,
    ):
        yield
