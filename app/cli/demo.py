"""`flask demo seed|start`: the only commands that print an approval token."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.cli.common import refusals_exit_nonzero
from app.cli.users import PASSWORD_VARIABLE
from app.config import get_settings
from app.db import fresh_read, unit_of_work, utcnow
from app.services import demo

demo_cli = AppGroup("demo", help="Demo data for trying the product.")


@demo_cli.command("seed")
@refusals_exit_nonzero
def seed_command() -> None:
    """Add demo users, accounts, a plan and executions in every state (once).

    Refused under APP_ENV=production: the demo's admin has a published password.
    """
    _seed()


@demo_cli.command("start")
@click.option(
    "--demo",
    "asked",
    is_flag=True,
    help="Seed the demo on any database (never under APP_ENV=production).",
)
@refusals_exit_nonzero
def start_command(asked: bool) -> None:
    """What scripts/run does once the schema is current: seed the demo on the embedded
    default database (or with --demo); anywhere else, say how to make the first admin."""
    plan = demo.start_plan(get_settings(), asked=asked)
    click.echo(f"demo: {'yes' if plan.demo else 'no'} ({plan.reason})")
    if plan.demo:
        _seed()
        return
    with fresh_read() as session:
        if demo.has_active_admin(session):
            return
    click.echo(
        f"no active admin yet; create the first one with\n  {demo.FIRST_ADMIN_HINT}\n"
        f"(the password is asked for twice, or read from {PASSWORD_VARIABLE} or with "
        "--password-stdin)"
    )


def _seed() -> None:
    """Seed the demo and print its logins and the live links of its pending rows:
    the only command that prints an approval token."""
    with unit_of_work() as session:
        result = demo.seed(session, now=utcnow(), settings=get_settings())
    if result is None:
        click.echo("demo data already present; nothing added")
        return
    click.echo(f"seeded {result.executions} executions in {len(result.accounts)} accounts")
    for email, group in result.logins:
        click.echo(f"  login: {email} / {demo.DEMO_PASSWORD}  ({group})")
    click.echo("approval links of the pending rows (the demo sends no email; each works once):")
    for link in result.links:
        click.echo(f"  {link}")
