"""Everything the tests talk to is real: PostgreSQL and a SQLite file, Redis, a Celery
worker, an SMTP server.

One suite, both databases: every test that uses the database runs once per backend
(`--db postgresql,sqlite`, both by default; a test marked `backends("sqlite")` runs
on the backends it names only). Test ids end in `[postgresql]` or `[sqlite]`.

- `app`: one app per backend, on a throwaway database migrated with Alembic (SQLite: a
  file, shared with any worker or CLI process the test starts).
- `db_session`: a transaction per test, rolled back at the end (the fast default).
- `committed_db`: real commits, for tests where another thread or process must see the
  data (the worker, a live server); every table is emptied afterwards.
- `redis_db`: the test Redis database, flushed before and after.
- `smtp_server` / `mailbox`: an aiosmtpd server on loopback that records messages.
- `celery_worker`: a real worker consuming from Redis, running the product's tasks.
- `fresh_database`: a factory of further empty databases of the test's backend.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy.orm import Session

from app import create_app
from app.config import Settings
from app.db import db
from tests.support.databases import (
    BACKENDS,
    DatabaseUnavailable,
    check_postgres,
    create_database,
    drop_database,
    empty_tables,
)
from tests.support.smtp import SmtpServer
from tests.support.smtp import smtp_server as running_smtp_server

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        default=",".join(BACKENDS),
        help="comma-separated databases the database tests run on (default: %(default)s)",
    )


def chosen_backends(config: pytest.Config) -> list[str]:
    chosen = [name.strip() for name in config.getoption("--db").split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BACKENDS))
    if unknown or not chosen:
        raise pytest.UsageError(f"--db takes {', '.join(BACKENDS)}; got {chosen or 'nothing'}")
    return chosen


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "backends(*names): run only on these databases (postgresql, sqlite)"
    )
    chosen_backends(config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    backends = chosen_backends(metafunc.config)
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is not None:
        backends = [name for name in backends if name in marker.args]
    metafunc.parametrize("backend", backends, scope="session")


@pytest.fixture(scope="session")
def databases_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the SQLite test databases live."""
    return tmp_path_factory.mktemp("databases")


@pytest.fixture(scope="session")
def fresh_database(backend: str, databases_dir: Path) -> Iterator[Callable[[str], str]]:
    """`fresh_database(prefix)`: the URL of a new, empty database of this backend."""
    if backend == "postgresql":
        try:
            check_postgres()
        except DatabaseUnavailable as exc:  # pragma: no cover - environment problem
            pytest.exit(str(exc), returncode=3)
    created: list[str] = []

    def make(prefix: str) -> str:
        url = create_database(backend, prefix, databases_dir)
        created.append(url)
        return url

    yield make
    for url in created:
        drop_database(url)


@pytest.fixture(scope="session")
def database_url(fresh_database: Callable[[str], str]) -> str:
    return fresh_database("ccp_test")


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    with running_smtp_server() as server:
        yield server


@pytest.fixture
def mailbox(smtp_server: SmtpServer) -> Iterator[SmtpServer]:
    smtp_server.messages.clear()
    yield smtp_server
    smtp_server.messages.clear()


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
        # The suite signs in from 127.0.0.1 all the time; the limit has its own test.
        sign_in_rate_limit="10000 per minute",
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
            assert db.engine is not None
            empty_tables(db.engine)


@pytest.fixture
def redis_db(app: Flask) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def celery_worker(app: Flask, committed_db: Session, redis_db: redis.Redis) -> Iterator[None]:
    """A real worker thread consuming the product's queues from the test Redis.

    Before it stops, it is given a moment to finish what the test set in motion (an
    approval's purchase, then its outcome email): a task still running when the tables
    are emptied would write into the next test's data.
    """
    from celery.contrib.testing.worker import start_worker

    import tasks  # noqa: F401  (the worker's entry point: registers the product's tasks)

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
        drain(redis_db, [queue.name for queue in celery_app.conf.task_queues])


def drain(client: redis.Redis, queues: list[str], *, timeout: float = 10) -> None:
    """Wait (up to `timeout`) until the queues are empty and no task is running."""
    from celery.worker import state

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = state.active_requests or state.reserved_requests
        if not busy and not any(client.llen(queue) for queue in queues):
            return
        time.sleep(0.05)
