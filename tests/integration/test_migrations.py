"""The schema comes from Alembic, never `create_all`, and matches the models exactly."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from app import MIGRATIONS_DIR
from app.config import Settings
from app.db import Base, build_engine, db
from tests.support.commands import flask_cli

PLAIN_INSERT = text(
    "INSERT INTO purchase_executions (execution_id, status, recommendations, error,"
    " created_by_user_id, retry_attempt_n, cloud_account_id, plan_id, step_number)"
    " VALUES (:id, 'failed', '[]', 'boom', NULL, 0, NULL, NULL, 1)"
)
"""The plain INSERT an operator writes, with the id as the text they type (`:id` is a str)."""


@pytest.fixture
def empty_database(fresh_database, settings: Settings) -> Settings:
    """The test settings pointed at an empty database of their own."""
    return settings.with_overrides(database_url=fresh_database("ccp_migrate"))


def table_names(database_url: str) -> set[str]:
    engine = build_engine(database_url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def migrate(settings: Settings, *args: str) -> None:
    result = flask_cli(settings, "db", *args)
    assert result.returncode == 0, result.stderr


def test_exactly_one_head():
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    assert len(script.get_heads()) == 1


@pytest.mark.processes
def test_upgrade_downgrade_upgrade(empty_database: Settings):
    expected = {table.name for table in Base.metadata.sorted_tables} | {"alembic_version"}
    migrate(empty_database, "upgrade")
    assert table_names(empty_database.database_url) == expected
    migrate(empty_database, "downgrade", "base")
    assert table_names(empty_database.database_url) == {"alembic_version"}
    migrate(empty_database, "upgrade")
    assert table_names(empty_database.database_url) == expected


def test_migrated_schema_matches_the_models(app: Flask, db_session):
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_seeded_groups(db_session):
    rows = db_session.execute(
        text("SELECT name, permissions, restricts_defaults FROM groups ORDER BY name")
    ).all()
    decoded = [
        (
            r.name,
            sorted(json.loads(r.permissions) if isinstance(r.permissions, str) else r.permissions),
            bool(r.restricts_defaults),
        )
        for r in rows
    ]
    assert decoded == [
        ("Administrators", ["admin:*"], False),
        (
            "Purchasers",
            ["approve-any:purchases", "cancel-any:purchases", "retry-any:purchases"],
            False,
        ),
        ("Read-only", ["view:purchases"], True),
    ]


def test_the_plain_insert_of_the_spec_works(db_session):
    execution_id = uuid.uuid4()
    db_session.execute(PLAIN_INSERT, {"id": str(execution_id)})
    row = db_session.execute(
        text(
            "SELECT total_upfront_cost, estimated_savings, retry_attempt_n, retry_execution_id,"
            " created_at, updated_at, approved_by FROM purchase_executions"
            " WHERE execution_id = :id"
        ),
        {"id": str(execution_id)},
    ).one()
    assert row.total_upfront_cost == 0
    assert row.estimated_savings == 0
    assert row.retry_attempt_n == 0
    assert row.retry_execution_id is None
    assert row.created_at is not None and row.updated_at is not None


def test_only_one_row_may_point_at_a_successor(db_session):
    """The partial unique index that makes concurrent retries create one successor."""
    successor, first, second = (str(uuid.uuid4()) for _ in range(3))
    for execution_id in (successor, first, second):
        db_session.execute(PLAIN_INSERT, {"id": str(execution_id)})
    link = text("UPDATE purchase_executions SET retry_execution_id = :s WHERE execution_id = :id")
    db_session.execute(link, {"s": successor, "id": first})
    # PostgreSQL names the index; SQLite names the column.
    unique = "uq_purchase_executions_retry_execution_id|purchase_executions.retry_execution_id"
    with pytest.raises(IntegrityError, match=unique), db_session.begin_nested():
        db_session.execute(link, {"s": successor, "id": second})


def test_emails_are_stored_lower_case(db_session):
    with pytest.raises(IntegrityError, match="email_lower_case"), db_session.begin_nested():
        db_session.execute(
            text(
                "INSERT INTO users (id, email, password_hash)"
                " VALUES (:id, 'Mixed@Example.com', 'x')"
            ),
            {"id": str(uuid.uuid4())},
        )


@pytest.mark.processes
def test_embedded_sqlite_default_migrates_in_wal_mode(tmp_path: Path, settings: Settings):
    path = tmp_path / "embedded.db"
    embedded = settings.with_overrides(database_url=f"sqlite:///{path}")
    migrate(embedded, "upgrade")
    engine = build_engine(embedded.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(PLAIN_INSERT, {"id": str(uuid.uuid4())})
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 10000
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        engine.dispose()
    assert table_names(embedded.database_url) >= {"purchase_executions", "purchase_suppressions"}
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM groups").fetchone()[0] == 3


@pytest.mark.processes
@pytest.mark.backends("sqlite")
def test_an_existing_sqlite_database_is_migrated_to_canonical_text(empty_database: Settings):
    """A database written by the previous release (32-hex ids, CURRENT_TIMESTAMP text)
    comes out with dashed ids and one timestamp format, every row kept and linked; and
    goes back again on downgrade."""
    migrate(empty_database, "upgrade", "0002")
    path = empty_database.database_url.removeprefix("sqlite:///")
    first, second = uuid.uuid4(), uuid.uuid4()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys=ON")
        for row_id, successor in ((second, None), (first, second)):
            conn.execute(
                "INSERT INTO purchase_executions (execution_id, status, recommendations,"
                " retry_execution_id) VALUES (?, 'failed', '[]', ?)",
                (row_id.hex, successor.hex if successor else None),
            )
    migrate(empty_database, "upgrade")
    with sqlite3.connect(path) as conn:
        rows = dict(
            conn.execute("SELECT execution_id, retry_execution_id FROM purchase_executions")
        )
        stamps = [r[0] for r in conn.execute("SELECT created_at FROM purchase_executions")]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert rows == {str(first): str(second), str(second): None}
    assert all(len(stamp) == 26 and stamp[19] == "." for stamp in stamps), stamps

    migrate(empty_database, "downgrade", "0002")
    with sqlite3.connect(path) as conn:
        ids = {r[0] for r in conn.execute("SELECT execution_id FROM purchase_executions")}
    assert ids == {first.hex, second.hex}


@pytest.mark.backends("sqlite")
def test_sqlite_refuses_what_postgresqls_types_refuse(db_session):
    for bad_id in ("not-a-uuid", "6F1C0A5E-1111-4222-8333-944445555666"):
        with (
            pytest.raises(IntegrityError, match="execution_id_canonical"),
            db_session.begin_nested(),
        ):
            db_session.execute(PLAIN_INSERT, {"id": bad_id})
    with pytest.raises(IntegrityError, match="recommendations_json"), db_session.begin_nested():
        db_session.execute(
            text(
                "INSERT INTO purchase_executions (execution_id, status, recommendations)"
                " VALUES (:id, 'failed', 'not json')"
            ),
            {"id": str(uuid.uuid4())},
        )


@pytest.mark.backends("sqlite")
def test_a_timestamp_written_in_another_format_is_stored_canonically(db_session):
    execution_id = str(uuid.uuid4())
    db_session.execute(
        text(
            "INSERT INTO purchase_executions (execution_id, status, created_at)"
            " VALUES (:id, 'failed', '2026-11-27T10:00:00+02:00')"
        ),
        {"id": execution_id},
    )
    stored = db_session.execute(
        text("SELECT created_at FROM purchase_executions WHERE execution_id = :id"),
        {"id": execution_id},
    ).scalar_one()
    assert stored == "2026-11-27 08:00:00.000000"


@pytest.mark.processes
def test_existing_successors_get_their_lineages_creator_back(empty_database: Settings):
    """Before revision 0008 a successor named its retrier as its creator, which let a
    retrier's `approve-own` approve someone else's purchase. The migration gives every
    successor its lineage's creator and records the retrier; a downgrade puts it back."""
    migrate(empty_database, "upgrade", "0007")
    owner, first_retrier, second_retrier = (str(uuid.uuid4()) for _ in range(3))
    root, middle, latest = (str(uuid.uuid4()) for _ in range(3))
    engine = build_engine(empty_database.database_url)
    try:
        with engine.begin() as conn:
            for email, user_id in (
                ("owner@example.com", owner),
                ("r1@example.com", first_retrier),
                ("r2@example.com", second_retrier),
            ):
                conn.execute(
                    text("INSERT INTO users (id, email, password_hash) VALUES (:id, :e, 'x')"),
                    {"id": user_id, "e": email},
                )
            for row_id, creator, successor in (
                (latest, second_retrier, None),
                (middle, first_retrier, latest),
                (root, owner, middle),
            ):
                conn.execute(
                    text(
                        "INSERT INTO purchase_executions (execution_id, status, recommendations,"
                        " created_by_user_id, retry_execution_id)"
                        " VALUES (:id, 'failed', '[]', :creator, :successor)"
                    ),
                    {"id": row_id, "creator": creator, "successor": successor},
                )
        migrate(empty_database, "upgrade")
        query = text(
            "SELECT execution_id, created_by_user_id, retried_by_user_id FROM purchase_executions"
        )
        with engine.connect() as conn:
            after = {str(r[0]): (str(r[1]), r[2] and str(r[2])) for r in conn.execute(query)}
        assert after == {
            root: (owner, None),
            middle: (owner, first_retrier),
            latest: (owner, second_retrier),
        }
        migrate(empty_database, "downgrade", "0007")
        query = text("SELECT execution_id, created_by_user_id FROM purchase_executions")
        with engine.connect() as conn:
            before = {str(r[0]): str(r[1]) for r in conn.execute(query)}
        assert before == {root: owner, middle: first_retrier, latest: second_retrier}
    finally:
        engine.dispose()


