"""`flask users create|set-password|deactivate|set-timezone`: `app.services.management`'s
(and `app.services.user_settings`') writes, audited with the CLI as the actor (`cli`),
refusals too."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import click
from flask.cli import AppGroup
from sqlalchemy.orm import Session

from app.cli.common import refusals_exit_nonzero, stdin_text
from app.domain.inputs import clean_text
from app.domain.rbac import Principal
from app.models import normalize_email
from app.services import management, user_settings
from app.services.management import CLI_ACTOR

users_cli = AppGroup("users", help="Manage users.")

ADMIN_GROUP = "Administrators"

PASSWORD_VARIABLE = "NEW_USER_PASSWORD"  # noqa: S105  (a variable's name)


@users_cli.command("create")
@click.argument("email")
@click.option(
    "--password-stdin",
    is_flag=True,
    help=f"Read the password from the first line of standard input; else {PASSWORD_VARIABLE}"
    ", else a prompt (terminal only).",
)
@click.option("--group", "group_names", multiple=True, help="Add the user to this group.")
@click.option("--admin", is_flag=True, help=f"Add the user to {ADMIN_GROUP} (the first admin).")
@refusals_exit_nonzero
def create_user_command(
    email: str, password_stdin: bool, group_names: tuple[str, ...], admin: bool
) -> None:
    """Create a user who can sign in with EMAIL."""
    email = clean_text(email, "email")
    groups = [clean_text(name, "group name") for name in group_names]
    if admin and ADMIN_GROUP not in groups:
        groups.append(ADMIN_GROUP)
    password = _read_password(password_stdin)

    def create(session: Session, actor: Principal) -> str:
        user = management.create_user(session, actor, email, password, groups)
        summary = f"created user {user.email} ({user.id})"
        if user.groups:
            summary += " in " + ", ".join(group.name for group in user.groups)
        return summary

    click.echo(_write_user("create", email, create))


def _write_user(verb: str, email: str, change: Callable[[Session, Principal], str]) -> str:
    """`change` as the CLI, its refusal audited as `user.<verb>_refused`."""
    return management.write("user", verb, CLI_ACTOR, change, email=normalize_email(email)[:320])


def _read_password(password_stdin: bool) -> str:
    """The password from standard input's first line (--password-stdin), else from
    NEW_USER_PASSWORD, else typed twice, hidden, at a terminal. Never from the command
    line (other users see it in `ps`), never printed: a refusal names only the problem."""
    if password_stdin:
        password = stdin_text(first_line=True)
    elif os.environ.get(PASSWORD_VARIABLE):
        password = os.environ[PASSWORD_VARIABLE]
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise click.UsageError(
            f"no password: pass --password-stdin, set {PASSWORD_VARIABLE}, or run in a terminal"
            " to be asked (passwords are never taken from the command line)"
        )
    return clean_text(password, "password")


@users_cli.command("set-password")
@click.argument("email")
@click.option(
    "--password-stdin",
    is_flag=True,
    help=f"Read the new password from the first line of standard input; else {PASSWORD_VARIABLE}"
    ", else a prompt (terminal only).",
)
@refusals_exit_nonzero
def set_password_command(email: str, password_stdin: bool) -> None:
    """Give EMAIL a new password; every session they had ends."""
    email = clean_text(email, "email")
    password = _read_password(password_stdin)

    def set_password(session: Session, actor: Principal) -> str:
        user = management.set_password(session, actor, email, password)
        return f"new password for {user.email}; their sessions have ended"

    click.echo(_write_user("update", email, set_password))


@users_cli.command("deactivate")
@click.argument("email")
@refusals_exit_nonzero
def deactivate_command(email: str) -> None:
    """Stop EMAIL from signing in; every session they had ends."""
    email = clean_text(email, "email")

    def deactivate(session: Session, actor: Principal) -> str:
        user = management.deactivate(session, actor, email)
        return f"deactivated {user.email}; their sessions have ended"

    click.echo(_write_user("update", email, deactivate))


@users_cli.command("set-timezone")
@click.argument("email")
@click.argument("zone")
@refusals_exit_nonzero
def set_timezone_command(email: str, zone: str) -> None:
    """Show the panel's times to EMAIL in ZONE, an IANA name such as Europe/Paris
    ("" or UTC: UTC)."""
    email = clean_text(email, "email")
    chosen = user_settings.set_time_zone_by_email(CLI_ACTOR, email, zone)
    click.echo(f"{normalize_email(email)} now sees times in {chosen or 'UTC'}")
