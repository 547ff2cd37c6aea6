"""Flask CLI commands: `flask --app app users|groups|demo ...`.

Thin: each command parses its input, calls a service inside a unit of work, and turns
a `DomainError` into a message on stderr and a non-zero exit code.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup

from app.db import unit_of_work, utcnow
from app.domain.errors import DomainError
from app.services import demo, identity

users_cli = AppGroup("users", help="Manage users.")
groups_cli = AppGroup("groups", help="Manage groups and their permissions.")
demo_cli = AppGroup("demo", help="Demo data for trying the product.")


def init_app(app: Flask) -> None:
    for group in (users_cli, groups_cli, demo_cli):
        app.cli.add_command(group)


def refusals_exit_nonzero(command: Callable[..., Any]) -> Callable[..., Any]:
    """Render a `DomainError` as `Error: <message>` and exit with status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except DomainError as exc:
            raise click.ClickException(exc.message) from None

    return wrapper


@users_cli.command("create")
@click.argument("email")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (required).",
)
@click.option("--group", "group_names", multiple=True, help="Add the user to this group.")
@refusals_exit_nonzero
def create_user_command(email: str, password_stdin: bool, group_names: tuple[str, ...]) -> None:
    """Create a user who can sign in with EMAIL."""
    if not password_stdin:
        raise click.UsageError(
            "--password-stdin is required: passwords are never taken from the command line"
        )
    password = sys.stdin.readline().rstrip("\r\n")
    with unit_of_work() as session:
        user = identity.create_user(session, email, password, group_names)
        summary = f"created user {user.email} ({user.id})"
        if user.groups:
            summary += " in " + ", ".join(group.name for group in user.groups)
    click.echo(summary)


@groups_cli.command("create")
@click.argument("name")
@click.option(
    "--permission",
    "permissions",
    multiple=True,
    help="A 'verb:resource' permission, e.g. retry-any:purchases. Repeatable.",
)
@click.option(
    "--restrict-defaults",
    is_flag=True,
    help="Members lose the default permissions every signed-in user has.",
)
@refusals_exit_nonzero
def create_group_command(name: str, permissions: tuple[str, ...], restrict_defaults: bool) -> None:
    """Create a group NAME granting the given permissions."""
    with unit_of_work() as session:
        group = identity.create_group(
            session, name, permissions, restricts_defaults=restrict_defaults
        )
        summary = f"created group {group.name}: {', '.join(group.permissions) or '(none)'}"
    click.echo(summary)


@demo_cli.command("seed")
@refusals_exit_nonzero
def seed_command() -> None:
    """Add demo users, accounts, a plan and executions in every state (once)."""
    with unit_of_work() as session:
        result = demo.seed(session, now=utcnow())
    if result is None:
        click.echo("demo data already present; nothing added")
        return
    click.echo(f"seeded {result.executions} executions in {len(result.accounts)} accounts")
    for email, group in result.logins:
        click.echo(f"  login: {email} / {demo.DEMO_PASSWORD}  ({group})")
