"""Alembic environment: runs against the engine of the Flask app in context."""

from __future__ import annotations

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

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
    with database.engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            **options,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
