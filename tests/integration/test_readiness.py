"""`/readyz` against a real database left behind the migrations' head: a fresh database
migrated (by the product's own `flask db upgrade`) to an earlier revision."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.db import build_engine, db
from tests.support.commands import flask_cli

EARLIER = "0010"


@pytest.fixture
def database_behind_head(app, settings, fresh_database, redis_db) -> Iterator[None]:
    """The app's sessions bound, for one test, to a fresh database at `EARLIER`."""
    target = settings.with_overrides(database_url=fresh_database("ccp_behind"))
    migrated = flask_cli(target, "db", "upgrade", EARLIER)
    assert migrated.returncode == 0, migrated.stderr
    engine = build_engine(target.database_url)
    factory = db.session.session_factory
    factory.configure(bind=engine)
    try:
        yield
    finally:
        factory.configure(bind=db.engine)
        engine.dispose()


@pytest.mark.processes
def test_readyz_is_503_while_the_database_is_behind_head(app, database_behind_head):
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["failed"] == ["migrations"]
    assert response.json["checks"]["database"] == "ok"
    assert response.json["checks"]["redis"] == "ok"
    assert response.json["checks"]["migrations"].startswith(f"the database is at {EARLIER},")
