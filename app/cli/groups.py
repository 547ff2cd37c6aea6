"""`flask groups create`: `app.services.management`'s write, audited with the CLI as the
actor (`cli`), a refusal too."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy.orm import Session

from app.cli.common import refusals_exit_nonzero
from app.domain.inputs import clean_text
from app.domain.rbac import Principal
from app.services import management
from app.services.management import CLI_ACTOR

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
    name = clean_text(name, "group name")

    def create(session: Session, actor: Principal) -> str:
        group = management.create_group(
            session, actor, name, permissions, restricts_defaults=restrict_defaults
        )
        return f"created group {group.name}: {', '.join(group.permissions) or '(none)'}"

    click.echo(management.write("group", "create", CLI_ACTOR, create, name=name.strip()[:100]))
