"""Migration 0014 backfills the signature of every row that failed before it, in
batches, with the app's own rule; the other rows get none; a downgrade drops it all."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import inspect, text

from app.config import Settings
from app.db import build_engine
from app.domain.causes import NO_ERROR, signature
from tests.support.commands import flask_cli

# More than one batch of the backfill (1,000 rows).
MANY = 1_003


@pytest.fixture
def empty_database(fresh_database, settings: Settings) -> Settings:
    return settings.with_overrides(database_url=fresh_database("ccp_migrate_0014"))


def migrate(settings: Settings, *args: str) -> None:
    result = flask_cli(settings, "db", *args)
    assert result.returncode == 0, result.stderr


def test_failed_rows_get_their_signature(empty_database: Settings):
    migrate(empty_database, "upgrade", "0013")
    rows = [
        {
            "id": str(uuid.uuid4()),
            "status": "failed",
            "error": f"no capacity for r-{n}x after {n} tries",
        }
        for n in range(MANY)
    ]
    partial = {"id": str(uuid.uuid4()), "status": "partially_completed", "error": "1 of 2 failed"}
    blank = {"id": str(uuid.uuid4()), "status": "failed", "error": None}
    done = {"id": str(uuid.uuid4()), "status": "completed", "error": "ignored 3"}
    engine = build_engine(empty_database.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO purchase_executions (execution_id, status, recommendations, error)"
                    " VALUES (:id, :status, '[]', :error)"
                ),
                [*rows, partial, blank, done],
            )
        migrate(empty_database, "upgrade", "0014")
        with engine.connect() as conn:
            query = text("SELECT execution_id, failure_signature FROM purchase_executions")
            found = {str(row_id): value for row_id, value in conn.execute(query)}
        assert {found[row["id"]] for row in rows} == {signature(rows[0]["error"])}
        assert signature(rows[0]["error"]) == "no capacity for <id> after <n> tries"
        assert found[partial["id"]] == "<n> of <n> failed"
        assert found[blank["id"]] == NO_ERROR
        assert found[done["id"]] is None

        migrate(empty_database, "downgrade", "0013")
        inspector = inspect(engine)
        assert "failure_cause_fixes" not in inspector.get_table_names()
        columns = {c["name"] for c in inspector.get_columns("purchase_executions")}
        assert "failure_signature" not in columns
    finally:
        engine.dispose()
