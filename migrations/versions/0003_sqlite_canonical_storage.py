"""SQLite stores UUIDs and timestamps as PostgreSQL-comparable text.

A UUID becomes its canonical 36-character text (SQLAlchemy's default was 32 hex
digits), so a row inserted by hand with the usual dashed id is found. A timestamp is
always `YYYY-MM-DD HH:MM:SS.ffffff`, server defaults included (`CURRENT_TIMESTAMP`
wrote `YYYY-MM-DD HH:MM:SS`, which sorts before its own instant as text), and a row
inserted with a timestamp in another format is normalized by a trigger. Executions get
the checks PostgreSQL's types imply: a canonical id and valid JSON recommendations.

SQLite changes a table by rebuilding it (its documented procedure): each table is
created anew from its own schema with the changes applied, the rows are copied over
converted, and its indexes are created again. PostgreSQL is untouched.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import re

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TIMESTAMP_GLOB = "????-??-?? ??:??:??.??????"
UUID_GLOB = "-".join("[0-9a-f]" * width for width in (8, 4, 4, 4, 12))
NOW = "(strftime('%Y-%m-%d %H:%M:%f000', 'now'))"
EXECUTION_CHECKS = (
    f"\tCONSTRAINT ck_purchase_executions_execution_id_canonical"
    f" CHECK (execution_id GLOB '{UUID_GLOB}'), \n"
    "\tCONSTRAINT ck_purchase_executions_recommendations_json"
    " CHECK (json_valid(recommendations)), \n"
)
TRIGGER = "purchase_executions_created_at_canonical"
TABLES = (
    "cloud_accounts",
    "groups",
    "purchase_plans",
    "users",
    "audit_events",
    "purchase_executions",
    "user_groups",
    "purchase_suppressions",
    "retry_requests",
)


def _canonical_uuid(column: str) -> str:
    pieces = "||'-'||".join(
        f"substr({column}, {start}, {width})"
        for start, width in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
    )
    return f"CASE WHEN length({column}) = 32 THEN lower({pieces}) ELSE lower({column}) END"


def _canonical_timestamp(column: str) -> str:
    return (
        f"CASE WHEN {column} IS NULL OR {column} GLOB '{TIMESTAMP_GLOB}' THEN {column}"
        f" ELSE strftime('%Y-%m-%d %H:%M:%f000', {column}) END"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        _rebuild(table, _to_canonical)
    op.execute(
        f"CREATE TRIGGER {TRIGGER} AFTER INSERT ON purchase_executions"
        f" WHEN NEW.created_at NOT GLOB '{TIMESTAMP_GLOB}'"
        " BEGIN UPDATE purchase_executions"
        " SET created_at = strftime('%Y-%m-%d %H:%M:%f000', NEW.created_at)"
        " WHERE execution_id = NEW.execution_id; END"
    )
    _check_foreign_keys()


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER}")
    for table in TABLES:
        _rebuild(table, _to_legacy)
    _check_foreign_keys()


def _to_canonical(table: str, ddl: str, column: str, declared: str) -> tuple[str, str]:
    if declared == "CHAR(32)":
        ddl = re.sub(rf"(\n\t{column}) CHAR\(32\)", r"\1 VARCHAR(36)", ddl)
        return ddl, _canonical_uuid(column)
    if declared == "DATETIME":
        ddl = ddl.replace(
            f"\n\t{column} DATETIME DEFAULT CURRENT_TIMESTAMP",
            f"\n\t{column} DATETIME DEFAULT {NOW}",
        )
        return ddl, _canonical_timestamp(column)
    return ddl, column


def _to_legacy(table: str, ddl: str, column: str, declared: str) -> tuple[str, str]:
    if declared == "VARCHAR(36)":
        ddl = re.sub(rf"(\n\t{column}) VARCHAR\(36\)", r"\1 CHAR(32)", ddl)
        return ddl, f"replace({column}, '-', '')"
    if declared == "DATETIME":
        ddl = ddl.replace(
            f"\n\t{column} DATETIME DEFAULT {NOW}",
            f"\n\t{column} DATETIME DEFAULT CURRENT_TIMESTAMP",
        )
    return ddl, column


def _rebuild(table: str, convert) -> None:
    bind = op.get_bind()
    ddl = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    indexes = (
        bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
            (table,),
        )
        .scalars()
        .all()
    )
    columns = bind.exec_driver_sql(f"PRAGMA table_info({table})").all()
    selected = []
    for column in columns:
        ddl, expression = convert(table, ddl, column.name, column.type.upper())
        selected.append(expression)
    if table == "purchase_executions":
        if convert is _to_canonical:
            ddl = ddl.replace("\tCONSTRAINT fk_", EXECUTION_CHECKS + "\tCONSTRAINT fk_", 1)
        else:
            ddl = ddl.replace(EXECUTION_CHECKS, "")
    new_table = f"{table}__rebuilt"
    create, count = re.subn(rf'^CREATE TABLE "?{table}"? \(', f"CREATE TABLE {new_table} (", ddl)
    if count != 1:
        raise RuntimeError(f"unexpected schema of {table}: {ddl[:80]!r}")
    op.execute(create)
    names = ", ".join(column.name for column in columns)
    op.execute(f"INSERT INTO {new_table} ({names}) SELECT {', '.join(selected)} FROM {table}")
    op.execute(f"DROP TABLE {table}")
    op.execute(f"ALTER TABLE {new_table} RENAME TO {table}")
    for index in indexes:
        op.execute(index)


def _check_foreign_keys() -> None:
    dangling = op.get_bind().exec_driver_sql("PRAGMA foreign_key_check").all()
    if dangling:
        raise RuntimeError(f"rebuilding the tables left foreign keys dangling: {dangling[:5]}")
