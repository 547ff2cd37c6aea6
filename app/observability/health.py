"""The probes: `/healthz` (the process lives; touches nothing) and `/readyz` (this
process can serve: the database answers, Redis answers, and the database's Alembic
revision is the migrations' head).

A failed check is named with a short reason that holds no host, URL or secret; the
error itself goes to the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cache

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.config import get_settings
from app.db import fresh_read
from app.observability.broker import redis_client

OK = "ok"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [name for name, outcome in self.checks.items() if outcome != OK]

    @property
    def ready(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"status": "ready" if self.ready else "unavailable"}
        if not self.ready:
            body["failed"] = self.failed
        body["checks"] = self.checks
        return body


def readiness() -> Readiness:
    """Every check, each whatever the others said."""
    database, migrations = _database_and_migrations()
    return Readiness({"database": database, "migrations": migrations, "redis": _redis()})


@cache
def migration_heads(directory: str) -> frozenset[str]:
    """The heads of the migrations in `directory` (read once per process: the code
    cannot change under a running process)."""
    return frozenset(ScriptDirectory(directory).get_heads())


def _database_and_migrations() -> tuple[str, str]:
    try:
        with fresh_read() as session:
            session.execute(text("SELECT 1"))
            current = frozenset(
                MigrationContext.configure(session.connection()).get_current_heads()
            )
    except SQLAlchemyError as error:
        log.warning("readyz: the database did not answer: %s", error)
        return "not reachable", "unknown: the database did not answer"
    heads = migration_heads(current_app.extensions["migrate"].directory)
    if current == heads:
        return OK, OK
    return OK, f"the database is at {_names(current)}, the code's migrations end at {_names(heads)}"


def _redis() -> str:
    try:
        with redis_client(get_settings()) as client:
            client.ping()
    except (KombuOperationalError, RedisError, OSError) as error:
        log.warning("readyz: Redis did not answer: %s", error)
        return "not reachable"
    return OK


def _names(revisions: frozenset[str]) -> str:
    return ", ".join(sorted(revisions)) or "no revision"
