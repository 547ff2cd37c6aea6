"""Throwaway databases of either backend, and emptying one between tests.

Shared by the test suite and the benchmarks: both need a database of their own that
nobody else uses, migrated by Alembic, and gone afterwards.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sqlalchemy import Engine, create_engine, delete, text
from sqlalchemy.engine import make_url

from app.db import Base
from app.models import Group

BACKENDS = ("postgresql", "sqlite")
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_DATABASE_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SEEDED_GROUPS = ("Administrators", "Purchasers", "Read-only")


class DatabaseUnavailable(RuntimeError):
    """The backend cannot be reached; the message says what to do about it."""


def check_postgres(admin_url: str = POSTGRES_ADMIN_URL) -> None:
    engine = create_engine(admin_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise DatabaseUnavailable(
            f"PostgreSQL is not reachable at {admin_url} ({exc}). "
            "Run the tests with scripts/test, which starts or installs it."
        ) from exc
    finally:
        engine.dispose()


def create_database(backend: str, prefix: str, directory: Path) -> str:
    """A new, empty database of `backend`; its URL. SQLite files go in `directory`."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        directory.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{directory / (name + '.db')}"
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    _as_admin(f'CREATE DATABASE "{name}"')
    return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{parsed.database}{suffix}").unlink(missing_ok=True)
        return
    _as_admin(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')


def _as_admin(statement: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE) on the server."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(statement))
    finally:
        admin.dispose()


def empty_tables(engine: Engine) -> None:
    """Every row the product wrote, gone; the groups the migration seeds stay."""
    tables = [table for table in Base.metadata.sorted_tables if table.name != "groups"]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(table.name for table in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                conn.execute(table.delete())
        conn.execute(delete(Group.__table__).where(Group.__table__.c.name.not_in(SEEDED_GROUPS)))
