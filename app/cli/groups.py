"""`flask groups create`."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.cli.common import refusals_exit_nonzero
from app.db import unit_of_work
from app.services import identity

groups_cli = AppGroup("groups", help="Manage groups and their permissions.")


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
