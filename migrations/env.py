"""Alembic environment: runs against the engine of the Flask app in context."""

from __future__ import annotations

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app
from sqlalchemy.engine import Connection

import app.models  # noqa: F401  (registers every table on the metadata)

config = context.config
if config.config_file_name is not None and not logging.getLogger().handlers:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

database = current_app.extensions["migrate"].db
target_metadata = database.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=database.engine.url.render_as_string(hide_password=False),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    options = {"compare_type": True, **current_app.extensions["migrate"].configure_args}
    # SQLite changes schemas in transactions too (our engine emits BEGIN, not pysqlite):
    # a migration that fails half-way leaves the database as it was.
    options.setdefault("transactional_ddl", True)
    with database.engine.connect() as connection, _sqlite_foreign_keys_off(connection):
        context.configure(connection=connection, target_metadata=target_metadata, **options)
        with context.begin_transaction():
            context.run_migrations()


class _sqlite_foreign_keys_off:
    """SQLite rebuilds a table to change it, and dropping the old copy with foreign keys
    on would cascade into the tables that reference it. The pragma only takes effect
    outside a transaction; a migration that rebuilds tables checks the references itself
    before it commits (`PRAGMA foreign_key_check`)."""

    def __init__(self, connection: Connection) -> None:
        self.raw = connection.connection.dbapi_connection
        self.active = connection.dialect.name == "sqlite"

    def __enter__(self) -> None:
        if self.active:
            self.raw.execute("PRAGMA foreign_keys=OFF")

    def __exit__(self, *exc: object) -> None:
        if self.active:
            self.raw.execute("PRAGMA foreign_keys=ON")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
