"""A production start: the demo (a published admin password, live approval links) only
where it harms nobody, the first admin from `users create --admin` everywhere else,
and an instance folder its owner alone can read."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from app.config import Settings
from app.domain.errors import DomainError
from app.models import PurchaseExecution, User
from app.services.demo import start_plan
from tests.support.commands import flask_cli, product_python


@pytest.mark.parametrize(
    ("environ", "asked", "demo", "reason"),
    [
        ({}, False, True, "the embedded default database"),
        ({}, True, True, "asked for with --demo"),
        ({"DATABASE_URL": "postgresql://127.0.0.1/prod"}, False, False, "DATABASE_URL is not"),
        ({"DATABASE_URL": "sqlite:////srv/other.db"}, False, False, "DATABASE_URL is not"),
        ({"DATABASE_URL": "postgresql://127.0.0.1/prod"}, True, True, "asked for with --demo"),
        ({"APP_ENV": "production", "SECRET_KEY": "k"}, False, False, "APP_ENV is production"),
    ],
)
def test_the_demo_comes_with_the_embedded_default_or_when_asked(environ, asked, demo, reason):
    plan = start_plan(Settings.from_env(environ), asked=asked)
    assert plan.demo is demo
    assert plan.reason.startswith(reason)


def test_asking_for_the_demo_in_production_is_refused():
    production = Settings.from_env({"APP_ENV": "production", "SECRET_KEY": "k"})
    with pytest.raises(DomainError, match="never seeded under APP_ENV=production"):
        start_plan(production, asked=True)


def test_demo_start_elsewhere_seeds_nothing_and_says_how_to_make_the_first_admin(app, db_session):
    """Before: scripts/run seeded admin@example.com / demo-password (an admin) into
    whatever DATABASE_URL named, PostgreSQL included, and printed live links."""
    cli = app.test_cli_runner()
    result = cli.invoke(args=["demo", "start"])
    assert result.exit_code == 0, result.output
    assert "demo: no (DATABASE_URL is not the embedded default" in result.output
    assert "flask --app app users create EMAIL --admin" in result.output
    assert "token=" not in result.output and "demo-password" not in result.output
    assert db_session.scalar(select(User)) is None

    made = cli.invoke(
        args=["users", "create", "root@example.com", "--admin"],
        env={"NEW_USER_PASSWORD": "a long password"},
    )
    assert made.exit_code == 0, made.output
    again = cli.invoke(args=["demo", "start"])
    assert again.exit_code == 0, again.output
    assert "users create" not in again.output  # an active admin exists

    asked = cli.invoke(args=["demo", "start", "--demo"])
    assert asked.exit_code == 0, asked.output
    assert "demo: yes (asked for with --demo)" in asked.output
    assert "admin@example.com / demo-password" in asked.output
    assert db_session.scalar(select(PurchaseExecution).limit(1)) is not None


@pytest.mark.processes
def test_production_never_seeds_the_demo(settings, committed_db):
    seed = flask_cli(settings, "demo", "seed", APP_ENV="production")
    assert seed.returncode == 1, seed.stdout + seed.stderr
    assert "the demo is never seeded under APP_ENV=production" in seed.stderr
    assert committed_db.scalar(select(User)) is None

    start = flask_cli(settings, "demo", "start", APP_ENV="production")
    assert start.returncode == 0, start.stdout + start.stderr
    assert "demo: no (APP_ENV is production)" in start.stdout
    assert "users create EMAIL --admin" in start.stdout

    asked = flask_cli(settings, "demo", "start", "--demo", APP_ENV="production")
    assert asked.returncode == 1
    assert "never seeded under APP_ENV=production" in asked.stderr
    assert committed_db.scalar(select(User)) is None

    no_key = flask_cli(settings, "demo", "start", APP_ENV="production", SECRET_KEY="")
    assert no_key.returncode != 0
    assert "SECRET_KEY must be set when APP_ENV is production" in no_key.stderr


# Runs in a process of its own (the app binds one engine per process): the embedded
# default in a temporary instance folder, under a permissive umask, seeded by
# `demo start`; prints every file's mode while the database is still open (the -wal
# and -shm files exist only then).
EMBEDDED_START = """
import json, os, stat, sys
from pathlib import Path
from flask_migrate import upgrade
from app import create_app
from app.config import Settings, default_sqlite_url
from app.db import db
from app.instance import flower_credentials

os.umask(0o022)
instance = Path(sys.argv[1])
settings = Settings.from_env({"REDIS_URL": os.environ["REDIS_URL"]}).with_overrides(
    database_url=default_sqlite_url(instance), instance_dir=instance
)
app = create_app(settings)
with app.app_context():
    upgrade()
result = app.test_cli_runner().invoke(args=["demo", "start"])
flower_credentials(settings)
with db.engine.connect() as connection:
    connection.exec_driver_sql("SELECT count(*) FROM purchase_executions")
    modes = {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in instance.iterdir()}
modes["."] = oct(stat.S_IMODE(instance.stat().st_mode))
print(json.dumps({"output": result.output, "modes": modes}))
"""

PRIVATE_FILES = {
    "commitments.db",
    "commitments.db-wal",
    "commitments.db-shm",
    "secret_key",
    "flower_credentials",
}


def start_embedded(settings: Settings, instance: Path) -> dict:
    script = EMBEDDED_START.replace("sys.argv[1]", repr(str(instance)))
    ran = product_python(settings, script, DATABASE_URL="", SECRET_KEY="")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return json.loads(ran.stdout.strip().splitlines()[-1])


@pytest.mark.processes
@pytest.mark.backends("sqlite")
def test_the_embedded_default_seeds_the_demo_and_keeps_its_files_private(
    settings, backend, tmp_path
):
    """Before: commitments.db and its WAL were 0644 (password and token hashes)."""
    instance = tmp_path / "instance"
    started = start_embedded(settings, instance)
    assert "demo: yes (the embedded default database)" in started["output"]
    assert "admin@example.com / demo-password" in started["output"]
    modes = started["modes"]
    assert modes.pop(".") == "0o700"
    assert PRIVATE_FILES <= set(modes), modes
    assert modes == dict.fromkeys(modes, "0o600")


@pytest.mark.processes
@pytest.mark.backends("sqlite")
def test_files_an_older_version_left_world_readable_are_narrowed(settings, backend, tmp_path):
    """An instance folder from before: 0755, its database, WAL and key 0644."""
    instance = tmp_path / "instance"
    old = os.umask(0o022)
    try:
        instance.mkdir(mode=0o755)
        connection = sqlite3.connect(instance / "commitments.db")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE leftover (x)")
        connection.commit()
        (instance / "secret_key").write_text("an old key\n")
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in instance.iterdir()}
        assert modes == dict.fromkeys(
            ["commitments.db", "commitments.db-wal", "commitments.db-shm", "secret_key"], 0o644
        )
        connection.close()
    finally:
        os.umask(old)

    started = start_embedded(settings, instance)
    modes = started["modes"]
    assert modes.pop(".") == "0o700"
    assert PRIVATE_FILES <= set(modes), modes
    assert modes == dict.fromkeys(modes, "0o600")
