"""`flask groups create|limit|limits`: `app.services.management`'s and
`app.services.spend_limits`'s writes, audited with the CLI as the actor (`cli`), a refusal
too.

Like the other group commands, `limit` runs as the shell operator (whoever runs commands
on the server owns the deployment), not as a user named with `--as`.
"""

from __future__ import annotations

from decimal import Decimal

import click
from flask.cli import AppGroup
from sqlalchemy.orm import Session

from app.cli.common import refusals_exit_nonzero
from app.db import fresh_read
from app.domain.inputs import clean_text
from app.domain.rbac import Principal
from app.domain.spending import money_text
from app.services import management, spend_limits
from app.services.management import CLI_ACTOR
from app.services.spend_limits import GroupLimit

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


# `--unset NAME`: the limit's part that goes back to unlimited.
UNSET = {
    "accounts": "allowed_accounts",
    "providers": "allowed_providers",
    "services": "allowed_services",
    "max-per-purchase": "max_per_purchase",
    "max-per-day": "max_per_day",
}


@groups_cli.command("limit")
@click.argument("name")
@click.option(
    "--account",
    "accounts",
    multiple=True,
    help="An account the members may buy for, by name or id. Repeatable; replaces the list.",
)
@click.option(
    "--provider",
    "providers",
    multiple=True,
    help="A provider they may buy from (aws, azure, gcp). Repeatable; replaces the list.",
)
@click.option(
    "--service",
    "services",
    multiple=True,
    help="A service they may buy (ec2, rds, savingsplans, vm ...). Repeatable; replaces the list.",
)
@click.option(
    "--max-per-purchase",
    help="The most one purchase may commit to (upfront plus recurring over the term).",
)
@click.option(
    "--max-per-day", help="The most the group's members may have approved in one UTC day."
)
@click.option(
    "--unset",
    multiple=True,
    type=click.Choice(sorted(UNSET)),
    help="Make this part of the limit unlimited again. Repeatable.",
)
@click.option("--clear", is_flag=True, help="Remove the group's limit altogether.")
@refusals_exit_nonzero
def limit_command(
    name: str,
    accounts: tuple[str, ...],
    providers: tuple[str, ...],
    services: tuple[str, ...],
    max_per_purchase: str | None,
    max_per_day: str | None,
    unset: tuple[str, ...],
    clear: bool,
) -> None:
    """Set the spend limit of the group NAME: what is given changes, the rest stays as it
    is. A group without a limit is not limited; --clear removes it."""
    name = clean_text(name, "group name")
    fields: dict[str, object] = {UNSET[part]: None for part in unset}
    given = {
        "allowed_accounts": list(accounts) or None,
        "allowed_providers": list(providers) or None,
        "allowed_services": list(services) or None,
        "max_per_purchase": max_per_purchase,
        "max_per_day": max_per_day,
    }
    for field, value in given.items():
        if value is not None:
            if field in fields:
                raise click.UsageError(f"{field.replace('_', ' ')} is both given and unset")
            fields[field] = value
    if clear and fields:
        raise click.UsageError("--clear removes the whole limit: give no other option with it")
    if not clear and not fields:
        raise click.UsageError(
            "nothing to change: give --account, --provider, --service, --max-per-purchase, "
            "--max-per-day or --unset, or --clear"
        )
    if clear:

        def remove(session: Session, actor: Principal) -> int:
            return spend_limits.clear_limit(session, actor, name).id

        management.write("spend_limit", "clear", CLI_ACTOR, remove, group=name.strip()[:100])
        click.echo(f"cleared the spend limit of group {name.strip()}: its members are not limited")
        return

    def change(session: Session, actor: Principal) -> int:
        return spend_limits.set_limit(session, actor, name, fields).group_id

    group_id = management.write(
        "spend_limit", "change", CLI_ACTOR, change, group=name.strip()[:100]
    )
    click.echo("\n".join(describe(_limit_of(group_id))))


@groups_cli.command("limits")
def limits_command() -> None:
    """Every group and its spend limit (accounts by name)."""
    with fresh_read() as session:
        found = spend_limits.limits_by_group(session)
    if not found:
        click.echo("no groups")
    for entry in found:
        click.echo("\n".join(describe(entry)))


def _limit_of(group_id: int) -> GroupLimit:
    with fresh_read() as session:
        return next(
            entry for entry in spend_limits.limits_by_group(session) if entry.group_id == group_id
        )


def describe(entry: GroupLimit) -> list[str]:
    """A group's limit as lines of text."""
    if entry.limit is None:
        return [f"{entry.group}: no spend limit"]
    limit = entry.limit

    def listed(values: list[str] | None) -> str:
        return "any" if values is None else ", ".join(values) or "none"

    def capped(amount: str | None) -> str:
        return "no cap" if amount is None else money_text(Decimal(amount))

    return [
        f"{entry.group}: spend limit",
        f"  accounts: {listed(entry.accounts)}",
        f"  providers: {listed(limit['allowed_providers'])}",
        f"  services: {listed(limit['allowed_services'])}",
        f"  max per purchase: {capped(limit['max_per_purchase'])}",
        f"  max per day: {capped(limit['max_per_day'])}",
    ]