def test_retry_requests_become_batches_of_one_and_come_back(empty_database: Settings):
    """Revision 0009 moves each retry request into a batch of one (same id, the item's
    state, successor and refusal) and drops the table; a downgrade moves them back."""
    migrate(empty_database, "upgrade", "0008")
    user, root, successor = (str(uuid.uuid4()) for _ in range(3))
    settled, queued = str(uuid.uuid4()), str(uuid.uuid4())
    engine = build_engine(empty_database.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO users (id, email, password_hash) VALUES (:id, 'u@x.io', 'x')"),
                {"id": user},
            )
            for row_id, attempt, next_id in ((successor, 2, None), (root, 1, successor)):
                conn.execute(
                    text(
                        "INSERT INTO purchase_executions (execution_id, status, recommendations,"
                        " retry_attempt_n, retry_execution_id)"
                        " VALUES (:id, 'failed', '[]', :n, :next)"
                    ),
                    {"id": row_id, "n": attempt, "next": next_id},
                )
            for request_id, state, successor_id, status, details in (
                (settled, "succeeded", successor, None, "{}"),
                (queued, "queued", None, None, "{}"),
            ):
                conn.execute(
                    text(
                        "INSERT INTO retry_requests (id, execution_id, requested_by_user_id,"
                        " requested_by_email, force, state, successor_execution_id,"
                        " retry_attempt_n, refusal_status, details)"
                        " VALUES (:id, :row, :user, 'u@x.io', false, :state, :successor,"
                        " :attempt, :status, :details)"
                    ),
                    {
                        "id": request_id,
                        "row": root,
                        "user": user,
                        "state": state,
                        "successor": successor_id,
                        "attempt": 2 if successor_id else None,
                        "status": status,
                        "details": details,
                    },
                )
        migrate(empty_database, "upgrade")
        assert "retry_requests" not in table_names(empty_database.database_url)
        query = text(
            "SELECT b.id, b.kind, b.total, i.execution_id, i.state, i.successor_execution_id,"
            " i.lease_owner FROM retry_batches b JOIN retry_batch_items i ON i.batch_id = b.id"
        )
        with engine.connect() as conn:
            moved = {
                str(r[0]): tuple(str(v) if v else v for v in r[1:]) for r in conn.execute(query)
            }
        assert moved == {
            settled: ("single", "1", root, "succeeded", successor, None),
            queued: ("single", "1", root, "queued", None, None),
        }
        migrate(empty_database, "downgrade", "0008")
        query = text(
            "SELECT id, state, successor_execution_id, retry_attempt_n FROM retry_requests"
        )
        with engine.connect() as conn:
            back = {str(r[0]): (r[1], r[2] and str(r[2]), r[3]) for r in conn.execute(query)}
        assert back == {settled: ("succeeded", successor, 2), queued: ("queued", None, None)}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM retry_batches")).scalar() == 0
    finally:
        engine.dispose()
